//! Concurrency leases of proxied requests: held while the upstream's
//! response streams (or a WebSocket stays open), released when it ends, when
//! the client goes away, and — for whatever is still open — at shutdown.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::app::App;

/// The leases of requests in flight through the proxy.
pub struct Leases {
    /// Who releases them.
    app: Arc<App>,
    /// Tokens not yet released; whoever removes a token releases it, so
    /// each is released exactly once.
    live: Mutex<HashSet<String>>,
}

impl Leases {
    /// No lease held yet.
    pub fn new(app: Arc<App>) -> Arc<Leases> {
        Arc::new(Leases {
            app,
            live: Mutex::new(HashSet::new()),
        })
    }

    /// Holds `token` until the returned guard drops.
    pub fn hold(self: &Arc<Self>, token: String) -> LeaseGuard {
        self.lock().insert(token.clone());
        LeaseGuard {
            leases: self.clone(),
            token,
        }
    }

    /// Releases every lease still held (at shutdown, after the drain).
    pub async fn release_all(&self) {
        let tokens: Vec<String> = self.lock().drain().collect();
        if !tokens.is_empty() {
            tracing::info!(leases = tokens.len(), "releasing proxied requests' leases");
        }
        for token in tokens {
            release(&self.app, &token).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn release(app: &App, token: &str) {
    if let Err(error) = app.limiter.release(token).await {
        tracing::debug!(%error, "releasing a proxied request's lease failed");
    }
}

/// One held lease; dropping it releases the lease (in the background).
pub struct LeaseGuard {
    /// The registry it is held in.
    leases: Arc<Leases>,
    /// The lease token.
    token: String,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if self.leases.lock().remove(&self.token) {
            let app = self.leases.app.clone();
            let token = std::mem::take(&mut self.token);
            tokio::spawn(async move { release(&app, &token).await });
        }
    }
}

/// The upstream's response body, holding the request's lease until the
/// body ends or is dropped (the client went away).
pub struct LeaseBody {
    /// The upstream's body, streamed frame by frame.
    inner: Incoming,
    /// Released at the end of the body.
    guard: Option<LeaseGuard>,
}

impl LeaseBody {
    /// `inner`, holding `guard` (if any) until it ends.
    pub fn new(inner: Incoming, guard: Option<LeaseGuard>) -> Self {
        LeaseBody { inner, guard }
    }
}

impl Body for LeaseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.guard.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
