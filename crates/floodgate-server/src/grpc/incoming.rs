//! The gRPC listener's connections, capped: tonic has no connection limit,
//! so this accept loop takes a slot under `max_connections` for each
//! connection and hands tonic a stream of connections that hold their slot
//! until they close. A connection that sends nothing within the header-read
//! timeout is closed before tonic sees it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use floodgate_config::server::Limits;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::accept::{connection_cap, sniff_http2, tune};

/// An accepted connection and its slot under `max_connections`.
pub struct Permitted {
    /// The connection.
    stream: TcpStream,
    /// Released when the connection is dropped.
    _permit: OwnedSemaphorePermit,
}

impl Connected for Permitted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Permitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Permitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts on `listener` until `shutdown`, at most `max_connections` open
/// at once; the stream of connections for tonic.
pub fn capped(
    listener: TcpListener,
    max_connections: usize,
    limits: Limits,
    shutdown: CancellationToken,
) -> ReceiverStream<std::io::Result<Permitted>> {
    let (tx, rx) = mpsc::channel(16);
    let permits = connection_cap(max_connections);
    tokio::spawn(accept(listener, permits, limits, tx, shutdown));
    ReceiverStream::new(rx)
}

async fn accept(
    listener: TcpListener,
    permits: Arc<Semaphore>,
    limits: Limits,
    tx: mpsc::Sender<std::io::Result<Permitted>>,
    shutdown: CancellationToken,
) {
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, listener = "grpc", "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tune(&stream, limits.tcp_keepalive);
        let tx = tx.clone();
        let wait = limits.header_read_timeout;
        tokio::spawn(async move {
            // Only a connection that starts talking in time reaches tonic.
            match tokio::time::timeout(wait, sniff_http2(&stream)).await {
                Ok(Ok(Some(_))) => {
                    let _ = tx
                        .send(Ok(Permitted {
                            stream,
                            _permit: permit,
                        }))
                        .await;
                }
                Ok(_) => {}
                Err(_) => {
                    tracing::debug!(listener = "grpc", "closed a connection that sent nothing")
                }
            }
        });
    }
}
