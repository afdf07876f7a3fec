//! `floodgate-noop`: the reference ceilings for `scripts/bench`. It answers
//! `floodgate.v1.RateLimiter/Check` over gRPC and `POST /v1/check` over HTTP
//! with a constant "allowed" and does nothing else, on the same stack and
//! settings as floodgate's listeners (tonic with TCP_NODELAY and the same
//! stream limits; hyper-util's auto server, HTTP/1.1 and h2c, reading the
//! whole body). What it reaches is what the transport alone allows on this
//! machine.
//!
//! With `--redis ADDR`, every gRPC Check first makes one `PING` round trip
//! to that Redis and answers once the `PONG` is back: the least any sidecar
//! whose counters live in Redis must do per check (no script, no batching
//! task, no client router: the handler writes the command itself on one
//! shared connection and a reader task hands each reply to its caller, in
//! order). What that reaches is the floor for floodgate's Redis figures.
//! `--redis-client fred` makes the same `PING` through fred instead, pooled
//! and configured as floodgate's Redis store uses it (4 connections,
//! TCP_NODELAY): what the client floodgate is built on costs by itself.
//!
//! `--redis-command counter` replaces the `PING` with the least Redis work
//! a check that meets the contract must do: one `EVALSHA` of a script that
//! reads Redis's clock (`TIME`), reads the check's counter (`GET`) and
//! writes it back with a TTL (`SET … PX`), on the check's own key
//! (`fg:{bench:<user>}:sw:60000`, from its `user` attribute, as floodgate
//! names the counter of a one-minute `sliding_window` policy) — no decision, no
//! policies. floodgate's Redis check can be no faster than that.
//!
//! Loopback only. Once both listeners are bound it prints one line on
//! stdout, `floodgate-noop listening http=ADDR grpc=ADDR`; it stops on
//! SIGTERM/SIGINT or after `--for` seconds.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use floodgate_proto::floodgate::v1::rate_limiter_server::{RateLimiter, RateLimiterServer};
use floodgate_proto::floodgate::v1::{
    CheckRequest, CheckResponse, ReleaseRequest, ReleaseResponse,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

/// How long open connections get to finish once the server stops.
const GRACE: Duration = Duration::from_secs(1);

/// Flags.
#[derive(Debug, Parser)]
#[command(name = "floodgate-noop", version, about)]
struct Args {
    /// gRPC listener (loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    grpc: SocketAddr,
    /// HTTP listener (loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    http: SocketAddr,
    /// Stop after this many seconds at the latest (1 to 86400).
    #[arg(long = "for", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,
    /// Runtime worker threads [default: number of CPUs].
    #[arg(long)]
    threads: Option<usize>,
    /// A Redis (loopback) that every gRPC Check makes one PING round trip to.
    #[arg(long, value_name = "ADDR")]
    redis: Option<SocketAddr>,
    /// How `--redis` PINGs: `minimal` (the handler writes on one shared
    /// connection) or `fred` (through fred, as floodgate's store).
    #[arg(long, value_enum, default_value_t = RedisClient::Minimal, requires = "redis")]
    redis_client: RedisClient,
    /// What each gRPC Check asks `--redis`: `ping` (one PING) or `counter`
    /// (one EVALSHA of a script doing TIME, GET and SET … PX on the check's
    /// own key: the least Redis work of a real check).
    #[arg(long, value_enum, default_value_t = RedisCommand::Ping, requires = "redis")]
    redis_command: RedisCommand,
}

/// What every check asks Redis (`--redis-command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RedisCommand {
    Ping,
    Counter,
}

/// The least Redis work of a check that meets the contract (SPEC §2, §5):
/// Redis's own clock, the counter read, the counter written with a TTL.
/// KEYS[1] the check's counter; returns 1. (The clock is read as a real
/// check reads it; this one decides nothing with it.)
const COUNTER_SCRIPT: &str = "local now = redis.call('TIME')
local n = tonumber(redis.call('GET', KEYS[1])) or 0
redis.call('SET', KEYS[1], n + 1, 'PX', 120000)
return 1
";

/// The Redis client `--redis` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RedisClient {
    Minimal,
    Fred,
}

/// The connection(s) every check asks Redis through, and what it asks:
/// the counter script's SHA when `--redis-command counter`.
struct Redis {
    client: Client,
    counter: Option<String>,
}

/// The client of `--redis-client`.
enum Client {
    Minimal(Arc<SharedConnection>),
    Fred(fred::clients::Pool),
}

