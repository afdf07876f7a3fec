//! `envoy.service.ratelimit.v3.RateLimitService`: Envoy's rate limit
//! service. Each descriptor is one check (its entries are the attributes,
//! `remote_address` standing for `ip`); the descriptors of a request stand or
//! fall together: if any is over its limit, none is charged.

use std::sync::Arc;

use floodgate_core::Attributes;
use floodgate_proto::envoy::config::core::v3::HeaderValue;
use floodgate_proto::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use floodgate_proto::envoy::service::ratelimit::v3 as rls;
use floodgate_store::{Check, LeaseMode, Verdict};
use rls::rate_limit_response::{rate_limit::Unit, Code, DescriptorStatus, RateLimit};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::app::App;
use crate::errors::to_status;
use crate::render::rate_limit_headers;

/// The `RateLimitService` gRPC service.
pub struct RlsService {
    /// Shared state.
    app: Arc<App>,
}

impl RlsService {
    /// The service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        RlsService { app }
    }
}

/// Most descriptors one request may carry.
const MAX_DESCRIPTORS: usize = 64;

/// A descriptor's entries as attributes.
///
/// # Errors
/// INVALID_ARGUMENT for no entries, an empty key, or a key given twice.
fn descriptor_attributes(index: usize, d: &RateLimitDescriptor) -> Result<Attributes, Status> {
    if d.entries.is_empty() {
        return Err(Status::invalid_argument(format!(
            "descriptor {index} has no entries"
        )));
    }
    let mut attributes = Attributes::with_capacity(d.entries.len());
    for entry in &d.entries {
        if entry.key.is_empty() {
            return Err(Status::invalid_argument(format!(
                "descriptor {index} has an entry with an empty key"
            )));
        }
        let name = if entry.key == "remote_address" {
            "ip"
        } else {
            entry.key.as_str()
        };
        if attributes
            .insert(name.to_string(), entry.value.clone())
            .is_some()
        {
            return Err(Status::invalid_argument(format!(
                "descriptor {index} names {:?} twice",
                entry.key
            )));
        }
    }
    Ok(attributes)
}

/// The unit Envoy shows for a window: exact units only.
fn unit(window_us: u64) -> Unit {
    match window_us {
        1_000_000 => Unit::Second,
        60_000_000 => Unit::Minute,
        3_600_000_000 => Unit::Hour,
        86_400_000_000 => Unit::Day,
        _ => Unit::Unknown,
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn descriptor_status(verdict: &Verdict) -> DescriptorStatus {
    let code = if verdict.allowed {
        Code::Ok
    } else {
        Code::OverLimit
    };
    let Some(s) = verdict.deciding() else {
        // No policy applies: OK with no limit, as Envoy expects.
        return DescriptorStatus {
            code: Code::Ok as i32,
            ..DescriptorStatus::default()
        };
    };
    DescriptorStatus {
        code: code as i32,
        current_limit: Some(RateLimit {
            name: s.policy.to_string(),
            requests_per_unit: clamp(s.limit),
            unit: unit(s.window_us) as i32,
        }),
        limit_remaining: clamp(s.remaining),
        duration_until_reset: Some(prost_types::Duration {
            seconds: (s.reset_after_us / 1_000_000) as i64,
            nanos: ((s.reset_after_us % 1_000_000) * 1_000) as i32,
        }),
    }
}

#[tonic::async_trait]
impl rls::rate_limit_service_server::RateLimitService for RlsService {
    async fn should_rate_limit(
        &self,
        request: Request<rls::RateLimitRequest>,
    ) -> Result<Response<rls::RateLimitResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        if request.domain.is_empty() {
            return Err(Status::invalid_argument("domain is empty"));
        }
        if request.descriptors.is_empty() {
            return Err(Status::invalid_argument("no descriptors"));
        }
        if request.descriptors.len() > MAX_DESCRIPTORS {
            return Err(Status::invalid_argument(format!(
                "{} descriptors (at most {MAX_DESCRIPTORS})",
                request.descriptors.len()
            )));
        }
        // Envoy: hits_addend unset (0) means 1.
        let request_hits = u64::from(request.hits_addend.max(1));
        let attributes = request
            .descriptors
            .iter()
            .enumerate()
            .map(|(i, d)| descriptor_attributes(i, d))
            .collect::<Result<Vec<_>, _>>()?;
        let checks: Vec<Check<'_>> = request
            .descriptors
            .iter()
            .zip(&attributes)
            .map(|(d, attributes)| Check {
                attributes,
                hits: d.hits_addend.unwrap_or(request_hits),
                domain: Some(&request.domain),
            })
            .collect();
        // One configuration for the whole request; no "request finished"
        // callback, so concurrency policies are skipped.
        let settings = self.app.settings.load();
        let verdicts = self
            .app
            .limiter
            .check_all_in(&settings.policies, &checks, LeaseMode::Skipped("envoy_rls"))
            .await
            .map_err(to_status)?;
        let overall = Verdict::combine(&verdicts);
        let mode = settings.headers;
        let response = rls::RateLimitResponse {
            overall_code: if overall.allowed {
                Code::Ok
            } else {
                Code::OverLimit
            } as i32,
            statuses: verdicts.iter().map(descriptor_status).collect(),
            response_headers_to_add: rate_limit_headers(&overall, mode)
                .into_iter()
                .map(|(key, value)| HeaderValue {
                    key: key.to_string(),
                    value,
                    raw_value: Vec::new(),
                })
                .collect(),
            request_headers_to_add: Vec::new(),
            raw_body: Vec::new(),
        };
        metrics::histogram!("floodgate_check_duration_seconds", "transport" => "envoy_rls")
            .record(started.elapsed().as_secs_f64());
        Ok(Response::new(response))
    }
}
