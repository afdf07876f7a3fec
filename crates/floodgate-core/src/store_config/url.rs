//! [`RedisUrl`]: the one parser of Redis URLs. Config validation uses it to
//! report a bad URL at its line and column; the Redis store uses it to
//! build its client settings, so the two can never disagree.

use std::fmt;

/// A parsed `redis://` or `rediss://` URL:
/// `redis[s]://[user[:password]@]host[:port][/db][?…]`.
///
/// The user information ends at the **last** `@` of the URL, as
/// [`redact_url`](crate::redact_url) reads it: a password may hold `/`, `?`,
/// `#` or `@` typed as they are, and no part of it is then read as the
/// host, port or database (nor quoted in a [`BadUrl`]). User and password
/// are percent-decoded. A query is accepted and ignored.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Whether the scheme is `rediss` (TLS).
    pub tls: bool,
    /// The ACL user, if the URL names one.
    pub username: Option<String>,
    /// The password, if the URL holds a non-empty one.
    pub password: Option<String>,
    /// The host name or address, without the brackets of an IPv6 address.
    pub host: String,
    /// The port, when the URL names one (1 to 65535).
    pub port: Option<u16>,
    /// The database to select (`/2`), when the URL names one.
    pub database: Option<u8>,
}

/// Why a Redis URL was refused: a short phrase that names the part at
/// fault, for messages such as "invalid Redis URL …: {problem}".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadUrl(String);

impl BadUrl {
    fn new(problem: impl Into<String>) -> Self {
        BadUrl(problem.into())
    }
}

impl RedisUrl {
    /// Parses `url`.
    ///
    /// # Errors
    /// [`BadUrl`] when the scheme is not `redis://` or `rediss://`, the host
    /// is missing, the port is not a number from 1 to 65535, the database
    /// is not a number from 0 to 255, or the credentials are not UTF-8 once
    /// percent-decoded.
    pub fn parse(url: &str) -> Result<RedisUrl, BadUrl> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("redis://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("rediss://") {
            (true, rest)
        } else {
            return Err(BadUrl::new(
                "the scheme must be redis:// or rediss:// (TLS)",
            ));
        };
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (host_port, tail) = rest.split_at(end);
        let (host, port) = split_host_port(host_port).map_err(BadUrl)?;
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, password),
                    None => (userinfo, ""),
                };
                (non_empty(decode(user)?), non_empty(decode(password)?))
            }
        };
        Ok(RedisUrl {
            tls,
            username,
            password,
            host: host.to_string(),
            port,
            database: database(tail)?,
        })
    }

    /// The host as it goes before `:port` in an address: an IPv6 address
    /// in brackets.
    pub fn address_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

impl fmt::Debug for RedisUrl {
    /// The password is shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .finish()
    }
}

/// The database of the URL's path (`/2`); none for no path or `/`.
fn database(tail: &str) -> Result<Option<u8>, BadUrl> {
    let Some(path) = tail.strip_prefix('/') else {
        return Ok(None);
    };
    let db = path.split(['?', '#']).next().unwrap_or("");
    if db.is_empty() {
        return Ok(None);
    }
    match db.parse::<u8>() {
        Ok(n) if db.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => Err(BadUrl::new(format!(
            "the database {db:?} must be a number from 0 to 255"
        ))),
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Percent-decodes user information (`%40` is `@`); a `%` not followed by
/// two hex digits stays as it is.
fn decode(s: &str) -> Result<String, BadUrl> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| BadUrl::new("the user or password is not UTF-8 once percent-decoded"))
}

/// Splits `host[:port]` or `[v6]:port`; the host must be non-empty and
/// the port, when present, a number from 1 to 65535.
///
/// # Errors
/// A short phrase naming the part at fault.
pub fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("the IPv6 address has no closing ']'")?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or("expected ':' after ']'")?),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".to_string());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(format!("the port {p:?} must be a number from 1 to 65535")),
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_urls_give_every_part() {
        let url = RedisUrl::parse("rediss://app:s%40cret@127.0.0.1:7000/2").unwrap();
        assert!(url.tls);
        assert_eq!(url.username.as_deref(), Some("app"));
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!((url.host.as_str(), url.port), ("127.0.0.1", Some(7000)));
        assert_eq!(url.database, Some(2));
        assert!(!format!("{url:?}").contains("cret"));
        let url = RedisUrl::parse("redis://[::1]:6379/2?protocol=resp3").unwrap();
        assert_eq!(
            (url.address_host().as_str(), url.port),
            ("[::1]", Some(6379))
        );
        let url = RedisUrl::parse("redis://:password@host").unwrap();
        assert_eq!(
            (url.username, url.password.as_deref()),
            (None, Some("password"))
        );
        assert_eq!((url.port, url.database), (None, None));
        for good in [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "rediss://user:pa:ss@host:6380/0",
            "redis://h/",
        ] {
            assert!(RedisUrl::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_password_typed_with_url_characters_stays_the_password() {
        for (url, password) in [
            ("redis://u:se/cret@h:6379/2", "se/cret"),
            ("rediss://app:s3/cr?t#x@h:6379/2", "s3/cr?t#x"),
            ("redis://u:a@b/c@h:6379/2", "a@b/c"),
        ] {
            let parsed = RedisUrl::parse(url).unwrap();
            assert_eq!(parsed.password.as_deref(), Some(password), "{url}");
            assert_eq!(
                (parsed.host.as_str(), parsed.port, parsed.database),
                ("h", Some(6379), Some(2)),
                "{url}"
            );
        }
        // A bad port after such a password is reported without any of it.
        let problem = RedisUrl::parse("redis://u:se/cret@h:port")
            .unwrap_err()
            .to_string();
        assert!(
            problem.contains("\"port\"") && !problem.contains("se"),
            "{problem}"
        );
    }

    #[test]
    fn bad_urls_name_the_part_at_fault() {
        for (bad, part) in [
            ("http://host", "scheme"),
            ("redis://", "host"),
            ("redis://:6379", "host"),
            ("redis://host:port", "port"),
            ("redis://host:0", "port"),
            ("redis://host:99999", "port"),
            ("redis://host/db", "database"),
            ("redis://host/300", "database"),
            ("redis://[::1", "']'"),
            ("127.0.0.1:6379", "scheme"),
            ("redis://u:%ff@h", "UTF-8"),
        ] {
            let problem = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(problem.contains(part), "{bad}: {problem}");
        }
    }
}
