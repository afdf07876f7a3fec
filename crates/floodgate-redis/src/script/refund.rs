//! The refund call: a charge undone (`refund.lua`).

use floodgate_core::AlgorithmKind;
use floodgate_store::Refund;
use fred::types::Value;

use super::{int, Call, SCRIPTS};
use crate::key::{interval_us, redis_key, suffix};

/// The call undoing `refund`, with script time `now` ("" = Redis `TIME`).
pub(crate) fn refund_call(prefix: &str, refund: &Refund<'_>, now: &str) -> Call {
    let policy = refund.policy;
    let kind = policy.kind();
    let span = match kind {
        AlgorithmKind::TokenBucket => interval_us(policy),
        AlgorithmKind::Concurrency => 0,
        // A calendar window's index is its start: sent as the charge's time
        // with a span of 1.
        _ if policy.calendar().is_some() => 1,
        _ => policy.window_us(),
    };
    let at_us = match policy.calendar() {
        Some(c) => c.period_at(refund.receipt.at_us).0,
        None => refund.receipt.at_us,
    };
    Call {
        script: &SCRIPTS.refund,
        keys: vec![redis_key(prefix, refund.key, policy).into()],
        args: vec![
            Value::from(now),
            Value::from_static_str(suffix(kind)),
            int(refund.hits),
            int(at_us),
            // A lease id is any u64: decimal text, as the check sent it.
            Value::from(refund.receipt.id.to_string()),
            int(span),
        ],
    }
}
