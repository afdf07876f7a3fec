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
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if out.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::bad_request(format!(
                "query parameter {name:?} is given more than once"
            )));
        }
        out.push((name.into_owned(), value.into_owned()));
    }
    Ok(out)
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
