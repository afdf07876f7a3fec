//! `[store]`: where counters live — the embedded local store or Redis
//! (standalone, Cluster or Sentinel).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Diagnostics;
use crate::raw::{RawLocal, RawRedis, RawStore};
use crate::section::{Node, Section};

/// Which store holds the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// In-process counters; limits are per sidecar. The default.
    #[default]
    Local,
    /// Shared counters in Redis; limits are global.
    Redis,
}

impl StoreKind {
    /// Every kind, by its configuration name.
    pub const ALL: [(&'static str, StoreKind); 2] =
        [("local", StoreKind::Local), ("redis", StoreKind::Redis)];

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Local => "local",
            StoreKind::Redis => "redis",
        }
    }
}

/// `[store.local]`: bounds of the in-memory store (also the fallback
/// limiter while Redis is away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalConfig {
    /// Most counters tracked at once; ≥ 1000. Bounds memory (SPEC §6).
    pub max_keys: usize,
    /// Lock shards; a power of two from 1 to 1024.
    pub shards: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            max_keys: 1_000_000,
            shards: 64,
        }
    }
}

/// How to reach Redis. URLs are kept as written (`redis://` or
/// `rediss://`, optional `user:password@`, host, optional port and `/db`),
/// checked by hand for scheme, host and port.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server (`url`).
    Standalone(String),
    /// Seed nodes of a Redis Cluster (`cluster`); never empty.
    Cluster(Vec<String>),
    /// Sentinels (`sentinels`, never empty) watching `service_name`.
    Sentinel {
        /// Sentinel URLs.
        sentinels: Vec<String>,
        /// The monitored master's name.
        service_name: String,
    },
}

/// `[store.redis]`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Standalone, Cluster or Sentinel: exactly one.
    pub topology: RedisTopology,
    /// First part of every key; `[A-Za-z0-9_.-]`, 1 to 32 characters.
    pub key_prefix: String,
    /// Per Redis call; past it the call counts as failed. Never zero.
    pub timeout: Duration,
    /// Connections (or multiplexed clients) to keep; 1 to 64.
    pub pool_size: usize,
    /// A PEM file of CA certificates trusted for `rediss://`, besides the
    /// system roots (a private CA). Only set with `rediss://` URLs; a
    /// relative path is relative to floodgate's working directory.
    pub tls_ca_file: Option<PathBuf>,
    /// Remember Redis's denials and answer a denied key locally until it
    /// may pass (`deny_cache`, default true).
    pub deny_cache: bool,
}

