//! The file as written: one serde struct per table, every field optional,
//! unknown keys refused. Defaults and validation live in the modules that
//! turn these into domain types; sub-tables are [`SubTable`] markers read
//! as sections of their own so their errors are reported one by one.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::Deserialize;

use crate::duration::RawDuration;
use crate::section::{SubTable, TableArray};

/// The top level: which sections exist. Its fields are only type-checked
/// here; each section is then read from the document on its own.
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoot {
    pub server: Option<SubTable>,
    pub store: Option<SubTable>,
    pub fallback: Option<SubTable>,
    pub identity: Option<SubTable>,
    pub traces: Option<SubTable>,
    pub admin: Option<SubTable>,
    pub endpoint: Option<TableArray>,
    pub policy: Option<TableArray>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub http: Option<String>,
    pub grpc: Option<String>,
    #[allow(dead_code)] // read as a section of its own
    pub proxy: Option<SubTable>,
    pub headers: Option<String>,
    pub shadow: Option<bool>,
    pub log: Option<String>,
    pub shutdown_grace: Option<RawDuration>,
    pub max_connections: Option<usize>,
    pub workers: Option<usize>,
    pub health: Option<String>,
    pub header_read_timeout: Option<RawDuration>,
    pub request_timeout: Option<RawDuration>,
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub http2_keepalive_interval: Option<RawDuration>,
    pub http2_keepalive_timeout: Option<RawDuration>,
    pub max_concurrent_streams: Option<u32>,
    pub tcp_keepalive: Option<RawDuration>,
    pub grpc_timeout: Option<RawDuration>,
    pub grpc_max_message_bytes: Option<usize>,
    pub idle_timeout: Option<RawDuration>,
    pub send_timeout: Option<RawDuration>,
    pub max_connections_per_ip: Option<usize>,
    pub max_waiting: Option<usize>,
    pub envoy_max_wait: Option<RawDuration>,
}

/// `[server] proxy = { … }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxy {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub upgrades: Option<Vec<String>>,
    pub tunnel_idle_timeout: Option<RawDuration>,
    pub connect_timeout: Option<RawDuration>,
    pub response_timeout: Option<RawDuration>,
    pub body_idle_timeout: Option<RawDuration>,
    pub pool_idle_timeout: Option<RawDuration>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub kind: Option<String>,
    #[allow(dead_code)] // read as a section of its own
    pub local: Option<SubTable>,
    #[allow(dead_code)] // read as a section of its own
    pub redis: Option<SubTable>,
}

/// `[store.local]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLocal {
    pub max_keys: Option<usize>,
    pub shards: Option<usize>,
}

/// `[store.redis]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedis {
    pub url: Option<String>,
    pub cluster: Option<Vec<String>>,
    pub sentinels: Option<Vec<String>>,
    pub service_name: Option<String>,
    pub key_prefix: Option<String>,
    pub timeout: Option<RawDuration>,
    pub pool_size: Option<usize>,
    pub tls_ca_file: Option<String>,
    pub deny_cache: Option<bool>,
}

/// `[fallback]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFallback {
    pub mode: Option<String>,
    pub instances: Option<RawInstances>,
    pub probe_interval: Option<RawDuration>,
    pub failure_threshold: Option<u32>,
    pub failure_rate: Option<f64>,
    pub failure_window: Option<RawDuration>,
    pub failure_min_calls: Option<u32>,
    pub min_instances: Option<u64>,
}

/// `[identity]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    pub user_header: Option<String>,
    pub trusted_proxies: Option<u32>,
    pub ipv6_prefix: Option<u32>,
    pub attributes: Option<BTreeMap<String, String>>,
    #[allow(dead_code)] // read as a section of its own
    pub jwt: Option<SubTable>,
}

/// `[identity.jwt]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    pub header: Option<String>,
    pub algorithm: Option<String>,
    pub secret_file: Option<String>,
    pub secret_env: Option<String>,
    pub public_key_file: Option<String>,
    pub jwks_file: Option<String>,
    pub audience: Option<OneOrMany>,
    pub issuer: Option<String>,
    pub leeway: Option<RawDuration>,
    pub user_claim: Option<String>,
    pub claims: Option<BTreeMap<String, String>>,
}

/// `[traces]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTraces {
    pub endpoint: Option<String>,
    pub protocol: Option<String>,
    pub sample_ratio: Option<f64>,
    pub attributes: Option<Vec<String>>,
    pub service_name: Option<String>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    /// Refused with a message of its own: never a token in the file.
    pub token: Option<serde::de::IgnoredAny>,
    pub token_file: Option<String>,
    pub token_env: Option<String>,
    pub listen: Option<String>,
}

/// One `[[endpoint]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEndpoint {
    pub name: Option<String>,
    pub path: Option<String>,
    pub methods: Option<Vec<String>>,
    pub case_sensitive: Option<bool>,
    /// Read by `cost.rs` from the table itself.
    pub cost: Option<serde::de::IgnoredAny>,
}

/// One `[[policy]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matches: Option<BTreeMap<String, OneOrMany>>,
    pub key: Option<Vec<String>>,
    pub limit: Option<u64>,
    pub window: Option<RawDuration>,
    pub algorithm: Option<String>,
    pub burst: Option<u64>,
    pub lease_timeout: Option<RawDuration>,
    pub mode: Option<String>,
    pub fallback: Option<String>,
    pub domain: Option<String>,
    pub replaces: Option<Vec<String>>,
    pub settle: Option<bool>,
    pub deny_status: Option<u64>,
    pub max_wait: Option<RawDuration>,
    pub max_waiting: Option<u64>,
    pub block_for: Option<RawDuration>,
    pub block_escalation: Option<bool>,
    pub block_max: Option<RawDuration>,
    pub calendar: Option<String>,
    pub timezone: Option<String>,
}

/// `instances = 4` or `instances = "auto"`; 0 is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawInstances {
    Auto,
    Fixed(u64),
}

impl<'de> Deserialize<'de> for RawInstances {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawInstances;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive integer or \"auto\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawInstances, E> {
                if v == "auto" {
                    Ok(RawInstances::Auto)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawInstances, E> {
                match u64::try_from(v) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawInstances, E> {
                if v == 0 {
                    Err(E::custom(
                        "fallback.instances must be at least 1 (the number of sidecars sharing the limit) or \"auto\"",
                    ))
                } else {
                    Ok(RawInstances::Fixed(v))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A `match` condition: one accepted value or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    values.push(v);
                }
                Ok(OneOrMany(values))
            }
        }
        deserializer.deserialize_any(V)
    }
}
