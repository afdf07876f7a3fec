//! The check call: one or more checks' ops, decided by `check.lua` all or
//! nothing per check, and the reading of its reply into outcomes.

use bytes::{BufMut, Bytes, BytesMut};
use floodgate_core::{AlgorithmKind, Block, Outcome, Policy, Receipt};
use floodgate_store::{StoreError, StoreOp};
use fred::types::{Resp3Frame, Value};
use smallvec::SmallVec;

use super::{Call, SCRIPTS};
use crate::error::reply_error;
use crate::key::{interval_us, put_redis_key, suffix};

/// Writes one op's spec in `check.lua`'s ARGV at the end of `spec`:
/// `"<algorithm> <flags> <hits> <a> <b> <c>"`, c a reservation's
/// `<nonce>/<record ttl µs>` (flags +8) when `reservation` is given, else
/// the lease id (`sliding_log`, `concurrency`) or 0; then `" <block_for µs>
/// <block_max µs>"` for a policy with a lockout. (Never a `;`: that
/// separates the specs of a check.)
fn push_op_spec(
    spec: &mut impl BufMut,
    kind: AlgorithmKind,
    flags: u8,
    [hits, a, b, nonce]: [u64; 4],
    reservation: Option<&str>,
    block: Block,
) {
    let mut number = itoa::Buffer::new();
    spec.put_slice(suffix(kind).as_bytes());
    spec.put_u8(b' ');
    spec.put_slice(number.format(flags).as_bytes());
    for n in [hits, a, b] {
        spec.put_u8(b' ');
        spec.put_slice(number.format(n).as_bytes());
    }
    spec.put_u8(b' ');
    match reservation {
        Some(c) => spec.put_slice(c.as_bytes()),
        None => spec.put_slice(number.format(nonce).as_bytes()),
    }
    if block.is_on() {
        for n in [block.for_us, block.max_us] {
            spec.put_u8(b' ');
            spec.put_slice(number.format(n).as_bytes());
        }
    }
}

/// An op's `a` and `b` in its spec: the limit and the window; for
/// `token_bucket` the burst and the emission interval; for a calendar
/// window the limit and 0 (its `c` holds the periods). `a` is also the
/// limit its outcome reports.
fn op_numbers(policy: &Policy) -> (u64, u64) {
    match policy.kind() {
        AlgorithmKind::TokenBucket => (policy.burst(), interval_us(policy)),
        AlgorithmKind::FixedWindow if policy.calendar().is_some() => (policy.limit(), 0),
        _ => (policy.limit(), policy.window_us()),
    }
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
    /// The call to send: its keys, then (by [`CheckCall::finish`]) its one
    /// ARGV value.
    pub(crate) call: Call,
    /// One per op in the call, in call order.
    ops: SmallVec<[OpReading; 2]>,
}

impl CheckCall {
    /// An empty call with room for `ops` ops.
    fn new(ops: usize) -> CheckCall {
        CheckCall {
            call: Call {
                script: &SCRIPTS.check,
                keys: Vec::with_capacity(ops),
                args: Vec::with_capacity(1),
            },
            ops: SmallVec::with_capacity(ops),
        }
    }

    /// Adds op `index` of the check on Redis key `key`.
    fn push(&mut self, index: usize, op: &StoreOp<'_>, key: Bytes) {
        let kind = op.policy.kind();
        let nonce = match kind {
            AlgorithmKind::SlidingLog | AlgorithmKind::Concurrency => rand::random(),
            _ => 0,
        };
        self.call.keys.push(key);
        self.ops.push(OpReading {
            index,
            charge: op.charge,
            hits: op.hits,
            kind,
            limit: op_numbers(op.policy).0,
            nonce,
        });
    }

