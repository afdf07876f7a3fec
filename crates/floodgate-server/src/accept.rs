//! The accept loop shared by the HTTP API, gRPC, health and proxy listeners:
//! HTTP/1.1 and HTTP/2 (h2c) on one port, upgrades allowed, a cap on open
//! connections, timeouts against idle and slow clients, and a graceful
//! drain on shutdown.
//!
//! Backpressure happens at accept: a semaphore caps open connections at
//! `max_connections`; past it, new connections wait in the kernel's
//! backlog. One client address (IPv6: one /64) may hold at most
//! `max_connections_per_ip` of them; its next connections are closed at
//! once. A connection's slot is held until it closes — for an upgraded
//! connection, until its tunnel closes ([`ConnectionSlot`]).
//!
//! A new connection must send its first bytes within the header-read
//! timeout, which also tells HTTP/1 from HTTP/2; HTTP/1 then gets the same
//! timeout for each request head (counted from the previous response on a
//! kept-alive connection), HTTP/2 keepalive pings and a stream cap. Any
//! connection with no request in flight for the idle timeout is closed
//! (HTTP/2 pings would keep it open forever otherwise), and a write the
//! client does not read within the send timeout ends the connection. A
//! request not answered within its listener's time limit gets the
//! listener's timeout answer; the connection keeps those limits with one
//! timer, and once it is gone its requests still pending end too.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floodgate_config::server::Limits;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use client_io::{sniff_http2, ClientIo, Sniffed};
use deadline::{deadline, Deadlines, Kept};
use in_flight::{Answering, InFlight};
use per_ip::{PerIp, PerIpGuard};
use stall::Stalls;

mod client_io;
mod deadline;
mod in_flight;
mod per_ip;
mod stall;

/// How long a closing connection with no request in flight may take to
/// say goodbye before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Largest HTTP/2 frame payload we accept (the protocol's minimum).
const H2_MAX_FRAME: u32 = 16 * 1024;
/// The most headers hyper accepts in an HTTP/1 request when not told.
const HYPER_MAX_HEADERS: usize = 100;
/// Bytes buffered per HTTP/2 stream before its writer waits.
const H2_MAX_SEND_BUF: usize = 64 * 1024;

/// One accepted connection's place under `max_connections`. HTTP/1
/// requests on a listener with tunnels carry it in their extensions, so
/// whatever outlives the connection's HTTP phase (an upgraded tunnel) can
/// keep the slot until it ends.
#[derive(Debug, Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<(OwnedSemaphorePermit, PerIpGuard)>);

/// How a listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ListenerSettings {
    /// Names the listener in logs.
    pub what: &'static str,
    /// Open connections at most.
    pub max_connections: usize,
    /// Timeouts and size limits.
    pub limits: Limits,
    /// How long open connections may finish after shutdown.
    pub grace: Duration,
    /// Whether requests may become tunnels (the proxy's upgrades): only
    /// then does each HTTP/1 request carry its [`ConnectionSlot`].
    pub tunnels: bool,
}

/// The HTTP/1-only and HTTP/2-only connection builders for `limits`.
fn builders(limits: &Limits) -> (Builder<TokioExecutor>, Builder<TokioExecutor>) {
    let mut builder = Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    // No timer for HTTP/1: hyper's header-read timer is set and dropped on
    // every request. The connection's idle watch keeps that limit instead
    // (see [`Watch::idle_limit`]), without a timer per request.
    http1
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes);
    // hyper's own cap is the default; naming it anyway would make hyper
    // set up room for that many headers on every request.
    if limits.max_headers != HYPER_MAX_HEADERS {
        http1.max_headers(limits.max_headers);
    }
    let mut http2 = builder.http2();
    http2.timer(TokioTimer::new());
    if let Some(interval) = limits.http2_keepalive_interval {
        http2
            .keep_alive_interval(interval)
            .keep_alive_timeout(limits.http2_keepalive_timeout);
    }
    http2
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_frame_size(H2_MAX_FRAME)
        .max_send_buf_size(H2_MAX_SEND_BUF);
    (builder.clone().http1_only(), builder.http2_only())
}

