//! Command-line flags and their validation into a [`Config`].

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;

use crate::config::{Config, Load, MAX_DURATION, MAX_TIMEOUT, MAX_WORKERS};
use crate::error::BenchError;
use crate::keys::KeySpec;
use crate::noop::NoopArgs;
use crate::protocol::{Protocol, RequestTemplate};
use crate::target::Target;

/// floodgate-bench: load and accuracy tool for floodgate (loopback only).
///
/// Closed loop by default (connections × in-flight workers, each sending its
/// next check when the previous one is answered); `--rate` switches to an
/// open loop with latency measured from each check's scheduled time.
/// `floodgate-bench noop` serves the constant-answer baseline instead.
#[derive(Debug, Parser)]
#[command(
    name = "floodgate-bench",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// A server to run instead of a load.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// API to call.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    pub protocol: Protocol,
    /// host:port or http://host:port; must resolve to 127.0.0.0/8 or ::1.
    /// Repeat to spread checks round-robin over several sidecars.
    /// [default: 127.0.0.1:9721 for grpc/envoy, 127.0.0.1:9720 for http]
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    /// Connection slots: gRPC channels (HTTP: one connection per in-flight check).
    #[arg(long, short = 'c', default_value_t = 4)]
    pub connections: usize,
    /// Concurrent checks per connection slot.
    #[arg(long, short = 'm', default_value_t = 16)]
    pub in_flight: usize,
    /// Open loop: checks per second on a fixed timeline.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop after this many checks.
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Stop after this long (e.g. 500ms, 5s, 2m; at most 10m).
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// A check unanswered after this long is a transport error (at most 60s).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Key distribution for the `user` attribute: hot, uniform:K, seq:K (each
    /// key in turn), zipf:K or zipf:K:s.
    #[arg(long, default_value = "uniform:10000")]
    pub keys: KeySpec,
    /// The `user` value is this prefix followed by the key index.
    #[arg(long, default_value = "bench-")]
    pub key_prefix: String,
    /// Extra attribute sent with every check, name=value (repeatable).
    #[arg(long = "attr", value_name = "NAME=VALUE", value_parser = parse_attr)]
    pub attrs: Vec<(String, String)>,
    /// floodgate.v1 gRPC only: each check also carries `tenant=t<i mod N>`,
    /// i the check's key index (N from 1 to 10000000).
    #[arg(long, value_name = "N")]
    pub tenants: Option<u64>,
    /// Cost of each check (Envoy: 1 to 2^32-1).
    #[arg(long, default_value_t = 1)]
    pub hits: u64,
    /// Envoy RLS domain.
    #[arg(long, default_value = "floodgate-bench")]
    pub domain: String,
    /// Count admitted hits per key and compare them with --limit.
    #[arg(long, requires = "limit")]
    pub accuracy: bool,
    /// The per-key quota for --accuracy.
    #[arg(long, requires = "accuracy")]
    pub limit: Option<u64>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Seed for the key generators [default: random].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Runtime worker threads [default: number of CPUs].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// What `floodgate-bench` runs instead of a load.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// A no-op rate limiter: answers floodgate.v1 Check, Envoy RLS
    /// ShouldRateLimit and HTTP POST /v1/check with a constant allow.
    Noop(NoopArgs),
}

impl Args {
    /// Validates the flags and resolves the targets (loopback guard).
    ///
    /// # Errors
    /// [`BenchError::Usage`] for out-of-range or contradictory flags, and
    /// the [`Target::parse`] errors for a bad or non-loopback target.
    pub fn into_config(self) -> Result<Config, BenchError> {
        let usage = |m: String| Err(BenchError::Usage(m));
        if self.connections == 0 || self.in_flight == 0 {
            return usage("--connections and --in-flight must be at least 1".into());
        }
        if self.connections.saturating_mul(self.in_flight) > MAX_WORKERS {
            return usage(format!(
                "--connections × --in-flight must be at most {MAX_WORKERS}"
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return usage("--duration must be more than 0 and at most 10m".into());
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return usage("--timeout must be more than 0 and at most 60s".into());
        }
        if self.requests == Some(0) {
            return usage("--requests must be at least 1".into());
        }
        let load = match self.rate {
            None => Load::Closed,
            Some(rate) if rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0 => {
                Load::Open { rate }
            }
            Some(rate) => return usage(format!("--rate {rate} must be > 0 and ≤ 10000000")),
        };
        if self.protocol == Protocol::Envoy && !(1..=u64::from(u32::MAX)).contains(&self.hits) {
            return usage(
                "with --protocol envoy, --hits must be 1 to 4294967295 \
                          (Envoy reads hits_addend 0 as 1)"
                    .into(),
            );
        }
        match self.tenants {
            Some(n) if !(1..=crate::keys::MAX_KEYS).contains(&n) => {
                return usage(format!("--tenants {n} must be from 1 to 10000000"));
            }
            Some(_) if self.protocol != Protocol::Grpc => {
                return usage("--tenants needs --protocol grpc".into());
            }
            _ => {}
        }
        let mut attributes = BTreeMap::new();
        for (name, value) in self.attrs {
            if name == "tenant" && self.tenants.is_some() {
                return usage("--attr tenant=… is not allowed with --tenants".into());
            }
            if name == "user" {
                return usage("--attr user=… is not allowed: --keys sets `user`".into());
            }
            if attributes.insert(name.clone(), value).is_some() {
                return usage(format!("--attr {name} is given twice"));
            }
        }
        let specs = if self.targets.is_empty() {
            vec![self.protocol.default_target().to_string()]
        } else {
            self.targets
        };
        let targets = specs
            .iter()
            .map(|spec| Target::parse(spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            protocol: self.protocol,
            targets,
            connections: self.connections,
            in_flight: self.in_flight,
            load,
            requests: self.requests,
            duration: self.duration,
            timeout: self.timeout,
            keys: self.keys,
            template: RequestTemplate {
                key_prefix: self.key_prefix,
                attributes,
                hits: self.hits,
                domain: self.domain,
                tenants: self.tenants,
            },
            accuracy_limit: if self.accuracy { self.limit } else { None },
            seed: self.seed.unwrap_or_else(rand::random),
        })
    }
}

/// Parses `250ms`, `5s`, `2m`, `1h` (a whole number and a unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 250ms, 5s or 2m"))?;
    let seconds = |s: u64| n.checked_mul(s).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        _ => None,
    }
    .ok_or_else(|| format!("{text:?} is not a duration like 250ms, 5s or 2m"))
}

/// Parses `name=value` (a non-empty name; the value may be empty).
pub fn parse_attr(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not name=value")),
    }
}

#[cfg(test)]
mod tests;
