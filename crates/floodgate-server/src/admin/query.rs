//! Query strings of the admin routes: attributes (`?user=u1&endpoint=ai`)
//! and named options (`?policy=p&n=10`).

use floodgate_core::Attributes;

use crate::errors::ApiError;

/// Longest query string read, in bytes (attributes are capped far lower).
const MAX_QUERY: usize = 16 * 1024;

/// The pairs of `query`, decoded; a name given twice is an error.
fn pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let query = query.unwrap_or("");
    if query.len() > MAX_QUERY {
        return Err(ApiError::bad_request(format!(
            "the query string is longer than {MAX_QUERY} bytes"
        )));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (decode(name)?, decode(value)?);
        if out.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::bad_request(format!(
                "query parameter {name:?} is given more than once"
            )));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// One name or value of a query, form-decoded (`+` is a space, then
/// percent-escapes); bytes that are not UTF-8 are an error, not a
/// replacement character that would name another key.
fn decode(raw: &str) -> Result<String, ApiError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| {
            ApiError::bad_request(format!("query parameter {raw:?} is not UTF-8 once decoded"))
        })
}

/// Every query parameter as an attribute (validated by the limiter as a
/// check's are).
///
/// # Errors
/// A name given twice, no attribute at all, or a query too long.
pub(super) fn attributes(query: Option<&str>) -> Result<Attributes, ApiError> {
    let pairs = pairs(query)?;
    if pairs.is_empty() {
        return Err(ApiError::bad_request(
            "give the key's attributes as query parameters, like ?user=u1&endpoint=ai",
        ));
    }
    Ok(pairs.into_iter().collect())
}

/// `?policy=NAME&n=N` of `/v1/admin/top`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TopQuery {
    /// One policy, or every one.
    pub policy: Option<String>,
    /// Keys per policy.
    pub n: usize,
}

/// Parses the query of `/v1/admin/top`: `n` from 1 to `max` (default 10).
///
/// # Errors
/// An unknown parameter, or an `n` out of range.
pub(super) fn top(query: Option<&str>, max: usize) -> Result<TopQuery, ApiError> {
    let mut parsed = TopQuery {
        policy: None,
        n: 10.min(max),
    };
    for (name, value) in pairs(query)? {
        match name.as_str() {
            "policy" => parsed.policy = Some(value),
            "n" => {
                parsed.n = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "invalid n {value:?}: expected a number from 1 to {max}"
                        ))
                    })?;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}: expected policy and n"
                )))
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_decoded_and_unique() {
        let a = attributes(Some("user=u%201&endpoint=ai")).unwrap();
        assert_eq!(a["user"], "u 1");
        assert_eq!(a["endpoint"], "ai");
        assert!(attributes(Some("user=a&user=b")).is_err());
        assert!(attributes(None).is_err());
        assert!(attributes(Some(&"a=b&".repeat(5_000))).is_err());
        let a = attributes(Some("user=a+b%2Bc&flag&&ip=%C3%A9")).unwrap();
        assert_eq!(a["user"], "a b+c");
        assert_eq!(a["flag"], "");
        assert_eq!(a["ip"], "é");
        // Not UTF-8 once decoded: refused, not read as U+FFFD.
        let error = attributes(Some("user=%FF")).unwrap_err();
        assert!(error.message.contains("not UTF-8"), "{}", error.message);
        assert!(attributes(Some("%C3=x")).is_err());
        // A % that starts no escape stays as it is.
        assert_eq!(attributes(Some("user=100%")).unwrap()["user"], "100%");
    }

    #[test]
    fn top_takes_policy_and_a_bounded_n() {
        assert_eq!(
            top(Some("policy=p&n=3"), 64).unwrap(),
            TopQuery {
                policy: Some("p".into()),
                n: 3
            }
        );
        assert_eq!(top(None, 64).unwrap().n, 10);
        for bad in ["n=0", "n=65", "n=x", "user=u1"] {
            assert!(top(Some(bad), 64).is_err(), "{bad}");
        }
    }
}