    /// Writes the call's one ARGV value at the end of `buf` and takes it
    /// from there: `now` ("" = Redis `TIME`), `|`, then the specs of its
    /// ops (of `ops`, the check's), `;`-separated (`check.lua`; the
    /// batcher puts several checks' values one after the other).
    /// `around_us` is the sidecar's clock for a calendar window's periods.
    fn finish(
        mut self,
        ops: &[StoreOp<'_>],
        now: &str,
        around_us: u64,
        buf: &mut BytesMut,
    ) -> CheckCall {
        buf.put_slice(now.as_bytes());
        buf.put_u8(b'|');
        for (i, reading) in self.ops.iter().enumerate() {
            let op = &ops[reading.index];
            let policy = op.policy;
            let (a, b) = op_numbers(policy);
            let reservation = match policy.calendar() {
                Some(calendar) => Some(periods_word(calendar, around_us)),
                None => reservation_word(op),
            };
            if i > 0 {
                buf.put_u8(b';');
            }
            push_op_spec(
                buf,
                reading.kind,
                op_flags(op),
                [op.hits, a, b, reading.nonce],
                reservation.as_deref(),
                policy.block(),
            );
        }
        self.call.args.push(Value::Bytes(buf.split().freeze()));
        self
    }

    /// Reads this check's reply (its [`reply_len`] values of the script's
    /// reply, see [`CheckReply`]) into `outcomes`, each at its op's index:
    /// `charged, now_us, then per op allowed, remaining, reset_after_us,
    /// retry_after_us, id`.
    ///
    /// # Errors
    /// [`StoreError::Protocol`] when `values` are not that.
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
/// integers, or the error Redis gave for one of its commands, or
/// [`StoreError::Protocol`] for another shape.
pub(crate) type CheckReply = Result<Vec<i64>, StoreError>;

/// The check script's reply to a call of `checks` checks, as the frame
/// Redis sent (one array, a string per check: its integers 8 bytes each,
/// signed, little-endian, or `-1 <message>` for a check Redis refused; the
/// client's RESP parser would cost a few hundred instructions per value,
/// whatever its size), split into each check's reply. Read from the
/// frame, nothing is made a fred [`Value`].
///
/// # Errors
/// [`StoreError::Protocol`] when it is not an array of `checks` values.
pub(crate) fn split_frame(reply: Resp3Frame, checks: usize) -> Result<Vec<CheckReply>, StoreError> {
    match reply {
        Resp3Frame::Array { data, .. } if data.len() == checks => Ok(data
            .iter()
            .map(|frame| match frame {
                Resp3Frame::BlobString { data, .. } => unpack(data),
                other => Err(not_packed(other)),
            })
            .collect()),
        other => Err(wrong_length(&other, checks)),
    }
}

/// [`split_frame`] for the reply as a [`Value`] (a call sent in a pipeline).
///
/// # Errors
/// [`StoreError::Protocol`] when it is not an array of `checks` values.
pub(crate) fn split_value(reply: Value, checks: usize) -> Result<Vec<CheckReply>, StoreError> {
    match reply {
        Value::Array(values) if values.len() == checks => Ok(values
            .iter()
            .map(|value| match value.as_bytes() {
                Some(text) => unpack(text),
                None => Err(not_packed(value)),
            })
            .collect()),
        other => Err(wrong_length(&other, checks)),
    }
}

/// One check's packed reply read: its integers (8 bytes each, signed,
/// little-endian), or the error for its `-1 <message>` (never mistaken for
/// integers: the first, `charged`, is 0 or 1).
fn unpack(packed: &[u8]) -> CheckReply {
    if let Some(message) = packed.strip_prefix(b"-1 ") {
        return Err(reply_error(&String::from_utf8_lossy(message)));
    }
    let integers = packed.chunks_exact(8);
    if packed.is_empty() || !integers.remainder().is_empty() {
        return Err(not_packed(&String::from_utf8_lossy(packed)));
    }
    Ok(integers
        .map(|bytes| i64::from_le_bytes(bytes.try_into().expect("8 bytes")))
        .collect())
}

/// The error for a check's reply that is not a packed one.
fn not_packed(reply: &impl std::fmt::Debug) -> StoreError {
    StoreError::Protocol(format!("unexpected script reply {reply:?}"))
}

/// The error for a reply that is not one value per check.
fn wrong_length(reply: &impl std::fmt::Debug, checks: usize) -> StoreError {
    StoreError::Protocol(format!(
        "expected {checks} values, one per check, got {reply:?}"
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
) -> SmallVec<[CheckCall; 1]> {
    let mut calls: SmallVec<[(u16, CheckCall); 1]> = SmallVec::new();
    let calendar = ops.iter().any(|op| op.policy.calendar().is_some());
    let around_us = if calendar { around_us(now) } else { 0 };
    // Every key and ARGV value of the check, written into one buffer and
    // each split off it: shared bytes, one allocation for the whole check.
    let size = (ops.iter())
        .map(|op| prefix.len() + op.key.len() + 96)
        .sum::<usize>();
    let mut buf = BytesMut::with_capacity(size + now.len());
    for (index, op) in ops.iter().enumerate() {
        put_redis_key(&mut buf, prefix, op.key, op.policy);
        let key = buf.split().freeze();
        let slot = slot_of.map_or(0, |f| f(&key));
        let call = match calls
            .iter()
            .position(|(s, c)| *s == slot && !c.call.keys.contains(&key))
        {
            Some(i) => &mut calls[i].1,
            None => {
                calls.push((slot, CheckCall::new(ops.len() - index)));
                &mut calls.last_mut().expect("just pushed").1
            }
        };
        call.push(index, op, key);
    }
    (calls.into_iter())
        .map(|(_, c)| c.finish(ops, now, around_us, &mut buf))
        .collect()
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
        // ARGV: one value, now ("" in production), "|", then its specs.
        assert_eq!(calls[0].call.args.len(), 1);
        assert_eq!(
            calls[0].call.args[0].as_str().as_deref(),
            Some("|sw 1 1 10 1000000 0")
        );
        let calls = check_calls("fg", &ops[..2], "1700000000000000", None);
        assert_eq!(
            calls[0].call.args[0].as_str().as_deref(),
            Some("1700000000000000|sw 1 1 10 1000000 0;sw 1 1 10 1000000 0")
        );
    }

    /// `values` packed as `check.lua` packs them.
    fn packed(values: &[i64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn a_packed_reply_splits_into_each_checks_integers() {
        let blob = |data: Vec<u8>| Resp3Frame::BlobString {
            data: data.into(),
            attributes: None,
        };
        let array = |data: Vec<Resp3Frame>| Resp3Frame::Array {
            data,
            attributes: None,
        };
        let (now, window) = (1_700_000_000_000_000, 60_000_000);
        let one = vec![1, now, 1, 9, window, 0, -3];
        let two = vec![0, now, 0, 0, window, 5000, 0, 1, 3, 1000, 0, 7];
        let values = |each: Vec<CheckReply>| -> Vec<Vec<i64>> {
            each.into_iter().map(|r| r.expect("values")).collect()
        };
        let frames = vec![blob(packed(&one)), blob(packed(&two))];
        let each = split_frame(array(frames), 2).expect("two checks");
        assert_eq!(values(each), [one.clone(), two.clone()]);
        let both = vec![
            Value::from(&packed(&one)[..]),
            Value::from(&packed(&two)[..]),
        ];
        let each = split_value(Value::Array(both), 2).expect("two checks");
        assert_eq!(values(each), [one.clone(), two]);
        // A check Redis refused fails alone.
        let refused = b"-1 WRONGTYPE Operation against a key holding the wrong kind of value";
        let frames = vec![blob(refused.to_vec()), blob(packed(&one))];
        let each = split_frame(array(frames), 2).expect("two checks");
        assert!(
            matches!(&each[0], Err(StoreError::Protocol(m)) if m.starts_with("WRONGTYPE")),
            "{each:?}"
        );
        assert!(each[1].is_ok());
        // Not one value per check, or not a packed check.
        for wrong in [array(vec![blob(packed(&one))]), blob(packed(&one))] {
            assert!(matches!(
                split_frame(wrong, 2),
                Err(StoreError::Protocol(_))
            ));
        }
        for bytes in [Vec::new(), vec![1, 0, 0], packed(&one)[..12].to_vec()] {
            let each = split_frame(array(vec![blob(bytes)]), 1).expect("one check");
            assert!(matches!(&each[0], Err(StoreError::Protocol(_))));
        }
        assert!(matches!(
            split_value(Value::Integer(1), 1),
            Err(StoreError::Protocol(_))
        ));
    }
}
