//! Settlement ids: what a check that reserved an estimated cost hands back,
//! so the caller can settle it with the actual cost later.
//!
//! An id is one part per settleable policy that charged the reservation,
//! joined by `,`; a part is `<counter key>/<nonce>/<issued>`: the nonce as
//! 32 hex digits, 128 bits the sidecar draws from a cryptographic
//! generator, and the store's time of the charge in epoch µs. The id holds
//! no amount: the store keeps a record of each part (the estimate and the
//! receipt of its charge) under the counter key and the nonce, and a settle
//! marks that record settled in the same atomic step that applies the
//! difference, so an id settles once. A forged id (a guessed nonce, another
//! counter key) names no record and changes nothing; its `issued` time
//! tells a forged id (no record although it would not have lapsed yet)
//! from one that has lapsed.

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
    /// When the reservation was charged (epoch µs, the store's clock), as
    /// the id claims it.
    pub issued_us: u64,
}

/// What a store keeps of one reservation until it lapses (settled or not:
/// a settled one stays as a marker, so a second settle is told apart from
/// a forged id).
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
    #[error(
        "settlement id is longer than {MAX_SETTLEMENT_LEN} bytes or {MAX_SETTLEMENT_PARTS} parts"
    )]
    TooLong,
    /// An actual cost above [`crate::MAX_HITS`].
    #[error("actual cost {0} is too large (at most {max})", max = crate::MAX_HITS)]
    ActualTooLarge(u64),
    /// No record of it, although the id says it would still be kept: not an
    /// id this service issued. Nothing changed.
    #[error("settlement id names no reservation this service made; nothing was changed")]
    Unknown,
    /// Every part was settled already. Nothing changed.
    #[error("settlement id was already settled; nothing was changed")]
    Spent,
    /// Every part has lapsed (the estimate stays charged). Nothing changed.
    #[error("settlement id has expired: the reservation keeps its estimate; nothing was changed")]
    Lapsed,
    /// A part not of the form `<counter key>/<32 hex digits>/<epoch µs>`,
    /// or one naming no settleable policy in force.
    #[error("settlement id part {0:?} is not one this service issued")]
    Malformed(String),
}

impl SettlementError {
    /// Whether the id is well formed but can no longer be settled (already
    /// settled, or lapsed): a conflict (409 / FAILED_PRECONDITION) rather
    /// than bad input (400 / INVALID_ARGUMENT).
    pub fn is_conflict(&self) -> bool {
        matches!(self, SettlementError::Spent | SettlementError::Lapsed)
    }
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
            let _ = write!(
                out,
                "{}/{:032x}/{}",
                part.counter_key, part.nonce, part.issued_us
            );
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
        let Some((key, nonce, issued)) = crate::lease::key_and_two_fields(part) else {
            return Err(malformed());
        };
        let nonce_ok = nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit());
        let issued_ok =
            !issued.is_empty() && issued.len() <= 16 && issued.bytes().all(|b| b.is_ascii_digit());
        if !nonce_ok || !issued_ok {
            return Err(malformed());
        }
        let nonce = u128::from_str_radix(nonce, 16).map_err(|_| malformed())?;
        let issued_us = issued.parse::<u64>().map_err(|_| malformed())?;
        Ok(SettlementPart {
            counter_key: key.to_string(),
            nonce,
            issued_us,
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
                issued_us: 1_700_000_000_000_000,
            },
            SettlementPart {
                counter_key: "org:ip=127.0.0.1".into(),
                nonce: u128::MAX,
                issued_us: 0,
            },
        ];
        let id = SettlementPart::encode(&parts);
        assert_eq!(
            id,
            "tokens:u%2F1/000000000000000000000000deadbeef/1700000000000000,org:ip=127.0.0.1/ffffffffffffffffffffffffffffffff/0"
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
            "/000000000000000000000000deadbeef/1",
            "k/deadbeef/1",
            "k/000000000000000000000000deadbeefff/1",
            "k/00000000000000000000000000deadbeeg/1",
            "k{x}/000000000000000000000000deadbeef/1",
            "k/000000000000000000000000deadbeef",
            "k/000000000000000000000000deadbeef/",
            "k/000000000000000000000000deadbeef/-1",
            "k/000000000000000000000000deadbeef/99999999999999999",
            "k/000000000000000000000000deadbeef/1/1",
            "k/000000000000000000000000deadbeef/1,",
            ":k/000000000000000000000000deadbeef/1",
            "k/+00000000000000000000000deadbeef/1",
        ] {
            assert!(SettlementPart::decode(bad).is_err(), "{bad}");
        }
        assert!(SettlementPart::decode("k/000000000000000000000000deadbeef/1").is_ok());
        assert_eq!(
            SettlementPart::decode(&"a".repeat(MAX_SETTLEMENT_LEN + 1)),
            Err(SettlementError::TooLong)
        );
        let many = vec!["k/000000000000000000000000deadbeef/1"; MAX_SETTLEMENT_PARTS + 1].join(",");
        assert_eq!(SettlementPart::decode(&many), Err(SettlementError::TooLong));
    }
}
