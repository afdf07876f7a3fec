//! Files that parse: the full example, defaults, every setting, summary.

use std::net::SocketAddr;
use std::time::Duration;

use floodgate_core::{AlgorithmKind, FallbackMode, Mode};

use super::{parse, FULL_EXAMPLE};
use crate::server::HeaderMode;
use crate::store::{RedisTopology, StoreKind};
use crate::{server, store, FallbackConfig, IdentityConfig, Instances};

#[test]
fn the_full_example_parses() {
    let config = parse(FULL_EXAMPLE);
    assert_eq!(
        config.server.http,
        "127.0.0.1:9720".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        config.server.grpc,
        "127.0.0.1:9721".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.store.kind(), StoreKind::Local);
    assert_eq!(config.fallback.mode, FallbackMode::Local);
    assert_eq!(config.fallback.instances, Instances::Fixed(4));
    assert_eq!(config.identity.user_header, "x-user-id");
    assert_eq!(config.endpoints.classify("POST", "/api/chat/x"), Some("ai"));
    assert_eq!(config.endpoints.classify("GET", "/api/chat/x"), None);
    let policy = config.policies.get("ai-per-user").unwrap();
    assert_eq!(policy.limit(), 500);
    assert_eq!(policy.window_us(), 60_000_000);
    assert_eq!(policy.kind(), AlgorithmKind::SlidingWindow);
    assert_eq!(policy.key(), ["user"]);
    assert_eq!(
        policy.matches(),
        [("endpoint".to_string(), vec!["ai".to_string()])]
    );
    assert_eq!(policy.mode(), Mode::Enforce);
    assert_eq!(policy.fallback(), None);
}

#[test]
fn an_empty_file_is_valid_and_gives_the_defaults() {
    for src in ["", "\n# nothing here\n"] {
        let config = parse(src);
        assert!(config.policies.is_empty());
        assert_eq!(config.endpoints.iter().count(), 0);
        assert_eq!(config.server, server::Config::default());
        assert_eq!(config.store, store::Config::default());
        assert_eq!(config.fallback, FallbackConfig::default());
        assert_eq!(config.identity, IdentityConfig::default());
    }
}

#[test]
fn defaults_match_the_contract() {
    let config = parse("");
    let s = &config.server;
    assert_eq!(s.http.to_string(), "127.0.0.1:9720");
    assert_eq!(s.grpc.to_string(), "127.0.0.1:9721");
    assert_eq!(s.proxy, None);
    assert_eq!(s.headers, HeaderMode::Draft);
    assert!(!s.shadow);
    assert_eq!(s.log, None);
    assert_eq!(s.shutdown_grace, Duration::from_secs(10));
    assert_eq!(s.max_connections, 10_000);
    assert_eq!(s.workers, None, "one per CPU");
    assert_eq!(config.store.kind(), StoreKind::Local);
    assert_eq!(config.store.local().max_keys, 1_000_000);
    assert_eq!(config.store.local().shards, 64);
    assert!(config.store.redis_section().is_none());
    assert_eq!(config.fallback.mode, FallbackMode::Local);
    assert_eq!(config.fallback.instances, Instances::Auto);
    assert_eq!(config.fallback.probe_interval, Duration::from_secs(1));
    assert_eq!(config.fallback.failure_threshold, 3);
    assert_eq!(config.identity.user_header, "x-user-id");
    assert_eq!(config.identity.trusted_proxies, 0);
    assert_eq!(config.identity.ipv6_prefix, 56);
}

