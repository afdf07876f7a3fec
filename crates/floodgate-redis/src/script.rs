//! The Lua scripts (`lua/*.lua`) and the calls that run them.
//!
//! Each script is the shared prelude followed by one algorithm (or the
//! refund); its SHA1 is computed here, so a check sends only `EVALSHA`.

use std::sync::LazyLock;

use floodgate_core::{Algorithm, AlgorithmKind, Outcome, Policy, Receipt};
use floodgate_store::{Refund, StoreError, StoreOp};
use fred::types::Value;
use fred::util::sha1_hash;

use crate::key::{redis_key, suffix};

/// One script: its source and SHA1.
#[derive(Debug)]
pub(crate) struct Script {
    /// What `SCRIPT LOAD` and `EVAL` send.
    pub(crate) source: String,
    /// What `EVALSHA` sends.
    pub(crate) sha: String,
}

impl Script {
    fn new(body: &str) -> Script {
        let source = format!("{}\n{}", include_str!("../lua/prelude.lua"), body);
        let sha = sha1_hash(&source);
        Script { source, sha }
    }
}

/// The scripts, built once per process.
pub(crate) struct Scripts {
    /// `sliding_window.lua`.
    sliding_window: Script,
    /// `fixed_window.lua`.
    fixed_window: Script,
    /// `sliding_log.lua`.
    sliding_log: Script,
    /// `token_bucket.lua`.
    token_bucket: Script,
    /// `concurrency.lua`.
    concurrency: Script,
    /// `refund.lua`.
    refund: Script,
    /// `heartbeat.lua`.
    pub(crate) heartbeat: Script,
}

/// Every script, loaded on first use.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    sliding_window: Script::new(include_str!("../lua/sliding_window.lua")),
    fixed_window: Script::new(include_str!("../lua/fixed_window.lua")),
    sliding_log: Script::new(include_str!("../lua/sliding_log.lua")),
    token_bucket: Script::new(include_str!("../lua/token_bucket.lua")),
    concurrency: Script::new(include_str!("../lua/concurrency.lua")),
    refund: Script::new(include_str!("../lua/refund.lua")),
    heartbeat: Script::new(include_str!("../lua/heartbeat.lua")),
});

impl Scripts {
    /// All scripts, to load them at connect time.
    pub(crate) fn all(&self) -> [&Script; 7] {
        [
            &self.sliding_window,
            &self.fixed_window,
            &self.sliding_log,
            &self.token_bucket,
            &self.concurrency,
            &self.refund,
            &self.heartbeat,
        ]
    }

    fn check(&self, kind: AlgorithmKind) -> &Script {
        match kind {
            AlgorithmKind::SlidingWindow => &self.sliding_window,
            AlgorithmKind::FixedWindow => &self.fixed_window,
            AlgorithmKind::SlidingLog => &self.sliding_log,
            AlgorithmKind::TokenBucket => &self.token_bucket,
            AlgorithmKind::Concurrency => &self.concurrency,
        }
    }
}

/// One script call: `EVALSHA <sha> 1 <key> <args…>`.
#[derive(Debug)]
pub(crate) struct Call {
    /// The script to run.
    pub(crate) script: &'static Script,
    /// Its only key.
    pub(crate) key: String,
    /// Its ARGV.
    pub(crate) args: Vec<String>,
}

impl Call {
    /// The command's arguments after the script (SHA or source).
    pub(crate) fn arguments(&self, script: &str) -> Vec<Value> {
        let mut out = Vec::with_capacity(3 + self.args.len());
        out.push(Value::from(script));
        out.push(Value::from("1"));
        out.push(Value::from(self.key.as_str()));
        out.extend(self.args.iter().map(|a| Value::from(a.as_str())));
        out
    }
}

/// A check call and what is needed to read its reply.
#[derive(Debug)]
pub(crate) struct CheckCall {
    /// The call to send.
    pub(crate) call: Call,
    /// The hits checked.
    hits: u64,
    /// The algorithm, for the receipt id.
    kind: AlgorithmKind,
    /// The lease id sent (`concurrency`): the receipt id.
    nonce: u64,
}

