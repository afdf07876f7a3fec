//! What the admin API asks of the limiter: reset the counters of a key,
//! and the keys denied most per policy (a bounded heavy-hitters sketch,
//! per sidecar).

use std::sync::{Arc, Mutex};

use floodgate_core::heavy_hitters::{HeavyHitters, TopConfig, TopReport};
use floodgate_core::{validate_attributes, Attributes, Clock};

use super::Limiter;
use crate::store::Clear;
use crate::LimitError;

/// Most policies whose denials are tracked; denials of further policies
/// (a configuration with more) are not.
pub const TOP_MAX_POLICIES: usize = 1_000;

/// One counter an admin reset cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetCounter {
    /// The policy counting in it.
    pub policy: Arc<str>,
    /// The counter key (`<policy>:<escaped values>`).
    pub key: String,
}

/// Denials per policy and key over the last minutes, in fixed memory
/// (see [`floodgate_core::heavy_hitters`] for the error bound and the
/// memory).
pub struct DenialTop {
    /// The sketches.
    sketch: Mutex<HeavyHitters>,
    /// Time source.
    clock: Arc<dyn Clock>,
}

impl DenialTop {
    /// Sketches of the default shape (64 entries, 5 slots of one minute),
    /// for at most [`TOP_MAX_POLICIES`] policies.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        DenialTop {
            sketch: Mutex::new(HeavyHitters::new(TopConfig {
                max_policies: TOP_MAX_POLICIES,
                ..TopConfig::default()
            })),
            clock,
        }
    }

    /// The shape of the sketches.
    pub fn config() -> TopConfig {
        TopConfig {
            max_policies: TOP_MAX_POLICIES,
            ..TopConfig::default()
        }
    }

    /// Counts one denial of `key` by `policy`.
    pub(crate) fn observe(&self, policy: &Arc<str>, key: &str) {
        let now = self.clock.now_us();
        let mut sketch = self.sketch.lock().unwrap_or_else(|e| e.into_inner());
        sketch.observe(now, policy, key, 1);
    }

    /// The `n` keys `policy` denied most over the window.
    pub fn top(&self, policy: &str, n: usize) -> TopReport {
        let now = self.clock.now_us();
        let sketch = self.sketch.lock().unwrap_or_else(|e| e.into_inner());
        sketch.top(now, policy, n)
    }

    /// Stops tracking policies `keep` says are gone.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut sketch = self.sketch.lock().unwrap_or_else(|e| e.into_inner());
        sketch.retain(keep);
    }
}

impl Limiter {
    /// The keys each policy denied most, on this sidecar.
    pub fn denials(&self) -> &DenialTop {
        &self.top
    }

    /// The counters an admin reset of `attributes` would clear: one per
    /// applicable policy (tiers applied), or only the one named `only`.
    ///
    /// # Errors
    /// [`LimitError::InvalidAttributes`] for malformed attributes.
    pub fn reset_targets(
        &self,
        attributes: &Attributes,
        only: Option<&str>,
    ) -> Result<Vec<ResetCounter>, LimitError> {
        validate_attributes(attributes)?;
        let snapshot = self.snapshot();
        Ok(snapshot
            .set
            .applicable(attributes, None)
            .filter(|(_, p)| only.is_none_or(|name| p.name() == name))
            .map(|(_, p)| ResetCounter {
                policy: p.name_arc().clone(),
                key: p.counter_key(attributes),
            })
            .collect())
    }

    /// Clears the counters of `attributes` in every applicable policy (or
    /// only the one named `only`) in the store, and returns them. Counters
    /// of policies no longer loaded are skipped.
    ///
    /// # Errors
    /// [`LimitError::InvalidAttributes`] for malformed attributes (nothing
    /// cleared); [`LimitError::Store`] when the store could not clear them
    /// all.
    pub async fn reset(
        &self,
        attributes: &Attributes,
        only: Option<&str>,
    ) -> Result<Vec<ResetCounter>, LimitError> {
        let targets = self.reset_targets(attributes, only)?;
        let snapshot = self.snapshot();
        let clears: Vec<Clear<'_>> = targets
            .iter()
            .filter_map(|t| {
                let policy = snapshot.set.get(&t.policy)?;
                Some(Clear {
                    policy,
                    key: &t.key,
                })
            })
            .collect();
        if !clears.is_empty() {
            self.store.clear(&clears).await?;
        }
        Ok(targets)
    }
}
