//! Settlement ids: what a check that reserved an estimated cost hands back,
//! so the caller can settle it with the actual cost later.
//!
//! An id is one part per settleable policy that charged the reservation,
//! joined by `,`; a part is `<counter key>/<nonce as 32 hex digits>`. The
//! nonce is 128 bits the sidecar draws from a cryptographic generator. The
//! id holds no amount: the store keeps a record of each part (the estimate
//! and the receipt of its charge) under the counter key and the nonce, and
//! a settle takes that record away in the same atomic step that applies the
//! difference, so an id settles once. A forged id (a guessed nonce, another
//! counter key) names no record and changes nothing.

use std::fmt::Write;

use crate::outcome::Receipt;

/// Longest settlement id accepted, in bytes.
pub const MAX_SETTLEMENT_LEN: usize = 8192;

/// Most parts (settleable policies) one settlement id may name.
pub const MAX_SETTLEMENT_PARTS: usize = 64;

/// One policy's share of a settlement id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementPart {
    /// The counter key the reservation was charged to (`<policy>:<values>`).
    pub counter_key: String,
    /// The reservation's random nonce: names its record in the store.
    pub nonce: u128,
}

/// What a store keeps of one reservation until it is settled or lapses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The estimated cost charged by the check.
    pub estimate: u64,
    /// The receipt of that charge.
    pub receipt: Receipt,
    /// When the record lapses (epoch µs): a settle at or after it finds
    /// nothing, and the estimate stays charged.
    pub expires_us: u64,
}

/// Why a settlement id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettlementError {
    /// An empty id.
    #[error("settlement id is empty")]
    Empty,
    /// An id longer than [`MAX_SETTLEMENT_LEN`] or with more than
    /// [`MAX_SETTLEMENT_PARTS`] parts.
    #[error("settlement id is longer than {MAX_SETTLEMENT_LEN} bytes or {MAX_SETTLEMENT_PARTS} parts")]
    TooLong,
    /// A part not of the form `<counter key>/<32 hex digits>`, or one
    /// naming no settleable policy in force.
    #[error("settlement id part {0:?} is not one this service issued")]
    Malformed(String),
}

impl SettlementPart {
    /// The policy the reservation belongs to.
    pub fn policy(&self) -> &str {
        self.counter_key
            .split_once(':')
            .map_or(self.counter_key.as_str(), |(p, _)| p)
    }

    /// The nonce as 32 lowercase hex digits (as in the id and the Redis
    /// record key).
    pub fn nonce_hex(&self) -> String {
        format!("{:032x}", self.nonce)
    }

    /// Writes the id of `parts`.
    pub fn encode(parts: &[SettlementPart]) -> String {
        let mut out = String::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "{}/{:032x}", part.counter_key, part.nonce);
        }
        out
    }

    /// Parses an id.
    ///
    /// # Errors
    /// [`SettlementError`] when the id is empty, too long or malformed.
    pub fn decode(id: &str) -> Result<Vec<SettlementPart>, SettlementError> {
        if id.is_empty() {
            return Err(SettlementError::Empty);
        }
        if id.len() > MAX_SETTLEMENT_LEN || id.split(',').count() > MAX_SETTLEMENT_PARTS {
            return Err(SettlementError::TooLong);
        }
        id.split(',').map(Self::decode_part).collect()
    }

    fn decode_part(part: &str) -> Result<SettlementPart, SettlementError> {
        let malformed = || SettlementError::Malformed(part.chars().take(80).collect());
        let Some((key, nonce)) = part.split_once('/') else {
            return Err(malformed());
        };
        let key_ok = !key.is_empty()
            && !key.starts_with(':')
            && key.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'_' | b'-' | b'.' | b'~' | b'@' | b'%' | b':' | b'=')
            });
        let nonce_ok = nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit());
        if !key_ok || !nonce_ok {
            return Err(malformed());
        }
        let nonce = u128::from_str_radix(nonce, 16).map_err(|_| malformed())?;
        Ok(SettlementPart {
            counter_key: key.to_string(),
            nonce,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let parts = vec![
            SettlementPart {
                counter_key: "tokens:u%2F1".into(),
                nonce: 0xdead_beef,
            },
            SettlementPart {
                counter_key: "org:ip=127.0.0.1".into(),
                nonce: u128::MAX,
            },
        ];
        let id = SettlementPart::encode(&parts);
        assert_eq!(
            id,
            "tokens:u%2F1/000000000000000000000000deadbeef,org:ip=127.0.0.1/ffffffffffffffffffffffffffffffff"
        );
        assert_eq!(SettlementPart::decode(&id).unwrap(), parts);
        assert_eq!(parts[0].policy(), "tokens");
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(SettlementPart::decode(""), Err(SettlementError::Empty));
        for bad in [
            "x",
            "k/",
            "/000000000000000000000000deadbeef",
            "k/deadbeef",
            "k/000000000000000000000000deadbeefff",
            "k/00000000000000000000000000deadbeeg",
            "k{x}/000000000000000000000000deadbeef",
            "k/000000000000000000000000deadbeef/1",
            "k/000000000000000000000000deadbeef,",
            ":k/000000000000000000000000deadbeef",
            "k/+00000000000000000000000deadbeef",
        ] {
            assert!(SettlementPart::decode(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SettlementPart::decode(&"a".repeat(MAX_SETTLEMENT_LEN + 1)),
            Err(SettlementError::TooLong)
        );
        let many = vec!["k/000000000000000000000000deadbeef"; MAX_SETTLEMENT_PARTS + 1].join(",");
        assert_eq!(SettlementPart::decode(&many), Err(SettlementError::TooLong));
    }
}
