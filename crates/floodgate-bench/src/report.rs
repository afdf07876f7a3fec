//! The result of a run: a serde struct printed as one JSON object
//! (`--json`) or as a small human table.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::{Config, Load};
use crate::protocol::Protocol;
use crate::stats::Stats;

/// Everything a run measured. Latencies are in microseconds and cover
/// answered checks (allowed or denied) only.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The API called.
    pub protocol: Protocol,
    /// The targets, as given.
    pub targets: Vec<String>,
    /// `"closed"` or `"open"`.
    pub mode: &'static str,
    /// Connection slots.
    pub connections: usize,
    /// Concurrent checks per slot.
    pub in_flight: usize,
    /// Open loop: the scheduled rate (checks/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// The key distribution.
    pub keys: String,
    /// Cost of each check.
    pub hits: u64,
    /// Extra attributes sent with every check.
    pub attributes: BTreeMap<String, String>,
    /// From the start of the first check to the end of the last, seconds.
    pub elapsed_s: f64,
    /// Checks answered (allowed + denied).
    pub checks: u64,
    /// Answered checks per second of `elapsed_s`.
    pub throughput_rps: f64,
    /// Checks allowed.
    pub allowed: u64,
    /// Checks denied.
    pub denied: u64,
    /// Checks not answered, or answered with an unexpected status.
    pub errors: Errors,
    /// Latency from the send (closed loop) or the scheduled send (open loop).
    pub latency_us: Percentiles,
    /// Open loop only: latency from the actual send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_us: Option<Percentiles>,
    /// Open loop only: scheduled checks never sent because the generator
    /// fell behind and the run ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsent: Option<u64>,
    /// Accuracy mode only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Accuracy>,
}

/// Failed checks, by kind.
#[derive(Debug, Clone, Serialize)]
pub struct Errors {
    /// No answer: connect, I/O or protocol error, or timeout.
    pub transport: u64,
    /// An answer other than 200/429 (HTTP) or OK (gRPC).
    pub status: u64,
    /// `status` by status code.
    pub statuses: BTreeMap<String, u64>,
    /// The first transport error, to say why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_transport_error: Option<String>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1_000.0;
        Percentiles {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1_000.0,
        }
    }
}

/// Per-key admitted hits against the quota.
#[derive(Debug, Clone, Serialize)]
pub struct Accuracy {
    /// The quota per key (`--limit`).
    pub limit: u64,
    /// Keys that got at least one answer.
    pub keys: u64,
    /// Admitted hits over all keys.
    pub admitted_total: u64,
    /// The most hits admitted for one key.
    pub max_admitted: u64,
    /// The fewest hits admitted for one key.
    pub min_admitted: u64,
    /// Keys admitted past the quota.
    pub keys_over_quota: u64,
    /// Hits admitted past the quota, summed over keys.
    pub over_admission: u64,
}

impl Accuracy {
    /// True when no key was admitted past its quota.
    pub fn within_quota(&self) -> bool {
        self.keys_over_quota == 0
    }
}

