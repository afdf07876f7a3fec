//! Counter keys: `<policy>:<escaped value>:<escaped value>…`.
//!
//! Values are percent-encoded so that every byte outside `[A-Za-z0-9-._~@]`
//! becomes `%XX`. No value can therefore contain `:`, `{`, `}`, `%`, `/`,
//! `,` or a control character, so no value can forge another counter's key,
//! a Redis hash tag, or a lease (SPEC §5).

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
    }
}
