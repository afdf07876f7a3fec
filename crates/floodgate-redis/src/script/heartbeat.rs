//! The heartbeat call: this sidecar alive for a while, and how many are
//! (`heartbeat.lua`).

use std::time::Duration;

use floodgate_store::StoreError;
use fred::types::Value;

use super::{Call, SCRIPTS};

/// The call recording `instance_id` alive for `ttl` in the sorted set
/// `<prefix>:{hb}:instances`, with script time `now` ("" = Redis `TIME`).
pub(crate) fn heartbeat_call(prefix: &str, instance_id: &str, ttl: Duration, now: &str) -> Call {
    Call {
        script: &SCRIPTS.heartbeat,
        keys: vec![format!("{prefix}:{{hb}}:instances").into()],
        args: vec![
            Value::from(now),
            Value::from(instance_id),
            Value::Integer(i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX)),
        ],
    }
}

/// The live count a heartbeat reply holds (at least 1: this sidecar).
///
/// # Errors
/// [`StoreError::Protocol`] when the reply is missing or not such a count.
pub(crate) fn read_heartbeat(reply: Option<Value>) -> Result<u64, StoreError> {
    reply
        .and_then(|v| v.as_u64())
        .filter(|&n| n >= 1)
        .ok_or_else(|| StoreError::Protocol("heartbeat: expected a count".into()))
}
