//! W3C Trace Context: the `traceparent` header a caller sends, taken as the
//! parent of the check's span.

/// The caller's span, from a valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The trace the check joins.
    pub trace_id: [u8; 16],
    /// The caller's span: the parent of the check's span.
    pub span_id: [u8; 8],
    /// The caller's sampling decision (flag `01`), always followed.
    pub sampled: bool,
}

/// Parses `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`). Anything invalid
/// (wrong length, upper-case or non-hex digits, version `ff`, an all-zero
/// id, version `00` with trailing data) is `None`: the check starts a new
/// trace, as the W3C recommendation says.
pub fn parse(value: &[u8]) -> Option<Parent> {
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = hex::<1>(&value[0..2])?[0];
    let trailing_ok = match version {
        0xff => false,
        0 => value.len() == 55,
        // A later version may append fields after another dash.
        _ => value.len() == 55 || value[55] == b'-',
    };
    let trace_id = hex::<16>(&value[3..35])?;
    let span_id = hex::<8>(&value[36..52])?;
    let flags = hex::<1>(&value[53..55])?[0];
    let valid = trailing_ok && trace_id != [0; 16] && span_id != [0; 8];
    valid.then_some(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// `N` bytes from `2 × N` lower-case hex digits.
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = nibble(digits[2 * i])? << 4 | nibble(digits[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_gives_its_ids_and_flag() {
        let parent = parse(VALID.as_bytes()).unwrap();
        assert_eq!(parent.trace_id[0], 0x4b);
        assert_eq!(parent.trace_id[15], 0x36);
        assert_eq!(
            parent.span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(parent.sampled);
        let unsampled = VALID.replace("-01", "-00");
        assert!(!parse(unsampled.as_bytes()).unwrap().sampled);
        // A later version with extra fields is read for what it shares.
        let later = VALID.replacen("00-", "01-", 1) + "-extra";
        assert!(parse(later.as_bytes()).is_some());
    }

    #[test]
    fn anything_malformed_is_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad}");
        }
    }
}
