//! Whether and where spans are exported: the `[traces]` section, else the
//! standard OpenTelemetry environment variables.

use std::time::Duration;

use floodgate_config::traces::{check_endpoint, OtlpProtocol};
use floodgate_config::TracesConfig;

/// Everything the exporter and the span builder need.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// The full URL (HTTP) or the collector address (gRPC).
    pub endpoint: String,
    /// OTLP over HTTP/protobuf or gRPC.
    pub protocol: OtlpProtocol,
    /// The share of root checks traced.
    pub sample_ratio: f64,
    /// Attribute names whose values may be put on spans.
    pub attributes: Vec<String>,
    /// `service.name`.
    pub service_name: String,
    /// Extra request headers for the collector (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
    /// Longest wait before a partial batch is sent (`OTEL_BSP_SCHEDULE_DELAY`).
    pub schedule_delay: Duration,
    /// Spans held at most; more are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue: usize,
    /// Spans per export at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_batch: usize,
    /// Time allowed for one export (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub timeout: Duration,
}

impl TraceSettings {
    /// The settings of `section`, or of the environment `env` when the file
    /// has no `[traces]`; `None` when tracing is off (no endpoint anywhere,
    /// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`).
    ///
    /// # Errors
    /// An environment variable with a value floodgate cannot follow, named.
    pub fn resolve(
        section: Option<&TracesConfig>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<TraceSettings>, String> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let destination = match section {
            Some(s) => Destination::from_section(s),
            None => match Destination::from_env(&var)? {
                Some(destination) => destination,
                None => return Ok(None),
            },
        };
        Ok(Some(TraceSettings {
            endpoint: destination.endpoint,
            protocol: destination.protocol,
            sample_ratio: destination.sample_ratio,
            attributes: destination.attributes,
            service_name: destination.service_name,
            headers: headers(&var)?,
            schedule_delay: Duration::from_millis(number(&var, "OTEL_BSP_SCHEDULE_DELAY", 5_000)?),
            max_queue: count(&var, "OTEL_BSP_MAX_QUEUE_SIZE", 2_048)?,
            max_batch: count(&var, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?,
            timeout: export_timeout(&var)?,
        }))
    }
}

/// Where spans go and which ones: the part of [`TraceSettings`] that
/// `[traces]` replaces as a whole.
struct Destination {
    endpoint: String,
    protocol: OtlpProtocol,
    sample_ratio: f64,
    attributes: Vec<String>,
    service_name: String,
}

impl Destination {
    /// The destination `[traces]` names.
    fn from_section(section: &TracesConfig) -> Destination {
        Destination {
            endpoint: section.endpoint.clone(),
            protocol: section.protocol,
            sample_ratio: section.sample_ratio,
            attributes: section.attributes.clone(),
            service_name: section.service_name.clone(),
        }
    }

    /// The destination the OpenTelemetry variables name; `None` when they
    /// turn the exporter off or name no endpoint.
    fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Option<Destination>, String> {
        match var("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(format!("OTEL_TRACES_EXPORTER={other:?}: floodgate exports traces over OTLP only (\"otlp\" or \"none\")"))
            }
        }
        let protocol = env_protocol(var)?;
        let Some(endpoint) = env_endpoint(var, protocol) else {
            return Ok(None);
        };
        check_endpoint(&endpoint).map_err(|e| format!("OTEL_EXPORTER_OTLP_*: {e}"))?;
        let service_name = var("OTEL_SERVICE_NAME").unwrap_or_else(|| "floodgate".to_string());
        Ok(Some(Destination {
            endpoint,
            protocol,
            sample_ratio: sampler(var)?,
            attributes: Vec::new(),
            service_name,
        }))
    }
}

