//! What the request targets share: a configuration with policies keyed on
//! every attribute the integrations produce, a limiter over the local store,
//! a single-threaded runtime, and the invariants every verdict must meet.

#![allow(dead_code)] // each target uses only part of it

use std::sync::{Arc, OnceLock};

use floodgate_config::Config;
use floodgate_core::{validate_attributes, Attributes, LeasePart, SystemClock};
use floodgate_store::{Check, LimitError, Limiter, LocalConfig, LocalStore, Source, Verdict};

/// Endpoints and policies as users write them (two trusted proxies, so
/// `X-Forwarded-For` and `X-Real-IP` are read): match on an endpoint class,
/// key on `user`, `ip`, `path` and a free attribute, one of each algorithm
/// (the concurrency policy makes every allowed check carry a lease).
pub const CONFIG: &str = r#"
[identity]
trusted_proxies = 2

[store]
kind = "local"

[store.local]
max_keys = 10000
shards = 4

[[endpoint]]
name = "ai"
path = "/api/chat/*"
methods = ["POST"]

[[endpoint]]
name = "api"
path = "/api/*"

[[policy]]
name = "per-user"
key = ["user"]
limit = 1000000
window = "1m"

[[policy]]
name = "ai.user-ip"
match = { endpoint = "ai" }
key = ["user", "ip"]
limit = 1000000
window = "1s"
algorithm = "sliding_window"

[[policy]]
name = "tenant_path"
key = ["tenant", "path"]
limit = 1000000
window = "1m"
algorithm = "token_bucket"

[[policy]]
name = "per-ip-log"
key = ["ip"]
limit = 1000
window = "10ms"
algorithm = "sliding_log"

[[policy]]
name = "streams"
key = ["user"]
limit = 1000000
algorithm = "concurrency"
lease_timeout = "1s"
"#;

/// The shared state of one fuzzing process.
pub struct Harness {
    /// [`CONFIG`], loaded.
    pub config: Config,
    /// A limiter over a local store with the config's policies.
    pub limiter: Limiter,
    /// Drives the limiter's futures.
    pub runtime: tokio::runtime::Runtime,
}

/// The process's harness, built on first use.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let config = floodgate_config::from_str(CONFIG, "fuzz.toml").expect("fuzz config loads");
        let store = Arc::new(LocalStore::new(
            LocalConfig {
                max_keys: config.store.local.max_keys,
                shards: config.store.local.shards,
            },
            Arc::new(SystemClock::new()),
            Source::Local,
        ));
        let limiter = Limiter::new(config.policies.clone(), store);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        Harness {
            config,
            limiter,
            runtime,
        }
    })
}

/// Runs `check` through the limiter and asserts what every answer must
/// meet: only malformed attributes or cost are refused; an accepted check's
/// attributes pass `validate_attributes`; a lease decodes, names only
/// concurrency policies, and re-encodes to itself.
pub fn check_and_assert(
    attributes: &Attributes,
    hits: u64,
    domain: Option<&str>,
) -> Option<Verdict> {
    let h = harness();
    let result = h.runtime.block_on(h.limiter.check(Check {
        attributes,
        hits,
        domain,
    }));
    match result {
        Ok(verdict) => {
            assert!(
                validate_attributes(attributes).is_ok(),
                "accepted invalid attributes: {attributes:?}"
            );
            if let Some(lease) = &verdict.lease {
                let parts = LeasePart::decode(lease)
                    .unwrap_or_else(|e| panic!("lease {lease:?} does not decode: {e}"));
                assert_eq!(&LeasePart::encode(&parts), lease);
                for part in &parts {
                    assert_eq!(part.policy(), "streams", "{lease:?}");
                    assert_eq!(part.hits, hits, "{lease:?}");
                }
                // Give the slots back so the counters stay bounded.
                h.runtime
                    .block_on(h.limiter.release(lease))
                    .expect("a lease the limiter issued releases");
            }
            Some(verdict)
        }
        Err(LimitError::InvalidAttributes(_)) => None,
        Err(other) => panic!("local store failed: {other}"),
    }
}

/// Asserts that `key` is `<policy>:<v1>:<v2>…` with exactly one field per
/// value and that each field unescapes to its value: no value can hold an
/// unescaped `:` (or anything else that would let it forge another key).
pub fn assert_counter_key(key: &str, policy: &str, values: &[&str]) {
    let mut fields = key.split(':');
    assert_eq!(fields.next(), Some(policy), "{key:?}");
    let fields: Vec<&str> = fields.collect();
    assert_eq!(fields.len(), values.len(), "{key:?} for {values:?}");
    for (field, value) in fields.iter().zip(values) {
        assert!(
            field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~@%".contains(&b)),
            "{key:?}: field {field:?} holds a reserved byte"
        );
        assert_eq!(
            unescape(field).as_deref(),
            Some(value.as_bytes()),
            "{key:?}"
        );
    }
}

/// Reverses `floodgate_core::escape_value`; `None` for a malformed escape.
fn unescape(field: &str) -> Option<Vec<u8>> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}
