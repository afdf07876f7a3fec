//! The check call: one or more checks' ops, decided by `check.lua` all or
//! nothing per check, and the reading of its reply into outcomes.

use floodgate_core::{AlgorithmKind, Block, Outcome, Receipt};
use floodgate_store::{StoreError, StoreOp};
use fred::types::{Resp3Frame, Value};

use super::{Call, SCRIPTS};
use crate::error::reply_error;
use crate::key::{interval_us, redis_key, suffix};

/// One op's spec in `check.lua`'s ARGV: `"<algorithm> <flags> <hits> <a>
/// <b> <c>"`, c a reservation's `<nonce>/<record ttl µs>` (flags +8) when
/// `reservation` is given, else the lease id (`sliding_log`,
/// `concurrency`) or 0; then `" <block_for µs> <block_max µs>"` for a
/// policy with a lockout.
fn op_spec(
    kind: AlgorithmKind,
    flags: u8,
    [hits, a, b, nonce]: [u64; 4],
    reservation: Option<&str>,
    block: Block,
) -> String {
    let mut spec = String::with_capacity(64 + reservation.map_or(0, str::len));
    let mut number = itoa::Buffer::new();
    spec.push_str(suffix(kind));
    spec.push(' ');
    spec.push_str(number.format(flags));
    for n in [hits, a, b] {
        spec.push(' ');
        spec.push_str(number.format(n));
    }
    spec.push(' ');
    match reservation {
        Some(c) => spec.push_str(c),
        None => spec.push_str(number.format(nonce)),
    }
    if block.is_on() {
        for n in [block.for_us, block.max_us] {
            spec.push(' ');
            spec.push_str(number.format(n));
        }
    }
    spec
}

/// An op's flags in `check.lua`: +1 enforced, +2 decide only, +4 the
/// policy settles, +8 a reservation.
fn op_flags(op: &StoreOp<'_>) -> u8 {
    u8::from(op.enforced)
        + 2 * u8::from(!op.charge)
        + 4 * u8::from(op.policy.settle())
        + 8 * u8::from(op.reserve.is_some() && op.policy.settle() && op.charge)
}

/// A reservation's c word: its record's nonce and lifetime.
fn reservation_word(op: &StoreOp<'_>) -> Option<String> {
    let nonce = op.reserve.filter(|_| op.policy.settle() && op.charge)?;
    Some(format!(
        "{nonce:032x}/{}",
        floodgate_store::reservation_ttl_us(op.policy)
    ))
}

/// A calendar window's c word: the starts of the previous, current and
/// next two periods around `around_us` (the sidecar's clock), epoch µs,
/// comma-separated; `fixed_window.lua` picks the one holding Redis's now.
fn periods_word(calendar: &floodgate_core::Calendar, around_us: u64) -> String {
    let [a, b, c, d] = calendar.boundaries(around_us);
    format!("{a},{b},{c},{d}")
}

/// The sidecar's clock (epoch µs) for the calendar periods sent with a
/// check: the test clock's time when one is set (`now`), else the system's.
/// Read only for a check with a calendar window.
fn around_us(now: &str) -> u64 {
    now.parse().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    })
}

/// What is needed to read one op's reply in a check call.
#[derive(Debug)]
struct OpReading {
    /// The op's index in the check.
    index: usize,
    /// Whether the op may be charged at all.
    charge: bool,
    /// The hits checked.
    hits: u64,
    /// The algorithm, for the receipt id.
    kind: AlgorithmKind,
    /// The limit the reply reports (the burst for `token_bucket`).
    limit: u64,
    /// The lease id sent (`concurrency`): the receipt id.
    nonce: u64,
}

/// A check call for some ops of one check, and what is needed to read its
/// reply.
#[derive(Debug)]
pub(crate) struct CheckCall {
    /// The call to send.
    pub(crate) call: Call,
    /// One per op in the call, in call order.
    ops: Vec<OpReading>,
}

