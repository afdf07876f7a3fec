//! After an outage: adding what the fallback admitted to the Redis counters
//! of the same windows (`lua/reconcile.lua`), in one pipeline of calls of at
//! most [`PER_CALL`] counters each (one slot per call on a Cluster).

use std::sync::LazyLock;

use floodgate_core::AlgorithmKind;
use floodgate_store::Reconcile;
use fred::types::Value;
use fred::util::redis_keyslot;

use crate::key::{suffix, window_key};
use crate::script::{Call, Script};

/// Most counters one script call changes: bounds how long it holds Redis.
pub(crate) const PER_CALL: usize = 64;

/// The reconcile script: the prelude, then `reconcile.lua`.
pub(crate) static RECONCILE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&[include_str!("../lua/reconcile.lua")]));

/// The calls adding `charges` (those of `fixed_window` and
/// `sliding_window`; others are skipped) under `prefix`, with the script's
/// now override `now`. On a Cluster (`clustered`) each call holds the
/// counters of one slot.
pub(crate) fn reconcile_calls(
    prefix: &str,
    charges: &[Reconcile],
    now: &str,
    clustered: bool,
) -> Vec<Call> {
    let mut groups: Vec<(u16, Vec<&Reconcile>)> = Vec::new();
    for charge in charges {
        if !matches!(
            charge.kind,
            AlgorithmKind::FixedWindow | AlgorithmKind::SlidingWindow
        ) || charge.hits == 0
            || charge.window_us == 0
        {
            continue;
        }
        let slot = if clustered {
            redis_keyslot(window_key(prefix, &charge.key, charge.kind, charge.window_us).as_bytes())
        } else {
            0
        };
        match groups
            .iter_mut()
            .find(|(s, group)| *s == slot && group.len() < PER_CALL)
        {
            Some((_, group)) => group.push(charge),
            None => groups.push((slot, vec![charge])),
        }
    }
    groups
        .into_iter()
        .map(|(_, group)| {
            let mut args = vec![Value::from(now)];
            let keys = group
                .iter()
                .map(|c| {
                    args.extend([
                        Value::from_static_str(suffix(c.kind)),
                        int(c.window_us),
                        int(c.at_us),
                        int(c.hits),
                    ]);
                    window_key(prefix, &c.key, c.kind, c.window_us).into()
                })
                .collect();
            Call {
                script: &RECONCILE,
                keys,
                args,
            }
        })
        .collect()
}

fn int(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(key: &str, kind: AlgorithmKind) -> Reconcile {
        Reconcile {
            kind,
            key: key.into(),
            window_us: 60_000_000,
            at_us: 1_700_000_000_000_000,
            hits: 3,
        }
    }

    #[test]
    fn calls_hold_at_most_per_call_counters_of_one_slot() {
        let charges: Vec<Reconcile> = (0..150)
            .map(|i| charge(&format!("p:u{i}"), AlgorithmKind::FixedWindow))
            .chain([charge("p:log", AlgorithmKind::SlidingLog)])
            .collect();
        let calls = reconcile_calls("fg", &charges, "", false);
        let sizes: Vec<usize> = calls.iter().map(|c| c.keys.len()).collect();
        assert_eq!(sizes, [64, 64, 22], "sliding_log is not reconciled");
        assert_eq!(calls[0].keys[0], "fg:{p:u0}:fw:60000");
        assert_eq!(calls[0].args.len(), 1 + 4 * 64);
        for call in reconcile_calls("fg", &charges, "", true) {
            let slot = redis_keyslot(&call.keys[0]);
            assert!(call.keys.len() <= PER_CALL);
            assert!(call.keys.iter().all(|k| redis_keyslot(k) == slot));
        }
    }

    #[test]
    fn the_script_states_its_contract_first() {
        let body = include_str!("../lua/reconcile.lua");
        assert!(body.starts_with("-- reconcile:"));
        assert!(RECONCILE.source.contains("local function read_counter"));
        assert_eq!(RECONCILE.sha.len(), 40);
    }
}
