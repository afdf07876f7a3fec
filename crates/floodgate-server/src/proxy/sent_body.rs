//! A request body that tells when it has been sent: the proxy's
//! `response_timeout` counts from the end of the upload, so a slow but
//! moving upload (bounded by `body_idle_timeout`) is not mistaken for a
//! slow upstream.

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

/// `inner`, dropping its sender once the body has ended (or is dropped):
/// the paired receiver then resolves.
pub struct SentBody<B> {
    /// The body being sent.
    inner: B,
    /// Dropped at the end of the body.
    done: Option<oneshot::Sender<()>>,
}

impl<B: Body> SentBody<B> {
    /// Wraps `inner`; the receiver resolves when it has been sent. A body
    /// that is empty from the start counts as sent at once.
    pub fn new(inner: B) -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let done = (!inner.is_end_stream()).then_some(tx);
        (SentBody { inner, done }, rx)
    }
}

impl<B> Body for SentBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || self.inner.is_end_stream() {
            self.done = None;
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn the_receiver_resolves_when_the_body_has_been_read() {
        let (mut body, mut sent) = SentBody::new(Full::new(Bytes::from_static(b"upload")));
        assert!(sent
            .try_recv()
            .is_err_and(|e| e == oneshot::error::TryRecvError::Empty));
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "upload");
        assert!(matches!(
            sent.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        let (empty, sent) = SentBody::new(http_body_util::Empty::<Bytes>::new());
        drop(empty);
        assert!(sent.await.is_err());
        let (_empty, mut sent) = SentBody::new(http_body_util::Empty::<Bytes>::new());
        assert!(matches!(
            sent.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}