impl fmt::Debug for RedisTopology {
    /// Passwords in URLs are shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |urls: &[String]| urls.iter().map(|u| redact(u)).collect::<Vec<_>>();
        match self {
            RedisTopology::Standalone(url) => {
                f.debug_tuple("Standalone").field(&redact(url)).finish()
            }
            RedisTopology::Cluster(urls) => {
                f.debug_tuple("Cluster").field(&redacted(urls)).finish()
            }
            RedisTopology::Sentinel {
                sentinels,
                service_name,
            } => f
                .debug_struct("Sentinel")
                .field("sentinels", &redacted(sentinels))
                .field("service_name", service_name)
                .finish(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("topology", &self.topology)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("deny_cache", &self.deny_cache)
            .finish()
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The store in use.
    pub kind: StoreKind,
    /// Local store bounds (used by `kind = "local"` and by the fallback).
    pub local: LocalConfig,
    /// Redis settings; always `Some` when `kind` is `Redis`. May be `Some`
    /// with `kind = "local"` (validated, then unused).
    pub redis: Option<RedisConfig>,
}

impl Config {
    /// Reads `[store]`, reporting every problem into `diag`.
    pub(crate) fn read(node: Option<&Node<'_>>, diag: &mut Diagnostics<'_>) -> Config {
        let section = Section::<RawStore>::read_or_default(node, "[store]", diag);
        let kind = section
            .choice("kind", section.raw.kind.as_deref(), &StoreKind::ALL, diag)
            .unwrap_or_default();
        let local = section
            .child("local")
            .and_then(|n| Section::<RawLocal>::read(n, "[store.local]", diag))
            .map_or_else(LocalConfig::default, |s| read_local(&s, diag));
        let redis = section
            .child("redis")
            .and_then(|n| Section::<RawRedis>::read(n, "[store.redis]", diag))
            .and_then(|s| read_redis(&s, diag));
        if kind == StoreKind::Redis && !section.has("redis") {
            diag.push(
                section.at("kind"),
                "kind = \"redis\" needs a [store.redis] section with `url`, `cluster` or `sentinels`",
            );
        }
        Config { kind, local, redis }
    }
}

fn read_local(section: &Section<'_, RawLocal>, diag: &mut Diagnostics<'_>) -> LocalConfig {
    let default = LocalConfig::default();
    let max_keys = section.raw.max_keys.unwrap_or(default.max_keys);
    if max_keys < 1000 {
        diag.push(
            section.at("max_keys"),
            format!("max_keys must be at least 1000, found {max_keys}"),
        );
    }
    let shards = section.raw.shards.unwrap_or(default.shards);
    if !shards.is_power_of_two() || shards > 1024 {
        diag.push(
            section.at("shards"),
            format!("shards must be a power of two from 1 to 1024, found {shards}"),
        );
    }
    LocalConfig { max_keys, shards }
}

fn read_redis(section: &Section<'_, RawRedis>, diag: &mut Diagnostics<'_>) -> Option<RedisConfig> {
    let raw = &section.raw;
    let errors_before = diag.len();
    let given: Vec<&str> = [
        ("url", raw.url.is_some()),
        ("cluster", raw.cluster.is_some()),
        ("sentinels", raw.sentinels.is_some()),
    ]
    .into_iter()
    .filter(|(_, present)| *present)
    .map(|(key, _)| key)
    .collect();
    let mut by_position = given.clone();
    by_position.sort_by_key(|key| section.at(key).start);
    for (i, key) in by_position.iter().enumerate().skip(1) {
        diag.push(
            section.at(key),
            format!("`{key}` cannot be combined with `{}` in [store.redis]; give exactly one of url (standalone), cluster, or sentinels with service_name", by_position[i - 1]),
        );
    }
    let nothing_failed = ["url", "cluster", "sentinels"]
        .iter()
        .all(|k| !section.has_failed(k));
    if given.is_empty() && nothing_failed {
        diag.push(
            section.header(),
            "[store.redis] needs one of: url = \"redis://host:6379\", cluster = [\"redis://…\", …], or sentinels = [\"redis://…\", …] with service_name",
        );
    }
    if let Some(url) = &raw.url {
        check_url_at(section, "url", None, url, diag);
    }
    for key in ["cluster", "sentinels"] {
        let urls = if key == "cluster" {
            &raw.cluster
        } else {
            &raw.sentinels
        };
        let Some(urls) = urls else { continue };
        if urls.is_empty() {
            diag.push(
                section.at(key),
                format!(
                    "{key} lists no node; expected at least one URL like \"redis://10.0.0.1:7000\""
                ),
            );
        }
        for (i, url) in urls.iter().enumerate() {
            check_url_at(section, key, Some(i), url, diag);
        }
    }
    match (&raw.sentinels, &raw.service_name) {
        (Some(_), None) if !section.has_failed("service_name") => diag.push(
            section.at("sentinels"),
            "sentinels need service_name (the name of the master the sentinels monitor)",
        ),
        (None, Some(_)) if !section.has_failed("sentinels") => diag.push(
            section.at("service_name"),
            "service_name is only used with sentinels = [\"redis://…\", …]",
        ),
        (_, Some(name)) if name.is_empty() => {
            diag.push(section.at("service_name"), "service_name must not be empty")
        }
        _ => {}
    }
    let key_prefix = raw.key_prefix.clone().unwrap_or_else(|| "fg".to_string());
    if key_prefix.is_empty()
        || key_prefix.len() > 32
        || !key_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        diag.push(
            section.at("key_prefix"),
            format!("invalid key_prefix {key_prefix:?}: expected 1 to 32 characters of A-Z, a-z, 0-9, '_', '.', '-'"),
        );
    }
    let timeout = raw.timeout.map_or(Duration::from_millis(50), |d| d.0);
    if timeout.is_zero() {
        diag.push(
            section.at("timeout"),
            "timeout must be more than 0 (for example \"50ms\")",
        );
    }
    let pool_size = raw.pool_size.unwrap_or(4);
    if !(1..=64).contains(&pool_size) {
        diag.push(
            section.at("pool_size"),
            format!("pool_size must be from 1 to 64, found {pool_size}"),
        );
    }
    let tls_ca_file = raw.tls_ca_file.as_deref().map(PathBuf::from);
    if let Some(path) = &raw.tls_ca_file {
        let urls = raw.url.iter().chain(raw.cluster.iter().flatten());
        let urls = urls.chain(raw.sentinels.iter().flatten());
        if path.is_empty() {
            diag.push(
                section.at("tls_ca_file"),
                "tls_ca_file must not be empty; expected the path of a PEM file of CA certificates",
            );
        } else if !urls.clone().any(|u| u.starts_with("rediss://")) {
            diag.push(
                section.at("tls_ca_file"),
                "tls_ca_file is only used with TLS: give rediss:// URLs, or remove tls_ca_file",
            );
        }
    }
    if diag.len() > errors_before {
        return None;
    }
    let topology = match (&raw.url, &raw.cluster, &raw.sentinels, &raw.service_name) {
        (Some(url), None, None, _) => RedisTopology::Standalone(url.clone()),
        (None, Some(urls), None, _) => RedisTopology::Cluster(urls.clone()),
        (None, None, Some(sentinels), Some(name)) => RedisTopology::Sentinel {
            sentinels: sentinels.clone(),
            service_name: name.clone(),
        },
        _ => return None,
    };
    Some(RedisConfig {
        topology,
        key_prefix,
        timeout,
        pool_size,
        tls_ca_file,
        deny_cache: raw.deny_cache.unwrap_or(true),
    })
}

fn check_url_at(
    section: &Section<'_, RawRedis>,
    key: &str,
    index: Option<usize>,
    url: &str,
    diag: &mut Diagnostics<'_>,
) {
    if let Err(problem) = check_redis_url(url) {
        let span = index.map_or_else(|| section.at(key), |i| section.element_at(key, i));
        diag.push(
            span,
            format!("invalid Redis URL {:?} in {key}: {problem}; expected a URL like \"redis://127.0.0.1:6379\" or \"rediss://user:password@host:6380/0\"", redact(url)),
        );
    }
}

/// Checks `redis://` / `rediss://` URLs: scheme, non-empty host, numeric
/// port if present, numeric database if present.
pub(crate) fn check_redis_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
        .ok_or("the scheme must be redis:// or rediss:// (TLS)")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    split_host_port(host_port)?;
    if let Some(path) = tail.strip_prefix('/') {
        let db = path.split(['?', '#']).next().unwrap_or("");
        if !db.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the database {db:?} must be a number"));
        }
    }
    Ok(())
}

