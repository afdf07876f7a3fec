//! Every metric floodgate exports, by name: the one list to read to know
//! them all. The server describes each at start-up (`telemetry.rs`) and
//! docs/api.md lists their labels. No label ever carries an attribute
//! value (a user, an address).

/// Policy decisions, by `policy`, `decision` (`allowed`, `denied`, `shadow_denied`) and `source`.
pub const CHECKS_TOTAL: &str = "floodgate_checks_total";
/// Time to answer one check, by `transport` (histogram).
pub const CHECK_DURATION_SECONDS: &str = "floodgate_check_duration_seconds";
/// Store calls that failed, by `kind`.
pub const STORE_ERRORS_TOTAL: &str = "floodgate_store_errors_total";
/// 1 while the fallback answers instead of Redis (gauge).
pub const STORE_FALLBACK: &str = "floodgate_store_fallback";
/// Configuration reloads, by `result`.
pub const CONFIG_RELOADS_TOTAL: &str = "floodgate_config_reloads_total";
/// Counters held by the local store (gauge).
pub const LOCAL_KEYS: &str = "floodgate_local_keys";
/// Counters evicted because the local store was full.
pub const LOCAL_EVICTIONS_TOTAL: &str = "floodgate_local_evictions_total";
/// Sidecars sharing each limit, Redis store only (gauge).
pub const INSTANCES: &str = "floodgate_instances";
/// Denials answered from the deny cache without Redis.
pub const DENY_CACHE_HITS_TOTAL: &str = "floodgate_deny_cache_hits_total";
/// Counters whose fallback charges were added to Redis after an outage.
pub const RECONCILED_TOTAL: &str = "floodgate_reconciled_total";
/// Fallback charges not added to Redis (journal full or refused).
pub const RECONCILE_DROPPED_TOTAL: &str = "floodgate_reconcile_dropped_total";
/// Refunds of Redis charges dropped while the breaker was open.
pub const STORE_REFUNDS_DROPPED_TOTAL: &str = "floodgate_store_refunds_dropped_total";
/// ext_authz requests without HTTP attributes, allowed unchecked.
pub const EXT_AUTHZ_INCOMPLETE_TOTAL: &str = "floodgate_ext_authz_incomplete_total";
/// `concurrency` policies not applied where no lease can be released, by `transport` and `policy`.
pub const CONCURRENCY_SKIPPED_TOTAL: &str = "floodgate_concurrency_skipped_total";
/// Cost charged to `settle = true` policies, by `policy`.
pub const COST_CHARGED_TOTAL: &str = "floodgate_cost_charged_total";
/// Cost given back by settles below the estimate, by `policy`.
pub const COST_REFUNDED_TOTAL: &str = "floodgate_cost_refunded_total";
/// Actual cost reported by settles, by `policy`.
pub const COST_SETTLED_TOTAL: &str = "floodgate_cost_settled_total";
/// Checks that waited for their turn, by `outcome`.
pub const WAITS_TOTAL: &str = "floodgate_waits_total";
/// How long checks waited (histogram).
pub const WAIT_SECONDS: &str = "floodgate_wait_seconds";
/// Checks waiting right now in this sidecar (gauge).
pub const WAITING: &str = "floodgate_waiting";
/// Bearer tokens that yielded no user, by `reason`.
pub const JWT_REJECTED_TOTAL: &str = "floodgate_jwt_rejected_total";
/// Admin API requests, by `action` and `result`.
pub const ADMIN_REQUESTS_TOTAL: &str = "floodgate_admin_requests_total";
/// Spans of checks not exported.
pub const TRACE_SPANS_DROPPED_TOTAL: &str = "floodgate_trace_spans_dropped_total";
