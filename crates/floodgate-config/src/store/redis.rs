//! `[store.redis]`: one step per setting, each reporting its own problems
//! at the setting's position, then the [`RedisConfig`] when all passed.
//! URLs are checked by [`RedisUrl::parse`], the parser the Redis store
//! itself uses.

use std::path::PathBuf;
use std::time::Duration;

use floodgate_core::store_config::{RedisConfig, RedisTopology, RedisUrl};

use super::redact;
use crate::error::Diagnostics;
use crate::raw::RawRedis;
use crate::section::Section;

type RedisSection<'a> = Section<'a, RawRedis>;

/// The keys that choose the topology; exactly one is given.
const TOPOLOGY_KEYS: [&str; 3] = ["url", "cluster", "sentinels"];

/// Reads `[store.redis]`; `None` when anything in it is wrong (reported
/// into `diag`).
pub(super) fn read(section: &RedisSection<'_>, diag: &mut Diagnostics<'_>) -> Option<RedisConfig> {
    let errors_before = diag.len();
    check_one_topology(section, diag);
    check_urls(section, diag);
    check_service_name(section, diag);
    let key_prefix = key_prefix(section, diag);
    let timeout = timeout(section, diag);
    let pool_size = pool_size(section, diag);
    let tls_ca_file = tls_ca_file(section, diag);
    if diag.len() > errors_before {
        return None;
    }
    Some(RedisConfig {
        topology: topology(&section.raw)?,
        key_prefix,
        timeout,
        pool_size,
        tls_ca_file,
        deny_cache: section.raw.deny_cache.unwrap_or(true),
    })
}

/// Exactly one of `url`, `cluster` and `sentinels`: each one past the
/// first (in file order) is reported where it stands.
fn check_one_topology(section: &RedisSection<'_>, diag: &mut Diagnostics<'_>) {
    let raw = &section.raw;
    let present = [
        raw.url.is_some(),
        raw.cluster.is_some(),
        raw.sentinels.is_some(),
    ];
    let mut given: Vec<&str> = TOPOLOGY_KEYS
        .into_iter()
        .zip(present)
        .filter(|(_, present)| *present)
        .map(|(key, _)| key)
        .collect();
    given.sort_by_key(|key| section.at(key).start);
    for pair in given.windows(2) {
        let (before, key) = (pair[0], pair[1]);
        diag.push(
            section.at(key),
            format!("`{key}` cannot be combined with `{before}` in [store.redis]; give exactly one of url (standalone), cluster, or sentinels with service_name"),
        );
    }
    let nothing_failed = TOPOLOGY_KEYS.iter().all(|k| !section.has_failed(k));
    if given.is_empty() && nothing_failed {
        diag.push(
            section.header(),
            "[store.redis] needs one of: url = \"redis://host:6379\", cluster = [\"redis://…\", …], or sentinels = [\"redis://…\", …] with service_name",
        );
    }
}

