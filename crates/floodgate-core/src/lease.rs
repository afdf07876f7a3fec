//! Lease tokens: what a check of a `concurrency` policy hands back so the
//! caller can release its slots.
//!
//! A token is one part per concurrency policy that charged the check, joined
//! by `,`; a part is `<counter key>/<lease id as 16 hex digits>/<hits>`.
//! Counter keys are escaped (see [`crate::key`]; a stand-in segment adds
//! `<attribute>=`) and never hold `/` or `,`,
//! so a token splits unambiguously.

use std::fmt::Write;

/// Longest lease token accepted, in bytes.
pub const MAX_LEASE_LEN: usize = 8192;

/// One concurrency policy's share of a lease token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasePart {
    /// The counter key the lease was taken on (`<policy>:<values>`).
    pub counter_key: String,
    /// The lease id.
    pub id: u64,
    /// Slots held.
    pub hits: u64,
}

/// Why a lease token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// An empty token.
    #[error("lease is empty")]
    Empty,
    /// A token longer than [`MAX_LEASE_LEN`].
    #[error("lease is longer than {MAX_LEASE_LEN} bytes")]
    TooLong,
    /// A part not of the form `<key>/<id>/<hits>`.
    #[error("lease part {0:?} is not of the form <key>/<id>/<hits>")]
    Malformed(String),
}

impl LeasePart {
    /// The policy the lease belongs to.
    pub fn policy(&self) -> &str {
        self.counter_key
            .split_once(':')
            .map_or(self.counter_key.as_str(), |(p, _)| p)
    }

    /// Writes the token of `parts`.
    pub fn encode(parts: &[LeasePart]) -> String {
        let mut out = String::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "{}/{:016x}/{}", part.counter_key, part.id, part.hits);
        }
        out
    }

    /// Parses a token.
    ///
    /// # Errors
    /// [`LeaseError`] when the token is empty, too long or malformed.
    pub fn decode(token: &str) -> Result<Vec<LeasePart>, LeaseError> {
        if token.is_empty() {
            return Err(LeaseError::Empty);
        }
        if token.len() > MAX_LEASE_LEN {
            return Err(LeaseError::TooLong);
        }
        token.split(',').map(Self::decode_part).collect()
    }

    fn decode_part(part: &str) -> Result<LeasePart, LeaseError> {
        let malformed = || LeaseError::Malformed(part.chars().take(80).collect());
        let Some((key, id, hits)) = key_and_two_fields(part) else {
            return Err(malformed());
        };
        if id.len() != 16 {
            return Err(malformed());
        }
        let id = u64::from_str_radix(id, 16).map_err(|_| malformed())?;
        let hits = hits.parse::<u64>().map_err(|_| malformed())?;
        if hits == 0 {
            return Err(malformed());
        }
        Ok(LeasePart {
            counter_key: key.to_string(),
            id,
            hits,
        })
    }
}

/// The three `/`-separated fields of one part of a lease or settlement
/// token, the first a counter key (`<policy>:<values>`, in the characters
/// keys are escaped to); `None` when the part is not that.
pub(crate) fn key_and_two_fields(part: &str) -> Option<(&str, &str, &str)> {
    let mut fields = part.split('/');
    let (Some(key), Some(first), Some(second), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    let key_ok = !key.is_empty()
        && !key.starts_with(':')
        && key.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'-' | b'.' | b'~' | b'@' | b'%' | b':' | b'=')
        });
    key_ok.then_some((key, first, second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let parts = vec![
            LeasePart {
                counter_key: "llm:u%2F1".into(),
                id: 0xdead_beef,
                hits: 1,
            },
            LeasePart {
                counter_key: "global".into(),
                id: u64::MAX,
                hits: 3,
            },
            LeasePart {
                counter_key: "llm:ip=127.0.0.1".into(),
                id: 7,
                hits: 1,
            },
        ];
        let token = LeasePart::encode(&parts);
        assert_eq!(
            token,
            "llm:u%2F1/00000000deadbeef/1,global/ffffffffffffffff/3,llm:ip=127.0.0.1/0000000000000007/1"
        );
        assert_eq!(LeasePart::decode(&token).unwrap(), parts);
        assert_eq!(parts[0].policy(), "llm");
        assert_eq!(parts[1].policy(), "global");
        assert_eq!(parts[2].policy(), "llm");
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(LeasePart::decode(""), Err(LeaseError::Empty));
        for bad in [
            "x",
            "a/b/c",
            "k/0000000000000001",
            "k/0000000000000001/0",
            "k/0000000000000001/1/2",
            "k{x}/0000000000000001/1",
            "k/000000000000000g/1",
            "k/1/1",
            "k/0000000000000001/1,",
        ] {
            assert!(LeasePart::decode(bad).is_err(), "{bad}");
        }
        assert_eq!(
            LeasePart::decode(&"a".repeat(MAX_LEASE_LEN + 1)),
            Err(LeaseError::TooLong)
        );
    }
}