#[test]
fn every_setting_is_read() {
    let config = parse(
        r#"
[server]
http = "0.0.0.0:1"
grpc = "[::1]:2"
proxy = { listen = "0.0.0.0:8000", upstream = "http://127.0.0.1:3000" }
headers = "both"
shadow = true
log = "floodgate=debug,info"
shutdown_grace = "250ms"
max_connections = 5
workers = 1

[store]
kind = "redis"
[store.local]
max_keys = 5000
shards = 8
[store.redis]
sentinels = ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"]
service_name = "mymaster"
key_prefix = "app.fg"
timeout = "20ms"
pool_size = 8
deny_cache = false

[fallback]
mode = "deny"
instances = "auto"
probe_interval = "2s"
failure_threshold = 5

[identity]
user_header = "X-Account"
trusted_proxies = 2
ipv6_prefix = 64

[[endpoint]]
name = "admin"
path = "/Admin/*"
case_sensitive = true

[[endpoint]]
name = "ai"
path = "/api/chat/*"

[[policy]]
name = "tb"
match = { endpoint = ["ai", "chat"], method = "POST" }
key = ["user", "ip"]
limit = 10
window = "1s"
algorithm = "token_bucket"
burst = 20
mode = "shadow"
fallback = "allow"
domain = "edge"

[[policy]]
name = "inflight"
key = ["user"]
limit = 3
algorithm = "concurrency"
lease_timeout = "30s"
"#,
    );
    let s = &config.server;
    assert_eq!(s.grpc.to_string(), "[::1]:2");
    let proxy = s.proxy.as_ref().unwrap();
    assert_eq!(proxy.listen.to_string(), "0.0.0.0:8000");
    assert_eq!(proxy.upstream, "http://127.0.0.1:3000");
    assert_eq!(s.headers, HeaderMode::Both);
    assert!(s.shadow);
    assert_eq!(s.log.as_deref(), Some("floodgate=debug,info"));
    assert_eq!(s.shutdown_grace, Duration::from_millis(250));
    assert_eq!(s.max_connections, 5);
    assert_eq!(s.workers, Some(1));
    assert_eq!(config.store.kind(), StoreKind::Redis);
    assert_eq!(config.store.local().max_keys, 5000);
    assert_eq!(config.store.local().shards, 8);
    // The failover store's settings come from [fallback] and [store.local].
    let failover = config.fallback.failover(config.store.local());
    assert_eq!(failover.local.max_keys, 5000);
    assert_eq!(failover.config.mode, FallbackMode::Deny);
    assert_eq!(failover.config.instances, 1, "auto: min_instances");
    assert!(failover.count_instances);
    assert_eq!(failover.config.probe_interval, Duration::from_secs(2));
    assert_eq!(failover.config.failure_threshold, 5);
    assert_eq!(failover.config.trip.min_calls, 10);
    let redis = config.store.redis().unwrap();
    assert_eq!(
        redis.topology,
        RedisTopology::Sentinel {
            sentinels: vec![
                "redis://10.0.0.1:26379".into(),
                "redis://10.0.0.2:26379".into()
            ],
            service_name: "mymaster".into(),
        }
    );
    assert_eq!(redis.key_prefix, "app.fg");
    assert_eq!(redis.timeout, Duration::from_millis(20));
    assert_eq!(redis.pool_size, 8);
    assert!(!redis.deny_cache);
    assert_eq!(config.fallback.mode, FallbackMode::Deny);
    assert_eq!(config.fallback.probe_interval, Duration::from_secs(2));
    assert_eq!(config.fallback.failure_threshold, 5);
    assert_eq!(config.identity.user_header, "x-account");
    assert_eq!(config.identity.trusted_proxies, 2);
    assert_eq!(config.identity.ipv6_prefix, 64);
    let endpoints: Vec<_> = config.endpoints.iter().collect();
    assert!(endpoints[0].case_sensitive());
    assert!(!endpoints[1].case_sensitive());
    assert_eq!(config.endpoints.classify("GET", "/admin/x"), None);
    assert_eq!(config.endpoints.classify("GET", "/API/chat/x"), Some("ai"));
    let tb = config.policies.get("tb").unwrap();
    assert_eq!(tb.kind(), AlgorithmKind::TokenBucket);
    assert_eq!(tb.burst(), 20);
    assert_eq!(tb.mode(), Mode::Shadow);
    assert_eq!(tb.fallback(), Some(FallbackMode::Allow));
    assert_eq!(tb.domain(), Some("edge"));
    assert_eq!(
        tb.matches(),
        [
            (
                "endpoint".to_string(),
                vec!["ai".to_string(), "chat".to_string()]
            ),
            ("method".to_string(), vec!["POST".to_string()]),
        ]
    );
    let inflight = config.policies.get("inflight").unwrap();
    assert_eq!(inflight.kind(), AlgorithmKind::Concurrency);
    assert_eq!(inflight.window_us(), 30_000_000);
    let names: Vec<_> = config
        .policies
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    assert_eq!(names, ["tb", "inflight"]);
}

#[test]
fn redis_standalone_and_cluster() {
    let config =
        parse("[store]\nkind = \"redis\"\n[store.redis]\nurl = \"rediss://u:p@h:6380/1\"\n");
    let redis = config.store.redis_section().unwrap();
    assert_eq!(
        redis.topology,
        RedisTopology::Standalone("rediss://u:p@h:6380/1".into())
    );
    assert_eq!(redis.key_prefix, "fg");
    assert_eq!(redis.timeout, Duration::from_millis(50));
    assert_eq!(redis.pool_size, 4);
    assert_eq!(redis.tls_ca_file, None);
    assert!(redis.deny_cache, "on by default");
    let config = parse(
        "[store.redis]\ncluster = [\"rediss://a:7000\"]\ntls_ca_file = \"/etc/floodgate/ca.pem\"\n",
    );
    assert_eq!(
        config.store.redis_section().unwrap().tls_ca_file,
        Some("/etc/floodgate/ca.pem".into())
    );
    let config = parse("[store.redis]\ncluster = [\"redis://a:7000\", \"redis://b:7000\"]\n");
    assert_eq!(config.store.kind(), StoreKind::Local);
    assert_eq!(
        config.store.redis_section().unwrap().topology,
        RedisTopology::Cluster(vec!["redis://a:7000".into(), "redis://b:7000".into()])
    );
}

