//! [`redact_url`]: a Redis URL made safe to show (config errors, logs,
//! reload warnings, `explain`). The one function every crate uses, so no
//! copy can forget a case.

/// `url` with any password replaced by `***`.
///
/// The user information ends at the **last** `@` of the URL, not at the
/// first `/`: a password may hold `/`, `?`, `#` or `@`, which a URL should
/// percent-encode but users type as they are. When in doubt it hides too
/// much, never too little.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_whatever_they_hold() {
        for (url, shown) in [
            ("redis://u:secret@h:1/0", "redis://u:***@h:1/0"),
            ("redis://:secret@h", "redis://:***@h"),
            ("rediss://app:s3/cr?t#x@h:1/0", "rediss://app:***@h:1/0"),
            ("redis://u:a@b/c@h:6379", "redis://u:***@h:6379"),
            ("redis://:/@h", "redis://:***@h"),
            ("redis://u@h", "redis://u@h"),
            ("redis://h:1", "redis://h:1"),
            ("h:1", "h:1"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        for secret in ["s3/cr", "a@b/c", "p?w#d"] {
            let url = format!("redis://user:{secret}@host:6379/0");
            assert!(!redact_url(&url).contains(secret), "{url}");
        }
    }
}