/// Unanswered TCP keepalive probes before a peer counts as gone.
const KEEPALIVE_RETRIES: u32 = 3;

/// Sets TCP_NODELAY and TCP keepalive on an accepted connection: the
/// first probe after `keepalive` of silence, then one every 10 s (or every
/// `keepalive`, if shorter); three unanswered probes close the connection.
pub fn tune(stream: &TcpStream, keepalive: Duration) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(keepalive)
        .with_interval(keepalive.min(Duration::from_secs(10)))
        .with_retries(KEEPALIVE_RETRIES);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// A connection cap that never panics: tokio refuses more permits than
/// `Semaphore::MAX_PERMITS` (the config loader refuses far fewer).
pub fn connection_cap(max_connections: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(
        max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ))
}

/// How long each request on a listener may take, and the answer to one
/// that takes longer. The request's connection keeps the limits, with one
/// timer for all its pending requests.
pub struct TimeLimit<B> {
    /// The listener's limit.
    pub longest: Duration,
    /// A request's own limit, given the listener's: at most `longest`,
    /// less as the request asks.
    pub of: fn(&Request<Incoming>, Duration) -> Duration,
    /// The answer to a request still pending after its limit.
    pub elapsed: fn(Duration) -> Result<Response<B>, Infallible>,
}

/// Serves connections on `listener` with `handle` until `shutdown` fires,
/// then stops accepting and lets open connections finish for at most
/// `settings.grace`. Each request gets at most its time `limit`, if any.
pub async fn serve<H, F, B>(
    settings: ListenerSettings,
    listener: TcpListener,
    shutdown: CancellationToken,
    limit: Option<TimeLimit<B>>,
    handle: H,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let what = settings.what;
    let handle = Arc::new((handle, limit));
    let permits = connection_cap(settings.max_connections);
    let per_ip = PerIp::new(settings.limits.max_connections_per_ip);
    let graceful = GracefulShutdown::new();
    let builders = Arc::new(builders(&settings.limits));
    while let Some((permit, stream, peer)) = accept(&listener, &permits, &shutdown, what).await {
        let Some(place) = per_ip.try_acquire(peer.ip()) else {
            tracing::debug!(%peer, listener = what, "refused a connection past max_connections_per_ip");
            continue;
        };
        let connection = Connection {
            settings,
            stream,
            peer,
            slot: ConnectionSlot(Arc::new((permit, place))),
            watcher: graceful.watcher(),
            shutdown: shutdown.clone(),
        };
        tokio::spawn(connection.run(builders.clone(), handle.clone()));
    }
    drop(listener);
    if tokio::time::timeout(settings.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?settings.grace,
            listener = what,
            "connections still open after the grace period"
        );
    }
}

