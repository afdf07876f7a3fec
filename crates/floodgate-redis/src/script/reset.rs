//! The reset call: an admin reset of one counter and its lockout
//! (`reset.lua`).

use bytes::Bytes;
use floodgate_core::Policy;
use fred::types::Value;

use super::{int, Call, SCRIPTS};
use crate::key::redis_key;

/// The Redis keys an admin reset of `counter_key` under `policy` deletes:
/// the counter, its lockout (`<counter>:block`, and the same under the
/// bare tag) — all of one hash tag, so of one Cluster slot — then the
/// marker it leaves (`<counter>:cleared`).
fn reset_keys(prefix: &str, counter_key: &str, policy: &Policy) -> Vec<Bytes> {
    let counter = redis_key(prefix, counter_key, policy);
    let block = format!("{counter}:block");
    let bare = format!("{prefix}:{{{counter_key}}}:block");
    let cleared = format!("{counter}:cleared");
    vec![counter.into(), block.into(), bare.into(), cleared.into()]
}

/// The call resetting `counter_key` under `policy` (see `reset.lua`), with
/// script time `now` ("" = Redis `TIME`).
pub(crate) fn reset_call(prefix: &str, counter_key: &str, policy: &Policy, now: &str) -> Call {
    let keep = if policy.settle() {
        floodgate_store::reservation_ttl_us(policy)
    } else {
        0
    };
    Call {
        script: &SCRIPTS.reset,
        keys: reset_keys(prefix, counter_key, policy),
        args: vec![Value::from(now), int(keep)],
    }
}
