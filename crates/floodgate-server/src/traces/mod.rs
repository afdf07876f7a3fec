//! OpenTelemetry traces: one span per check (`floodgate.check`, with a child
//! `floodgate.decide` around policy matching and the store call), joined to
//! the caller's trace when the request carries a W3C `traceparent`, and
//! exported over OTLP ([`export`]).
//!
//! Off unless `[traces]` or the `OTEL_*` variables name a collector; off,
//! a check pays one branch. A span carries the transport, the decision,
//! the deciding and applicable policies' names and the store source — never
//! an attribute value unless `[traces] attributes` names it.

pub mod context;
pub mod export;
pub mod settings;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use floodgate_core::Attributes;
use floodgate_proto::opentelemetry::proto::common::v1::KeyValue;
use floodgate_proto::opentelemetry::proto::trace::v1::{span, status, Span, Status};
use floodgate_store::Verdict;

use self::export::{attribute, int_attribute, Exporter};
pub use self::settings::TraceSettings;
use crate::telemetry::latency::{transport_index, CHECK_DURATION};

/// The W3C trace context header (HTTP) and metadata (gRPC) a check's span
/// continues, named once for every lookup.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// Decides which checks are traced and hands their spans to the exporter.
pub struct Tracer {
    exporter: Exporter,
    sample_ratio: f64,
    attributes: Vec<String>,
}

impl Tracer {
    /// A tracer sending to `exporter` with `settings`' sampling and
    /// attribute allow-list.
    pub fn new(settings: &TraceSettings, exporter: Exporter) -> Tracer {
        Tracer {
            exporter,
            sample_ratio: settings.sample_ratio,
            attributes: settings.attributes.clone(),
        }
    }
}

/// Times one check for `floodgate_check_duration_seconds{transport}` and,
/// when the check is traced, builds its spans. Every transport uses it the
/// same way: [`CheckTimer::start`] when the request arrives,
/// [`CheckTimer::deciding`] / [`CheckTimer::decided`] around the limiter,
/// [`CheckTimer::finish`] once the answer is ready. A timer dropped without
/// `finish` (an error) records no duration; its span ends with an error.
pub struct CheckTimer {
    /// The transport's place in the duration histogram (`None`: a name
    /// the histogram does not know, timed for spans only).
    transport: Option<usize>,
    started: Instant,
    trace: Option<Box<Traced>>,
}

/// The span under construction.
struct Traced {
    tracer: Arc<Tracer>,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    start_unix_ns: u64,
    deciding: Option<(Instant, u64)>,
    decided: Option<Instant>,
    attributes: Vec<KeyValue>,
    decide_attributes: Vec<KeyValue>,
    finished: bool,
}

impl CheckTimer {
    /// Starts timing a check on `transport` (`http`, `nginx`, `grpc`,
    /// `envoy_rls`, `envoy_authz`, `proxy`); `traceparent` is the request's
    /// header or metadata value, if any.
    #[inline]
    pub fn start(
        tracer: Option<&Arc<Tracer>>,
        transport: &'static str,
        traceparent: Option<&[u8]>,
    ) -> CheckTimer {
        let started = Instant::now();
        let trace = tracer.and_then(|tracer| {
            let parent = traceparent.and_then(context::parse);
            let sampled = match parent {
                Some(parent) => parent.sampled,
                None => tracer.sample_ratio > 0.0 && rand::random::<f64>() < tracer.sample_ratio,
            };
            sampled.then(|| {
                Box::new(Traced {
                    tracer: tracer.clone(),
                    trace_id: parent.map_or_else(|| nonzero(rand::random()), |p| p.trace_id),
                    span_id: nonzero(rand::random()),
                    parent: parent.map(|p| p.span_id),
                    start_unix_ns: unix_ns(),
                    deciding: None,
                    decided: None,
                    attributes: vec![attribute("floodgate.transport", transport)],
                    decide_attributes: Vec::new(),
                    finished: false,
                })
            })
        });
        let index = transport_index(transport);
        debug_assert!(index.is_some(), "{transport} is not in latency::TRANSPORTS");
        CheckTimer {
            transport: index,
            started,
            trace,
        }
    }