/// The next connection, once it has a slot under `max_connections`;
/// `None` when the listener shuts down. A failed accept is logged and
/// retried after 50 ms.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    shutdown: &CancellationToken,
    what: &'static str,
) -> Option<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return None,
            permit = permits.clone().acquire_owned() => permit.ok()?,
        };
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => return Some((permit, stream, peer)),
                Err(error) => {
                    tracing::warn!(%error, listener = what, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// One accepted connection, before its protocol is known.
struct Connection {
    settings: ListenerSettings,
    stream: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
    watcher: Watcher,
    shutdown: CancellationToken,
}

impl Connection {
    /// Waits for the first bytes (at most the header-read timeout), then
    /// serves HTTP/1 or HTTP/2 until the connection ends, it has no request
    /// in flight for the idle timeout, or the listener shuts down.
    async fn run<H, F, B>(
        self,
        builders: Arc<(Builder<TokioExecutor>, Builder<TokioExecutor>)>,
        handle: Arc<(H, Option<TimeLimit<B>>)>,
    ) where
        H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Connection {
            settings,
            mut stream,
            peer,
            slot,
            watcher,
            shutdown,
        } = self;
        tune(&stream, settings.limits.tcp_keepalive);
        let Some(sniffed) = first_bytes(&mut stream, &settings, peer, &shutdown).await else {
            return;
        };
        let builder = if sniffed.http2 {
            &builders.1
        } else {
            &builders.0
        };
        let in_flight = InFlight::new();
        let (stalls, deadlines) = (Stalls::default(), Deadlines::default());
        let (tracker, watched, request_slot) = (in_flight.clone(), stalls.clone(), slot.clone());
        let pending = deadlines.clone();
        // On a listener with tunnels, each HTTP/1 request carries the
        // connection's slot (only HTTP/1 upgrades); every response body
        // counts as in flight and reports its stalled writes.
        let upgradable = settings.tunnels && !sniffed.http2;
        let service = service_fn(move |mut req: Request<Incoming>| {
            if upgradable {
                req.extensions_mut().insert(request_slot.clone());
            }
            let (handle, limit) = &*handle;
            let limit = limit.as_ref().map(|l| ((l.of)(&req, l.longest), l.elapsed));
            let answer = deadline(pending.clone(), limit, handle(req, peer));
            Answering::new(answer, tracker.start(), watched.clone())
        });
        let io = ClientIo::new(stream, sniffed.prefix, settings.limits.send_timeout);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let watch = Watch {
            settings,
            http2: sniffed.http2,
            peer,
            in_flight,
            stalls,
            deadlines,
            shutdown,
        };
        watch
            .until_done(conn.as_mut(), |conn| conn.graceful_shutdown())
            .await;
        drop((watcher, slot));
    }
}

/// The first bytes of a new connection, read within the header-read
/// timeout; `None` when it closes, fails or sends nothing in time, or the
/// listener shuts down first.
async fn first_bytes(
    stream: &mut TcpStream,
    settings: &ListenerSettings,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> Option<Sniffed> {
    let timeout = settings.limits.header_read_timeout;
    let sniffed = tokio::select! {
        _ = shutdown.cancelled() => return None,
        sniffed = tokio::time::timeout(timeout, sniff_http2(stream)) => sniffed,
    };
    match sniffed {
        Ok(Ok(Some(sniffed))) => Some(sniffed),
        Ok(Ok(None) | Err(_)) => None,
        Err(_) => {
            tracing::debug!(%peer, listener = settings.what, "closed a connection that sent nothing");
            None
        }
    }
}

/// What one served connection is watched for: its requests in flight,
/// writes its client does not read, and the listener's shutdown.
struct Watch {
    /// The listener's name and timeouts.
    settings: ListenerSettings,
    /// Whether the connection speaks HTTP/2 (else HTTP/1).
    http2: bool,
    /// The client, for logs.
    peer: SocketAddr,
    /// Requests in flight on the connection.
    in_flight: InFlight,
    /// Response writes waiting on the client.
    stalls: Stalls,
    /// The time limits of requests waiting for their answer.
    deadlines: Deadlines,
    /// The listener's shutdown.
    shutdown: CancellationToken,
}

/// Why a connection stops being served as usual.
enum Stop {
    /// The listener shuts down: the client is asked to close.
    Shutdown,
    /// No request in flight for the idle timeout: the client is asked to
    /// close.
    Idle,
    /// A write waited on its client longer than the send timeout: the
    /// connection is dropped.
    Stalled,
}

impl Watch {
    /// How long the connection may have no request in flight: the idle
    /// timeout, and for HTTP/1 at most the header-read timeout too. An
    /// HTTP/1 request is in flight from its complete head to the end of its
    /// response, so this is hyper's header-read limit — the whole head
    /// within the timeout of the first bytes or of the previous response —
    /// kept without a timer per request.
    fn idle_limit(&self) -> Duration {
        let limits = &self.settings.limits;
        if self.http2 {
            limits.idle_timeout
        } else {
            limits.idle_timeout.min(limits.header_read_timeout)
        }
    }

    /// Drives `conn` until it ends. On shutdown, or once no request has
    /// been in flight for the idle timeout, asks it to close (`close`) and
    /// drops it once nothing has been in flight for [`CLOSE_GRACE`] more;
    /// drops it at once when a write waits on its client longer than the
    /// send timeout.
    ///
    /// Until then the watch runs as a task of its own: the connection is
    /// woken once or more per request, and each wake-up then polls the
    /// connection and one channel, not every timer of the watch.
    async fn until_done<C, E>(self, mut conn: Pin<&mut C>, close: impl Fn(Pin<&mut C>))
    where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let (what, peer, limits) = (self.settings.what, self.peer, self.settings.limits);
        let (idle_limit, http2) = (self.idle_limit(), self.http2);
        let (stopped, mut stop) = tokio::sync::oneshot::channel();
        let (in_flight, stalls) = (self.in_flight.clone(), self.stalls.clone());
        // The watch keeps the requests' time limits until it is dropped
        // with the connection, whatever stops the connection.
        let kept = Kept(self.deadlines.clone());
        let _watch = AbortOnDropHandle::new(tokio::spawn(async move {
            // Dropped with the task, even one aborted before it ran.
            let _kept = kept;
            let stop = tokio::select! {
                () = self.shutdown.cancelled() => Stop::Shutdown,
                () = self.in_flight.idle_for(idle_limit) => Stop::Idle,
                () = self.stalls.stalled_for(limits.send_timeout) => Stop::Stalled,
                never = self.deadlines.keep() => match never {},
            };
            let _ = stopped.send(stop);
            self.deadlines.keep().await
        }));
        let ended = |ended: Result<(), E>| {
            if let Err(error) = ended {
                tracing::debug!(%error, %peer, listener = what, "connection ended with an error");
            }
        };
        let stop = tokio::select! {
            result = conn.as_mut() => return ended(result),
            stop = &mut stop => stop,
        };
        match stop {
            Ok(Stop::Shutdown) => close(conn.as_mut()),
            // An HTTP/1 connection with nothing in flight has at most
            // half a request head to lose (only this task polls it, so no
            // request can start meanwhile): dropped at once, as hyper drops
            // a head that is late.
            Ok(Stop::Idle) if !http2 && in_flight.is_idle() => {
                tracing::debug!(%peer, listener = what, "closed an idle connection");
                return;
            }
            Ok(Stop::Idle) => {
                tracing::debug!(%peer, listener = what, "closing an idle connection");
                close(conn.as_mut());
            }
            Ok(Stop::Stalled) | Err(_) => {
                tracing::debug!(%peer, listener = what, "dropped a connection whose client stopped reading");
                return;
            }
        }
        tokio::select! {
            result = conn.as_mut() => ended(result),
            () = stalls.stalled_for(limits.send_timeout) => {
                tracing::debug!(%peer, listener = what, "dropped a connection whose client stopped reading");
            }
            // Closing, and nothing left to finish: a client that does
            // not acknowledge the goodbye is not waited for.
            () = in_flight.idle_for(CLOSE_GRACE) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_cap_does_not_panic() {
        assert_eq!(
            connection_cap(usize::MAX).available_permits(),
            Semaphore::MAX_PERMITS
        );
        assert_eq!(connection_cap(0).available_permits(), 1);
    }

    #[tokio::test]
    async fn a_dead_peer_is_probed_every_10s_three_times() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (server, _) = accepted.unwrap();
        for (keepalive, interval) in [(60, 10), (5, 5)] {
            tune(&server, Duration::from_secs(keepalive));
            let socket = socket2::SockRef::from(&server);
            assert_eq!(
                socket.tcp_keepalive_time().unwrap(),
                Duration::from_secs(keepalive)
            );
            assert_eq!(
                socket.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(interval)
            );
            assert_eq!(socket.tcp_keepalive_retries().unwrap(), KEEPALIVE_RETRIES);
        }
        drop(client);
    }
}
