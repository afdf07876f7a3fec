//! The accepted connection as hyper sees it: the bytes read while telling
//! HTTP/1 from HTTP/2 replayed first, and a deadline on writes a client
//! does not read — a client that stops reading cannot hold its connection
//! (and whatever the request holds upstream) forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The HTTP/2 connection preface a prior-knowledge client starts with.
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection's first bytes said.
#[derive(Debug, PartialEq, Eq)]
pub struct Sniffed {
    /// Whether they are the HTTP/2 preface.
    pub http2: bool,
    /// The bytes read to tell, to be replayed.
    pub prefix: Bytes,
}

/// Reads a connection's first bytes until they are the whole HTTP/2
/// preface or differ from it; `None` when the peer closed first. Waits on
/// the socket (no polling), so a client that sends part of the preface
/// costs nothing while it waits.
pub async fn sniff_http2<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<Sniffed>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut len = 0;
    loop {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(None);
        }
        len += n;
        let http2 = buf[..len] == H2_PREFACE[..len];
        if !http2 || len == H2_PREFACE.len() {
            let prefix = Bytes::copy_from_slice(&buf[..len]);
            return Ok(Some(Sniffed { http2, prefix }));
        }
    }
}

/// `inner` with `prefix` read first, and writes that fail with
/// [`io::ErrorKind::TimedOut`] once they have waited `send_timeout` without
/// progress.
pub struct ClientIo<S> {
    /// The connection.
    inner: S,
    /// Bytes already read from `inner`, handed out before it.
    prefix: Bytes,
    /// How long a write may wait for the client to read.
    send_timeout: Duration,
    /// Running while a write waits; cleared when one makes progress.
    stall: Option<Pin<Box<Sleep>>>,
}

impl<S> ClientIo<S> {
    /// Wraps `inner`, replaying `prefix` first.
    pub fn new(inner: S, prefix: Bytes, send_timeout: Duration) -> Self {
        ClientIo {
            inner,
            prefix,
            send_timeout,
            stall: None,
        }
    }

    /// `poll` as it is, except that a wait past the send timeout fails.
    fn deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stall = None;
            return poll;
        }
        let timeout = self.send_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {timeout:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        self.deadline(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.deadline(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.deadline(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.deadline(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{duplex, AsyncWriteExt};

    #[tokio::test]
    async fn the_first_bytes_tell_http2_from_http1_and_are_replayed() {
        for (sent, http2) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], false),
            (&H2_PREFACE[..], true),
        ] {
            let (mut client, server) = duplex(1024);
            client.write_all(sent).await.unwrap();
            let mut server = server;
            let sniffed = sniff_http2(&mut server).await.unwrap().unwrap();
            assert_eq!(sniffed.http2, http2);
            let mut io = ClientIo::new(server, sniffed.prefix, Duration::from_secs(1));
            let mut back = vec![0u8; sent.len()];
            io.read_exact(&mut back).await.unwrap();
            assert_eq!(back, sent);
        }
        let (client, mut server) = duplex(64);
        drop(client);
        assert_eq!(sniff_http2(&mut server).await.unwrap(), None);
    }

    /// A reader that counts how often it is polled.
    struct Counted<S>(S, Arc<AtomicUsize>);

    impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.1.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn part_of_the_preface_is_waited_for_without_polling() {
        let (mut client, server) = duplex(64);
        let polls = Arc::new(AtomicUsize::new(0));
        let mut server = Counted(server, polls.clone());
        client.write_all(b"P").await.unwrap();
        let sniffing = tokio::time::timeout(Duration::from_secs(10), sniff_http2(&mut server));
        assert!(sniffing.await.is_err(), "decided on one byte");
        assert!(polls.load(Ordering::Relaxed) <= 3, "{polls:?} polls in 10s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_does_not_read_fails_after_the_send_timeout() {
        let (mut client, server) = duplex(16);
        let mut io = ClientIo::new(server, Bytes::new(), Duration::from_secs(5));
        // Progress resets the deadline: 16 bytes fit, the client reads
        // them 4 s later, and the next 16 fit again.
        io.write_all(&[1; 16]).await.unwrap();
        let reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            let mut buf = [0u8; 16];
            client.read_exact(&mut buf).await.unwrap();
            client
        });
        io.write_all(&[2; 16]).await.unwrap();
        let _client = reader.await.unwrap();
        let started = tokio::time::Instant::now();
        let error = io.write_all(&[3; 16]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
            "{waited:?}"
        );
    }
}
