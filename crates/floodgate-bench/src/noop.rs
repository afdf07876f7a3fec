//! `floodgate-bench noop`: the baseline `scripts/bench` compares floodgate
//! with. It answers `floodgate.v1.RateLimiter/Check`, Envoy RLS
//! `ShouldRateLimit` (both on the gRPC listener) and `POST /v1/check` (on
//! the HTTP listener) with a constant "allowed" and does nothing else (a
//! request is decoded: tonic decodes a gRPC message, serde_json a
//! `/v1/check` body, as in floodgate). Each constant answer has the shape
//! and size of floodgate's for `scripts/bench`'s one policy (its status,
//! its rate-limit headers), so both send the same bytes; on
//! the same stack and settings as floodgate's listeners (tonic with
//! TCP_NODELAY and the same stream limits; hyper-util's auto server,
//! HTTP/1.1 and h2c, reading the whole body). Its CPU per check is what the
//! transport alone costs on this machine.
//!
//! With `--redis URL` each floodgate.v1 check also waits for one Redis call
//! (`INCRBY` of one key) through fred, the client floodgate's Redis store
//! uses, with its pool size (4) and TCP_NODELAY: what a server that asks
//! Redis once per check, grouping nothing, pays for it. With
//! `--redis-group` too, concurrent checks share calls as floodgate's store
//! shares them (`noop/redis.rs`): the least a server built that way pays.
//!
//! Loopback only. Once both listeners are bound it prints one line on
//! stdout, `floodgate-bench noop listening http=ADDR grpc=ADDR`; it stops on
//! SIGTERM/SIGINT or after `--for` seconds.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use floodgate_proto::envoy::config::core::v3::HeaderValue;
use floodgate_proto::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use floodgate_proto::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use floodgate_proto::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use floodgate_proto::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use floodgate_proto::floodgate::v1::rate_limiter_server::{RateLimiter, RateLimiterServer};
use floodgate_proto::floodgate::v1::{
    CheckRequest, CheckResponse, PolicyStatus, ReleaseRequest, ReleaseResponse, Source,
};
use fred::interfaces::ClientLike as _;
use fred::types::config::ServerConfig;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

mod redis;

/// How long open connections get to finish once the server stops.
const GRACE: Duration = Duration::from_secs(1);

/// Flags of `floodgate-bench noop`.
#[derive(Debug, Clone, clap::Args)]
pub struct NoopArgs {
    /// gRPC listener: floodgate.v1 and Envoy RLS (loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub grpc: SocketAddr,
    /// HTTP listener: POST /v1/check (loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub http: SocketAddr,
    /// Each floodgate.v1 check also makes one Redis call (`INCRBY`) on this
    /// Redis (`redis://127.0.0.1:PORT`, loopback only).
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// With `--redis`: concurrent checks share Redis calls, as floodgate's
    /// Redis store shares them (at most 4 in flight).
    #[arg(long, requires = "redis")]
    pub redis_group: bool,
    /// Stop after this many seconds at the latest (1 to 86400).
    #[arg(long = "for", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub seconds: u64,
}

/// The constant answer to every gRPC call, after one Redis call per
/// floodgate.v1 check when `redis` is set.
#[derive(Clone, Default)]
struct Noop {
    /// The Redis each floodgate.v1 check calls first, with `--redis`.
    redis: Option<redis::Redis>,
}

