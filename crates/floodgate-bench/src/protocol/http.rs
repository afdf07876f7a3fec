//! `POST /v1/check` over one HTTP/1.1 keep-alive connection per worker
//! (hyper's client connection API, no pool): 200 is allowed, 429 denied.
//! A connection that fails or times out is dropped and reopened on the next
//! check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::{Outcome, RequestTemplate};
use crate::error::BenchError;
use crate::target::Target;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One keep-alive HTTP/1.1 connection to `/v1/check`.
#[derive(Debug)]
pub struct HttpClient {
    /// Where to (re)connect.
    addr: SocketAddr,
    /// The `Host` header value.
    host: HeaderValue,
    /// The open connection, if any: its request handle and the task driving it.
    conn: Option<(SendRequest<Full<Bytes>>, JoinHandle<()>)>,
    /// The JSON body up to the key index:
    /// `{"hits":H,"attributes":{…,"user":"<prefix>`.
    body_head: Vec<u8>,
}

impl HttpClient {
    /// Opens one connection to `target`.
    ///
    /// # Errors
    /// [`BenchError::Connect`] when the connection cannot be opened.
    pub async fn connect(
        target: &Target,
        template: Arc<RequestTemplate>,
    ) -> Result<HttpClient, BenchError> {
        let addr = target.addr();
        let host = HeaderValue::from_str(&addr.to_string()).map_err(|e| BenchError::Connect {
            addr,
            protocol: "http",
            message: e.to_string(),
        })?;
        let mut client = HttpClient {
            addr,
            host,
            conn: None,
            body_head: body_head(&template),
        };
        client.conn = Some(open(addr).await.map_err(|message| BenchError::Connect {
            addr,
            protocol: "http",
            message,
        })?);
        Ok(client)
    }

    /// One `POST /v1/check` for key `index`.
    pub async fn check(&mut self, index: u64) -> Outcome {
        match self.send(index).await {
            Ok(status) if status == StatusCode::OK => Outcome::Allowed,
            Ok(status) if status == StatusCode::TOO_MANY_REQUESTS => Outcome::Denied,
            Ok(status) => Outcome::Status(status.as_u16().to_string()),
            Err(message) => {
                self.reset();
                Outcome::Transport(message)
            }
        }
    }

    /// Drops the connection (after an error or a timeout, when the state of
    /// the connection is unknown); the next check reconnects.
    pub fn reset(&mut self) {
        if let Some((_, task)) = self.conn.take() {
            task.abort();
        }
    }

    async fn send(&mut self, index: u64) -> Result<StatusCode, String> {
        if self
            .conn
            .as_ref()
            .is_none_or(|(sender, _)| sender.is_closed())
        {
            self.reset();
            self.conn = Some(open(self.addr).await?);
        }
        let Some((sender, _)) = self.conn.as_mut() else {
            return Err("no connection".to_string());
        };
        let mut body = Vec::with_capacity(self.body_head.len() + 24);
        body.extend_from_slice(&self.body_head);
        body.extend_from_slice(index.to_string().as_bytes());
        body.extend_from_slice(b"\"}}");
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/check")
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        sender.ready().await.map_err(|e| format!("http: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("http: {e}"))?;
        let status = response.status();
        // Read the body so the connection can carry the next request.
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("http body: {e}"))?;
        Ok(status)
    }
}

impl Drop for HttpClient {
    fn drop(&mut self) {
        self.reset();
    }
}

/// Connects and performs the HTTP/1.1 handshake; spawns the connection task.
async fn open(addr: SocketAddr) -> Result<(SendRequest<Full<Bytes>>, JoinHandle<()>), String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    let task = tokio::spawn(async move {
        // An error here surfaces on the next request through `sender`.
        let _ = connection.await;
    });
    Ok((sender, task))
}

/// `{"hits":H,"attributes":{"a":"x",…,"user":"<prefix>` with every name and
/// value JSON-escaped; the check appends the key index and `"}}`.
fn body_head(template: &RequestTemplate) -> Vec<u8> {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let mut head = format!("{{\"hits\":{},\"attributes\":{{", template.hits);
    for (name, value) in &template.attributes {
        head.push_str(&quote(name));
        head.push(':');
        head.push_str(&quote(value));
        head.push(',');
    }
    let prefix = quote(&template.key_prefix);
    head.push_str("\"user\":");
    // The quoted prefix without its closing quote.
    head.push_str(&prefix[..prefix.len() - 1]);
    head.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_valid_json_with_escaped_values() {
        let template = RequestTemplate {
            key_prefix: "we\"ird-".to_string(),
            attributes: [("endpoint".to_string(), "a\\i".to_string())].into(),
            tenants: None,
            hits: 3,
            domain: String::new(),
        };
        let mut body = body_head(&template);
        body.extend_from_slice(b"42\"}}");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["hits"], 3);
        assert_eq!(json["attributes"]["user"], "we\"ird-42");
        assert_eq!(json["attributes"]["endpoint"], "a\\i");
    }
}