impl CheckCall {
    /// An empty call, with script time `now` ("" = Redis `TIME`), room for
    /// `ops` ops. Its ARGV is one check's: `now`, the op count, then one
    /// spec per op; the batcher puts several checks' ARGV one after the
    /// other.
    fn new(now: &str, ops: usize) -> CheckCall {
        let mut args = Vec::with_capacity(2 + ops);
        // Production's "" is a static value: nothing to allocate.
        let now = if now.is_empty() {
            Value::from_static_str("")
        } else {
            Value::from(now)
        };
        args.extend([now, Value::Integer(0)]);
        CheckCall {
            call: Call {
                script: &SCRIPTS.check,
                keys: Vec::with_capacity(ops),
                args,
            },
            ops: Vec::with_capacity(ops),
        }
    }

    /// Adds op `index` of the check on Redis key `key`; `around_us` is the
    /// sidecar's clock for a calendar window's periods.
    fn push(&mut self, index: usize, op: &StoreOp<'_>, key: String, around_us: u64) {
        let policy = op.policy;
        let kind = policy.kind();
        let nonce = match kind {
            AlgorithmKind::SlidingLog | AlgorithmKind::Concurrency => rand::random(),
            _ => 0,
        };
        let (a, b) = match kind {
            AlgorithmKind::TokenBucket => (policy.burst(), interval_us(policy)),
            // A calendar window: b = 0, c the period starts around now.
            AlgorithmKind::FixedWindow if policy.calendar().is_some() => (policy.limit(), 0),
            _ => (policy.limit(), policy.window_us()),
        };
        let reservation = match policy.calendar() {
            Some(calendar) => Some(periods_word(calendar, around_us)),
            None => reservation_word(op),
        };
        let spec = op_spec(
            kind,
            op_flags(op),
            [op.hits, a, b, nonce],
            reservation.as_deref(),
            policy.block(),
        );
        self.call.args.push(Value::from(spec));
        self.call.keys.push(key);
        self.call.args[1] = Value::Integer(self.call.keys.len() as i64);
        self.ops.push(OpReading {
            index,
            charge: op.charge,
            hits: op.hits,
            kind,
            limit: a,
            nonce,
        });
    }

    /// Reads this check's reply (its [`reply_len`] values of the script's
    /// reply, see [`CheckReply`]) into `outcomes`, each at its op's index:
    /// `charged, now_us, then per op allowed, remaining, reset_after_us,
    /// retry_after_us, id`.
    ///
    /// # Errors
    /// [`StoreError::Protocol`] for any other shape.
    pub(crate) fn read(
        &self,
        values: &[i64],
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), StoreError> {
        let bad = || StoreError::Protocol(format!("unexpected script reply {values:?}"));
        if values.len() != reply_len(self.ops.len()) {
            return Err(bad());
        }
        let number = |v: &i64| u64::try_from(*v).ok();
        let (Some(charged), Some(now_us)) = (number(&values[0]), number(&values[1])) else {
            return Err(bad());
        };
        for (op, values) in self.ops.iter().zip(values[2..].chunks_exact(OP_REPLY)) {
            let mut numbers = [0u64; OP_REPLY];
            for (n, v) in numbers.iter_mut().zip(values) {
                *n = number(v).ok_or_else(bad)?;
            }
            outcomes[op.index] = Some(op.outcome(numbers, charged == 1, now_us));
        }
        Ok(())
    }
}

/// One check's part of the check script's reply: its [`reply_len`]
/// integers, or the error Redis gave for one of its commands (`-1,
/// message`, then zeros), or [`StoreError::Protocol`] for another shape.
pub(crate) type CheckReply = Result<Vec<i64>, StoreError>;

/// The check script's reply to a call of checks of `ops` ops each, as the
/// frame Redis sent (one array, every check's values one after the other:
/// [`reply_len`] each), split into each check's reply. Read from the frame,
/// the integers are never made fred [`Value`]s (the lion's share of the
/// cost of reading a reply, per value).
///
/// # Errors
/// [`StoreError::Protocol`] when it is not an array of that length.
pub(crate) fn split_frame(reply: Resp3Frame, ops: &[usize]) -> Result<Vec<CheckReply>, StoreError> {
    let number = |frame: &Resp3Frame| match frame {
        Resp3Frame::Number { data, .. } => Some(*data),
        _ => None,
    };
    let text = |frame: &Resp3Frame| match frame {
        Resp3Frame::BlobString { data, .. } | Resp3Frame::SimpleString { data, .. } => {
            String::from_utf8_lossy(data).into_owned()
        }
        _ => String::new(),
    };
    match reply {
        Resp3Frame::Array { data, .. } => split_with(&data, ops, number, text),
        other => Err(wrong_length(&other, ops)),
    }
}