#[tonic::async_trait]
impl RateLimiter for Noop {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        // Decoded by tonic already, as floodgate's service gets it.
        drop(request.into_inner());
        if let Some(redis) = &self.redis {
            redis.check().await.map_err(tonic::Status::unavailable)?;
        }
        Ok(tonic::Response::new(CheckResponse {
            allowed: true,
            policy: POLICY.into(),
            limit: LIMIT,
            remaining: LIMIT - 1,
            reset_after_ms: WINDOW_S * 1_000,
            statuses: vec![PolicyStatus {
                policy: POLICY.into(),
                allowed: true,
                limit: LIMIT,
                remaining: LIMIT - 1,
                reset_after_ms: WINDOW_S * 1_000,
                source: Source::Local as i32,
                ..PolicyStatus::default()
            }],
            ..CheckResponse::default()
        }))
    }

    async fn release(
        &self,
        _: tonic::Request<ReleaseRequest>,
    ) -> Result<tonic::Response<ReleaseResponse>, tonic::Status> {
        Ok(tonic::Response::new(ReleaseResponse {}))
    }

    async fn settle(
        &self,
        _: tonic::Request<floodgate_proto::floodgate::v1::SettleRequest>,
    ) -> Result<tonic::Response<floodgate_proto::floodgate::v1::SettleResponse>, tonic::Status>
    {
        Ok(tonic::Response::new(
            floodgate_proto::floodgate::v1::SettleResponse {
                settled: true,
                ..Default::default()
            },
        ))
    }
}

#[tonic::async_trait]
impl RateLimitService for Noop {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        drop(request.into_inner());
        let header = |key: &str, value: &str| HeaderValue {
            key: key.into(),
            value: value.into(),
            raw_value: Vec::new(),
        };
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: Code::Ok as i32,
            statuses: vec![DescriptorStatus {
                code: Code::Ok as i32,
                current_limit: Some(RateLimit {
                    name: POLICY.into(),
                    requests_per_unit: LIMIT as u32,
                    unit: Unit::Minute as i32,
                }),
                limit_remaining: LIMIT as u32 - 1,
                duration_until_reset: Some(prost_types::Duration {
                    seconds: WINDOW_S as i64,
                    nanos: 0,
                }),
            }],
            response_headers_to_add: vec![
                header("ratelimit-policy", RATELIMIT_POLICY),
                header("ratelimit", RATELIMIT),
            ],
            ..RateLimitResponse::default()
        }))
    }
}

/// The policy floodgate's answers name in `scripts/bench`, its limit and
/// window (seconds): the constant answers are made of them.
const POLICY: &str = "bench";
const LIMIT: u64 = 100_000_000;
const WINDOW_S: u64 = 60;

/// The rate-limit header values floodgate sends for that policy.
const RATELIMIT_POLICY: &str = r#""bench";q=100000000;w=60"#;
const RATELIMIT: &str = r#""bench";r=99999999;t=60"#;

/// The constant `/v1/check` body: floodgate's answer for that policy.
const HTTP_BODY: &str = concat!(
    r#"{"allowed":true,"policy":"bench","limit":100000000,"remaining":99999999,"#,
    r#""reset_after_ms":60000,"retry_after_ms":0,"statuses":[{"policy":"bench","#,
    r#""allowed":true,"limit":100000000,"remaining":99999999,"reset_after_ms":60000,"#,
    r#""retry_after_ms":0,"shadow":false,"source":"local"}],"waited_ms":0}"#
);

/// A `/v1/check` body's fields, decoded as the gRPC no-op's request is
/// (by tonic, into its message) and as floodgate reads them.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // decoded, never read: the no-op decides nothing
struct CheckBody {
    attributes: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    hits: Option<u64>,
    #[serde(default)]
    reserve: bool,
    #[serde(default)]
    max_wait_ms: Option<u64>,
}

