//! A body that gives up when it moves no data for too long, so a stalled
//! client upload or upstream response does not hold a connection (and its
//! lease) forever.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Every error a proxied body ends with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a body was cut.
#[derive(Debug)]
pub struct BodyStalled(Duration);

impl std::fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no body data for {:?}", self.0)
    }
}

impl std::error::Error for BodyStalled {}

/// `inner`, failing with [`BodyStalled`] when a frame takes longer than
/// `idle` to arrive once it was asked for.
pub struct IdleBody<B> {
    /// The body being passed on.
    inner: B,
    /// The longest wait for one frame.
    idle: Duration,
    /// Fires `idle` after the wait for the current frame began.
    timer: Pin<Box<Sleep>>,
    /// Whether a wait is being timed.
    waiting: bool,
}

impl<B> IdleBody<B> {
    /// Wraps `inner` with an idle timeout of `idle`.
    pub fn new(inner: B, idle: Duration) -> Self {
        IdleBody {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
        }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let deadline = Instant::now() + this.idle;
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyStalled(this.idle).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_cut_and_a_moving_one_is_not() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let stream = futures_stream(rx);
        let mut body = IdleBody::new(StreamBody::new(stream), Duration::from_secs(2));
        for _ in 0..3 {
            let sender = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = sender.send(Ok(Frame::data(Bytes::from_static(b"x")))).await;
            });
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), "x");
        }
        let started = Instant::now();
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(error.to_string().contains("no body data"), "{error}");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        drop(tx);
    }

    /// A `Stream` over an mpsc receiver.
    fn futures_stream<T>(
        rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl tonic::codegen::tokio_stream::Stream<Item = T> + Unpin {
        struct S<T>(tokio::sync::mpsc::Receiver<T>);
        impl<T> tonic::codegen::tokio_stream::Stream for S<T> {
            type Item = T;
            fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
                self.0.poll_recv(cx)
            }
        }
        S(rx)
    }
}