    /// Whether this check is traced (its spans will be exported).
    #[inline]
    pub fn is_traced(&self) -> bool {
        self.trace.is_some()
    }

    /// The limiter is about to decide: the `floodgate.decide` span starts.
    #[inline]
    pub fn deciding(&mut self) {
        if let Some(trace) = &mut self.trace {
            trace.deciding = Some((Instant::now(), unix_ns()));
        }
    }

    /// Puts the values of the attributes `[traces] attributes` allows on
    /// the check's span.
    #[inline]
    pub fn attributes(&mut self, attributes: &Attributes) {
        if let Some(trace) = &mut self.trace {
            for name in &trace.tracer.attributes {
                if let Some(value) = attributes.get(name) {
                    let key = format!("floodgate.attribute.{name}");
                    trace.attributes.push(attribute(key, value.clone()));
                }
            }
        }
    }

    /// The limiter answered `verdict`: the decision goes on the spans.
    #[inline]
    pub fn decided(&mut self, verdict: &Verdict) {
        let Some(trace) = &mut self.trace else {
            return;
        };
        trace.decided = Some(Instant::now());
        let decision = if verdict.allowed { "allowed" } else { "denied" };
        trace
            .attributes
            .push(attribute("floodgate.decision", decision));
        if let Some(deciding) = verdict.deciding() {
            trace
                .attributes
                .push(attribute("floodgate.policy", deciding.policy.to_string()));
            trace
                .decide_attributes
                .push(attribute("floodgate.source", deciding.source.as_str()));
        }
        let names: Vec<&str> = verdict.statuses.iter().map(|s| &*s.policy).collect();
        trace
            .attributes
            .push(attribute("floodgate.policies", names.join(",")));
        trace.decide_attributes.push(int_attribute(
            "floodgate.policies.count",
            i64::try_from(names.len()).unwrap_or(i64::MAX),
        ));
    }

    /// The answer is ready: records the check's duration and sends its spans.
    #[inline]
    pub fn finish(mut self) {
        if let Some(transport) = self.transport {
            CHECK_DURATION.record(transport, self.started.elapsed());
        }
        if let Some(trace) = &mut self.trace {
            trace.finished = true;
        }
    }
}

impl Drop for CheckTimer {
    #[inline]
    fn drop(&mut self) {
        if let Some(trace) = self.trace.take() {
            (*trace).send(self.started);
        }
    }
}

impl Traced {
    fn send(self, started: Instant) {
        let end = self.start_unix_ns + nanos(started.elapsed());
        let error = !self.finished;
        let status = |ok: bool| {
            Some(Status {
                message: if ok {
                    String::new()
                } else {
                    "the check was not answered".into()
                },
                code: if ok {
                    status::StatusCode::Unset
                } else {
                    status::StatusCode::Error
                } as i32,
            })
        };
        if let Some((at, start_unix_ns)) = self.deciding {
            let decided = self.decided.unwrap_or_else(Instant::now);
            self.tracer.exporter.send(Span {
                trace_id: self.trace_id.to_vec(),
                span_id: nonzero(rand::random::<[u8; 8]>()).to_vec(),
                parent_span_id: self.span_id.to_vec(),
                flags: 1,
                name: "floodgate.decide".into(),
                kind: span::SpanKind::Internal as i32,
                start_time_unix_nano: start_unix_ns,
                end_time_unix_nano: start_unix_ns + nanos(decided.saturating_duration_since(at)),
                attributes: self.decide_attributes,
                status: status(self.decided.is_some()),
                ..Span::default()
            });
        }
        self.tracer.exporter.send(Span {
            trace_id: self.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            parent_span_id: self.parent.map(|p| p.to_vec()).unwrap_or_default(),
            flags: 1,
            name: "floodgate.check".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: self.start_unix_ns,
            end_time_unix_nano: end,
            attributes: self.attributes,
            status: status(!error),
            ..Span::default()
        });
    }
}

/// An id with at least one non-zero byte (all zeros is invalid).
fn nonzero<const N: usize>(mut id: [u8; N]) -> [u8; N] {
    if id.iter().all(|b| *b == 0) {
        id[N - 1] = 1;
    }
    id
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, nanos)
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
