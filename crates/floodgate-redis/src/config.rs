//! The Redis store's settings, [`RedisConfig`] (the shared type
//! floodgate-config reads `[store.redis]` into), turned into the client's:
//! the topology's URLs parsed by [`RedisUrl`] (the one parser, also used by
//! config validation), TLS roots loaded.

use fred::types::config::{ClusterDiscoveryPolicy, Config as FredConfig, Server, ServerConfig};

use floodgate_core::redact_url as redact;
use floodgate_core::store_config::{RedisConfig, RedisTopology, RedisUrl};

use crate::tls;
use crate::Error;

/// Port of a standalone server or cluster node whose URL names none.
const REDIS_PORT: u16 = 6379;
/// Port of a Sentinel whose URL names none.
const SENTINEL_PORT: u16 = 26379;

/// Builds the client configuration of `config`.
///
/// # Errors
/// [`Error::Config`] naming the setting at fault; [`Error::Tls`] when the
/// TLS roots cannot be loaded.
pub(crate) fn to_fred(config: &RedisConfig) -> Result<FredConfig, Error> {
    check_settings(config)?;
    let (server, first) = server_config(&config.topology)?;
    let tls = if first.tls {
        Some(tls::config(config.tls_ca_file.as_deref())?)
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

/// The servers `config` names, for messages (no credentials).
pub(crate) fn target(config: &RedisConfig) -> String {
    config.topology.target()
}

/// What floodgate-config guarantees, checked again for callers that build
/// a [`RedisConfig`] by hand.
fn check_settings(config: &RedisConfig) -> Result<(), Error> {
    if config.timeout.is_zero() {
        return Err(Error::Config("timeout must be greater than 0".into()));
    }
    if config.pool_size == 0 {
        return Err(Error::Config("pool_size must be at least 1".into()));
    }
    let prefix = &config.key_prefix;
    if prefix.is_empty()
        || prefix
            .chars()
            .any(|c| matches!(c, '{' | '}') || c.is_control() || c.is_whitespace())
    {
        return Err(Error::Config(format!(
            "key_prefix {prefix:?} must be non-empty, without '{{', '}}', spaces or control characters",
        )));
    }
    Ok(())
}

/// The client's server settings, and the first URL (whose scheme,
/// credentials and database apply to every node).
fn server_config(topology: &RedisTopology) -> Result<(ServerConfig, RedisUrl), Error> {
    match topology {
        RedisTopology::Standalone(url) => {
            let url = parse(url)?;
            let server = ServerConfig::Centralized {
                server: server(&url, REDIS_PORT),
            };
            Ok((server, url))
        }
        RedisTopology::Cluster(urls) => {
            let (hosts, first) = parse_all("cluster", urls, REDIS_PORT)?;
            let policy = ClusterDiscoveryPolicy::default();
            Ok((ServerConfig::Clustered { hosts, policy }, first))
        }
        RedisTopology::Sentinel {
            sentinels,
            service_name,
        } => {
            let (hosts, first) = parse_all("sentinels", sentinels, SENTINEL_PORT)?;
            let service_name = service_name.clone();
            Ok((
                ServerConfig::Sentinel {
                    hosts,
                    service_name,
                },
                first,
            ))
        }
    }
}

fn parse(url: &str) -> Result<RedisUrl, Error> {
    RedisUrl::parse(url).map_err(|problem| Error::Config(format!("{}: {problem}", redact(url))))
}

fn server(url: &RedisUrl, default_port: u16) -> Server {
    Server::new(url.address_host(), url.port.unwrap_or(default_port))
}

/// Every URL of a list parsed; one scheme for all.
fn parse_all(
    key: &str,
    urls: &[String],
    default_port: u16,
) -> Result<(Vec<Server>, RedisUrl), Error> {
    let parsed = urls
        .iter()
        .map(|u| parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = parsed.first().cloned() else {
        return Err(Error::Config(format!("{key} lists no node")));
    };
    if parsed.iter().any(|u| u.tls != first.tls) {
        return Err(Error::Config(
            "mixing redis:// and rediss:// URLs in one list".into(),
        ));
    }
    let hosts = parsed.iter().map(|u| server(u, default_port)).collect();
    Ok((hosts, first))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn with_url(url: &str) -> RedisConfig {
        RedisConfig::new(RedisTopology::Standalone(url.into()))
    }

    #[test]
    fn urls_give_host_credentials_and_tls() {
        let c = to_fred(&with_url("redis://app:s3cret@127.0.0.1:7000/2")).unwrap();
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
        let c = to_fred(&with_url("redis://localhost")).unwrap();
        assert_eq!(
            c.server,
            ServerConfig::Centralized {
                server: Server::new("localhost", 6379)
            }
        );
        let sentinel = RedisConfig::new(RedisTopology::Sentinel {
            sentinels: vec!["redis://s".into(), "redis://[::1]:26380".into()],
            service_name: "mymaster".into(),
        });
        assert_eq!(
            to_fred(&sentinel).unwrap().server,
            ServerConfig::Sentinel {
                hosts: vec![Server::new("s", 26379), Server::new("[::1]", 26380)],
                service_name: "mymaster".into(),
            }
        );
    }

    /// Two topologies at once, or sentinels without a service name, cannot
    /// be built ([`RedisTopology`] is an enum): only the settings below can
    /// still be wrong.
    #[test]
    fn bad_settings_are_named() {
        let err = |c: RedisConfig| to_fred(&c).unwrap_err().to_string();
        assert!(err(with_url("http://x")).contains("redis://"));
        assert!(err(RedisConfig::new(RedisTopology::Cluster(vec![]))).contains("cluster"));
        let mixed = RedisTopology::Cluster(vec!["redis://a:1".into(), "rediss://b:2".into()]);
        assert!(err(RedisConfig::new(mixed)).contains("mixing"));
        let zero = RedisConfig {
            timeout: Duration::ZERO,
            ..with_url("redis://b:2")
        };
        assert!(err(zero).contains("timeout"));
        let prefix = RedisConfig {
            key_prefix: "a{b".into(),
            ..with_url("redis://b:2")
        };
        assert!(err(prefix).contains("key_prefix"));
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("rediss://app:s3cret@h:1/0"),
            "rediss://app:***@h:1/0"
        );
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        let c = RedisConfig::new(RedisTopology::Cluster(vec![
            "redis://:pw@a:1".into(),
            "redis://:pw@b:2".into(),
        ]));
        assert_eq!(target(&c), "redis://:***@a:1, redis://:***@b:2");
        // A password holding `/` (not percent-encoded) is hidden too, in
        // the target and in the error of a URL that does not parse.
        for url in ["redis://app:se/cret@h:1/0", "redis://app:se/cret@h:port"] {
            let c = with_url(url);
            assert!(!target(&c).contains("cret"), "{}", target(&c));
            if let Err(e) = to_fred(&c) {
                assert!(!e.to_string().contains("cret"), "{e}");
            }
        }
    }
}