/// The token bucket's emission interval, as the core computes it.
fn interval_us(policy: &Policy) -> u64 {
    match policy.algorithm() {
        Algorithm::TokenBucket(tb) => tb.interval_us(),
        _ => policy.window_us().div_ceil(policy.limit().max(1)).max(1),
    }
}

/// The call deciding `op`, with script time `now` ("" = Redis `TIME`).
pub(crate) fn check_call(prefix: &str, op: &StoreOp<'_>, now: &str) -> CheckCall {
    let policy = op.policy;
    let kind = policy.kind();
    let nonce = match kind {
        AlgorithmKind::SlidingLog | AlgorithmKind::Concurrency => rand::random(),
        _ => 0,
    };
    let mut args = vec![now.to_string(), op.hits.to_string()];
    match kind {
        AlgorithmKind::SlidingWindow | AlgorithmKind::FixedWindow => {
            args.push(policy.limit().to_string());
            args.push(policy.window_us().to_string());
        }
        AlgorithmKind::SlidingLog | AlgorithmKind::Concurrency => {
            args.push(policy.limit().to_string());
            args.push(policy.window_us().to_string());
            args.push(nonce.to_string());
        }
        AlgorithmKind::TokenBucket => {
            args.push(policy.burst().to_string());
            args.push(interval_us(policy).to_string());
        }
    }
    CheckCall {
        call: Call {
            script: SCRIPTS.check(kind),
            key: redis_key(prefix, op.key, kind),
            args,
        },
        hits: op.hits,
        kind,
        nonce,
    }
}

impl CheckCall {
    /// Reads the script's reply `{allowed, limit, remaining, reset_after_us,
    /// retry_after_us, now_us, id}`.
    ///
    /// # Errors
    /// [`StoreError::Protocol`] for any other shape.
    pub(crate) fn outcome(&self, reply: Value) -> Result<Outcome, StoreError> {
        let bad = || StoreError::Protocol(format!("unexpected script reply {reply:?}"));
        let Value::Array(items) = &reply else {
            return Err(bad());
        };
        let numbers: Vec<u64> = items
            .iter()
            .map(|v| match v {
                Value::Integer(n) => u64::try_from(*n).ok(),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        let [allowed, limit, remaining, reset_after_us, retry_after_us, now_us, id] = numbers[..]
        else {
            return Err(bad());
        };
        let allowed = allowed == 1;
        let receipt = (allowed && self.hits > 0).then_some(Receipt {
            at_us: now_us,
            id: match self.kind {
                AlgorithmKind::Concurrency => self.nonce,
                AlgorithmKind::TokenBucket => id,
                _ => 0,
            },
        });
        Ok(Outcome {
            allowed,
            limit,
            remaining,
            reset_after_us,
            retry_after_us,
            receipt,
        })
    }
}

/// The call undoing `refund`, with script time `now` ("" = Redis `TIME`).
pub(crate) fn refund_call(prefix: &str, refund: &Refund<'_>, now: &str) -> Call {
    let policy = refund.policy;
    let kind = policy.kind();
    let span = match kind {
        AlgorithmKind::TokenBucket => interval_us(policy),
        AlgorithmKind::Concurrency => 0,
        _ => policy.window_us(),
    };
    Call {
        script: &SCRIPTS.refund,
        key: redis_key(prefix, refund.key, kind),
        args: vec![
            now.to_string(),
            suffix(kind).to_string(),
            refund.hits.to_string(),
            refund.receipt.at_us.to_string(),
            refund.receipt.id.to_string(),
            span.to_string(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_states_its_contract_first() {
        for name in [
            include_str!("../lua/sliding_window.lua"),
            include_str!("../lua/fixed_window.lua"),
            include_str!("../lua/sliding_log.lua"),
            include_str!("../lua/token_bucket.lua"),
            include_str!("../lua/concurrency.lua"),
            include_str!("../lua/refund.lua"),
            include_str!("../lua/heartbeat.lua"),
        ] {
            assert!(name.starts_with("-- "));
            for part in ["KEYS[1]", "ARGV[1]", "Returns"] {
                assert!(name.contains(part), "{part} missing");
            }
        }
        let shas: std::collections::HashSet<_> =
            SCRIPTS.all().iter().map(|s| s.sha.clone()).collect();
        assert_eq!(shas.len(), 7);
    }
}
