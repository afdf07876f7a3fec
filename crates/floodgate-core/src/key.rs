//! Counter keys: `<policy>:<escaped value>:<escaped value>…`.
//!
//! Values are percent-encoded so that every byte outside `[A-Za-z0-9-._~@]`
//! becomes `%XX`. No value can therefore contain `:`, `{`, `}`, `%`, `/`,
//! `,`, `=` or a control character, so no value can forge another
//! counter's key, a Redis hash tag, or a lease (docs/redis.md).
//!
//! A key entry with alternatives (`key = ["user|ip"]`) writes the value of
//! its first alternative as is, and the value of any other alternative as
//! `<attribute>=<escaped value>` (`ai:ip=127.0.0.1`): escaped values never
//! hold `=`, so a user id can never collide with a stand-in address.

use std::fmt::Write;

/// Appends `value` to `out`, percent-encoding every byte that is not
/// unreserved.
pub fn escape_value(out: &mut String, value: &str) {
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Builds the counter key of `policy` for the given key values, in order.
///
/// Policy names are validated to hold only `[A-Za-z0-9_.-]`, so the result
/// splits unambiguously on `:`.
pub fn counter_key<'a>(policy: &str, values: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::with_capacity(policy.len() + 24);
    out.push_str(policy);
    for value in values {
        out.push(':');
        escape_value(&mut out, value);
    }
    out
}

/// One segment of a counter key: a value, and the attribute it stands in
/// for when it is not the entry's first alternative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// `Some(attribute)` when a stand-in alternative was used.
    pub stand_in: Option<&'a str>,
    /// The attribute's value, unescaped.
    pub value: &'a str,
}

/// Builds the counter key of `policy` from its segments, in order: like
/// [`counter_key`], with each stand-in written as `<attribute>=<value>`.
pub fn counter_key_of<'a>(policy: &str, segments: impl IntoIterator<Item = Segment<'a>>) -> String {
    let mut out = String::with_capacity(policy.len() + 24);
    out.push_str(policy);
    for segment in segments {
        out.push(':');
        if let Some(attribute) = segment.stand_in {
            // Attribute names are `[A-Za-z0-9_.-]`: nothing to escape.
            out.push_str(attribute);
            out.push('=');
        }
        escape_value(&mut out, segment.value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_pass_through() {
        assert_eq!(counter_key("ai", ["u1", "a.b@c"]), "ai:u1:a.b@c");
        assert_eq!(counter_key("global", []), "global");
    }

    #[test]
    fn separators_and_hash_tags_are_escaped() {
        assert_eq!(counter_key("p", ["a}:{b"]), "p:a%7D%3A%7Bb");
        assert_eq!(counter_key("p", ["100%"]), "p:100%25");
        assert_eq!(counter_key("p", ["a/b,c"]), "p:a%2Fb%2Cc");
        // Two values cannot be forged into one, nor one into two.
        assert_ne!(counter_key("p", ["a:b"]), counter_key("p", ["a", "b"]));
        assert_eq!(counter_key("p", ["é"]), "p:%C3%A9");
        assert_eq!(counter_key("p", ["ip=1"]), "p:ip%3D1");
    }

    #[test]
    fn stand_ins_are_named_and_cannot_be_forged() {
        let first = Segment {
            stand_in: None,
            value: "u1",
        };
        let stand_in = Segment {
            stand_in: Some("ip"),
            value: "127.0.0.1",
        };
        assert_eq!(counter_key_of("p", [first]), counter_key("p", ["u1"]));
        assert_eq!(counter_key_of("p", [stand_in]), "p:ip=127.0.0.1");
        // A user who calls itself "ip=127.0.0.1" gets its own counter.
        let forged = Segment {
            stand_in: None,
            value: "ip=127.0.0.1",
        };
        assert_eq!(counter_key_of("p", [forged]), "p:ip%3D127.0.0.1");
    }
}
