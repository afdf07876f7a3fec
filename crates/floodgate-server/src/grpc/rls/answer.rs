//! The `ShouldRateLimit` answer, written to the wire straight from the
//! verdicts: byte for byte what prost writes for the `RateLimitResponse` it
//! stands for, without building that message first (a string per policy
//! name, header name and header value, a vector per list, each nested
//! message measured again at every level of nesting).

use std::sync::Arc;

use bytes::{Buf, BufMut};
use floodgate_config::server::HeaderMode;
use floodgate_store::Verdict;
use prost::encoding::{
    encode_key, encode_varint, encoded_len_varint, key_len, skip_field, DecodeContext, WireType,
};
use prost::DecodeError;
use smallvec::SmallVec;

use crate::render::each_rate_limit_header;

/// `RateLimitResponse.Code.OK` and `OVER_LIMIT`.
const OK: u64 = 1;
const OVER_LIMIT: u64 = 2;

/// A `RateLimitResponse`, as the fields it sends. Boxed: tonic moves the
/// answer several times on its way to the wire.
#[derive(Debug, Default)]
pub struct Answer(Box<Fields>);

/// The fields of an [`Answer`].
#[derive(Debug, Default)]
struct Fields {
    /// `overall_code`: OK or OVER_LIMIT.
    allowed: bool,
    /// `statuses`: one per descriptor, in order.
    statuses: SmallVec<[Status; 1]>,
    /// `response_headers_to_add`: each header's name and where its value
    /// ends in `values`.
    headers: SmallVec<[(&'static str, usize); 4]>,
    /// Every header value, one after the other.
    values: String,
}

/// A `DescriptorStatus`.
#[derive(Debug)]
struct Status {
    /// `code`: OK or OVER_LIMIT.
    allowed: bool,
    /// The deciding policy's figures; none when no policy applied (then
    /// only `code` is sent).
    limit: Option<Limit>,
    /// Its encoded length, and its `current_limit`'s and
    /// `duration_until_reset`'s: each is needed twice.
    lens: (usize, usize, usize),
}

/// `current_limit`, `limit_remaining` and `duration_until_reset`.
#[derive(Debug)]
struct Limit {
    /// `current_limit.name`: the policy.
    name: Arc<str>,
    /// `current_limit.requests_per_unit`.
    requests_per_unit: u32,
    /// `current_limit.unit` (`UNKNOWN`, 0, for a window that is not one
    /// second, minute, hour or day).
    unit: u64,
    /// `limit_remaining`.
    remaining: u32,
    /// `duration_until_reset`, in microseconds.
    reset_us: u64,
}

impl Answer {
    /// The answer to descriptors decided `verdicts` (overall: `overall`),
    /// with the rate-limit headers of `mode`.
    pub fn new(verdicts: &[Verdict], overall: &Verdict, mode: HeaderMode) -> Answer {
        let policy = overall.deciding().map_or(0, |s| s.policy.len());
        let mut fields = Fields {
            allowed: overall.allowed,
            statuses: verdicts.iter().map(Status::new).collect(),
            headers: SmallVec::new(),
            values: String::with_capacity(2 * policy + 64),
        };
        each_rate_limit_header(overall, mode, |name, value| {
            fields.values.push_str(value);
            fields.headers.push((name.as_str(), fields.values.len()));
        });
        Answer(Box::new(fields))
    }
}

impl Fields {
    /// Each header as (name, value).
    fn each_header(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        let mut start = 0;
        self.headers.iter().map(move |&(name, end)| {
            let value = &self.values[start..end];
            start = end;
            (name, value)
        })
    }
}

fn code(allowed: bool) -> u64 {
    if allowed {
        OK
    } else {
        OVER_LIMIT
    }
}

fn unit(window_us: u64) -> u64 {
    match window_us {
        1_000_000 => 1,
        60_000_000 => 2,
        3_600_000_000 => 3,
        86_400_000_000 => 4,
        _ => 0,
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Status {
    fn new(verdict: &Verdict) -> Status {
        let mut status = Status {
            allowed: verdict.allowed,
            limit: verdict.deciding().map(|s| Limit {
                name: s.policy.clone(),
                requests_per_unit: clamp(s.limit),
                unit: unit(s.window_us),
                remaining: clamp(s.remaining),
                reset_us: s.reset_after_us,
            }),
            lens: (0, 0, 0),
        };
        status.lens = status.measure();
        status
    }

    /// `code` as sent: a status with no policy is OK whatever the verdict.
    fn code(&self) -> u64 {
        if self.limit.is_none() {
            OK
        } else {
            code(self.allowed)
        }
    }
}

/// The encoded length of a varint field holding `n`, or 0 when `n` is 0
/// (proto3 leaves zero values out).
fn varint_len(tag: u32, n: u64) -> usize {
    if n == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(n)
    }
}

fn put_varint(tag: u32, n: u64, buf: &mut impl BufMut) {
    if n != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(n, buf);
    }
}

/// The encoded length of a length-delimited field of `len` bytes.
fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_delimited(tag: u32, len: usize, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn put_text(tag: u32, text: &str, buf: &mut impl BufMut) {
    if !text.is_empty() {
        put_delimited(tag, text.len(), buf);
        buf.put_slice(text.as_bytes());
    }
}

fn text_len(tag: u32, text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        delimited_len(tag, text.len())
    }
}

impl Limit {
    /// `RateLimit`: requests_per_unit = 1, unit = 2, name = 3.
    fn rate_limit_len(&self) -> usize {
        varint_len(1, u64::from(self.requests_per_unit))
            + varint_len(2, self.unit)
            + text_len(3, &self.name)
    }

    /// `google.protobuf.Duration`: seconds = 1, nanos = 2.
    fn seconds_nanos(&self) -> (u64, u64) {
        (
            self.reset_us / 1_000_000,
            (self.reset_us % 1_000_000) * 1_000,
        )
    }

    fn duration_len(&self) -> usize {
        let (seconds, nanos) = self.seconds_nanos();
        varint_len(1, seconds) + varint_len(2, nanos)
    }
}

impl Status {
    /// `DescriptorStatus`: code = 1, current_limit = 2, limit_remaining = 3,
    /// duration_until_reset = 4. Its length, its `current_limit`'s and its
    /// `duration_until_reset`'s.
    fn measure(&self) -> (usize, usize, usize) {
        let code = varint_len(1, self.code());
        let Some(limit) = &self.limit else {
            return (code, 0, 0);
        };
        let (rate_limit, duration) = (limit.rate_limit_len(), limit.duration_len());
        let len = code
            + delimited_len(2, rate_limit)
            + varint_len(3, u64::from(limit.remaining))
            + delimited_len(4, duration);
        (len, rate_limit, duration)
    }

    fn put(&self, buf: &mut impl BufMut) {
        let (_, rate_limit, duration) = self.lens;
        put_varint(1, self.code(), buf);
        if let Some(limit) = &self.limit {
            put_delimited(2, rate_limit, buf);
            put_varint(1, u64::from(limit.requests_per_unit), buf);
            put_varint(2, limit.unit, buf);
            put_text(3, &limit.name, buf);
            put_varint(3, u64::from(limit.remaining), buf);
            put_delimited(4, duration, buf);
            let (seconds, nanos) = limit.seconds_nanos();
            put_varint(1, seconds, buf);
            put_varint(2, nanos, buf);
        }
    }
}

/// `HeaderValue`: key = 1, value = 2.
fn header_len(name: &str, value: &str) -> usize {
    text_len(1, name) + text_len(2, value)
}

impl prost::Message for Answer {
    /// `RateLimitResponse`: overall_code = 1, statuses = 2,
    /// response_headers_to_add = 3.
    fn encode_raw(&self, buf: &mut impl BufMut) {
        let fields = &self.0;
        put_varint(1, code(fields.allowed), buf);
        for status in &fields.statuses {
            put_delimited(2, status.lens.0, buf);
            status.put(buf);
        }
        for (name, value) in fields.each_header() {
            put_delimited(3, header_len(name, value), buf);
            put_text(1, name, buf);
            put_text(2, value, buf);
        }
    }

    fn encoded_len(&self) -> usize {
        let fields = &self.0;
        varint_len(1, code(fields.allowed))
            + fields
                .statuses
                .iter()
                .map(|s| delimited_len(2, s.lens.0))
                .sum::<usize>()
            + fields
                .each_header()
                .map(|(name, value)| delimited_len(3, header_len(name, value)))
                .sum::<usize>()
    }

    /// An answer is only ever sent: whatever is read into one is skipped.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        skip_field(wire_type, tag, buf, ctx)
    }

    fn clear(&mut self) {
        *self = Answer::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_proto::envoy::config::core::v3::HeaderValue;
    use floodgate_proto::envoy::service::ratelimit::v3 as rls;
    use floodgate_store::{PolicyStatus, Source};
    use prost::Message;
    use rls::rate_limit_response::{DescriptorStatus, RateLimit};

    /// The prost message the answer stands for, built field by field.
    fn expected(
        verdicts: &[Verdict],
        overall: &Verdict,
        mode: HeaderMode,
    ) -> rls::RateLimitResponse {
        let status = |v: &Verdict| match v.deciding() {
            None => DescriptorStatus {
                code: 1,
                ..DescriptorStatus::default()
            },
            Some(s) => DescriptorStatus {
                code: if v.allowed { 1 } else { 2 },
                current_limit: Some(RateLimit {
                    name: s.policy.to_string(),
                    requests_per_unit: clamp(s.limit),
                    unit: unit(s.window_us) as i32,
                }),
                limit_remaining: clamp(s.remaining),
                duration_until_reset: Some(prost_types::Duration {
                    seconds: (s.reset_after_us / 1_000_000) as i64,
                    nanos: ((s.reset_after_us % 1_000_000) * 1_000) as i32,
                }),
            },
        };
        let mut headers = Vec::new();
        each_rate_limit_header(overall, mode, |key, value| {
            headers.push(HeaderValue {
                key: key.as_str().to_string(),
                value: value.to_string(),
                raw_value: Vec::new(),
            });
        });
        rls::RateLimitResponse {
            overall_code: if overall.allowed { 1 } else { 2 },
            statuses: verdicts.iter().map(status).collect(),
            response_headers_to_add: headers,
            ..rls::RateLimitResponse::default()
        }
    }

    fn verdict(
        allowed: bool,
        policy: &str,
        limit: u64,
        window_us: u64,
        remaining: u64,
        reset_after_us: u64,
    ) -> Verdict {
        let status = PolicyStatus {
            policy: Arc::from(policy),
            allowed,
            limit,
            remaining,
            reset_after_us,
            retry_after_us: if allowed { 0 } else { reset_after_us },
            window_us,
            shadow: false,
            source: Source::Local,
            replaced: Vec::new(),
        };
        let mut verdict = Verdict {
            allowed,
            statuses: vec![status],
            ..Verdict::default()
        };
        verdict.decider = Some(0);
        verdict
    }

    #[test]
    fn the_answer_is_the_bytes_prost_writes_for_the_response() {
        let verdicts = [
            verdict(true, "ai", 500, 60_000_000, 499, 59_999_999),
            verdict(false, "a \"quoted\" é name", 1 << 40, 7_000_000, 0, 0),
            verdict(true, "", 0, 86_400_000_000, 0, 3_000_000),
            Verdict {
                allowed: true,
                ..Verdict::default()
            },
        ];
        // Draft headers and none (the legacy ones read the clock).
        for mode in [HeaderMode::Draft, HeaderMode::None] {
            for n in 1..=verdicts.len() {
                let some = &verdicts[..n];
                for overall in some {
                    let answer = Answer::new(some, overall, mode);
                    let bytes = answer.encode_to_vec();
                    assert_eq!(
                        bytes,
                        expected(some, overall, mode).encode_to_vec(),
                        "{mode:?} {n}"
                    );
                    assert_eq!(answer.encoded_len(), bytes.len());
                }
            }
        }
    }
}
