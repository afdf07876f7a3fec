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

/// Appends `value` to `out`, percent-encoding every byte that is not
/// unreserved.
pub fn escape_value(out: &mut String, value: &str) {
    let mut start = 0;
    for (i, &b) in value.as_bytes().iter().enumerate() {
        if !unreserved(b) {
            // Unreserved bytes are ASCII, so a run of them starts and ends
            // on character boundaries: it is copied whole.
            if start < i {
                out.push_str(&value[start..i]);
            }
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
            start = i + 1;
        }
    }
    if start < value.len() {
        out.push_str(&value[start..]);
    }
}

/// The upper-case hex digits.
const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Whether `b` is written as is.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@')
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
    push_counter_key_of(&mut out, policy, segments);
    out
}

/// Appends the counter key [`counter_key_of`] builds to `out`: several keys
/// can share one buffer (the limiter builds every key of a check in one).
pub fn push_counter_key_of<'a>(
    out: &mut String,
    policy: &str,
    segments: impl IntoIterator<Item = Segment<'a>>,
) {
    out.push_str(policy);
    for segment in segments {
        out.push(':');
        if let Some(attribute) = segment.stand_in {
            // Attribute names are `[A-Za-z0-9_.-]`: nothing to escape.
            out.push_str(attribute);
            out.push('=');
        }
        escape_value(out, segment.value);
    }
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
        assert_eq!(counter_key("p", ["aé b~"]), "p:a%C3%A9%20b~");
        assert_eq!(counter_key("p", ["%%"]), "p:%25%25");
        assert_eq!(counter_key("p", [""]), "p:");
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

    #[test]
    fn keys_pushed_one_after_another_are_each_whole() {
        let mut out = String::new();
        let user = Segment {
            stand_in: None,
            value: "a:b",
        };
        push_counter_key_of(&mut out, "p", [user]);
        let first = out.len();
        push_counter_key_of(&mut out, "q", []);
        assert_eq!(&out[..first], counter_key_of("p", [user]));
        assert_eq!(&out[first..], "q");
    }
}