/// Any request: read the whole body and decode it, as `/v1/check` does,
/// then answer 200 (400 for a body that is not a check).
async fn http_check(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let decoded = body.is_ok_and(|b| serde_json::from_slice::<CheckBody>(&b).is_ok());
    let mut response = Response::new(Full::new(Bytes::from_static(HTTP_BODY.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if decoded {
        for (name, value) in [
            ("ratelimit-policy", RATELIMIT_POLICY),
            ("ratelimit", RATELIMIT),
        ] {
            headers.insert(name, http::HeaderValue::from_static(value));
        }
    } else {
        *response.status_mut() = http::StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

/// The HTTP accept loop: until `shutdown`, then drains for at most [`GRACE`].
async fn serve_http(listener: TcpListener, shutdown: CancellationToken) {
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // EMFILE and the like: back off instead of spinning.
                    eprintln!("floodgate-bench noop: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service_fn(http_check))
            .into_owned();
        tokio::spawn(graceful.watch(conn));
    }
    drop(listener);
    let _ = tokio::time::timeout(GRACE, graceful.shutdown()).await;
}

/// Cancels `shutdown` on SIGTERM, SIGINT, or after `limit`.
async fn stop_on_signal(limit: Duration, shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = tokio::time::sleep(limit) => {}
        _ = shutdown.cancelled() => {}
    }
    shutdown.cancel();
    Ok(())
}

/// Binds both listeners (loopback only), prints where, serves until stopped.
///
/// # Errors
/// When an address is not loopback, a listener cannot be bound or a server
/// fails.
pub async fn serve(args: NoopArgs) -> anyhow::Result<()> {
    for addr in [args.grpc, args.http] {
        anyhow::ensure!(addr.ip().is_loopback(), "{addr} is not a loopback address");
    }
    let noop = Noop {
        redis: match &args.redis {
            Some(url) if args.redis_group => Some(redis::Redis::Grouped(redis::Grouped::new(
                connect(url).await?,
            ))),
            Some(url) => Some(redis::Redis::EachCheck(connect(url).await?)),
            None => None,
        },
    };
    let shutdown = CancellationToken::new();
    let grpc = TcpListener::bind(args.grpc)
        .await
        .with_context(|| format!("cannot bind gRPC {}", args.grpc))?;
    let http = TcpListener::bind(args.http)
        .await
        .with_context(|| format!("cannot bind HTTP {}", args.http))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "floodgate-bench noop listening http={} grpc={}",
            http.local_addr()?,
            grpc.local_addr()?
        )?;
        out.flush()?;
    }
    let signals = tokio::spawn(stop_on_signal(
        Duration::from_secs(args.seconds),
        shutdown.clone(),
    ));
    let http_task = tokio::spawn(serve_http(http, shutdown.clone()));
    let incoming = TcpIncoming::from(grpc).with_nodelay(Some(true));
    let grpc_result = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(1024)
        .max_concurrent_streams(Some(1024))
        .add_service(RateLimiterServer::new(noop.clone()))
        .add_service(RateLimitServiceServer::new(noop))
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned())
        .await;
    // Whatever ended the gRPC server ends the HTTP one too.
    shutdown.cancel();
    let _ = http_task.await;
    signals.await??;
    grpc_result.context("gRPC server failed")
}

/// Four connections to the loopback Redis at `url` (an IP address), with
/// TCP_NODELAY, as floodgate's Redis store opens by default; a call takes
/// at most a second.
async fn connect(url: &str) -> anyhow::Result<fred::clients::Pool> {
    let not_loopback = || {
        anyhow::anyhow!("--redis {url:?}: expected a loopback Redis, like redis://127.0.0.1:6379")
    };
    let config = fred::types::config::Config::from_url(url).map_err(|_| not_loopback())?;
    let ServerConfig::Centralized { server } = &config.server else {
        return Err(not_loopback());
    };
    let host = server
        .host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>();
    if !url.starts_with("redis://") || !host.is_ok_and(|ip| ip.is_loopback()) {
        return Err(not_loopback());
    }
    let pool = fred::types::Builder::from_config(config)
        .with_connection_config(|c| c.tcp.nodelay = Some(true))
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(1))
        .build_pool(4)
        .with_context(|| format!("--redis {url:?}"))?;
    tokio::time::timeout(Duration::from_secs(5), pool.init())
        .await
        .map_err(|_| anyhow::anyhow!("--redis {url:?}: no connection within 5 s"))?
        .with_context(|| format!("--redis {url:?}: cannot connect"))?;
    Ok(pool)
}
