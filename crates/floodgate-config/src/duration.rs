//! Durations as written in the file: an integer followed by a unit, `ms`,
//! `s`, `m`, `h` or `d` (`"250ms"`, `"1m"`). No spaces, signs or fractions.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// What a duration must look like, for error messages.
const EXPECTED: &str = "expected an integer followed by ms, s, m, h or d, like \"250ms\" or \"1m\"";

/// Parses `"250ms"`, `"1s"`, `"1m"`, `"1h"`, `"1d"`.
///
/// # Errors
/// A message quoting the input and saying what was expected.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}: {EXPECTED}");
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(invalid());
    }
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(ms_per_unit))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

/// A duration in the largest unit that writes it exactly (`"90s"`, `"1m"`).
pub(crate) fn format(duration: Duration) -> String {
    let ms = duration.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms > 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Microseconds, saturating (validation rejects anything that large).
pub(crate) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A duration field of a raw section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawDuration(pub Duration);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = RawDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string like \"250ms\" or \"1m\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<RawDuration, E> {
        parse(text).map(RawDuration).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<RawDuration, E> {
        Err(E::custom(format!(
            "invalid duration {n}: durations are strings with a unit, like \"{n}s\" or \"{n}ms\""
        )))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<RawDuration, E> {
        Err(E::custom(format!(
            "invalid duration {n}: durations are strings with a unit, like \"{n}s\" or \"{n}ms\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("0ms"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "5",
            "ms",
            "5 minutes",
            "1.5s",
            "-1s",
            " 1s",
            "1S",
            "1us",
            "1m0s",
        ] {
            let message = parse(bad).unwrap_err();
            assert!(
                message.contains("expected an integer followed by"),
                "{bad}: {message}"
            );
        }
        assert!(parse("99999999999999999999d")
            .unwrap_err()
            .contains("too large"));
        assert!(parse("999999999999999999d")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_secs(90)), "90s");
        assert_eq!(format(Duration::from_secs(60)), "1m");
        assert_eq!(format(Duration::from_secs(86_400)), "1d");
        assert_eq!(format(Duration::ZERO), "0ms");
    }
}
