//! `floodgate.v1.RateLimiter`: translates protobuf to the limiter and back.

use std::sync::Arc;

use floodgate_proto::floodgate::v1 as pb;
use floodgate_store::{Check, LeaseMode, Source, Verdict};
use tonic::{Request, Response, Status};

use super::{grpc_timeout, traceparent};
use crate::app::App;
use crate::deny::deny_status;
use crate::errors::to_status;
use crate::http::routes::MAX_RELEASE_PARTS;
use crate::render::{ms, CheckBody};
use crate::waiting;

/// The `floodgate.v1.RateLimiter` service.
pub struct RateLimiterService {
    /// Shared state.
    app: Arc<App>,
}

impl RateLimiterService {
    /// The service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        RateLimiterService { app }
    }
}

fn source(s: Source) -> pb::Source {
    match s {
        Source::Redis => pb::Source::Redis,
        Source::Local => pb::Source::Local,
        Source::Fallback => pb::Source::Fallback,
    }
}

/// A verdict as a `CheckResponse`: the fields of [`CheckBody`], so gRPC
/// and HTTP say the same thing.
pub fn to_response(verdict: &Verdict) -> pb::CheckResponse {
    let body = CheckBody::new(verdict);
    pb::CheckResponse {
        allowed: body.allowed,
        policy: body.policy.to_string(),
        limit: body.limit,
        remaining: body.remaining,
        reset_after_ms: body.reset_after_ms,
        retry_after_ms: body.retry_after_ms,
        lease: body.lease.unwrap_or_default().to_string(),
        settlement: body.settlement.unwrap_or_default().to_string(),
        statuses: (body.statuses.iter())
            .map(|s| pb::PolicyStatus {
                policy: s.policy.to_string(),
                allowed: s.allowed,
                limit: s.limit,
                remaining: s.remaining,
                reset_after_ms: ms(s.reset_after_us),
                retry_after_ms: ms(s.retry_after_us),
                shadow: s.shadow,
                source: source(s.source) as i32,
            })
            .collect(),
        ..pb::CheckResponse::default()
    }
}

#[tonic::async_trait]
impl pb::rate_limiter_server::RateLimiter for RateLimiterService {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let mut timer = self.app.check_timer("grpc", traceparent(&request));
        let budget = waiting::grpc_budget(
            request.get_ref().max_wait_ms,
            grpc_timeout(&request),
            self.app.limits.grpc_timeout,
        );
        let request = request.into_inner();
        let snapshot = self.app.limiter.snapshot();
        let check = Check {
            attributes: &request.attributes,
            hits: request.hits.unwrap_or(1),
            domain: None,
            reserve: request.reserve,
        };
        timer.attributes(&request.attributes);
        timer.deciding();
        let waited = self
            .app
            .check_waiting(&snapshot, &[check], LeaseMode::Held, budget)
            .await
            .map_err(to_status)?;
        let verdict = waited.verdicts.into_iter().next().unwrap_or_default();
        timer.decided(&verdict);
        let deny_status = deny_status(&verdict, snapshot.policies());
        let mut response = to_response(&verdict);
        response.deny_status = u32::from(deny_status);
        response.waited_ms = ms(waited.waited_us);
        timer.finish();
        Ok(Response::new(response))
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let lease = request.into_inner().lease;
        let parts = lease.split(',').count();
        if parts > MAX_RELEASE_PARTS {
            return Err(Status::invalid_argument(format!(
                "lease has {parts} parts: one release takes at most {MAX_RELEASE_PARTS}; \
                 nothing was released"
            )));
        }
        self.app.limiter.release(&lease).await.map_err(to_status)?;
        Ok(Response::new(pb::ReleaseResponse {}))
    }

    async fn settle(
        &self,
        request: Request<pb::SettleRequest>,
    ) -> Result<Response<pb::SettleResponse>, Status> {
        let request = request.into_inner();
        let done = self
            .app
            .limiter
            .settle(&request.settlement, request.actual)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::SettleResponse {
            settled: true,
            estimate: done.estimate,
            charged: done.charged(),
        }))
    }
}
