//! Finding the actual cost in a response as it streams past: the count of
//! an OpenAI-compatible `usage` object (`"total_tokens": 1834`), in a JSON
//! body or in the server-sent event that carries it. Nothing is buffered
//! and nothing waits: each frame goes to the client as it came, after the
//! scanner has looked at it.
//!
//! The scanner looks for `"<field>"`, optional blanks, `:`, optional blanks
//! and digits, across frame boundaries (it keeps the last few bytes of the
//! previous frame), and keeps the last value seen. Inside a JSON string a
//! quote is escaped, so the model's own text cannot forge the pattern.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use floodgate_core::MAX_HITS;
use hyper::body::{Body, Frame, SizeHint};

use crate::app::App;

/// Bytes kept from one frame for the next: the pattern, blanks and digits.
const CARRY_EXTRA: usize = 48;

/// Finds the last `"<field>": <integer>` in a byte stream.
#[derive(Debug)]
pub struct UsageScanner {
    /// `"<field>"`, quotes included.
    needle: Vec<u8>,
    /// The tail of what came before, where a match may have started.
    carry: Vec<u8>,
    /// The last complete value seen.
    found: Option<u64>,
}

impl UsageScanner {
    /// A scanner for the JSON field `field`.
    pub fn new(field: &str) -> Self {
        UsageScanner {
            needle: format!("\"{field}\"").into_bytes(),
            carry: Vec::new(),
            found: None,
        }
    }

    /// Looks at the next bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(bytes);
        self.scan(&window, false);
        let keep = self.needle.len() + CARRY_EXTRA;
        let from = window.len().saturating_sub(keep);
        window.drain(..from);
        self.carry = window;
    }

    /// The stream has ended: the last value seen, if any.
    pub fn finish(&mut self) -> Option<u64> {
        let rest = std::mem::take(&mut self.carry);
        self.scan(&rest, true);
        self.found
    }

    /// The last complete value seen so far.
    pub fn found(&self) -> Option<u64> {
        self.found
    }

    /// Records every complete match in `window`; at the window's end a
    /// match is complete only when the stream has ended (`last`).
    fn scan(&mut self, window: &[u8], last: bool) {
        let n = self.needle.len();
        let mut at = 0;
        while let Some(pos) = find(&window[at..], &self.needle) {
            let start = at + pos + n;
            at = at + pos + 1;
            if let Some(value) = value_at(window, start, last) {
                self.found = Some(value.min(MAX_HITS));
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The integer after blanks, `:` and blanks at `i`, when it is complete.
fn value_at(window: &[u8], mut i: usize, last: bool) -> Option<u64> {
    let blank = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    while i < window.len() && blank(window[i]) {
        i += 1;
    }
    if window.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    while i < window.len() && blank(window[i]) {
        i += 1;
    }
    let digits = window[i..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || (i + digits == window.len() && !last) {
        return None;
    }
    std::str::from_utf8(&window[i..i + digits])
        .ok()?
        .parse::<u64>()
        .ok()
        .or(Some(u64::MAX))
}

/// What settles a reservation once its response's cost is known.
pub struct Meter {
    /// Who settles.
    pub app: Arc<App>,
    /// The reservation's settlement id.
    pub settlement: String,
    /// Reads the cost off the body.
    pub scanner: UsageScanner,
}

impl Meter {
    /// Settles with `actual` in the background (the response is not held).
    fn settle(app: Arc<App>, settlement: String, actual: u64) {
        tokio::spawn(async move {
            if let Err(error) = app.limiter.settle(&settlement, actual).await {
                tracing::debug!(%error, "the proxy's settle failed");
            }
        });
    }
}

/// A response body that feeds every data frame to a [`Meter`] on its way
/// to the client and settles when the body ends (or, with a cost already
/// seen, when the client goes away first). A response that never shows
/// its cost keeps the estimate.
pub struct UsageBody<B> {
    /// The body streamed to the client.
    inner: B,
    /// Until settled.
    meter: Option<Meter>,
}

impl<B> UsageBody<B> {
    /// `inner`, metered by `meter` (none: passed through untouched).
    pub fn new(inner: B, meter: Option<Meter>) -> Self {
        UsageBody { inner, meter }
    }

    fn end(&mut self) {
        if let Some(mut meter) = self.meter.take() {
            if let Some(actual) = meter.scanner.finish() {
                Meter::settle(meter.app, meter.settlement, actual);
            }
        }
    }
}

impl<B> Body for UsageBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(meter), Some(data)) = (this.meter.as_mut(), frame.data_ref()) {
                    meter.scanner.feed(data);
                }
                if this.inner.is_end_stream() {
                    this.end();
                }
            }
            Poll::Ready(None) => this.end(),
            // Cut off: only a cost already seen in full is settled.
            Poll::Ready(Some(Err(_))) => this.end(),
            Poll::Pending => {}
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

impl<B> Drop for UsageBody<B> {
    fn drop(&mut self) {
        // The client went away: settle what was seen in full, if anything.
        if let Some(meter) = self.meter.take() {
            if let Some(actual) = meter.scanner.found() {
                Meter::settle(meter.app, meter.settlement, actual);
            }
        }
    }
}

/// Settles `settlement` right away with the cost a response header gives
/// (`None`: no such header, or not an integer: the estimate stays).
pub fn settle_from_header(app: &Arc<App>, settlement: String, value: Option<&str>) {
    if let Some(actual) = value.and_then(|v| v.trim().parse::<u64>().ok()) {
        Meter::settle(app.clone(), settlement, actual.min(MAX_HITS));
    }
}

#[cfg(test)]
mod tests;
