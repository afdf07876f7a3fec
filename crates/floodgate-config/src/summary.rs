//! The one-screen summary `floodgate check-config` prints for a valid file.

use std::fmt::Write as _;
use std::time::Duration;

use floodgate_core::{AlgorithmKind, Mode, Policy};

use crate::duration::format as duration;
use crate::fallback::Instances;
use crate::store::{self, redact, RedisTopology};
use crate::Config;

impl Config {
    /// A human-readable summary: listeners, store, fallback, identity,
    /// endpoints, and one line per policy (name, limit/window, algorithm,
    /// key, match, mode). Passwords in Redis URLs are hidden.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        self.write_server(&mut out);
        self.write_store(&mut out);
        self.write_fallback(&mut out);
        self.write_identity(&mut out);
        self.write_traces_and_admin(&mut out);
        self.write_endpoints(&mut out);
        self.write_policies(&mut out);
        out
    }

    /// `listeners: …` and `server: …`.
    fn write_server(&self, out: &mut String) {
        let s = &self.server;
        let proxy = s.proxy.as_ref().map_or_else(
            || "off".to_string(),
            |p| format!("{} -> {}", p.listen, p.upstream),
        );
        let health = s
            .health
            .map_or_else(|| "off".to_string(), |a| a.to_string());
        let _ = writeln!(
            out,
            "listeners: http {}, grpc {}, proxy {proxy}, health {health}",
            s.http, s.grpc
        );
        let _ = writeln!(
            out,
            "server: headers {}, shadow {}, max_connections {}, workers {}, shutdown_grace {}, log {}",
            s.headers.as_str(),
            if s.shadow { "on" } else { "off" },
            s.max_connections,
            s.workers
                .map_or_else(|| "one per CPU".to_string(), |w| w.to_string()),
            duration(s.shutdown_grace),
            s.log.as_deref().unwrap_or("(from the environment)"),
        );
    }

    /// `store: …`, with the Redis target (passwords hidden) when it is used.
    fn write_store(&self, out: &mut String) {
        let local = self.store.local();
        let local = format!("max_keys {}, shards {}", local.max_keys, local.shards);
        match &self.store {
            store::Config::Redis { redis, .. } => {
                let target = match &redis.topology {
                    RedisTopology::Standalone(url) => format!("standalone {}", redact(url)),
                    RedisTopology::Cluster(urls) => {
                        format!("cluster {}", list(urls.iter().map(|u| redact(u))))
                    }
                    RedisTopology::Sentinel {
                        sentinels,
                        service_name,
                    } => format!(
                        "sentinel {service_name} via {}",
                        list(sentinels.iter().map(|u| redact(u)))
                    ),
                };
                let _ = writeln!(
                    out,
                    "store: redis {target} (key_prefix {}, timeout {}, pool_size {}); local fallback store: {local}",
                    redis.key_prefix,
                    duration(redis.timeout),
                    redis.pool_size,
                );
            }
            store::Config::Local { unused_redis, .. } => {
                let unused = if unused_redis.is_some() {
                    " ([store.redis] is set but unused: kind is not \"redis\")"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "store: {} ({local}){unused}",
                    self.store.kind().as_str()
                );
            }
        }
    }

    /// `fallback: …`.
    fn write_fallback(&self, out: &mut String) {
        let f = &self.fallback;
        let instances = match f.instances {
            Instances::Auto => "auto".to_string(),
            Instances::Fixed(n) => n.to_string(),
        };
        let _ = writeln!(
            out,
            "fallback: mode {}, instances {instances}, probe_interval {}, failure_threshold {}",
            f.mode.as_str(),
            duration(f.probe_interval),
            f.failure_threshold,
        );
    }

    /// `identity: …`, and `identity attributes: …` when there are any.
    fn write_identity(&self, out: &mut String) {
        let id = &self.identity;
        let user = match &id.jwt {
            Some(jwt) => format!(
                "jwt claim {} ({:?}, header {})",
                jwt.user_claim, jwt.algorithm, jwt.header
            ),
            None => format!("user_header {}", id.user_header),
        };
        let _ = writeln!(
            out,
            "identity: {user}, trusted_proxies {}, ipv6_prefix /{}",
            id.trusted_proxies, id.ipv6_prefix
        );
        let from_headers = id
            .header_attributes
            .iter()
            .map(|(a, h)| format!("{a} ← header {h}"));
        let from_claims =
            (id.jwt.iter().flat_map(|j| &j.claims)).map(|(a, c)| format!("{a} ← claim {c}"));
        let extra: Vec<String> = from_headers.chain(from_claims).collect();
        if !extra.is_empty() {
            let _ = writeln!(out, "identity attributes: {}", extra.join(", "));
        }
    }

    /// `traces: …` and `admin API: …`, each only when configured.
    fn write_traces_and_admin(&self, out: &mut String) {
        if let Some(t) = &self.traces {
            let _ = writeln!(
                out,
                "traces: {} {} (sample_ratio {}, attributes [{}], service_name {})",
                t.protocol.as_str(),
                t.endpoint,
                t.sample_ratio,
                t.attributes.join(", "),
                t.service_name
            );
        }
        if let Some(admin) = &self.admin {
            let at = admin
                .listen
                .map_or_else(|| "the HTTP listener".to_string(), |a| a.to_string());
            let _ = writeln!(out, "admin API: on, on {at} (bearer token loaded)");
        }
    }

    /// `endpoints: N`, then one line per endpoint.
    fn write_endpoints(&self, out: &mut String) {
        let endpoints: Vec<_> = self.endpoints.iter().collect();
        let _ = writeln!(out, "endpoints: {}", endpoints.len());
        for e in endpoints {
            let methods = if e.methods().is_empty() {
                "*".to_string()
            } else {
                e.methods().join(",")
            };
            let case = if e.case_sensitive() {
                " (case-sensitive)"
            } else {
                ""
            };
            let cost = self.costs.get(e.name()).map_or_else(String::new, cost_text);
            let _ = writeln!(out, "  {}: {methods} {}{case}{cost}", e.name(), e.path());
        }
    }

    /// `policies: N`, then one line per policy.
    fn write_policies(&self, out: &mut String) {
        let _ = writeln!(out, "policies: {}", self.policies.len());
        for p in self.policies.iter() {
            let _ = writeln!(out, "  {}", policy_line(p));
        }
    }
}