#[test]
fn summary_mentions_every_policy() {
    let src = format!(
        "{FULL_EXAMPLE}\n[[policy]]\nname = \"auth-per-ip\"\nkey = [\"ip\"]\nlimit = 150\nwindow = \"1m\"\nalgorithm = \"fixed_window\"\nmode = \"shadow\"\n"
    );
    let summary = parse(&src).summary();
    assert!(
        summary
            .contains("ai-per-user: 500/1m sliding_window, key [user], match endpoint=ai, enforce"),
        "{summary}"
    );
    assert!(
        summary.contains("auth-per-ip: 150/1m fixed_window, key [ip], match every request, shadow"),
        "{summary}"
    );
    assert!(
        summary.contains("listeners: http 127.0.0.1:9720, grpc 127.0.0.1:9721"),
        "{summary}"
    );
    assert!(summary.contains("store: local"), "{summary}");
    assert!(
        summary.contains("fallback: mode local, instances 4"),
        "{summary}"
    );
    assert!(summary.contains("ai: POST /api/chat/*"), "{summary}");
    let redis =
        parse("[store]\nkind = \"redis\"\n[store.redis]\nurl = \"redis://u:secret@h:6379\"\n")
            .summary();
    assert!(
        redis.contains("store: redis standalone redis://u:***@h:6379"),
        "{redis}"
    );
    assert!(!redis.contains("secret"));
}

#[test]
fn key_alternatives_are_read_and_summarised() {
    let config = parse(
        "[[policy]]\nname = \"p\"\nkey = [\"user | ip\", \"endpoint\"]\nlimit = 5\nwindow = \"1m\"\n",
    );
    let p = config.policies.get("p").unwrap();
    assert_eq!(p.key(), ["user|ip", "endpoint"]);
    let summary = config.summary();
    assert!(summary.contains("key [user|ip, endpoint]"), "{summary}");
    assert!(summary.contains("ipv6_prefix /56"), "{summary}");
}

/// 10 000 policies, one per tenant: all loaded, in file order, each found
/// by the check of its own tenant.
#[test]
fn ten_thousand_tenant_policies_load() {
    let src: String = (0..10_000)
        .map(|n| {
            format!(
                "[[policy]]\nname = \"tenant-{n}\"\nmatch = {{ tenant = \"t{n}\" }}\nkey = [\"user\"]\nlimit = 100\nwindow = \"1m\"\n\n"
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let config = parse(&src);
    eprintln!("10 000 policies loaded in {:?}", started.elapsed());
    assert_eq!(config.policies.len(), 10_000);
    for n in [0, 1, 4_321, 9_999] {
        let attributes = [("tenant", format!("t{n}")), ("user", "u".to_string())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let applicable: Vec<(usize, &str)> = config
            .policies
            .applicable(&attributes, None)
            .map(|(i, p)| (i, p.name()))
            .collect();
        assert_eq!(applicable, [(n, format!("tenant-{n}").as_str())]);
    }
}

#[test]
fn a_tier_replaces_a_policy() {
    let config = parse(
        "[[policy]]\nname = \"pro\"\nmatch = { plan = \"pro\" }\nkey = [\"user\"]\nlimit = 100\nwindow = \"1m\"\nreplaces = [\"base\"]\n\n[[policy]]\nname = \"base\"\nkey = [\"user\"]\nlimit = 10\nwindow = \"1m\"\n",
    );
    assert_eq!(config.policies.get("pro").unwrap().replaces(), ["base"]);
    assert!(config.policies.get("base").unwrap().replaces().is_empty());
    assert!(config.policies.has_replacements());
}

#[test]
fn the_summary_shows_tiers_and_identity_sources() {
    let src = "[identity]\nattributes = { plan = \"x-plan\" }\n\n[[policy]]\nname = \"base\"\nkey = [\"user\"]\nlimit = 10\nwindow = \"1m\"\n\n[[policy]]\nname = \"pro\"\nmatch = { plan = \"pro\" }\nkey = [\"user\"]\nlimit = 100\nwindow = \"1m\"\nreplaces = [\"base\"]\n";
    let summary = parse(src).summary();
    assert!(
        summary.contains("identity attributes: plan ← header x-plan"),
        "{summary}"
    );
    assert!(summary.contains("enforce, replaces base"), "{summary}");
}
