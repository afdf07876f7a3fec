//! Request attributes: the flat string map a check carries.

use std::collections::BTreeMap;

/// The attributes of one check (`user`, `ip`, `endpoint`, …). A sorted map:
/// a check carries a handful, and a look-up compares a few short names
/// instead of hashing one (the protobuf and JSON decoders build this type).
pub type Attributes = BTreeMap<String, String>;

/// Longest attribute value accepted, in bytes (docs/api.md, "Input limits").
pub const MAX_VALUE_LEN: usize = 256;
/// Longest attribute name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most attributes one check may carry.
pub const MAX_ATTRIBUTES: usize = 64;
/// Largest cost one check may charge; keeps every sum far from overflow.
pub const MAX_HITS: u64 = 1_000_000_000;

/// Why a check's attributes were refused. The check changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    /// More attributes than [`MAX_ATTRIBUTES`].
    #[error("too many attributes: {0} (at most {MAX_ATTRIBUTES})")]
    TooMany(usize),
    /// An empty name, or one longer than [`MAX_NAME_LEN`].
    #[error("attribute name {0:?} must be 1 to {MAX_NAME_LEN} bytes")]
    BadNameLength(String),
    /// A name or value holding a control character.
    #[error("attribute {0:?} contains a control character")]
    ControlCharacter(String),
    /// A value longer than [`MAX_VALUE_LEN`] bytes.
    #[error("attribute {name:?} is {len} bytes long (at most {MAX_VALUE_LEN})")]
    ValueTooLong {
        /// The attribute whose value is too long.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A cost above [`MAX_HITS`].
    #[error("hits {0} is too large (at most {MAX_HITS})")]
    TooManyHits(u64),
}

/// Checks that every attribute is well formed.
///
/// # Errors
/// The first problem found, as an [`AttributeError`].
pub fn validate_attributes(attributes: &Attributes) -> Result<(), AttributeError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(AttributeError::TooMany(attributes.len()));
    }
    for (name, value) in attributes {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(AttributeError::BadNameLength(truncate(name)));
        }
        if has_control(name) {
            return Err(AttributeError::ControlCharacter(truncate(name)));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(AttributeError::ValueTooLong {
                name: name.clone(),
                len: value.len(),
            });
        }
        if has_control(value) {
            return Err(AttributeError::ControlCharacter(name.clone()));
        }
    }
    Ok(())
}

/// Checks the cost of a check.
///
/// # Errors
/// [`AttributeError::TooManyHits`] above [`MAX_HITS`].
pub fn validate_hits(hits: u64) -> Result<(), AttributeError> {
    if hits > MAX_HITS {
        return Err(AttributeError::TooManyHits(hits));
    }
    Ok(())
}

/// Whether `s` holds a control character (`char::is_control`). Printable
/// ASCII, the usual case, is told from the bytes alone.
fn has_control(s: &str) -> bool {
    !s.bytes().all(|b| (0x20..0x7F).contains(&b)) && s.chars().any(char::is_control)
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_NAME_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_as_char_is_control_finds_them() {
        let samples = [
            "",
            "plain",
            "tab\there",
            "del\u{7f}",
            "nel\u{85}",
            "c1\u{9f}",
            "nbsp\u{a0}",
            "é",
            "\u{c2}\u{a2}",
            "ü\u{80}",
            "日本",
            "emoji 🚀",
            "\u{0}",
            "\u{1f}",
            " ~",
        ];
        for s in samples {
            assert_eq!(has_control(s), s.chars().any(char::is_control), "{s:?}");
        }
        for c in (0..=0x2FF).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(has_control(&s), c.is_control(), "{c:?}");
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn accepts_ordinary_attributes() {
        assert_eq!(
            validate_attributes(&attrs(&[("user", "u1"), ("ip", "::1")])),
            Ok(())
        );
    }

    #[test]
    fn refuses_long_values_control_characters_and_empty_names() {
        let long = "x".repeat(257);
        assert!(matches!(
            validate_attributes(&attrs(&[("user", &long)])),
            Err(AttributeError::ValueTooLong { len: 257, .. })
        ));
        assert!(validate_attributes(&attrs(&[("user", &"x".repeat(256))])).is_ok());
        assert!(matches!(
            validate_attributes(&attrs(&[("user", "a\nb")])),
            Err(AttributeError::ControlCharacter(_))
        ));
        assert!(matches!(
            validate_attributes(&attrs(&[("", "a")])),
            Err(AttributeError::BadNameLength(_))
        ));
        assert!(validate_hits(MAX_HITS).is_ok());
        assert!(validate_hits(MAX_HITS + 1).is_err());
    }
}