/// `ai-per-user: 500/1m sliding_window, key [user], match endpoint=ai, enforce`.
fn policy_line(p: &Policy) -> String {
    let mut line = policy_head(p);
    write_scope(p, &mut line);
    write_enforcement(p, &mut line);
    line
}

/// The part every policy line has: `ai-per-user: 500/1m sliding_window,
/// key [user], match endpoint=ai, enforce`.
fn policy_head(p: &Policy) -> String {
    let window = match p.calendar() {
        Some(c) => c.period().as_str().to_string(),
        None => duration(Duration::from_micros(p.window_us())),
    };
    let quota = match p.kind() {
        AlgorithmKind::Concurrency => format!("{} in flight (lease_timeout {window})", p.limit()),
        AlgorithmKind::TokenBucket => format!("{}/{window} (burst {})", p.limit(), p.burst()),
        _ => format!("{}/{window}", p.limit()),
    };
    let key = if p.key().is_empty() {
        "[] (one global counter)".to_string()
    } else {
        format!("[{}]", p.key().join(", "))
    };
    let matches = if p.matches().is_empty() {
        "every request".to_string()
    } else {
        p.matches()
            .iter()
            .map(|(attribute, values)| format!("{attribute}={}", values.join("|")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mode = match p.mode() {
        Mode::Enforce => "enforce",
        Mode::Shadow => "shadow",
    };
    format!(
        "{}: {quota} {}, key {key}, match {matches}, {mode}",
        p.name(),
        p.kind().as_str()
    )
}

/// `, fallback …`, `, domain …`, `, replaces …`: its fallback, its domain
/// and the policies it replaces, when set.
fn write_scope(p: &Policy, line: &mut String) {
    if let Some(fallback) = p.fallback() {
        let _ = write!(line, ", fallback {}", fallback.as_str());
    }
    if let Some(domain) = p.domain() {
        let _ = write!(line, ", domain {domain}");
    }
    if !p.replaces().is_empty() {
        let _ = write!(line, ", replaces {}", p.replaces().join(", "));
    }
}

/// `, settle …`, `, max_wait …`, `, deny_status …`, `, calendar …`,
/// `, block_for …`: how checks on it are settled, wait, are denied and
/// locked out.
fn write_enforcement(p: &Policy, line: &mut String) {
    if p.settle() {
        line.push_str(", settle (reserve, then settle the actual cost)");
    }
    let waiting = p.waiting();
    if waiting.max_wait_us > 0 {
        let wait = duration(Duration::from_micros(waiting.max_wait_us));
        let _ = write!(
            line,
            ", max_wait {wait} (max_waiting {})",
            waiting.max_waiting
        );
    }
    if waiting.deny_status != floodgate_core::DEFAULT_DENY_STATUS {
        let _ = write!(line, ", deny_status {}", waiting.deny_status);
    }
    if let Some(calendar) = p.calendar() {
        let _ = write!(
            line,
            ", calendar {} in {} (resets at its local midnight)",
            calendar.period().as_str(),
            calendar.zone()
        );
    }
    let block = p.block();
    if block.is_on() {
        let _ = write!(
            line,
            ", block_for {}",
            duration(Duration::from_micros(block.for_us))
        );
        if block.escalates() {
            let _ = write!(
                line,
                " (doubling up to {})",
                duration(Duration::from_micros(block.max_us))
            );
        }
    }
}

/// `, cost usage total_tokens (estimate max_tokens, else 1000)`.
fn cost_text(cost: &crate::cost::Cost) -> String {
    let source = match &cost.source {
        crate::cost::CostSource::Usage(field) => format!("usage {}", field.as_str()),
        crate::cost::CostSource::Header(name) => format!("header {name}"),
    };
    match &cost.estimate_from {
        Some(field) => format!(", cost {source} (estimate {field}, else {})", cost.estimate),
        None => format!(", cost {source} (estimate {})", cost.estimate),
    }
}

fn list(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}
