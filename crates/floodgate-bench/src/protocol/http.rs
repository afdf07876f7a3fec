//! `POST /v1/check` over one HTTP/1.1 keep-alive connection per worker,
//! spoken by a minimal client of the generator's own: each request is
//! written whole in one `write`, the answer's head parsed with httparse and
//! its body skipped by its `Content-Length`. It costs the generator a
//! fraction of what a general client (hyper's, one more task per
//! connection) costs, so the server measured, not the generator, sets the
//! rate: with the generator the bottleneck, the baseline idles between
//! requests and the comparison is not like for like. 200 is allowed, 429
//! denied. A connection that fails, times out or is closed by the server
//! is dropped and reopened on the next check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Outcome, RequestTemplate};
use crate::error::BenchError;
use crate::target::Target;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer head the client reads before giving up on it.
const MAX_HEAD: usize = 16 * 1024;

/// The most headers an answer may carry.
const MAX_HEADERS: usize = 32;

/// One keep-alive HTTP/1.1 connection to `/v1/check`.
#[derive(Debug)]
pub struct HttpClient {
    /// Where to (re)connect.
    addr: SocketAddr,
    /// The open connection, if any.
    conn: Option<TcpStream>,
    /// The request line and headers up to the `Content-Length` value.
    head: Vec<u8>,
    /// The JSON body up to the key index:
    /// `{"hits":H,"attributes":{…,"user":"<prefix>`.
    body_head: Vec<u8>,
    /// The request being written, reused from check to check.
    request: Vec<u8>,
    /// What has been read of the answer, reused from check to check.
    read: Vec<u8>,
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
        let conn = open(addr).await.map_err(|message| BenchError::Connect {
            addr,
            protocol: "http",
            message,
        })?;
        Ok(HttpClient {
            addr,
            conn: Some(conn),
            head: request_head(addr),
            body_head: body_head(&template),
            request: Vec::with_capacity(512),
            read: Vec::with_capacity(4096),
        })
    }

    /// One `POST /v1/check` for key `index`.
    pub async fn check(&mut self, index: u64) -> Outcome {
        match self.send(index).await {
            Ok(200) => Outcome::Allowed,
            Ok(429) => Outcome::Denied,
            Ok(status) => Outcome::Status(status.to_string()),
            Err(message) => {
                self.reset();
                Outcome::Transport(message)
            }
        }
    }

    /// Drops the connection (after an error or a timeout, when the state of
    /// the connection is unknown); the next check reconnects.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    async fn send(&mut self, index: u64) -> Result<u16, String> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(open(self.addr).await?),
        };
        let mut index_digits = itoa::Buffer::new();
        let index = index_digits.format(index).as_bytes();
        let body_len = self.body_head.len() + index.len() + 3;
        self.request.clear();
        self.request.extend_from_slice(&self.head);
        self.request
            .extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        self.request.extend_from_slice(b"\r\n\r\n");
        self.request.extend_from_slice(&self.body_head);
        self.request.extend_from_slice(index);
        self.request.extend_from_slice(b"\"}}");
        conn.write_all(&self.request)
            .await
            .map_err(|e| format!("http: {e}"))?;
        self.read.clear();
        let answer = loop {
            if let Some(answer) = parse_answer(&self.read)? {
                if self.read.len() >= answer.len {
                    break answer;
                }
            }
            if self.read.len() == self.read.capacity() {
                self.read.reserve(4096);
            }
            let n = conn
                .read_buf(&mut self.read)
                .await
                .map_err(|e| format!("http: {e}"))?;
            if n == 0 {
                return Err("http: the server closed the connection".to_string());
            }
        };
        if self.read.len() > answer.len {
            return Err("http: bytes after the answer, none asked for".to_string());
        }
        if answer.close {
            self.reset();
        }
        Ok(answer.status)
    }
}

/// An answer's head as far as the client needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    /// The status code.
    status: u16,
    /// Head and body together, in bytes.
    len: usize,
    /// Whether the server closes the connection after it.
    close: bool,
}

/// The answer whose first bytes are `read`: `None` while its head is
/// incomplete; an error for an answer this client cannot frame (no
/// `Content-Length`, a chunked body, a head too large or malformed).
fn parse_answer(read: &[u8]) -> Result<Option<Answer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(read) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if read.len() > MAX_HEAD => {
            return Err(format!("http: an answer head over {MAX_HEAD} bytes"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("http: malformed answer: {e}")),
    };
    let mut body_len = None;
    let mut close = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or("http: an answer with an invalid Content-Length")?;
            body_len = Some(len);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("http: a chunked answer (the client reads Content-Length bodies)".into());
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = header.value.eq_ignore_ascii_case(b"close");
        }
    }
    let status = response.code.unwrap_or_default();
    let body_len =
        body_len.ok_or_else(|| format!("http: a {status} answer without Content-Length"))?;
    Ok(Some(Answer {
        status,
        len: head_len + body_len,
        close,
    }))
}

/// Connects, with Nagle off.
async fn open(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// `POST /v1/check HTTP/1.1` with `Host` and `Content-Type`, up to the
/// `Content-Length` value.
fn request_head(addr: SocketAddr) -> Vec<u8> {
    format!(
        "POST /v1/check HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: "
    )
    .into_bytes()
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

    #[test]
    fn an_answer_is_framed_by_its_content_length() {
        let answer = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nContent-Length: 5\r\n\r\n{\"a\"}";
        let whole = Answer {
            status: 429,
            len: answer.len(),
            close: false,
        };
        // Each prefix of the head is incomplete; from the head on, the
        // answer's length is known whether its body has arrived or not.
        let head = answer.len() - 5;
        for cut in 0..head {
            assert_eq!(parse_answer(&answer[..cut]), Ok(None), "{cut}");
        }
        for cut in head..=answer.len() {
            assert_eq!(parse_answer(&answer[..cut]), Ok(Some(whole)), "{cut}");
        }
        let closing =
            b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            parse_answer(closing),
            Ok(Some(Answer {
                status: 408,
                len: closing.len(),
                close: true
            }))
        );
    }

    #[test]
    fn an_answer_the_client_cannot_frame_is_an_error() {
        for (answer, says) in [
            (
                &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"[..],
                "chunked",
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", "without Content-Length"),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 12x\r\n\r\n",
                "invalid Content-Length",
            ),
            (b"HTTQ/1.1 200 OK\r\n\r\n", "malformed"),
        ] {
            let error = parse_answer(answer).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
        let endless = [b"HTTP/1.1 200 OK\r\n".to_vec(), vec![b'x'; MAX_HEAD]].concat();
        assert!(parse_answer(&endless).unwrap_err().contains("over"));
    }

    #[test]
    fn the_request_is_one_valid_http_request() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut request = httparse::Request::new(&mut headers);
        let mut bytes = request_head("127.0.0.1:9".parse().unwrap());
        bytes.extend_from_slice(b"2\r\n\r\n{}");
        let head = match request.parse(&bytes) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("{other:?}"),
        };
        assert_eq!(request.method, Some("POST"));
        assert_eq!(request.path, Some("/v1/check"));
        assert_eq!(&bytes[head..], b"{}");
    }
}
