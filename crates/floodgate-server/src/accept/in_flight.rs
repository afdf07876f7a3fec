//! Requests in flight on one connection, so a connection with none for
//! `idle_timeout` can be closed. HTTP/2 pings keep a silent connection
//! alive at the TCP and HTTP/2 level (every client answers them), so only
//! the absence of requests tells an idle connection from a busy one.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::stall::{Stall, Stalls};

/// The count of requests in flight on one connection: from the request's
/// arrival until its response body is sent (or dropped).
///
/// A request costs two atomic updates and a clock read: the idle watch is
/// lazy. It sleeps for the whole timeout, then looks at the count and at
/// when the last request ended, and sleeps again for what is left — it is
/// never woken by a request, and sets no timer per request.
#[derive(Debug, Clone)]
pub struct InFlight(Arc<Shared>);

/// One request in flight; dropping it ends it.
#[derive(Debug)]
pub struct InFlightGuard(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    /// Requests in flight.
    count: AtomicUsize,
    /// When the last request ended, in ns since `base`.
    last_end_ns: AtomicU64,
    /// The connection's start.
    base: Instant,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl InFlight {
    /// No request in flight yet.
    pub fn new() -> Self {
        InFlight(Arc::new(Shared {
            count: AtomicUsize::new(0),
            last_end_ns: AtomicU64::new(0),
            base: Instant::now(),
        }))
    }

    /// A request begins.
    pub fn start(&self) -> InFlightGuard {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }

    /// Whether no request is in flight now.
    pub fn is_idle(&self) -> bool {
        self.0.count.load(Ordering::Acquire) == 0
    }

    /// Resolves once no request has been in flight for `timeout` in a row,
    /// counting from this call at the earliest.
    pub async fn idle_for(&self, timeout: Duration) {
        let called_ns = self.0.now_ns();
        let mut wait = timeout;
        loop {
            tokio::time::sleep(wait).await;
            if self.0.count.load(Ordering::Acquire) > 0 {
                wait = timeout;
                continue;
            }
            let idle_since = self.0.last_end_ns.load(Ordering::Acquire).max(called_ns);
            let idle = Duration::from_nanos(self.0.now_ns().saturating_sub(idle_since));
            match timeout.checked_sub(idle) {
                Some(left) if !left.is_zero() => wait = left,
                _ => return,
            }
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let now = self.0.now_ns();
        self.0.last_end_ns.fetch_max(now, Ordering::AcqRel);
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A response body (`inner`) that keeps its request in flight until it
    /// is dropped (its `_guard` ends the request), and tells its
    /// connection's [`Stalls`] when it waits to be polled (`stall`).
    ///
    /// [`Stalls`]: super::stall::Stalls
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        _guard: InFlightGuard,
        stall: Option<Stall>,
    }
}

impl<B> Tracked<B> {
    /// `inner`, holding `guard`, watched by `stall` (if any).
    pub fn new(inner: B, guard: InFlightGuard, stall: Option<Stall>) -> Self {
        Tracked {
            inner,
            _guard: guard,
            stall,
        }
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        if let Some(stall) = this.stall {
            stall.polled();
        }
        let polled = this.inner.poll_frame(cx);
        match (&polled, &*this.stall) {
            (Poll::Ready(Some(Ok(_))), Some(stall)) => stall.waiting(),
            (Poll::Ready(_), _) => *this.stall = None,
            (Poll::Pending, _) => {}
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

pin_project_lite::pin_project! {
    /// A request's answer (`answer`) whose response body, once it comes,
    /// is [`Tracked`] with the request's `guard` and a slot in `stalls`.
    ///
    /// Named rather than written as an `async` block: that block would
    /// hold the answer's future twice (captured, then moved into its
    /// `.await`), and hyper copies a request's future whole when it stores
    /// it.
    pub struct Answering<F> {
        #[pin]
        answer: F,
        guard: Option<InFlightGuard>,
        stalls: Stalls,
    }
}

impl<F> Answering<F> {
    /// `answer`, in flight under `guard`, its body watched by `stalls`.
    pub fn new(answer: F, guard: InFlightGuard, stalls: Stalls) -> Self {
        Answering {
            answer,
            guard: Some(guard),
            stalls,
        }
    }
}

impl<F, B> Future for Answering<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<Tracked<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Poll::Ready(Ok(response)) = this.answer.poll(cx) else {
            return Poll::Pending;
        };
        let guard = this
            .guard
            .take()
            .expect("Answering polled after its answer");
        let stall = this.stalls.body();
        Poll::Ready(Ok(
            response.map(|body| Tracked::new(body, guard, Some(stall)))
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_means_no_request_for_the_whole_timeout() {
        let in_flight = InFlight::new();
        let started = Instant::now();
        in_flight.idle_for(Duration::from_secs(5)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        // A request held for 8 s, then 5 s idle.
        let guard = in_flight.start();
        let request = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(8)).await;
            drop(guard);
        });
        let started = Instant::now();
        in_flight.idle_for(Duration::from_secs(5)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(13));
        request.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn requests_that_keep_coming_keep_the_connection_open() {
        let in_flight = InFlight::new();
        let busy = in_flight.clone();
        // One short request every 4 s for 20 s: never 5 s idle until the end.
        let requests = tokio::spawn(async move {
            for _ in 0..5 {
                let guard = busy.start();
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(guard);
                tokio::time::sleep(Duration::from_millis(3_990)).await;
            }
        });
        let started = Instant::now();
        in_flight.idle_for(Duration::from_secs(5)).await;
        // The last request ended at 16.01 s: idle from then for 5 s.
        assert_eq!(started.elapsed(), Duration::from_millis(21_010));
        requests.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_body_keeps_its_request_in_flight() {
        let in_flight = InFlight::new();
        let body = Tracked::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
            in_flight.start(),
            None,
        );
        let idle = in_flight.idle_for(Duration::from_secs(1));
        assert!(tokio::time::timeout(Duration::from_secs(30), idle)
            .await
            .is_err());
        drop(body);
        let idle = in_flight.idle_for(Duration::from_secs(1));
        assert!(tokio::time::timeout(Duration::from_secs(2), idle)
            .await
            .is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_waits_from_its_start_and_between_frames_but_not_after_its_end() {
        use crate::accept::stall::Stalls;
        use http_body_util::BodyExt;
        let (in_flight, stalls) = (InFlight::new(), Stalls::default());
        let stalled = |stalls: Stalls| async move {
            let wait = stalls.stalled_for(Duration::from_secs(1));
            tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .is_ok()
        };
        let full = http_body_util::Full::new(bytes::Bytes::from_static(b"data"));
        let mut body = Tracked::new(full, in_flight.start(), Some(stalls.body()));
        assert!(
            stalled(stalls.clone()).await,
            "not waiting before its first poll"
        );
        body.frame().await.unwrap().unwrap();
        assert!(stalled(stalls.clone()).await, "not waiting after a frame");
        assert!(body.frame().await.is_none());
        assert!(!stalled(stalls.clone()).await, "waiting after its end");
    }
}