/// [`split_frame`] for the reply as a [`Value`] (a call sent in a pipeline).
///
/// # Errors
/// [`StoreError::Protocol`] when it is not an array of that length.
pub(crate) fn split_value(reply: Value, ops: &[usize]) -> Result<Vec<CheckReply>, StoreError> {
    let number = |value: &Value| match value {
        Value::Integer(i) => Some(*i),
        _ => None,
    };
    let text = |value: &Value| value.as_str().unwrap_or_default().into_owned();
    match reply {
        Value::Array(values) => split_with(&values, ops, number, text),
        other => Err(wrong_length(&other, ops)),
    }
}

/// Splits `items`, the values of a reply to checks of `ops` ops each, read
/// by `number` (an integer) and `text` (a refusal's message).
fn split_with<T: std::fmt::Debug>(
    items: &[T],
    ops: &[usize],
    number: impl Fn(&T) -> Option<i64>,
    text: impl Fn(&T) -> String,
) -> Result<Vec<CheckReply>, StoreError> {
    if items.len() != ops.iter().map(|&n| reply_len(n)).sum::<usize>() {
        return Err(wrong_length(&items, ops));
    }
    let mut rest = items;
    let each = ops.iter().map(|&n| {
        let (check, after) = rest.split_at(reply_len(n));
        rest = after;
        if number(&check[0]) == Some(-1) {
            return Err(reply_error(&text(&check[1])));
        }
        // Sized up front (collecting through `Option` would grow it).
        let mut values = Vec::with_capacity(check.len());
        for item in check {
            let bad = || StoreError::Protocol(format!("unexpected script reply {check:?}"));
            values.push(number(item).ok_or_else(bad)?);
        }
        Ok(values)
    });
    Ok(each.collect())
}

/// The error for a reply that is not [`reply_len`] values per check.
fn wrong_length(reply: &impl std::fmt::Debug, ops: &[usize]) -> StoreError {
    let expected: usize = ops.iter().map(|&n| reply_len(n)).sum();
    StoreError::Protocol(format!(
        "expected {expected} values for {} checks, got {reply:?}",
        ops.len()
    ))
}

/// Integers per op in a check's reply.
const OP_REPLY: usize = 5;

/// The values of the reply to a check of `ops` ops: its `charged` and
/// `now_us`, then [`OP_REPLY`] per op.
pub(crate) fn reply_len(ops: usize) -> usize {
    2 + OP_REPLY * ops
}

impl OpReading {
    /// One op's outcome from its reply `[allowed, remaining,
    /// reset_after_us, retry_after_us, id]`.
    fn outcome(&self, numbers: [u64; OP_REPLY], charged: bool, now_us: u64) -> Outcome {
        let [allowed, remaining, reset_after_us, retry_after_us, id] = numbers;
        let allowed = allowed == 1;
        let receipt = (charged && self.charge && allowed && self.hits > 0).then_some(Receipt {
            at_us: now_us,
            id: match self.kind {
                AlgorithmKind::Concurrency => self.nonce,
                AlgorithmKind::TokenBucket => id,
                _ => 0,
            },
        });
        Outcome {
            allowed,
            limit: self.limit,
            remaining,
            reset_after_us,
            retry_after_us,
            receipt,
        }
    }
}

