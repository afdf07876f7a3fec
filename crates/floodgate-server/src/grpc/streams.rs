//! Streaming calls (health `Watch`, server reflection) held to the call's
//! time limit. The listener's limit covers a call until its response head;
//! a stream's body goes on after that, and one the client keeps open would
//! hold its connection — and a `max_connections` slot — for ever, since a
//! connection with a call in flight is never idle. Past the limit the
//! stream ends with `CANCELLED`, as a unary call does.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

pin_project_lite::pin_project! {
    /// A response body (`inner`) that ends with `CANCELLED` trailers at
    /// `until` if it has not ended by then.
    pub struct TimeLimited<B> {
        #[pin]
        inner: B,
        #[pin]
        until: Sleep,
        ended: bool,
    }
}

impl<B> TimeLimited<B> {
    /// `inner`, ended at `until` at the latest.
    pub fn new(inner: B, until: Instant) -> Self {
        TimeLimited {
            inner,
            until: tokio::time::sleep_until(until),
            ended: false,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for TimeLimited<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            // Trailers and errors end a body as surely as its end does.
            *this.ended = match &frame {
                Some(Ok(frame)) => frame.is_trailers(),
                Some(Err(_)) | None => true,
            };
            return Poll::Ready(frame);
        }
        ready!(this.until.poll(cx));
        *this.ended = true;
        let mut trailers = HeaderMap::new();
        // Only fails for a message that is not a valid header value.
        let _ = tonic::Status::cancelled("Timeout expired").add_header(&mut trailers);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::time::Duration;
    use tonic::codegen::tokio_stream;

    #[tokio::test(start_paused = true)]
    async fn a_stream_past_its_limit_ends_with_cancelled() {
        // A stream that sends one message and then nothing, for ever.
        let frames = tokio_stream_of_one_then_pending();
        let mut body = std::pin::pin!(TimeLimited::new(
            StreamBody::new(frames),
            Instant::now() + Duration::from_secs(1)
        ));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "message");
        let last = body.frame().await.unwrap().unwrap();
        let trailers = last.into_trailers().unwrap();
        assert_eq!(trailers["grpc-status"], "1");
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_ends_in_time_is_left_alone() {
        let mut body = std::pin::pin!(TimeLimited::new(
            http_body_util::Full::new(Bytes::from_static(b"whole")),
            Instant::now() + Duration::from_secs(1)
        ));
        let whole = body.frame().await.unwrap().unwrap();
        assert_eq!(whole.into_data().unwrap(), "whole");
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_sent_its_trailers_gets_no_second_ones() {
        use tokio_stream::StreamExt;
        let mut ok = HeaderMap::new();
        ok.insert("grpc-status", http::HeaderValue::from_static("0"));
        let frames = tokio_stream::once(Ok::<_, std::convert::Infallible>(Frame::trailers(ok)))
            .chain(tokio_stream::pending());
        let mut body = std::pin::pin!(TimeLimited::new(
            StreamBody::new(frames),
            Instant::now() + Duration::from_secs(1)
        ));
        let trailers = body
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_trailers()
            .unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(body.frame().await.is_none(), "ended with its own trailers");
    }

    fn tokio_stream_of_one_then_pending(
    ) -> impl tokio_stream::Stream<Item = Result<Frame<Bytes>, std::convert::Infallible>> {
        use tokio_stream::StreamExt;
        tokio_stream::once(Ok(Frame::data(Bytes::from_static(b"message"))))
            .chain(tokio_stream::pending())
    }
}
