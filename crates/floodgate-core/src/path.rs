//! Request path normalisation, so that spellings a web framework routes to
//! the same handler are classified into the same endpoint class.
//!
//! [`normalize`] percent-decodes the unreserved characters
//! (`A-Z a-z 0-9 - . _ ~`) and `/` (`%2F`, as WSGI and ASGI servers and
//! nginx route it), writes every other escape with upper-case hex
//! (a `%` that starts no escape becomes `%25`), merges repeated slashes and
//! removes `.` and `..` segments (RFC 3986 §5.2.4, after decoding, so
//! `%2e%2e` is a `..` too). A byte that may not appear in a path as is
//! (non-ASCII, control characters, space, `"` `<` `>` `\` `^` `` ` `` `{`
//! `|` `}`) is percent-encoded, so `/é` and `/%C3%A9` are one path. The
//! result always starts with `/` and is never empty; normalising it again
//! changes nothing. Letter case is kept: endpoint classes compare paths
//! case-insensitively themselves.
//!
//! Other routers (Go's `ServeMux`, Express, Rails) keep `%2F` as a
//! character inside one segment: [`normalize_keeping_slashes`] is that
//! reading, and a path that [`encodes_a_slash`] is classified by both.
//!
//! [`encode_target`] turns the raw bytes of a request target (a header
//! value may hold any byte ≥ 0x80) into text the same way, and
//! [`origin_form`] drops the `scheme://authority` of an absolute-form
//! target, so both reach [`normalize`] as a path.

use std::borrow::Cow;

/// The normalised form of `path` (a path without its query), `%2F` read
/// as a slash. Borrowed when `path` is already normal.
pub fn normalize(path: &str) -> Cow<'_, str> {
    normalize_with(path, true)
}

/// [`normalize`], but `%2F` kept as a character of its segment (written
/// `%2F`), as routers that match escaped segments read it.
pub fn normalize_keeping_slashes(path: &str) -> Cow<'_, str> {
    normalize_with(path, false)
}

/// Whether `path` holds an escaped slash (`%2F`, any case), which routers
/// read two ways.
pub fn encodes_a_slash(path: &str) -> bool {
    (path.as_bytes().windows(3))
        .any(|w| w[0] == b'%' && w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f'))
}

/// [`normalize`], decoding `%2F` or not.
fn normalize_with(path: &str, decode_slash: bool) -> Cow<'_, str> {
    if is_normal(path) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_escapes(path, decode_slash);
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/') {
        trailing_slash = true;
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Whether `byte` may appear in a path as is (RFC 3986 `pchar`, `/`, `%`,
/// and `?` `#`, which end the path).
fn allowed(byte: u8) -> bool {
    byte.is_ascii_graphic()
        && !matches!(
            byte,
            b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
        )
}

/// The raw bytes of a request target as text: every byte that may not
/// appear in a path as is (see the module doc) percent-encoded with
/// upper-case hex, everything else kept. Borrowed when nothing needed it.
pub fn encode_target(target: &[u8]) -> Cow<'_, str> {
    if target.iter().all(|&b| allowed(b)) {
        // All ASCII, so valid UTF-8.
        if let Ok(text) = std::str::from_utf8(target) {
            return Cow::Borrowed(text);
        }
    }
    let mut out = String::with_capacity(target.len() + 8);
    for &b in target {
        if allowed(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(upper_hex(b >> 4));
            out.push(upper_hex(b & 0xF));
        }
    }
    Cow::Owned(out)
}

/// The origin form of a request target: an absolute-form target
/// (`http://host:80/api/x?q`) without its `scheme://authority` (`/api/x?q`;
/// `""` when it has no path); any other target as is.
pub fn origin_form(target: &str) -> &str {
    if target.starts_with('/') {
        return target;
    }
    let Some((scheme, rest)) = target.split_once("://") else {
        return target;
    };
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !is_scheme {
        return target;
    }
    rest.find(['/', '?', '#']).map_or("", |at| &rest[at..])
}

/// Whether `path` is already normal: starts with `/`, holds no `%` and no
/// byte that must be encoded, and no empty, `.` or `..` segment (but may
/// end with `/`).
fn is_normal(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if path.bytes().any(|b| b == b'%' || !allowed(b)) {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." | ".." => return false,
            "" if !last => return false,
            _ => {}
        }
    }
    true
}

/// Decodes escapes of unreserved characters (and of `/` with
/// `decode_slash`), upper-cases the hex of the others, escapes a `%` that
/// starts no escape as `%25`, and escapes the bytes that may not appear as
/// is.
fn decode_escapes(path: &str, decode_slash: bool) -> String {
    let path = encode_target(path.as_bytes());
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut start = 0; // start of the run of plain text not yet copied
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        // The text is ASCII now, so `start..i` is a character boundary.
        out.push_str(&path[start..i]);
        match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (Some(high), Some(low)) => {
                let byte = high << 4 | low;
                let unreserved =
                    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
                if unreserved || (decode_slash && byte == b'/') {
                    out.push(char::from(byte));
                } else {
                    out.push('%');
                    out.push(upper_hex(high));
                    out.push(upper_hex(low));
                }
                i += 3;
            }
            _ => {
                out.push_str("%25");
                i += 1;
            }
        }
        start = i;
    }
    out.push_str(&path[start..]);
    out
}

