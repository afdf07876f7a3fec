//! Where the Redis store connects and how: one of a standalone URL, Cluster
//! seed nodes or Sentinels, plus the key prefix, the per-call timeout and the
//! pool size. The server maps `[store.redis]` onto [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use fred::types::config::{ClusterDiscoveryPolicy, Config as FredConfig, Server, ServerConfig};

use floodgate_core::redact_url as redact;

use crate::tls;
use crate::Error;

/// How to reach Redis. Exactly one of `url`, `cluster` or `sentinels` is set.
///
/// Credentials (`redis://user:password@host:port`) and TLS (`rediss://`) come
/// from the URLs. With `cluster` or `sentinels`, every URL must use the same
/// scheme and the credentials of the first one are used for the data nodes
/// (Sentinels themselves are reached without credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// A standalone server: `redis://[user:password@]host[:port][/db]` or
    /// `rediss://…` for TLS.
    pub url: Option<String>,
    /// Cluster seed nodes, `redis://host:port` each; the rest of the cluster
    /// is discovered from them.
    pub cluster: Vec<String>,
    /// Sentinel nodes, `redis://host:port` each (port 26379 if omitted);
    /// they name the current master of `service_name`.
    pub sentinels: Vec<String>,
    /// The Sentinel service (master group) name; required with `sentinels`.
    pub service_name: Option<String>,
    /// Prefix of every key the store writes (`<prefix>:{<counter>}:<suffix>`);
    /// lets several deployments share one Redis.
    pub key_prefix: String,
    /// Longest time one store call may take; past it the call fails with
    /// `StoreError::Timeout`.
    pub timeout: Duration,
    /// Connections (per node) shared by all checks; commands on one
    /// connection are pipelined, so a few suffice.
    pub pool_size: usize,
    /// A PEM file of CA certificates to trust for `rediss://`, in addition to
    /// the system's roots (for a Redis whose certificate a private CA signed).
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: None,
            cluster: Vec::new(),
            sentinels: Vec::new(),
            service_name: None,
            key_prefix: "fg".to_string(),
            timeout: Duration::from_millis(50),
            pool_size: 4,
            tls_ca_file: None,
        }
    }
}

/// One parsed URL.
struct Endpoint {
    /// Host and port.
    server: Server,
    /// ACL user, if any.
    username: Option<String>,
    /// Password, if any.
    password: Option<String>,
    /// Database to select (standalone and Sentinel only).
    database: Option<u8>,
    /// Whether the scheme is `rediss`.
    tls: bool,
}

fn parse(url: &str, default_port: u16) -> Result<Endpoint, Error> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    let tls = match scheme {
        Some("redis") => false,
        Some("rediss") => true,
        _ => {
            return Err(Error::Config(format!(
                "{}: expected a redis:// or rediss:// URL",
                redact(url)
            )))
        }
    };
    // Let fred parse the rest; swap the scheme so it never builds a TLS
    // connector of its own (ours pins the ring provider and the CA file).
    let plain = format!("redis{}", &url[scheme.map_or(0, str::len)..]);
    let parsed = FredConfig::from_url_centralized(&plain)
        .map_err(|e| Error::Config(format!("{}: {}", redact(url), e.details())))?;
    let ServerConfig::Centralized { mut server } = parsed.server else {
        return Err(Error::Config(format!(
            "{}: expected one host and port",
            redact(url)
        )));
    };
    if !has_port(url) {
        server.port = default_port;
    }
    Ok(Endpoint {
        server,
        username: parsed.username,
        password: parsed.password,
        database: parsed.database,
        tls,
    })
}

/// Whether the host part of `url` names a port.
fn has_port(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with('[')
    })
}