/// Every URL parses; `cluster` and `sentinels` are not empty and use one
/// scheme.
fn check_urls(section: &RedisSection<'_>, diag: &mut Diagnostics<'_>) {
    let raw = &section.raw;
    if let Some(url) = &raw.url {
        check_url_at(section, "url", None, url, diag);
    }
    for (key, urls) in [("cluster", &raw.cluster), ("sentinels", &raw.sentinels)] {
        let Some(urls) = urls else { continue };
        if urls.is_empty() {
            diag.push(
                section.at(key),
                format!(
                    "{key} lists no node; expected at least one URL like \"redis://10.0.0.1:7000\""
                ),
            );
        }
        let mut first_tls = None;
        for (i, url) in urls.iter().enumerate() {
            let Some(url) = check_url_at(section, key, Some(i), url, diag) else {
                continue;
            };
            match first_tls {
                None => first_tls = Some(url.tls),
                Some(tls) if tls != url.tls => diag.push(
                    section.element_at(key, i),
                    format!(
                        "{key} mixes redis:// and rediss:// URLs; give every node the same scheme"
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}

/// `url` parsed, or `None` with the problem reported at `key` (element
/// `index` of a list).
fn check_url_at(
    section: &RedisSection<'_>,
    key: &str,
    index: Option<usize>,
    url: &str,
    diag: &mut Diagnostics<'_>,
) -> Option<RedisUrl> {
    match RedisUrl::parse(url) {
        Ok(url) => Some(url),
        Err(problem) => {
            let span = index.map_or_else(|| section.at(key), |i| section.element_at(key, i));
            diag.push(
                span,
                format!("invalid Redis URL {:?} in {key}: {problem}; expected a URL like \"redis://127.0.0.1:6379\" or \"rediss://user:password@host:6380/0\"", redact(url)),
            );
            None
        }
    }
}

/// `service_name` goes with `sentinels`, both or neither, and is not empty.
fn check_service_name(section: &RedisSection<'_>, diag: &mut Diagnostics<'_>) {
    match (&section.raw.sentinels, &section.raw.service_name) {
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
}

/// `key_prefix`: 1 to 32 characters of `[A-Za-z0-9_.-]`; `fg` by default.
fn key_prefix(section: &RedisSection<'_>, diag: &mut Diagnostics<'_>) -> String {
    let key_prefix = section
        .raw
        .key_prefix
        .clone()
        .unwrap_or_else(|| "fg".to_string());
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
    key_prefix
}

/// `timeout`: more than zero; 50 ms by default.
fn timeout(section: &RedisSection<'_>, diag: &mut Diagnostics<'_>) -> Duration {
    let timeout = section
        .raw
        .timeout
        .map_or(Duration::from_millis(50), |d| d.0);
    if timeout.is_zero() {
        diag.push(
            section.at("timeout"),
            "timeout must be more than 0 (for example \"50ms\")",
        );
    }
    timeout
}

/// `pool_size`: 1 to 64; 4 by default.
fn pool_size(section: &RedisSection<'_>, diag: &mut Diagnostics<'_>) -> usize {
    let pool_size = section.raw.pool_size.unwrap_or(4);
    if !(1..=64).contains(&pool_size) {
        diag.push(
            section.at("pool_size"),
            format!("pool_size must be from 1 to 64, found {pool_size}"),
        );
    }
    pool_size
}

/// `tls_ca_file`: not empty, and only with at least one `rediss://` URL.
fn tls_ca_file(section: &RedisSection<'_>, diag: &mut Diagnostics<'_>) -> Option<PathBuf> {
    let raw = &section.raw;
    let path = raw.tls_ca_file.as_deref()?;
    let mut urls = (raw.url.iter())
        .chain(raw.cluster.iter().flatten())
        .chain(raw.sentinels.iter().flatten());
    if path.is_empty() {
        diag.push(
            section.at("tls_ca_file"),
            "tls_ca_file must not be empty; expected the path of a PEM file of CA certificates",
        );
    } else if !urls.any(|u| u.starts_with("rediss://")) {
        diag.push(
            section.at("tls_ca_file"),
            "tls_ca_file is only used with TLS: give rediss:// URLs, or remove tls_ca_file",
        );
    }
    Some(PathBuf::from(path))
}

/// The topology the checked keys name (`None` if they name none, or
/// several: already reported).
fn topology(raw: &RawRedis) -> Option<RedisTopology> {
    match (&raw.url, &raw.cluster, &raw.sentinels, &raw.service_name) {
        (Some(url), None, None, _) => Some(RedisTopology::Standalone(url.clone())),
        (None, Some(urls), None, _) => Some(RedisTopology::Cluster(urls.clone())),
        (None, None, Some(sentinels), Some(name)) => Some(RedisTopology::Sentinel {
            sentinels: sentinels.clone(),
            service_name: name.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let config = RedisConfig::new(RedisTopology::Standalone("redis://u:secret@h".into()));
        assert!(!format!("{config:?}").contains("secret"));
    }
}