/// The value of one hex digit.
fn hex(byte: Option<&u8>) -> Option<u8> {
    char::from(*byte?)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The upper-case hex digit of `nibble` (0..16).
fn upper_hex(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).map_or('0', |c| c.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spellings_of_one_route_become_one_path() {
        for spelling in [
            "/api/chat/completions",
            "/api/%63hat/completions",
            "/api/%63%68%61%74/completions",
            "//api/chat/completions",
            "/api//chat///completions",
            "/api/x/../chat/completions",
            "/api/./chat/completions",
            "/api/x/%2e%2E/chat/completions",
            "/../api/chat/completions",
            "/api/chat/./completions",
            "/api%2Fchat/completions",
            "/api%2fchat%2Fcompletions",
            "/api/x%2F..%2Fchat/completions",
            "/api%2F%2Fchat/completions",
        ] {
            assert_eq!(normalize(spelling), "/api/chat/completions", "{spelling}");
        }
    }

    #[test]
    fn the_other_reading_keeps_an_escaped_slash_in_its_segment() {
        assert_eq!(normalize("/files/..%2Fsecret"), "/secret");
        assert_eq!(
            normalize_keeping_slashes("/files/..%2Fsecret"),
            "/files/..%2Fsecret"
        );
        assert_eq!(
            normalize_keeping_slashes("/api%2fchat//x/../y"),
            "/api%2Fchat/y"
        );
        assert_eq!(normalize_keeping_slashes("/api/%63hat"), "/api/chat");
        for (path, has) in [
            ("/a%2Fb", true),
            ("/a%2fb", true),
            ("/a%2", false),
            ("/a/b", false),
            ("%2F", true),
        ] {
            assert_eq!(encodes_a_slash(path), has, "{path}");
        }
    }

    #[test]
    fn reserved_escapes_stay_escaped_in_upper_case() {
        assert_eq!(normalize("/a%5cb"), "/a%5Cb");
        assert_eq!(normalize("/a%3f"), "/a%3F");
        assert_eq!(normalize("/%C3%A9"), "/%C3%A9");
        assert_eq!(normalize("/%ff%fe"), "/%FF%FE");
        assert_eq!(normalize("/100%"), "/100%25");
        assert_eq!(normalize("/%zz"), "/%25zz");
        assert_eq!(normalize("/%4"), "/%254");
    }

    #[test]
    fn bytes_that_may_not_appear_in_a_path_are_encoded() {
        assert_eq!(normalize("/é"), "/%C3%A9");
        assert_eq!(normalize("/api/%c3%a9"), normalize("/api/é"));
        assert_eq!(normalize("/a b|c{d}"), "/a%20b%7Cc%7Bd%7D");
        assert_eq!(normalize("/a%7cb"), "/a%7Cb");
        assert_eq!(encode_target(b"/api/chat?x=\xC3\xA9"), "/api/chat?x=%C3%A9");
        assert_eq!(encode_target(b"/\xFF\x00 x"), "/%FF%00%20x");
        assert!(matches!(encode_target(b"/api/x?q=1#f"), Cow::Borrowed(_)));
    }

    #[test]
    fn absolute_form_targets_lose_scheme_and_authority() {
        assert_eq!(origin_form("http://h/api/chat/x"), "/api/chat/x");
        assert_eq!(
            origin_form("HTTPS://h:8443/api/chat/x?q=1"),
            "/api/chat/x?q=1"
        );
        assert_eq!(origin_form("http://user@h?q"), "?q");
        assert_eq!(origin_form("http://h"), "");
        assert_eq!(origin_form("/api/http://h/x"), "/api/http://h/x");
        assert_eq!(origin_form("api/x"), "api/x");
        assert_eq!(origin_form("1http://h/x"), "1http://h/x");
        assert_eq!(
            normalize(origin_form("http://h/api//chat/x")),
            "/api/chat/x"
        );
    }

    #[test]
    fn never_empty_and_keeps_trailing_slashes() {
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("."), "/");
        assert_eq!(normalize("/.."), "/");
        assert_eq!(normalize("//"), "/");
        assert_eq!(normalize("*"), "/*");
        assert_eq!(normalize("/api/"), "/api/");
        assert_eq!(normalize("/api/x/.."), "/api/");
        assert_eq!(normalize("/api/."), "/api/");
        assert_eq!(normalize("api/x"), "/api/x");
    }

    #[test]
    fn normal_paths_are_borrowed() {
        assert!(matches!(normalize("/api/chat/x"), Cow::Borrowed(_)));
        assert!(matches!(normalize("/api/"), Cow::Borrowed(_)));
        assert!(matches!(normalize("/"), Cow::Borrowed(_)));
        assert!(matches!(normalize("/api//x"), Cow::Owned(_)));
    }

    /// A small deterministic generator (xorshift) over the characters that
    /// matter, so the property runs on many odd paths without a dependency.
    fn paths() -> impl Iterator<Item = String> {
        const ALPHABET: &[&str] = &[
            "/", "/", ".", "..", "%", "%2e", "%2E", "%2f", "%41", "%4", "%%", "a", "B", "~", "é",
            "%c3%a9", "%zz", "?", "%25", "%2", "e",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..20_000).map(move |_| {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let len = next() % 12;
            (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect()
        })
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for path in paths() {
            let once = normalize(&path).into_owned();
            assert_eq!(normalize(&once), once.as_str(), "{path:?}");
            assert!(once.starts_with('/'), "{path:?} → {once:?}");
            assert!(!once.contains("//"), "{path:?} → {once:?}");
        }
    }
}