/// Splits `host[:port]` or `[v6]:port`; the host must be non-empty and
/// the port, when present, a number from 1 to 65535.
pub(crate) fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
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

/// The URL with any password replaced by `***`, safe to log (the one
/// redaction every crate uses; a password may hold `/`).
pub use floodgate_core::redact_url as redact;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        for good in [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "rediss://user:pa:ss@host:6380/0",
            "redis://[::1]:6379/2?protocol=resp3",
            "redis://:password@host",
        ] {
            assert_eq!(check_redis_url(good), Ok(()), "{good}");
        }
        for bad in [
            "http://host",
            "redis://",
            "redis://:6379",
            "redis://host:port",
            "redis://host:0",
            "redis://host:99999",
            "redis://host/db",
            "redis://[::1",
            "127.0.0.1:6379",
        ] {
            assert!(check_redis_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://:secret@h"), "redis://:***@h");
        assert_eq!(redact("redis://u@h"), "redis://u@h");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        assert_eq!(redact("redis://u:se/cret@h:1/0"), "redis://u:***@h:1/0");
        // A config error quoting such a URL hides the password too.
        let src = "[store]\nkind = \"redis\"\n[store.redis]\nurl = \"redis://u:se/cret@h:port\"\n";
        let Err(crate::ConfigErrors(errors)) = crate::from_str(src, "t.toml") else {
            panic!("a bad port must be refused");
        };
        assert!(
            errors.iter().all(|e| !e.message.contains("cret")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.message.contains("u:***@h:port")),
            "{errors:?}"
        );
        let config = RedisConfig {
            topology: RedisTopology::Standalone("redis://u:secret@h".into()),
            key_prefix: "fg".into(),
            timeout: Duration::from_millis(50),
            pool_size: 4,
            tls_ca_file: None,
            deny_cache: true,
        };
        assert!(!format!("{config:?}").contains("secret"));
    }
}
