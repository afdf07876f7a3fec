//! `[traces]`: OpenTelemetry spans for checks, exported over OTLP. Without
//! the section, the standard `OTEL_*` environment variables decide (read by
//! the server at start-up).

use crate::error::Diagnostics;
use crate::raw::RawTraces;
use crate::section::{Node, Section};

/// How spans are sent to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (`POST <endpoint>`); the default.
    HttpProtobuf,
    /// OTLP/gRPC (`opentelemetry.proto.collector.trace.v1.TraceService`).
    Grpc,
}

impl OtlpProtocol {
    /// The name used in the config and in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::Grpc => "grpc",
        }
    }

    /// Parses `http/protobuf` or `grpc`.
    pub fn parse(name: &str) -> Option<OtlpProtocol> {
        [OtlpProtocol::HttpProtobuf, OtlpProtocol::Grpc]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

/// `[traces]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TracesConfig {
    /// Where spans go: for `http/protobuf` the full URL spans are POSTed to
    /// (`http://127.0.0.1:4318/v1/traces`), for `grpc` the collector's
    /// address (`http://127.0.0.1:4317`).
    pub endpoint: String,
    /// `http/protobuf` (default) or `grpc`.
    pub protocol: OtlpProtocol,
    /// The share of checks without an incoming sampled `traceparent` that
    /// get a span, from 0 to 1 (default 1). A caller's sampling decision in
    /// `traceparent` is always followed.
    pub sample_ratio: f64,
    /// Attribute names whose values may be put on spans
    /// (`floodgate.attribute.<name>`); none by default.
    pub attributes: Vec<String>,
    /// The `service.name` resource attribute (default `floodgate`).
    pub service_name: String,
}

/// Validates an OTLP endpoint: `http://host[:port][/path]`. TLS is not
/// spoken to collectors: run one on the same host or network.
///
/// # Errors
/// What is wrong with `endpoint`, as a message.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err(if endpoint.starts_with("https://") {
            format!("endpoint {endpoint:?}: https is not supported; send spans to a collector on the same host or network over http://")
        } else {
            format!(
                "endpoint {endpoint:?}: expected a URL like \"http://127.0.0.1:4318/v1/traces\""
            )
        });
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty()
        || authority.contains('@')
        || endpoint
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "endpoint {endpoint:?}: expected a URL like \"http://127.0.0.1:4318/v1/traces\""
        ));
    }
    Ok(())
}

impl TracesConfig {
    /// Reads `[traces]` when present, reporting every problem into `diag`.
    pub(crate) fn read(
        node: Option<&Node<'_>>,
        diag: &mut Diagnostics<'_>,
    ) -> Option<TracesConfig> {
        let section = Section::<RawTraces>::read(node?, "[traces]", diag)?;
        let endpoint = read_endpoint(&section, diag);
        let protocol = section
            .choice(
                "protocol",
                section.raw.protocol.as_deref(),
                &[
                    ("http/protobuf", OtlpProtocol::HttpProtobuf),
                    ("grpc", OtlpProtocol::Grpc),
                ],
                diag,
            )
            .unwrap_or(OtlpProtocol::HttpProtobuf);
        let sample_ratio = read_sample_ratio(&section, diag);
        let attributes = read_attributes(&section, diag);
        let service_name = read_service_name(&section, diag);
        Some(TracesConfig {
            endpoint,
            protocol,
            sample_ratio,
            attributes,
            service_name,
        })
    }
}

/// `endpoint`: required, checked by [`check_endpoint`].
fn read_endpoint(section: &Section<'_, RawTraces>, diag: &mut Diagnostics<'_>) -> String {
    match &section.raw.endpoint {
        Some(endpoint) => {
            if let Err(message) = check_endpoint(endpoint) {
                diag.push(section.at("endpoint"), message);
            }
            endpoint.clone()
        }
        None => {
            if !section.has_failed("endpoint") {
                diag.push(
                    section.header(),
                    "[traces] needs an endpoint, like \"http://127.0.0.1:4318/v1/traces\"",
                );
            }
            String::new()
        }
    }
}

