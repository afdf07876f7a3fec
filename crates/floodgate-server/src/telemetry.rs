//! Logs (`tracing`) and metrics (Prometheus) set-up.

pub mod latency;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber. `RUST_LOG` wins over `default`.
pub fn init_tracing(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Buckets of `floodgate_wait_seconds`: 1 ms to 10 min.
const WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 600.0,
];

/// Installs the Prometheus recorder and describes floodgate's metrics.
///
/// # Errors
/// When a recorder is already installed.
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = install_recorder()?;
    describe_the_core();
    describe_the_others();
    present_from_the_start();
    Ok(handle)
}

/// The Prometheus recorder, with floodgate's histogram buckets.
fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    // floodgate_check_duration_seconds is not the exporter's: see
    // [`latency`].
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(floodgate_core::metric::WAIT_SECONDS.into()),
            WAIT_BUCKETS,
        )
        .context("wait buckets")?
        .install_recorder()
        .context("installing the Prometheus recorder")
}

/// HELP lines for the metrics every configuration has.
fn describe_the_core() {
    metrics::describe_counter!(
        floodgate_core::metric::CHECKS_TOTAL,
        "Policy decisions, by policy, decision (allowed, denied, shadow_denied) and source"
    );
    metrics::describe_counter!(
        floodgate_core::metric::STORE_ERRORS_TOTAL,
        "Store calls that failed, by kind"
    );
    metrics::describe_gauge!(
        floodgate_core::metric::STORE_FALLBACK,
        "1 while checks are answered by the local fallback instead of Redis"
    );
    metrics::describe_counter!(
        floodgate_core::metric::JWT_REJECTED_TOTAL,
        "Bearer tokens that did not verify (the request counted as anonymous), by reason"
    );
    metrics::describe_counter!(
        floodgate_core::metric::CONFIG_RELOADS_TOTAL,
        "Configuration reloads, by result"
    );
    metrics::describe_gauge!(
        floodgate_core::metric::LOCAL_KEYS,
        "Counters held by the local store"
    );
    metrics::describe_counter!(
        floodgate_core::metric::LOCAL_EVICTIONS_TOTAL,
        "Counters evicted because the local store was full"
    );
}

/// Zero values for the gauges and counters dashboards and alerts read, so
/// they see a value from the start.
fn present_from_the_start() {
    metrics::gauge!(floodgate_core::metric::STORE_FALLBACK).set(0.0);
    metrics::gauge!(floodgate_core::metric::LOCAL_KEYS).set(0.0);
    metrics::counter!(floodgate_core::metric::LOCAL_EVICTIONS_TOTAL).increment(0);
    for result in ["success", "failure"] {
        metrics::counter!(floodgate_core::metric::CONFIG_RELOADS_TOTAL, "result" => result)
            .increment(0);
    }
    for kind in ["timeout", "unavailable", "protocol"] {
        metrics::counter!(floodgate_core::metric::STORE_ERRORS_TOTAL, "kind" => kind).increment(0);
    }
}

/// HELP lines for the metrics that appear only with some configurations
/// (Redis store, Envoy, concurrency policies): without one, `promtool check
/// metrics` reports "no help text".
fn describe_the_others() {
    metrics::describe_gauge!(
        floodgate_core::metric::INSTANCES,
        "Sidecars sharing each limit: the fallback enforces limit / instances (Redis store only)"
    );
    metrics::describe_counter!(
        floodgate_core::metric::DENY_CACHE_HITS_TOTAL,
        "Denials answered from the deny cache without asking Redis"
    );
    metrics::describe_counter!(
        crate::traces::export::DROPPED_METRIC,
        "Spans of checks not exported: the queue was full or the collector did not take them"
    );
    metrics::describe_counter!(
        floodgate_core::metric::RECONCILED_TOTAL,
        "Counters whose fallback charges were added to Redis after an outage"
    );
    metrics::describe_counter!(
        floodgate_core::metric::RECONCILE_DROPPED_TOTAL,
        "Fallback charges not added to Redis after an outage (journal full or refused)"
    );
    metrics::describe_counter!(
        floodgate_core::metric::STORE_REFUNDS_DROPPED_TOTAL,
        "Refunds of Redis charges dropped because they came while the breaker was open"
    );
    metrics::describe_counter!(
        floodgate_core::metric::EXT_AUTHZ_INCOMPLETE_TOTAL,
        "ext_authz requests without HTTP attributes, allowed unchecked"
    );
    metrics::describe_counter!(
        floodgate_core::metric::ADMIN_REQUESTS_TOTAL,
        "Admin API requests, by action (state, reset, top) and result (ok, invalid, unauthorized, error)"
    );
    metrics::describe_counter!(
        floodgate_core::metric::WAITS_TOTAL,
        "Checks that waited for their turn or were refused a wait, by outcome (allowed, denied, timeout, refused, shutdown)"
    );
    metrics::describe_histogram!(
        floodgate_core::metric::WAIT_SECONDS,
        metrics::Unit::Seconds,
        "How long checks waited for their turn"
    );
    metrics::describe_gauge!(
        floodgate_core::metric::WAITING,
        "Checks waiting for their turn right now"
    );
    metrics::describe_counter!(
        floodgate_core::metric::CONCURRENCY_SKIPPED_TOTAL,
        "Concurrency policies not applied on a transport that cannot release a lease, by transport and policy"
    );
    describe_costs();
}

/// HELP lines of the token-budget metrics (policies with `settle = true`).
fn describe_costs() {
    metrics::describe_counter!(
        floodgate_core::metric::COST_CHARGED_TOTAL,
        "Cost charged to settleable policies: hits of allowed checks plus overruns found at settle, by policy"
    );
    metrics::describe_counter!(
        floodgate_core::metric::COST_REFUNDED_TOTAL,
        "Cost given back by settles below the reserved estimate, by policy"
    );
    metrics::describe_counter!(
        floodgate_core::metric::COST_SETTLED_TOTAL,
        "Actual cost reported by settles, by policy"
    );
}
