//! `floodgate.v1.RateLimiter/Check` over one HTTP/2 connection per
//! connection slot, shared by the slot's in-flight workers (HTTP/2
//! multiplexes them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use floodgate_proto::floodgate::v1::{CheckRequest, CheckResponse};

use super::{Outcome, RequestTemplate};
use crate::error::BenchError;
use crate::target::Target;

/// How long the first connection of a slot may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A floodgate.v1 client on a shared channel.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    /// The connection (a cheap handle on it).
    channel: Channel,
    /// What each check carries.
    template: Arc<RequestTemplate>,
}

impl GrpcClient {
    /// Opens one HTTP/2 channel to `target`.
    ///
    /// # Errors
    /// [`BenchError::Connect`] when the channel cannot be established.
    pub async fn connect(
        target: &Target,
        template: Arc<RequestTemplate>,
    ) -> Result<GrpcClient, BenchError> {
        let channel = open_channel(target, "grpc", "/floodgate.v1.RateLimiter/Check").await?;
        Ok(GrpcClient { channel, template })
    }

    /// One `Check` for key `index`.
    pub async fn check(&mut self, index: u64) -> Outcome {
        let mut attributes: BTreeMap<String, String> = self
            .template
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        attributes.insert("user".to_string(), self.template.user(index));
        if let Some(tenant) = self.template.tenant(index) {
            attributes.insert("tenant".to_string(), tenant);
        }
        let request = CheckRequest {
            attributes,
            hits: Some(self.template.hits),
            ..CheckRequest::default()
        };
        let answer: Result<CheckResponse, Outcome> = self.channel.unary(&request).await;
        match answer {
            Ok(response) if response.allowed => Outcome::Allowed,
            Ok(_) => Outcome::Denied,
            Err(outcome) => outcome,
        }
    }
}

/// One HTTP/2 connection carrying unary calls of one gRPC method, on the `h2` crate
/// directly: the generator's CPU is taken from the sidecar it measures on a
/// 2-core machine, and tonic's client (a buffer task, or hyper's client
/// with one spawned task per request, and a streaming codec) costs several
/// times what one request needs. A call here is: encode, one HEADERS and
/// one DATA frame, await the answer on the caller's own task.
#[derive(Debug, Clone)]
pub(super) struct Channel {
    /// h2's handle on the connection (cheap to clone; shares it).
    send: h2::client::SendRequest<Bytes>,
    /// `http://<addr>/<package.Service>/<Method>`, what every request names.
    uri: http::Uri,
}

/// The 5-byte gRPC message prefix: not compressed, then the length.
const PREFIX: usize = 5;

impl Channel {
    /// Calls the channel's method with `request` and decodes the answer;
    /// any failure is already the [`Outcome`] to record.
    pub(super) async fn unary<Req: prost::Message, Resp: prost::Message + Default>(
        &mut self,
        request: &Req,
    ) -> Result<Resp, Outcome> {
        let transport = |what: &str, e: h2::Error| Outcome::Transport(format!("{what}: {e}"));
        let head = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(())
            .map_err(|e| Outcome::Transport(format!("bad request: {e}")))?;
        let length = request.encoded_len();
        let mut body = BytesMut::with_capacity(PREFIX + length);
        body.put_u8(0);
        body.put_u32(length as u32);
        request
            .encode(&mut body)
            .map_err(|e| Outcome::Transport(format!("encode: {e}")))?;

        let mut send = self
            .send
            .clone()
            .ready()
            .await
            .map_err(|e| transport("connection", e))?;
        let (response, mut stream) = send
            .send_request(head, false)
            .map_err(|e| transport("send", e))?;
        stream
            .send_data(body.freeze(), true)
            .map_err(|e| transport("send", e))?;
        let response = response.await.map_err(|e| transport("response", e))?;
        if response.status() != http::StatusCode::OK {
            return Err(Outcome::Status(format!(
                "http:{}",
                response.status().as_u16()
            )));
        }
        // A trailers-only answer (an error) carries grpc-status in its headers.
        if let Some(code) = grpc_status(response.headers()) {
            if code != 0 {
                return Err(status_outcome(code));
            }
        }
        let mut body = response.into_body();
        let mut message = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| transport("body", e))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            message.extend_from_slice(&chunk);
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|e| transport("trailers", e))?;
        match trailers.as_ref().and_then(grpc_status) {
            Some(0) => {}
            Some(code) => return Err(status_outcome(code)),
            None => return Err(Outcome::Transport("no grpc-status".into())),
        }
        if message.len() < PREFIX {
            return Err(Outcome::Transport("short gRPC message".into()));
        }
        let length = u32::from_be_bytes([message[1], message[2], message[3], message[4]]) as usize;
        if message[0] != 0 || message.len() != PREFIX + length {
            return Err(Outcome::Transport("malformed gRPC message".into()));
        }
        Resp::decode(&message[PREFIX..]).map_err(|e| Outcome::Transport(format!("decode: {e}")))
    }
}

/// The `grpc-status` header of `headers`, if any.
fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The outcome of a non-OK gRPC status: `grpc:<Code>`, as tonic names it.
fn status_outcome(code: i32) -> Outcome {
    Outcome::Status(format!("grpc:{:?}", tonic::Code::from(code)))
}

/// Connects an HTTP/2 connection to a loopback target for calls of `path`
/// (`/package.Service/Method`; shared with Envoy RLS).
pub(super) async fn open_channel(
    target: &Target,
    protocol: &'static str,
    path: &'static str,
) -> Result<Channel, BenchError> {
    let addr = target.addr();
    let error = |message: String| BenchError::Connect {
        addr,
        protocol,
        message,
    };
    let uri: http::Uri = format!("http://{addr}{path}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| error(e.to_string()))?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| error(format!("no connection within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| error(e.to_string()))?;
    tcp.set_nodelay(true).map_err(|e| error(e.to_string()))?;
    let (send, connection) = h2::client::handshake(tcp)
        .await
        .map_err(|e| error(format!("{e}: {}", source_chain(&e))))?;
    // The connection's I/O runs until the handle and every clone are gone.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Channel { send, uri })
}

/// The `source()` chain of an error, joined, for messages that say why.
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut next = error.source();
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    parts.join(": ")
}
