//! Sends finished spans to the collector in batches, off the request path:
//! a check only pushes its span into a bounded queue (dropped, and counted,
//! when the queue is full); one task sends a batch when it is full or
//! `schedule_delay` has passed, over OTLP/HTTP (protobuf) or OTLP/gRPC.

use std::time::{Duration, Instant};

use bytes::Bytes;
use floodgate_config::traces::OtlpProtocol;
use floodgate_proto::opentelemetry::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use floodgate_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use floodgate_proto::opentelemetry::proto::common::v1::{
    any_value, AnyValue, InstrumentationScope, KeyValue,
};
use floodgate_proto::opentelemetry::proto::resource::v1::Resource;
use floodgate_proto::opentelemetry::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::settings::TraceSettings;

/// Spans that could not be queued or sent.
pub const DROPPED_METRIC: &str = floodgate_core::metric::TRACE_SPANS_DROPPED_TOTAL;

/// A string attribute.
pub fn attribute(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

/// An integer attribute.
pub fn int_attribute(key: impl Into<String>, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
    }
}

/// Where spans are sent, and the task that sends them.
pub struct Exporter {
    queue: mpsc::Sender<Span>,
}

impl Exporter {
    /// Starts the sending task, which flushes what is queued and ends once
    /// `shutdown` fires.
    pub fn start(
        settings: &TraceSettings,
        shutdown: CancellationToken,
        tracker: &tokio_util::task::TaskTracker,
    ) -> Exporter {
        let (queue, spans) = mpsc::channel(settings.max_queue);
        let sender = Sender::new(settings);
        tracker.spawn(run(sender, spans, settings.clone(), shutdown));
        Exporter { queue }
    }

    /// Queues `span`; drops it (counted) when the queue is full.
    pub fn send(&self, span: Span) {
        if self.queue.try_send(span).is_err() {
            metrics::counter!(DROPPED_METRIC).increment(1);
        }
    }
}

async fn run(
    mut sender: Sender,
    mut spans: mpsc::Receiver<Span>,
    settings: TraceSettings,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(settings.max_batch);
    loop {
        let deadline = tokio::time::sleep(settings.schedule_delay);
        tokio::pin!(deadline);
        let stop = loop {
            tokio::select! {
                () = shutdown.cancelled() => break true,
                () = &mut deadline => break false,
                span = spans.recv() => match span {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() >= settings.max_batch {
                            break false;
                        }
                    }
                    None => break true,
                },
            }
        };
        if stop {
            // What is queued still goes out, within one export timeout.
            while let Ok(span) = spans.try_recv() {
                batch.push(span);
            }
            for chunk in batch.chunks(settings.max_batch) {
                sender.send(chunk.to_vec()).await;
            }
            return;
        }
        if !batch.is_empty() {
            sender.send(std::mem::take(&mut batch)).await;
        }
    }
}

/// One OTLP connection and the resource every span is sent with.
struct Sender {
    resource: Resource,
    endpoint: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    transport: Transport,
    last_warning: Option<Instant>,
}

enum Transport {
    Http(Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>),
    Grpc(Option<TraceServiceClient<tonic::transport::Channel>>),
}

impl Sender {
    fn new(settings: &TraceSettings) -> Sender {
        let transport = match settings.protocol {
            OtlpProtocol::HttpProtobuf => {
                Transport::Http(Client::builder(TokioExecutor::new()).build_http())
            }
            OtlpProtocol::Grpc => Transport::Grpc(
                tonic::transport::Endpoint::from_shared(settings.endpoint.clone())
                    .ok()
                    .map(|e| TraceServiceClient::new(e.timeout(settings.timeout).connect_lazy())),
            ),
        };
        Sender {
            resource: Resource {
                attributes: vec![
                    attribute("service.name", settings.service_name.clone()),
                    attribute("service.version", env!("CARGO_PKG_VERSION")),
                ],
                dropped_attributes_count: 0,
            },
            endpoint: settings.endpoint.clone(),
            headers: settings.headers.clone(),
            timeout: settings.timeout,
            transport,
            last_warning: None,
        }
    }

    async fn send(&mut self, spans: Vec<Span>) {
        let count = spans.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "floodgate".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..InstrumentationScope::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let sent = tokio::time::timeout(self.timeout, self.export(request)).await;
        let error = match sent {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        metrics::counter!(DROPPED_METRIC).increment(count);
        // One warning a minute at most: a collector that is down must not
        // flood the log.
        if self
            .last_warning
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            self.last_warning = Some(Instant::now());
            tracing::warn!(endpoint = %self.endpoint, %error, spans = count, "could not export spans; they are dropped (counted in {DROPPED_METRIC})");
        }
    }

    async fn export(&mut self, request: ExportTraceServiceRequest) -> Result<(), String> {
        match &mut self.transport {
            Transport::Http(client) => {
                let mut builder = http::Request::post(&self.endpoint)
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf");
                for (name, value) in &self.headers {
                    builder = builder.header(name, value);
                }
                let body = Full::new(Bytes::from(request.encode_to_vec()));
                let request = builder.body(body).map_err(|e| e.to_string())?;
                let response = client.request(request).await.map_err(|e| e.to_string())?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("the collector answered {}", response.status()))
                }
            }
            Transport::Grpc(None) => Err("invalid gRPC endpoint".into()),
            Transport::Grpc(Some(client)) => {
                let mut request = tonic::Request::new(request);
                for (name, value) in &self.headers {
                    if let (Ok(name), Ok(value)) = (
                        tonic::metadata::MetadataKey::from_bytes(name.as_bytes()),
                        value.parse(),
                    ) {
                        request.metadata_mut().insert(name, value);
                    }
                }
                client
                    .export(request)
                    .await
                    .map(drop)
                    .map_err(|status| status.to_string())
            }
        }
    }
}