impl Report {
    /// Summarises merged worker stats for `config`.
    pub fn new(config: &Config, stats: Stats, elapsed: Duration) -> Report {
        let elapsed_s = elapsed.as_secs_f64();
        let checks = stats.answered();
        let (mode, rate) = match config.load {
            Load::Closed => ("closed", None),
            Load::Open { rate } => ("open", Some(rate)),
        };
        let accuracy = config.accuracy_limit.map(|limit| {
            let per_key = stats.admitted.clone().unwrap_or_default();
            Accuracy {
                limit,
                keys: per_key.len() as u64,
                admitted_total: per_key.values().sum(),
                max_admitted: per_key.values().copied().max().unwrap_or(0),
                min_admitted: per_key.values().copied().min().unwrap_or(0),
                keys_over_quota: per_key.values().filter(|&&n| n > limit).count() as u64,
                over_admission: per_key.values().map(|&n| n.saturating_sub(limit)).sum(),
            }
        });
        Report {
            protocol: config.protocol,
            targets: config
                .targets
                .iter()
                .map(|t| t.spec().to_string())
                .collect(),
            mode,
            connections: config.connections,
            in_flight: config.in_flight,
            rate,
            keys: config.keys.to_string(),
            hits: config.template.hits,
            attributes: config.template.attributes.clone(),
            elapsed_s,
            checks,
            throughput_rps: if elapsed_s > 0.0 {
                checks as f64 / elapsed_s
            } else {
                0.0
            },
            allowed: stats.allowed,
            denied: stats.denied,
            errors: Errors {
                transport: stats.transport_errors,
                status: stats.status_errors,
                statuses: stats.statuses,
                first_transport_error: stats.first_transport_error,
            },
            latency_us: Percentiles::of(&stats.latency),
            service_us: rate.map(|_| Percentiles::of(&stats.service)),
            unsent: rate.map(|_| stats.unsent),
            accuracy,
        }
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        // A plain struct of numbers, strings and maps always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Formats microseconds as `87 µs` or `1.23 ms`.
fn micros(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1_000.0)
    }
}

fn percentile_row(out: &mut String, label: &str, p: &Percentiles) {
    let _ = writeln!(
        out,
        "  {label:<10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        micros(p.p50),
        micros(p.p90),
        micros(p.p99),
        micros(p.p99_9),
        micros(p.max)
    );
}

impl fmt::Display for Report {
    /// The human table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "floodgate-bench {} → {}",
            self.protocol,
            self.targets.join(", ")
        );
        let load = match self.rate {
            None => format!(
                "closed loop, {} connections × {} in flight",
                self.connections, self.in_flight
            ),
            Some(rate) => format!(
                "open loop at {rate} checks/s, {} workers",
                self.connections * self.in_flight
            ),
        };
        let _ = writeln!(out, "  {:<10} {load}", "load");
        let attrs: Vec<String> = self
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            out,
            "  {:<10} {}, hits {}{}",
            "keys",
            self.keys,
            self.hits,
            if attrs.is_empty() {
                String::new()
            } else {
                format!(", {}", attrs.join(" "))
            }
        );
        let _ = writeln!(out, "  {:<10} {:.2} s", "elapsed", self.elapsed_s);
        let _ = writeln!(
            out,
            "  {:<10} {} ({:.0} checks/s)",
            "checks", self.checks, self.throughput_rps
        );
        let _ = writeln!(out, "  {:<10} {}", "allowed", self.allowed);
        let _ = writeln!(out, "  {:<10} {}", "denied", self.denied);
        let _ = write!(
            out,
            "  {:<10} {} transport, {} status",
            "errors", self.errors.transport, self.errors.status
        );
        for (status, n) in &self.errors.statuses {
            let _ = write!(out, " [{status}: {n}]");
        }
        if let Some(first) = &self.errors.first_transport_error {
            let _ = write!(out, " (first: {first})");
        }
        out.push('\n');
        if let Some(unsent) = self.unsent {
            let _ = writeln!(
                out,
                "  {:<10} {unsent} (open-loop backlog at the deadline)",
                "unsent"
            );
        }
        let _ = writeln!(
            out,
            "  {:<10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "", "p50", "p90", "p99", "p99.9", "max"
        );
        percentile_row(&mut out, "latency", &self.latency_us);
        if let Some(service) = &self.service_us {
            percentile_row(&mut out, "service", service);
        }
        if let Some(a) = &self.accuracy {
            let _ = writeln!(
                out,
                "  {:<10} quota {} per key: {} keys, admitted max {} min {} total {}; \
                 {} keys over quota, over-admission {}",
                "accuracy",
                a.limit,
                a.keys,
                a.max_admitted,
                a.min_admitted,
                a.admitted_total,
                a.keys_over_quota,
                a.over_admission
            );
        }
        f.write_str(&out)
    }
}