impl Redis {
    async fn connect(
        addr: SocketAddr,
        client: RedisClient,
        command: RedisCommand,
    ) -> anyhow::Result<Redis> {
        let client = Client::connect(addr, client).await?;
        let counter = match command {
            RedisCommand::Ping => None,
            RedisCommand::Counter => Some(client.load(COUNTER_SCRIPT).await?),
        };
        Ok(Redis { client, counter })
    }

    /// One round trip for the check of `user`: its command, its reply.
    async fn ask(&self, user: &str) -> Result<(), String> {
        let Some(sha) = &self.counter else {
            return self.client.ping().await;
        };
        let key = format!("fg:{{bench:{user}}}:sw:60000");
        match &self.client {
            Client::Minimal(connection) => {
                let command = resp(&[b"EVALSHA", sha.as_bytes(), b"1", key.as_bytes()]);
                connection.call(&command).await.map_err(|e| e.to_string())
            }
            Client::Fred(pool) => {
                use fred::interfaces::LuaInterface as _;
                pool.next()
                    .evalsha::<fred::types::Value, _, _, _>(sha.as_str(), key, ())
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// `parts` as one RESP command.
fn resp(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + parts.iter().map(|p| p.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Client {
    async fn connect(addr: SocketAddr, client: RedisClient) -> anyhow::Result<Client> {
        match client {
            RedisClient::Minimal => Ok(Client::Minimal(SharedConnection::connect(addr).await?)),
            RedisClient::Fred => {
                use fred::interfaces::ClientLike as _;
                let config = fred::types::config::Config::from_url(&format!("redis://{addr}"))
                    .context("fred config")?;
                let pool = fred::types::Builder::from_config(config)
                    .with_connection_config(|c| c.tcp.nodelay = Some(true))
                    .build_pool(4)
                    .context("fred pool")?;
                tokio::time::timeout(Duration::from_secs(5), pool.init())
                    .await
                    .context("Redis did not answer within 5 s")?
                    .with_context(|| format!("cannot connect to Redis at {addr}"))?;
                Ok(Client::Fred(pool))
            }
        }
    }

    /// Loads `script` (`SCRIPT LOAD`) and returns its SHA.
    async fn load(&self, script: &str) -> anyhow::Result<String> {
        let sha = match self {
            Client::Minimal(connection) => connection.load(script).await?,
            Client::Fred(pool) => {
                use fred::interfaces::LuaInterface as _;
                pool.next()
                    .script_load::<String, _>(script)
                    .await
                    .context("SCRIPT LOAD")?
            }
        };
        anyhow::ensure!(
            sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
            "SCRIPT LOAD answered {sha:?}, not a SHA"
        );
        Ok(sha)
    }

    async fn ping(&self) -> Result<(), String> {
        match self {
            Client::Minimal(connection) => connection.call(PING).await.map_err(|e| e.to_string()),
            Client::Fred(pool) => {
                use fred::interfaces::ClientLike as _;
                pool.next()
                    .ping::<fred::types::Value>(None)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// `PING` in RESP.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// One Redis connection shared by every check: a caller writes its
/// command and queues its waker under one lock (so replies, which come back
/// in order, meet their callers in order); the reader task answers them.
/// Every command it sends has a one-line reply (`+PONG`, `:1`, or an
/// `-ERR …`, which fails the call). A caller dropped between queuing its
/// waker and the end of its write (its check cancelled: only a timed-out
/// check, which fails the run anyway) leaves the queue out of step with
/// the replies: this is a measuring tool, not a client to reuse.
#[derive(Debug)]
struct SharedConnection {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    /// Each caller's waker: its reply line, or an error line.
    waiting: Mutex<VecDeque<oneshot::Sender<Result<(), String>>>>,
}

impl SharedConnection {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Arc<SharedConnection>> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to Redis at {addr}"))?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let connection = Arc::new(SharedConnection {
            writer: tokio::sync::Mutex::new(write),
            waiting: Mutex::new(VecDeque::new()),
        });
        tokio::spawn(read_replies(read, Arc::clone(&connection)));
        // The connection answers before the listeners open.
        tokio::time::timeout(Duration::from_secs(5), connection.call(PING))
            .await
            .context("Redis did not answer PING within 5 s")?
            .context("Redis did not answer PING")?;
        Ok(connection)
    }

    /// Loads `script` on a connection of its own (`SCRIPT LOAD` answers a
    /// bulk string, two lines, which the shared connection does not read)
    /// and returns its SHA.
    async fn load(&self, script: &str) -> anyhow::Result<String> {
        let addr = self.writer.lock().await.peer_addr()?;
        let load = async {
            let mut stream = BufReader::new(TcpStream::connect(addr).await?);
            let command = resp(&[b"SCRIPT", b"LOAD", script.as_bytes()]);
            stream.get_mut().write_all(&command).await?;
            let (mut header, mut sha) = (String::new(), String::new());
            stream.read_line(&mut header).await?;
            if header.starts_with('$') {
                stream.read_line(&mut sha).await?;
            } else {
                sha = header;
            }
            std::io::Result::Ok(sha.trim_end().to_string())
        };
        tokio::time::timeout(Duration::from_secs(5), load)
            .await
            .context("Redis did not answer SCRIPT LOAD within 5 s")?
            .context("SCRIPT LOAD")
    }

    /// One round trip of `command` (RESP, one-line reply); an error once
    /// the connection is gone or when Redis answers with an error.
    async fn call(&self, command: &[u8]) -> std::io::Result<()> {
        let (sender, receiver) = oneshot::channel();
        {
            let mut writer = self.writer.lock().await;
            self.queue().push_back(sender);
            writer.write_all(command).await?;
        }
        receiver
            .await
            .map_err(|_| std::io::Error::other("the Redis connection closed"))?
            .map_err(std::io::Error::other)
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<oneshot::Sender<Result<(), String>>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hands each reply line (`+PONG`, `:1`) to the oldest caller, an error
/// line (`-…`) as its error; on EOF or a read error drops every waiting
/// caller, whose call then fails.
async fn read_replies(read: OwnedReadHalf, connection: Arc<SharedConnection>) {
    let mut reader = BufReader::new(read);
    let mut line = Vec::with_capacity(16);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let reply = match line.strip_prefix(b"-") {
                    Some(error) => Err(String::from_utf8_lossy(error).trim_end().to_string()),
                    None => Ok(()),
                };
                if let Some(sender) = connection.queue().pop_front() {
                    let _ = sender.send(reply);
                }
            }
        }
    }
    connection.queue().clear();
}

/// The constant answer to every gRPC call, after a Redis round trip when
/// there is a Redis.
#[derive(Default)]
struct NoopService {
    redis: Option<Redis>,
}

#[tonic::async_trait]
impl RateLimiter for NoopService {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        // Decoded by tonic already, as floodgate's service gets it.
        let request = request.into_inner();
        if let Some(redis) = &self.redis {
            let user = request.attributes.get("user").map_or("", String::as_str);
            redis.ask(user).await.map_err(tonic::Status::unavailable)?;
        }
        Ok(tonic::Response::new(CheckResponse {
            allowed: true,
            policy: "noop".into(),
            limit: 1_000_000,
            remaining: 999_999,
            ..CheckResponse::default()
        }))
    }

    async fn release(
        &self,
        _: tonic::Request<ReleaseRequest>,
    ) -> Result<tonic::Response<ReleaseResponse>, tonic::Status> {
        Ok(tonic::Response::new(ReleaseResponse {}))
    }
}

/// The constant `/v1/check` body (the shape floodgate answers with).
const HTTP_BODY: &str = r#"{"allowed":true,"policy":"noop","limit":1000000,"remaining":999999,"reset_after_ms":0,"retry_after_ms":0,"lease":"","statuses":[]}"#;

/// Any request: read the whole body, as `/v1/check` does, then answer 200.
async fn http_check(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let _ = req.into_body().collect().await;
    let mut response = Response::new(Full::new(Bytes::from_static(HTTP_BODY.as_bytes())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
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
                    eprintln!("floodgate-noop: accept failed: {error}");
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

/// Binds both listeners, prints where, serves until stopped.
async fn run(args: Args) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let redis = match args.redis {
        Some(addr) => Some(Redis::connect(addr, args.redis_client, args.redis_command).await?),
        None => None,
    };
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
            "floodgate-noop listening http={} grpc={}",
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
        .add_service(RateLimiterServer::new(NoopService { redis }))
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned())
        .await;
    // Whatever ended the gRPC server ends the HTTP one too.
    shutdown.cancel();
    let _ = http_task.await;
    signals.await??;
    grpc_result.context("gRPC server failed")
}

/// The allocator floodgate runs with: the ceiling is the same stack.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    for addr in [Some(args.grpc), Some(args.http), args.redis]
        .into_iter()
        .flatten()
    {
        if !addr.ip().is_loopback() {
            eprintln!("floodgate-noop: {addr} is not a loopback address");
            return ExitCode::FAILURE;
        }
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let result = runtime
        .enable_all()
        .build()
        .context("cannot start the runtime")
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("floodgate-noop: {error:#}");
            ExitCode::FAILURE
        }
    }
}