/// `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`, by default HTTP/protobuf.
fn env_protocol(var: &dyn Fn(&str) -> Option<String>) -> Result<OtlpProtocol, String> {
    match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL")) {
        None => Ok(OtlpProtocol::HttpProtobuf),
        Some(name) => OtlpProtocol::parse(name.trim()).ok_or_else(|| {
            format!("OTEL_EXPORTER_OTLP_PROTOCOL={name:?}: expected \"http/protobuf\" or \"grpc\"")
        }),
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/traces` appended over HTTP).
fn env_endpoint(var: &dyn Fn(&str) -> Option<String>, protocol: OtlpProtocol) -> Option<String> {
    match (
        var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        var("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(traces), _) => Some(traces),
        (None, Some(base)) if protocol == OtlpProtocol::HttpProtobuf => {
            Some(format!("{}/v1/traces", base.trim_end_matches('/')))
        }
        (None, Some(base)) => Some(base),
        (None, None) => None,
    }
}

/// `OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT` in milliseconds, at least 1.
fn export_timeout(var: &dyn Fn(&str) -> Option<String>) -> Result<Duration, String> {
    let millis = match var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") {
        Some(_) => number(var, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", 10_000)?,
        None => number(var, "OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
    };
    Ok(Duration::from_millis(millis.max(1)))
}

/// A count of spans from `name`, else `default`; at least 1.
fn count(var: &dyn Fn(&str) -> Option<String>, name: &str, default: u64) -> Result<usize, String> {
    Ok(usize::try_from(number(var, name, default)?)
        .unwrap_or(usize::MAX)
        .max(1))
}

/// The root sampling ratio from `OTEL_TRACES_SAMPLER` and its argument.
fn sampler(var: &dyn Fn(&str) -> Option<String>) -> Result<f64, String> {
    let ratio = || -> Result<f64, String> {
        match var("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(arg) => arg
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    format!("OTEL_TRACES_SAMPLER_ARG={arg:?}: expected a number from 0 to 1")
                }),
        }
    };
    match var("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
        None | Some("parentbased_always_on" | "always_on") => Ok(1.0),
        Some("parentbased_always_off" | "always_off") => Ok(0.0),
        Some("parentbased_traceidratio" | "traceidratio") => ratio(),
        Some(other) => Err(format!("OTEL_TRACES_SAMPLER={other:?}: expected parentbased_always_on, parentbased_always_off or parentbased_traceidratio (a caller's sampled traceparent is always followed)")),
    }
}

/// `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`: `name=value` pairs joined by `,`.
fn headers(var: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>, String> {
    let Some(list) =
        var("OTEL_EXPORTER_OTLP_TRACES_HEADERS").or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
    else {
        return Ok(Vec::new());
    };
    list.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
            let valid = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && http::HeaderValue::from_str(&value).is_ok()
                && !value.is_empty();
            valid.then_some((name, value)).ok_or_else(|| {
                format!("OTEL_EXPORTER_OTLP_HEADERS: {pair:?} is not name=value (a header name and a printable value)")
            })
        })
        .collect()
}

/// A whole number of milliseconds or items from `name`, else `default`.
fn number(var: &dyn Fn(&str) -> Option<String>, name: &str, default: u64) -> Result<u64, String> {
    match var(name) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("{name}={value:?}: expected a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from_env(vars: &[(&str, &str)]) -> Result<Option<TraceSettings>, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TraceSettings::resolve(None, &|name| vars.get(name).cloned())
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert_eq!(from_env(&[]), Ok(None));
        assert_eq!(
            from_env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_SDK_DISABLED", "true")
            ]),
            Ok(None)
        );
        assert_eq!(
            from_env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_TRACES_EXPORTER", "none")
            ]),
            Ok(None)
        );
    }

    #[test]
    fn the_standard_variables_are_followed() {
        let http = from_env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
            ("OTEL_SERVICE_NAME", "edge"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc, X-Team=t1"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(http.endpoint, "http://c:4318/v1/traces");
        assert_eq!(http.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(http.service_name, "edge");
        assert_eq!(http.sample_ratio, 0.5);
        assert_eq!(
            http.headers,
            [
                ("x-api-key".into(), "abc".into()),
                ("x-team".into(), "t1".into())
            ]
        );
        assert_eq!(http.schedule_delay, Duration::from_millis(100));
        assert!(http.attributes.is_empty());
        let grpc = from_env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (grpc.endpoint.as_str(), grpc.protocol),
            ("http://c:4317", OtlpProtocol::Grpc)
        );
        let specific = from_env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9/spans"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(specific.endpoint, "http://t:9/spans");
    }

    #[test]
    fn values_floodgate_cannot_follow_are_errors() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        for (name, value, says) in [
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/json",
                "expected \"http/protobuf\" or \"grpc\"",
            ),
            (
                "OTEL_TRACES_SAMPLER",
                "jaeger_remote",
                "OTEL_TRACES_SAMPLER",
            ),
            ("OTEL_TRACES_SAMPLER_ARG", "2", "from 0 to 1"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "is not name=value"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon", "whole number"),
            ("OTEL_TRACES_EXPORTER", "zipkin", "OTLP only"),
        ] {
            let sampler = ("OTEL_TRACES_SAMPLER", "traceidratio");
            let error = from_env(&[base, sampler, (name, value)]).unwrap_err();
            assert!(error.contains(says), "{name}={value}: {error}");
        }
        let error = from_env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")]).unwrap_err();
        assert!(error.contains("https is not supported"), "{error}");
    }

    #[test]
    fn the_section_wins_over_the_environment() {
        let section = TracesConfig {
            endpoint: "http://file:4318/v1/traces".into(),
            protocol: OtlpProtocol::HttpProtobuf,
            sample_ratio: 0.1,
            attributes: vec!["endpoint".into()],
            service_name: "from-file".into(),
        };
        let settings = TraceSettings::resolve(Some(&section), &|name| {
            (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://env:4318".to_string())
        })
        .unwrap()
        .unwrap();
        assert_eq!(settings.endpoint, "http://file:4318/v1/traces");
        assert_eq!(settings.attributes, ["endpoint"]);
    }
}
