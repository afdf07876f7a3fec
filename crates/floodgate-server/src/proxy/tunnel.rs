//! Upgraded connections (WebSocket): which upgrades are tunnelled, and the
//! tunnel itself — bytes copied both ways until either side closes or
//! nothing moves for the idle timeout. A tunnel holds its client
//! connection's slot under `max_connections` and its lease until it ends.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::leases::LeaseGuard;
use crate::accept::ConnectionSlot;

/// The protocols of `upgrade` (an `Upgrade` header) that `allowed` lists,
/// compared by name without version (`websocket`, `h2c`), as a header to
/// forward; `None` when none is allowed — the request is then forwarded
/// as a plain request without its upgrade.
pub fn allowed_upgrade(upgrade: &HeaderValue, allowed: &[String]) -> Option<HeaderValue> {
    let kept: Vec<&str> = upgrade
        .to_str()
        .ok()?
        .split(',')
        .map(str::trim)
        .filter(|p| {
            let name = p.split('/').next().unwrap_or("");
            allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join(", ")).ok()
}

/// What a tunnel keeps alive until it closes (held for their `Drop`).
#[allow(dead_code)]
pub struct Held {
    /// The concurrency lease of the request that opened it.
    pub lease: Option<LeaseGuard>,
    /// The client connection's slot under `max_connections`.
    pub slot: Option<ConnectionSlot>,
}

/// Copies bytes both ways between the upgraded client and upstream
/// connections until either side closes or `idle` passes without a byte
/// either way; then what it `held` goes.
pub async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    idle: Duration,
    held: Held,
) {
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(client), Ok(upstream)) => (client, upstream),
        (Err(error), _) | (_, Err(error)) => {
            tracing::debug!(%error, "a proxied upgrade did not complete");
            return;
        }
    };
    let activity = Activity::new();
    let mut client = Watched::new(TokioIo::new(client), activity.clone());
    let mut upstream = Watched::new(TokioIo::new(upstream), activity.clone());
    copy_until_idle(&mut client, &mut upstream, &activity, idle).await;
    drop(held);
}

/// Copies both ways until a side closes or `idle` passes without bytes.
async fn copy_until_idle<A, B>(a: &mut A, b: &mut B, activity: &Activity, idle: Duration)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let copy = tokio::io::copy_bidirectional(a, b);
    tokio::pin!(copy);
    loop {
        let deadline = activity.last() + idle;
        tokio::select! {
            result = &mut copy => {
                if let Err(error) = result {
                    tracing::debug!(%error, "proxied upgrade ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(deadline) => {
                if activity.last() + idle <= Instant::now() {
                    tracing::debug!(?idle, "closing an idle proxied upgrade");
                    return;
                }
            }
        }
    }
}

/// When bytes last moved, shared by both sides of a tunnel.
#[derive(Clone)]
struct Activity {
    /// The tunnel's start.
    start: Instant,
    /// Milliseconds from `start` to the last read of any bytes.
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// An IO that records when it reads bytes.
struct Watched<T> {
    inner: T,
    activity: Activity,
}

impl<T> Watched<T> {
    fn new(inner: T, activity: Activity) -> Self {
        Watched { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn only_listed_upgrades_are_tunnelled() {
        let allowed = vec!["websocket".to_string()];
        let ws = HeaderValue::from_static("WebSocket");
        assert_eq!(allowed_upgrade(&ws, &allowed).unwrap(), "WebSocket");
        assert!(allowed_upgrade(&HeaderValue::from_static("h2c"), &allowed).is_none());
        assert!(allowed_upgrade(&HeaderValue::from_static("TLS/1.0"), &allowed).is_none());
        let mixed = HeaderValue::from_static("h2c, websocket");
        assert_eq!(allowed_upgrade(&mixed, &allowed).unwrap(), "websocket");
        assert!(allowed_upgrade(&ws, &[]).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_lives_while_bytes_move_and_closes_when_idle() {
        let (mut client, client_side) = tokio::io::duplex(64);
        let (mut upstream, upstream_side) = tokio::io::duplex(64);
        let activity = Activity::new();
        let started = Instant::now();
        let copier = tokio::spawn({
            let activity = activity.clone();
            async move {
                let mut a = Watched::new(client_side, activity.clone());
                let mut b = Watched::new(upstream_side, activity.clone());
                copy_until_idle(&mut a, &mut b, &activity, Duration::from_secs(10)).await;
            }
        });
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(8)).await;
            client.write_all(b"ping").await.unwrap();
            let mut got = [0u8; 4];
            upstream.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
        }
        copier.await.unwrap();
        // 24 s of traffic every 8 s, then closed 10 s after the last byte.
        assert_eq!(started.elapsed(), Duration::from_secs(34));
    }
}
