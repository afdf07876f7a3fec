//! The settle call: a reservation's actual cost applied to its counter
//! (`reserve.lua`, `settle.lua`), and what its reply says.

use floodgate_core::{AlgorithmKind, Policy};
use floodgate_store::{Settle, Settled, StoreError};
use fred::types::Value;

use super::{int, Call, SCRIPTS};
use crate::key::{interval_us, redis_key, suffix};

/// The Redis key of a reservation's record: its counter's key, then
/// `:r:<nonce as 32 hex digits>` (same hash tag, same Cluster slot).
fn record_key(prefix: &str, counter_key: &str, policy: &Policy, nonce: u128) -> String {
    format!("{}:r:{nonce:032x}", redis_key(prefix, counter_key, policy))
}

/// The call settling `settle`, with script time `now` ("" = Redis `TIME`).
pub(crate) fn settle_call(prefix: &str, settle: &Settle<'_>, now: &str) -> Call {
    let policy = settle.policy;
    let kind = policy.kind();
    let span = match kind {
        AlgorithmKind::TokenBucket => interval_us(policy),
        _ => policy.window_us(),
    };
    Call {
        script: &SCRIPTS.settle,
        keys: vec![
            redis_key(prefix, settle.key, policy).into(),
            record_key(prefix, settle.key, policy, settle.nonce).into(),
        ],
        args: vec![
            Value::from(now),
            Value::from_static_str(suffix(kind)),
            int(settle.actual),
            int(span),
            int(settle.issued_us),
            int(floodgate_store::reservation_ttl_us(policy)),
        ],
    }
}

/// What one settle call's reply says.
///
/// # Errors
/// [`StoreError::Protocol`] for a reply of another shape.
pub(crate) fn read_settled(reply: &Value) -> Result<Settled, StoreError> {
    let bad = || StoreError::Protocol(format!("unexpected settle reply {reply:?}"));
    let Value::Array(items) = reply else {
        return Err(bad());
    };
    match items.as_slice() {
        [Value::Integer(1), Value::Integer(estimate)] => Ok(Settled::Applied {
            estimate: u64::try_from(*estimate).map_err(|_| bad())?,
        }),
        [Value::Integer(2), _] => Ok(Settled::Spent),
        [Value::Integer(3), _] => Ok(Settled::Lapsed),
        [Value::Integer(4), _] => Ok(Settled::Unknown),
        _ => Err(bad()),
    }
}
