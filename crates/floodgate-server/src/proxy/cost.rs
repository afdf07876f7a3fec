//! Metered endpoint classes in the proxy (`cost` of an `[[endpoint]]`):
//! the estimate a request reserves — the configured number, or an integer
//! field of the request's JSON body (`max_tokens`), read from at most
//! `max_request_body` bytes — and the request body forwarded unchanged
//! after that read.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use floodgate_config::cost::Cost;
use floodgate_core::MAX_HITS;
use http::Request;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// A request body whose first bytes were already read: they go first, then
/// the rest as it comes.
pub struct PrefixedBody {
    /// What was read for the estimate, sent first.
    prefix: Option<Bytes>,
    /// The rest of the client's body (`None` once it ended).
    rest: Option<Incoming>,
}

impl PrefixedBody {
    /// The whole body, nothing read.
    pub fn whole(body: Incoming) -> Self {
        PrefixedBody {
            prefix: None,
            rest: Some(body),
        }
    }
}

impl Body for PrefixedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        match this.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let rest = self
            .rest
            .as_ref()
            .map_or(SizeHint::with_exact(0), Body::size_hint);
        let mut hint = SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + prefix);
        }
        hint.set_lower(rest.lower() + prefix);
        hint
    }
}

/// The estimate `cost` gives `req`, and the request to forward. Reads the
/// body only for `estimate_from`, at most `max_request_body` bytes and for
/// at most `idle` per frame; a body that is larger, slower, not JSON or
/// without the field gets the configured estimate.
pub async fn estimate(
    cost: &Cost,
    req: Request<Incoming>,
    idle: Duration,
) -> (u64, Request<PrefixedBody>) {
    let Some(field) = &cost.estimate_from else {
        return (cost.estimate, req.map(PrefixedBody::whole));
    };
    let (parts, mut body) = req.into_parts();
    let cap = usize::try_from(cost.max_request_body).unwrap_or(usize::MAX);
    let mut read = BytesMut::new();
    let mut ended = body.is_end_stream();
    while !ended && read.len() <= cap {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    read.extend_from_slice(data);
                }
                ended = body.is_end_stream();
            }
            Ok(None) => ended = true,
            // An error or a stall: forward what came; the upstream sees the
            // same failure when it reads on.
            Ok(Some(Err(_))) | Err(_) => break,
        }
    }
    let hits = if ended && read.len() <= cap {
        from_json(&read, field).unwrap_or(cost.estimate)
    } else {
        cost.estimate
    };
    let body = PrefixedBody {
        prefix: (!read.is_empty()).then(|| read.freeze()),
        rest: (!ended).then_some(body),
    };
    (hits, Request::from_parts(parts, body))
}

/// The positive integer at top-level `field` of a JSON object, capped.
fn from_json(bytes: &[u8], field: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let n = value.get(field)?.as_u64()?;
    (n > 0).then_some(n.min(MAX_HITS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_the_field_when_present() {
        assert_eq!(
            from_json(br#"{"model":"m","max_tokens":256}"#, "max_tokens"),
            Some(256)
        );
        assert_eq!(from_json(br#"{"max_tokens":0}"#, "max_tokens"), None);
        assert_eq!(from_json(br#"{"max_tokens":"256"}"#, "max_tokens"), None);
        assert_eq!(from_json(br#"{"max_tokens":-1}"#, "max_tokens"), None);
        assert_eq!(from_json(br#"{"max_tokens":1e30}"#, "max_tokens"), None);
        assert_eq!(
            from_json(br#"{"max_tokens":99999999999999}"#, "max_tokens"),
            Some(MAX_HITS)
        );
        assert_eq!(
            from_json(br#"{"other":{"max_tokens":5}}"#, "max_tokens"),
            None
        );
        assert_eq!(from_json(b"not json", "max_tokens"), None);
    }
}