impl Config {
    /// Checks the settings and builds the client configuration.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting at fault; [`Error::Tls`] when the
    /// TLS roots cannot be loaded.
    pub(crate) fn to_fred(&self) -> Result<FredConfig, Error> {
        if self.timeout.is_zero() {
            return Err(Error::Config("timeout must be greater than 0".into()));
        }
        if self.pool_size == 0 {
            return Err(Error::Config("pool_size must be at least 1".into()));
        }
        if self.key_prefix.is_empty()
            || self
                .key_prefix
                .chars()
                .any(|c| matches!(c, '{' | '}') || c.is_control() || c.is_whitespace())
        {
            return Err(Error::Config(format!(
                "key_prefix {:?} must be non-empty, without '{{', '}}', spaces or control characters",
                self.key_prefix
            )));
        }
        let chosen = [
            self.url.is_some(),
            !self.cluster.is_empty(),
            !self.sentinels.is_empty(),
        ];
        if chosen.iter().filter(|&&c| c).count() != 1 {
            return Err(Error::Config(
                "set exactly one of url, cluster or sentinels".into(),
            ));
        }
        if self.sentinels.is_empty() != self.service_name.is_none() {
            return Err(Error::Config(
                "service_name is required with sentinels, and only with them".into(),
            ));
        }
        let (server, first) = if let Some(url) = &self.url {
            let endpoint = parse(url, 6379)?;
            let server = ServerConfig::Centralized {
                server: endpoint.server.clone(),
            };
            (server, endpoint)
        } else if !self.cluster.is_empty() {
            let endpoints = self.parse_all(&self.cluster, 6379)?;
            let server = ServerConfig::Clustered {
                hosts: endpoints.iter().map(|e| e.server.clone()).collect(),
                policy: ClusterDiscoveryPolicy::default(),
            };
            (server, endpoints.into_iter().next().expect("not empty"))
        } else {
            let endpoints = self.parse_all(&self.sentinels, 26379)?;
            let server = ServerConfig::Sentinel {
                hosts: endpoints.iter().map(|e| e.server.clone()).collect(),
                service_name: self.service_name.clone().unwrap_or_default(),
            };
            (server, endpoints.into_iter().next().expect("not empty"))
        };
        let tls = if first.tls {
            Some(tls::config(self.tls_ca_file.as_deref())?)
        } else {
            None
        };
        Ok(FredConfig {
            server,
            username: first.username,
            password: first.password,
            database: first.database,
            tls,
            ..FredConfig::default()
        })
    }

    fn parse_all(&self, urls: &[String], default_port: u16) -> Result<Vec<Endpoint>, Error> {
        let endpoints = urls
            .iter()
            .map(|u| parse(u, default_port))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.iter().any(|e| e.tls != endpoints[0].tls) {
            return Err(Error::Config(
                "mixing redis:// and rediss:// URLs in one list".into(),
            ));
        }
        Ok(endpoints)
    }

    /// The servers this config names, for messages (no credentials).
    pub(crate) fn target(&self) -> String {
        let urls: Vec<String> = match &self.url {
            Some(url) => vec![redact(url)],
            None if !self.cluster.is_empty() => self.cluster.iter().map(|u| redact(u)).collect(),
            None => self.sentinels.iter().map(|u| redact(u)).collect(),
        };
        urls.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> Config {
        Config {
            url: Some(url.into()),
            ..Config::default()
        }
    }

    #[test]
    fn urls_give_host_credentials_and_tls() {
        let c = with_url("redis://app:s3cret@127.0.0.1:7000/2")
            .to_fred()
            .unwrap();
        assert_eq!(
            c.server,
            ServerConfig::Centralized {
                server: Server::new("127.0.0.1", 7000)
            }
        );
        assert_eq!(c.username.as_deref(), Some("app"));
        assert_eq!(c.password.as_deref(), Some("s3cret"));
        assert_eq!(c.database, Some(2));
        assert!(c.tls.is_none());
        let c = with_url("redis://localhost").to_fred().unwrap();
        assert_eq!(
            c.server,
            ServerConfig::Centralized {
                server: Server::new("localhost", 6379)
            }
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let err = |c: Config| c.to_fred().unwrap_err().to_string();
        assert!(err(with_url("http://x")).contains("redis://"));
        assert!(err(Config::default()).contains("exactly one"));
        let both = Config {
            cluster: vec!["redis://a:1".into()],
            ..with_url("redis://b:2")
        };
        assert!(err(both).contains("exactly one"));
        let zero = Config {
            timeout: Duration::ZERO,
            ..with_url("redis://b:2")
        };
        assert!(err(zero).contains("timeout"));
        let prefix = Config {
            key_prefix: "a{b".into(),
            ..with_url("redis://b:2")
        };
        assert!(err(prefix).contains("key_prefix"));
        let sentinel = Config {
            sentinels: vec!["redis://s:26379".into()],
            ..Config::default()
        };
        assert!(err(sentinel).contains("service_name"));
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("rediss://app:s3cret@h:1/0"),
            "rediss://app:***@h:1/0"
        );
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        let c = Config {
            cluster: vec!["redis://:pw@a:1".into(), "redis://:pw@b:2".into()],
            ..Config::default()
        };
        assert_eq!(c.target(), "redis://:***@a:1, redis://:***@b:2");
        // A password holding `/` (not percent-encoded) is hidden too, in
        // the target and in the error of a URL that does not parse.
        for url in ["redis://app:se/cret@h:1/0", "redis://app:se/cret@h:port"] {
            let c = Config {
                url: Some(url.into()),
                ..Config::default()
            };
            assert!(!c.target().contains("cret"), "{}", c.target());
            if let Err(e) = c.to_fred() {
                assert!(!e.to_string().contains("cret"), "{e}");
            }
        }
    }
}