/// The calls deciding `ops`, with script time `now` ("" = Redis `TIME`):
/// as few as the rule of `check.lua` allows. On a Cluster (`slot_of` given)
/// ops go together only when their keys share a slot; anywhere, an op whose
/// key is already in a call goes to a later call, so it sees that charge.
pub(crate) fn check_calls(
    prefix: &str,
    ops: &[StoreOp<'_>],
    now: &str,
    slot_of: Option<fn(&[u8]) -> u16>,
) -> Vec<CheckCall> {
    let mut calls: Vec<(u16, CheckCall)> = Vec::with_capacity(1);
    let calendar = ops.iter().any(|op| op.policy.calendar().is_some());
    let around_us = if calendar { around_us(now) } else { 0 };
    for (index, op) in ops.iter().enumerate() {
        let key = redis_key(prefix, op.key, op.policy);
        let slot = slot_of.map_or(0, |f| f(key.as_bytes()));
        let call = match calls
            .iter()
            .position(|(s, c)| *s == slot && !c.call.keys.contains(&key))
        {
            Some(i) => &mut calls[i].1,
            None => {
                calls.push((slot, CheckCall::new(now, ops.len() - index)));
                &mut calls.last_mut().expect("just pushed").1
            }
        };
        call.push(index, op, key, around_us);
    }
    calls.into_iter().map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_share_a_call_unless_their_slots_or_keys_differ() {
        let policy = |name: &str| {
            floodgate_core::testing::policy(AlgorithmKind::SlidingWindow, 10, 1_000_000)
                .name(name)
                .build()
        };
        let (a, b) = (policy("a"), policy("b"));
        let ops = [
            StoreOp::new(&a, "a:u1", 1),
            StoreOp::new(&b, "b:u1", 1),
            StoreOp::new(&a, "a:u1", 1),
        ];
        // Standalone: one call, but the repeated key waits for a second.
        let calls = check_calls("fg", &ops, "", None);
        assert_eq!(calls.len(), 2);
        assert_eq!(
            calls[0].call.keys,
            ["fg:{a:u1}:sw:1000", "fg:{b:u1}:sw:1000"]
        );
        assert_eq!(calls[1].call.keys, ["fg:{a:u1}:sw:1000"]);
        // Cluster: the two hash tags are two slots.
        let calls = check_calls("fg", &ops[..2], "", Some(fred::util::redis_keyslot));
        assert_eq!(calls.len(), 2);
        // ARGV: now, the op count, then one spec per op.
        assert_eq!(calls[0].call.args.len(), 2 + 1);
        assert_eq!(calls[0].call.args[1], Value::Integer(1));
        assert_eq!(
            calls[0].call.args[2].as_str().as_deref(),
            Some("sw 1 1 10 1000000 0")
        );
    }

    #[test]
    fn a_calls_reply_splits_by_each_checks_op_count() {
        let frames = |range: std::ops::Range<i64>| Resp3Frame::Array {
            data: range
                .map(|data| Resp3Frame::Number {
                    data,
                    attributes: None,
                })
                .collect(),
            attributes: None,
        };
        let ints = |range: std::ops::Range<i64>| range.map(Value::Integer).collect::<Vec<_>>();
        let values = |each: Vec<CheckReply>| -> Vec<Vec<i64>> {
            each.into_iter().map(|r| r.expect("values")).collect()
        };
        let (first, second): (Vec<i64>, Vec<i64>) = ((0..7).collect(), (7..19).collect());
        // Checks of 1 and 2 ops: 7 and 12 values.
        let each = split_frame(frames(0..19), &[1, 2]).expect("19 values");
        assert_eq!(values(each), [first.clone(), second.clone()]);
        let one = split_frame(frames(0..7), &[1]).expect("7 values");
        assert_eq!(values(one), [first.clone()]);
        let each = split_value(Value::Array(ints(0..19)), &[1, 2]).expect("19 values");
        assert_eq!(values(each), [first, second]);
        for wrong in [
            frames(0..18),
            Resp3Frame::Number {
                data: 1,
                attributes: None,
            },
        ] {
            assert!(matches!(
                split_frame(wrong, &[1, 2]),
                Err(StoreError::Protocol(_))
            ));
        }
        for wrong in [Value::Array(ints(0..18)), Value::Integer(1)] {
            assert!(matches!(
                split_value(wrong, &[1, 2]),
                Err(StoreError::Protocol(_))
            ));
        }
    }

    #[test]
    fn a_refused_check_fails_alone() {
        let refused = [
            Value::Integer(-1),
            Value::from("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ];
        let values: Vec<Value> = (refused.into_iter().chain((0..5).map(Value::Integer)))
            .chain((0..7).map(Value::Integer))
            .collect();
        let each = split_value(Value::Array(values), &[1, 1]).expect("14 values");
        assert!(
            matches!(&each[0], Err(StoreError::Protocol(m)) if m.starts_with("WRONGTYPE")),
            "{each:?}"
        );
        assert!(matches!(&each[1], Ok(v) if *v == (0..7).collect::<Vec<i64>>()));
    }
}
