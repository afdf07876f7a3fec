//! Policies for tests, built in one line: `testing::policy(kind, limit,
//! window_us)` is a valid policy named `p` keyed on `user`, and its
//! builder sets what a test needs besides. Compiled only with the
//! `testing` feature, which the workspace's crates enable in their
//! `[dev-dependencies]`; production builds never do.

use crate::policy::{AlgorithmKind, Policy, PolicySpec};

/// A policy being put together for a test; [`PolicyBuilder::build`]
/// validates it.
#[derive(Debug, Clone)]
pub struct PolicyBuilder(PolicySpec);

/// A `kind` policy named `p`, keyed on `user`, allowing `limit` per
/// `window_us` (for `concurrency`, `window_us` is the lease timeout).
pub fn policy(kind: AlgorithmKind, limit: u64, window_us: u64) -> PolicyBuilder {
    let concurrency = kind == AlgorithmKind::Concurrency;
    PolicyBuilder(PolicySpec {
        name: "p".into(),
        key: vec!["user".into()],
        limit,
        window_us: (!concurrency).then_some(window_us),
        lease_timeout_us: concurrency.then_some(window_us),
        algorithm: kind,
        ..PolicySpec::default()
    })
}

impl PolicyBuilder {
    /// Renames the policy (its counter keys start with the name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.0.name = name.into();
        self
    }

    /// Sets a `token_bucket`'s bucket size (`None`: the limit).
    pub fn burst(mut self, burst: impl Into<Option<u64>>) -> Self {
        self.0.burst = burst.into();
        self
    }

    /// Lets checks reserve an estimated cost and settle it later.
    pub fn settle(mut self, settle: bool) -> Self {
        self.0.settle = settle;
        self
    }

    /// Any other setting, on the spec itself.
    pub fn with(mut self, set: impl FnOnce(&mut PolicySpec)) -> Self {
        set(&mut self.0);
        self
    }

    /// The spec as built so far, unvalidated.
    pub fn spec(self) -> PolicySpec {
        self.0
    }

    /// The validated policy.
    ///
    /// # Panics
    /// When the spec is invalid, with its errors: a test's policy is
    /// expected to be valid.
    pub fn build(self) -> Policy {
        match Policy::new(self.0) {
            Ok(policy) => policy,
            Err(errors) => panic!("an invalid test policy: {errors:?}"),
        }
    }
}