/// `sample_ratio`: from 0 to 1, by default 1.
fn read_sample_ratio(section: &Section<'_, RawTraces>, diag: &mut Diagnostics<'_>) -> f64 {
    let sample_ratio = section.raw.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        diag.push(
            section.at("sample_ratio"),
            format!("invalid sample_ratio {sample_ratio}: expected a number from 0 to 1"),
        );
    }
    sample_ratio
}

/// `attributes`: names of 1 to 64 bytes without control characters.
fn read_attributes(section: &Section<'_, RawTraces>, diag: &mut Diagnostics<'_>) -> Vec<String> {
    let attributes = section.raw.attributes.clone().unwrap_or_default();
    for (i, name) in attributes.iter().enumerate() {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            diag.push(
                section.element_at("attributes", i),
                format!("invalid attribute name {name:?} in [traces] attributes: expected 1 to 64 bytes without control characters"),
            );
        }
    }
    attributes
}

/// `service_name`: not empty, by default `floodgate`.
fn read_service_name(section: &Section<'_, RawTraces>, diag: &mut Diagnostics<'_>) -> String {
    let service_name = section
        .raw
        .service_name
        .clone()
        .unwrap_or_else(|| "floodgate".to_string());
    if service_name.is_empty() {
        diag.push(section.at("service_name"), "service_name must not be empty");
    }
    service_name
}

#[cfg(test)]
mod tests {
    use super::{check_endpoint, OtlpProtocol};

    fn errors(src: &str) -> Vec<String> {
        match crate::from_str(src, "t.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_full_section_is_read() {
        let config = crate::from_str(
            "[traces]\nendpoint = \"http://127.0.0.1:4317\"\nprotocol = \"grpc\"\nsample_ratio = 0.25\nattributes = [\"endpoint\"]\nservice_name = \"edge\"\n",
            "t.toml",
        )
        .unwrap();
        let traces = config.traces.unwrap();
        assert_eq!(traces.protocol, OtlpProtocol::Grpc);
        assert_eq!(traces.sample_ratio, 0.25);
        assert_eq!(traces.attributes, ["endpoint"]);
        assert_eq!(traces.service_name, "edge");
        assert!(crate::from_str("", "t.toml").unwrap().traces.is_none());
    }

    #[test]
    fn every_bad_setting_is_a_positioned_error() {
        let found = errors(
            "[traces]\nendpoint = \"https://c:4318\"\nprotocol = \"udp\"\nsample_ratio = 1.5\nattributes = [\"\"]\nservice_name = \"\"\nexporter = 1\n",
        );
        let expected = [
            "t.toml:2:12: endpoint \"https://c:4318\": https is not supported",
            "t.toml:3:12: invalid protocol \"udp\" in [traces]; expected one of: \"http/protobuf\", \"grpc\"",
            "t.toml:4:16: invalid sample_ratio 1.5",
            "t.toml:5:15: invalid attribute name \"\"",
            "t.toml:6:16: service_name must not be empty",
            "t.toml:7:1: unknown key \"exporter\" in [traces]",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for want in expected {
            assert!(
                found.iter().any(|f| f.starts_with(want)),
                "{want} not in {found:#?}"
            );
        }
        let missing = errors("[traces]\nprotocol = \"grpc\"\n");
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(
            missing[0].contains("[traces] needs an endpoint"),
            "{missing:?}"
        );
    }

    #[test]
    fn endpoints_are_plain_http_urls() {
        assert!(check_endpoint("http://127.0.0.1:4318/v1/traces").is_ok());
        assert!(check_endpoint("http://collector:4317").is_ok());
        assert!(check_endpoint("https://collector:4318")
            .unwrap_err()
            .contains("https is not supported"));
        for bad in [
            "",
            "127.0.0.1:4318",
            "http://",
            "http:///v1",
            "http://a b",
            "http://u@h",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
