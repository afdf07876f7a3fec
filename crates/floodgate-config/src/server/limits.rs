//! Timeouts and caps of the listeners: what keeps a public port safe from
//! idle, slow and greedy clients. Every value has a default meant for a
//! port the internet can reach; zero and absurd values are refused.

use std::time::Duration;

use crate::duration::{format as show, RawDuration};
use crate::error::Diagnostics;
use crate::raw::{RawProxy, RawServer};
use crate::section::Section;

/// The most connections a listener may be allowed (each one is a file
/// descriptor; far below tokio's semaphore maximum).
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// `[server]` listener timeouts and caps, shared by the HTTP, gRPC, health
/// and proxy listeners unless a field says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a complete HTTP/1 request head,
    /// counted from the connection's start or the previous response's end
    /// (so it is also the idle timeout of a kept-alive HTTP/1 connection),
    /// and how long any new connection may stay silent before its first
    /// byte (HTTP/2 and gRPC too).
    pub header_read_timeout: Duration,
    /// How long the HTTP API and health listeners may take over one request,
    /// from its head to the end of the answer, body read included (slow
    /// uploads end with 408).
    pub request_timeout: Duration,
    /// Largest HTTP/1 request head and HTTP/2 header list, in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in one HTTP/1 request.
    pub max_headers: usize,
    /// How often an HTTP/2 connection is pinged; `None` (the default): not
    /// pinged. Pinging costs every frame a connection receives a clock read
    /// and a lock in hyper; `idle_timeout`, `send_timeout` and TCP keepalive
    /// reclaim a vanished client's connection without it.
    pub http2_keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed.
    pub http2_keepalive_timeout: Duration,
    /// Most concurrent HTTP/2 streams (requests, gRPC calls) per connection.
    pub max_concurrent_streams: u32,
    /// TCP keepalive idle time on accepted connections.
    pub tcp_keepalive: Duration,
    /// Longest a gRPC call may run before it is answered `CANCELLED`.
    pub grpc_timeout: Duration,
    /// Largest gRPC request message, in bytes (as `/v1/check`'s body limit).
    pub grpc_max_message_bytes: usize,
    /// How long a connection (HTTP/1, HTTP/2, gRPC) may stay open with no
    /// request in flight before it is closed (HTTP/2 with a GOAWAY).
    pub idle_timeout: Duration,
    /// How long one write to a client may wait for the client to read
    /// (a full socket buffer) before the connection is closed.
    pub send_timeout: Duration,
    /// Open connections at most from one client address (IPv6: one /64),
    /// per listener.
    pub max_connections_per_ip: usize,
    /// Checks waiting for their turn at most, over every policy and key
    /// (`max_wait`); past it a check that would wait is denied at once.
    pub max_waiting: usize,
    /// How long an Envoy check (RLS, ext_authz) may wait when the request
    /// carries no `grpc-timeout` (Envoy sends one for its own timeout).
    pub envoy_max_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            http2_keepalive_interval: None,
            http2_keepalive_timeout: Duration::from_secs(20),
            max_concurrent_streams: 256,
            tcp_keepalive: Duration::from_secs(60),
            grpc_timeout: Duration::from_secs(30),
            grpc_max_message_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            // No cap of its own: behind a load balancer one address carries
            // every client, and on a sidecar the app is one address too.
            max_connections_per_ip: MAX_CONNECTIONS_LIMIT,
            max_waiting: 10_000,
            envoy_max_wait: Duration::ZERO,
        }
    }
}

/// `[server] proxy` timeouts and the upgrades it tunnels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyLimits {
    /// `Upgrade` tokens tunnelled to the upstream (lower case); requests
    /// asking for any other upgrade are forwarded as plain requests.
    pub upgrades: Vec<String>,
    /// A tunnel with no bytes either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// Connecting to the upstream; past it the answer is 502.
    pub connect_timeout: Duration,
    /// The upstream's response headers; past it the answer is 504.
    pub response_timeout: Duration,
    /// A request or response body that moves no data for this long is cut.
    pub body_idle_timeout: Duration,
    /// Pooled upstream connections unused for this long are closed.
    pub pool_idle_timeout: Duration,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            upgrades: vec!["websocket".to_string()],
            tunnel_idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(300),
            body_idle_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}

const HOUR: Duration = Duration::from_secs(3_600);
/// The shortest listener timeout: anything shorter cuts well-behaved
/// clients on an ordinary network.
const SHORTEST: Duration = Duration::from_millis(100);
const SECOND: Duration = Duration::from_secs(1);

/// Reads `raw.$key` within `$min..=$max`, or the default `d.$key`.
macro_rules! bounded {
    ($read:ident, $section:ident, $diag:ident, $raw:ident, $d:ident, $key:ident, $min:expr, $max:expr) => {
        $read(
            $section,
            stringify!($key),
            $raw.$key,
            $d.$key,
            ($min, $max),
            $diag,
        )
    };
}

impl Limits {
    /// Reads the listener settings of `[server]`.
    pub(crate) fn read(section: &Section<'_, RawServer>, diag: &mut Diagnostics<'_>) -> Limits {
        let (raw, d) = (&section.raw, Limits::default());
        macro_rules! time {
            ($key:ident, $min:expr, $max:expr) => {
                bounded!(duration_in, section, diag, raw, d, $key, $min, $max)
            };
        }
        macro_rules! count {
            ($key:ident, $min:expr, $max:expr) => {
                bounded!(count_in, section, diag, raw, d, $key, $min, $max)
            };
        }
        let mut limits = Limits {
            header_read_timeout: time!(header_read_timeout, SHORTEST, HOUR),
            request_timeout: time!(request_timeout, SHORTEST, HOUR),
            max_header_bytes: count!(max_header_bytes, 8 * 1024, 1024 * 1024),
            max_headers: count!(max_headers, 1, 1_000),
            http2_keepalive_interval: raw.http2_keepalive_interval.map(|written| {
                let key = "http2_keepalive_interval";
                duration_in(section, key, Some(written), HOUR, (SHORTEST, HOUR), diag)
            }),
            http2_keepalive_timeout: time!(http2_keepalive_timeout, SHORTEST, HOUR),
            max_concurrent_streams: count!(max_concurrent_streams, 1, 65_536),
            tcp_keepalive: time!(tcp_keepalive, SECOND, 2 * HOUR),
            grpc_timeout: time!(grpc_timeout, SHORTEST, HOUR),
            grpc_max_message_bytes: count!(grpc_max_message_bytes, 64, 16 * 1024 * 1024),
            idle_timeout: time!(idle_timeout, SHORTEST, 24 * HOUR),
            send_timeout: time!(send_timeout, SHORTEST, HOUR),
            max_connections_per_ip: count!(max_connections_per_ip, 1, MAX_CONNECTIONS_LIMIT),
            max_waiting: count!(max_waiting, 1, 1_000_000),
            envoy_max_wait: time!(envoy_max_wait, Duration::ZERO, 10 * 60 * SECOND),
        };
        match (limits.http2_keepalive_interval, raw.http2_keepalive_timeout) {
            (None, Some(_)) => diag.push(
                section.at("http2_keepalive_timeout"),
                format!(
                    "http2_keepalive_timeout in {} needs http2_keepalive_interval: \
                     HTTP/2 connections are pinged only when an interval is set",
                    section.name
                ),
            ),
            // Unwritten, the ping timeout follows a shorter interval down.
            (Some(interval), None) => {
                limits.http2_keepalive_timeout = d.http2_keepalive_timeout.min(interval);
            }
            (Some(interval), Some(_)) if limits.http2_keepalive_timeout > interval => diag.push(
                section.at("http2_keepalive_timeout"),
                format!(
                    "http2_keepalive_timeout in {} ({}) must not be longer than http2_keepalive_interval ({})",
                    section.name,
                    show(limits.http2_keepalive_timeout),
                    show(interval)
                ),
            ),
            _ => {}
        }
        limits
    }
}

impl ProxyLimits {
    /// Reads the timeouts and upgrades of `[server.proxy]`.
    pub(crate) fn read(section: &Section<'_, RawProxy>, diag: &mut Diagnostics<'_>) -> ProxyLimits {
        let (raw, d) = (&section.raw, ProxyLimits::default());
        macro_rules! time {
            ($key:ident, $max:expr) => {
                bounded!(duration_in, section, diag, raw, d, $key, SHORTEST, $max)
            };
        }
        ProxyLimits {
            tunnel_idle_timeout: time!(tunnel_idle_timeout, 24 * HOUR),
            connect_timeout: time!(connect_timeout, HOUR),
            response_timeout: time!(response_timeout, HOUR),
            body_idle_timeout: time!(body_idle_timeout, HOUR),
            pool_idle_timeout: time!(pool_idle_timeout, HOUR),
            upgrades: match &raw.upgrades {
                None => d.upgrades,
                Some(tokens) => upgrade_tokens(section, tokens, diag),
            },
        }
    }
}

/// The `upgrades` list, lower-cased; each entry must be an HTTP token.
fn upgrade_tokens(
    section: &Section<'_, RawProxy>,
    tokens: &[String],
    diag: &mut Diagnostics<'_>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let valid = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
        if valid {
            out.push(token.to_ascii_lowercase());
        } else {
            diag.push(
                section.element_at("upgrades", index),
                format!(
                    "invalid upgrade {token:?} in {}: expected a protocol name like \"websocket\"",
                    section.name
                ),
            );
        }
    }
    out
}

/// The duration at `key`, or `default`; reported unless within `range`.
fn duration_in<T>(
    section: &Section<'_, T>,
    key: &str,
    value: Option<RawDuration>,
    default: Duration,
    (min, max): (Duration, Duration),
    diag: &mut Diagnostics<'_>,
) -> Duration {
    let Some(RawDuration(value)) = value else {
        return default;
    };
    if value < min || value > max {
        diag.push(
            section.at(key),
            format!(
                "{key} in {} must be between {} and {}, not {}",
                section.name,
                show(min),
                show(max),
                show(value)
            ),
        );
        return default;
    }
    value
}

/// The count at `key`, or `default`; reported unless within `range`.
fn count_in<T, N: Copy + PartialOrd + std::fmt::Display>(
    section: &Section<'_, T>,
    key: &str,
    value: Option<N>,
    default: N,
    (min, max): (N, N),
    diag: &mut Diagnostics<'_>,
) -> N {
    let Some(value) = value else {
        return default;
    };
    if value < min || value > max {
        diag.push(
            section.at(key),
            format!(
                "{key} in {} must be between {min} and {max}, not {value}",
                section.name
            ),
        );
        return default;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::from_str;

    fn errors(src: &str) -> Vec<(usize, usize, String)> {
        match from_str(src, "t.toml") {
            Ok(_) => panic!("expected errors in {src}"),
            Err(errors) => errors
                .0
                .into_iter()
                .map(|e| (e.line, e.column, e.message))
                .collect(),
        }
    }

    #[test]
    fn defaults_are_safe_for_a_public_port() {
        let config = from_str("", "t.toml").unwrap();
        assert_eq!(config.server.limits, Limits::default());
        assert_eq!(
            config.server.limits.header_read_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(config.server.limits.grpc_max_message_bytes, 65_536);
        assert_eq!(config.server.health, None);
        let proxy = from_str(
            "[server]\nproxy = { listen = \"127.0.0.1:1\", upstream = \"http://a\" }\n",
            "t.toml",
        )
        .unwrap();
        let proxy = proxy.server.proxy.unwrap();
        assert_eq!(proxy.limits, ProxyLimits::default());
        assert_eq!(proxy.limits.upgrades, ["websocket"]);
    }

    #[test]
    fn every_setting_is_read() {
        let config = from_str(
            r#"[server]
health = "127.0.0.1:9722"
header_read_timeout = "2s"
request_timeout = "4s"
max_header_bytes = 8192
max_headers = 20
http2_keepalive_interval = "5s"
http2_keepalive_timeout = "3s"
max_concurrent_streams = 8
tcp_keepalive = "30s"
grpc_timeout = "1s"
grpc_max_message_bytes = 1024
idle_timeout = "7s"
send_timeout = "6s"
max_connections_per_ip = 9
max_waiting = 50
envoy_max_wait = "150ms"
proxy = { listen = "127.0.0.1:1", upstream = "http://a", upgrades = ["WebSocket", "h2c"], tunnel_idle_timeout = "1m", connect_timeout = "1s", response_timeout = "10s", body_idle_timeout = "2s", pool_idle_timeout = "3s" }
"#,
            "t.toml",
        )
        .unwrap();
        let s = &config.server;
        assert_eq!(s.health.unwrap().to_string(), "127.0.0.1:9722");
        assert!(
            config.summary().contains("health 127.0.0.1:9722"),
            "{}",
            config.summary()
        );
        let l = &s.limits;
        assert_eq!(l.header_read_timeout, Duration::from_secs(2));
        assert_eq!(l.request_timeout, Duration::from_secs(4));
        assert_eq!((l.max_header_bytes, l.max_headers), (8192, 20));
        assert_eq!(l.http2_keepalive_interval, Some(Duration::from_secs(5)));
        assert_eq!(l.http2_keepalive_timeout, Duration::from_secs(3));
        assert_eq!(l.max_concurrent_streams, 8);
        assert_eq!(l.tcp_keepalive, Duration::from_secs(30));
        assert_eq!(l.grpc_timeout, Duration::from_secs(1));
        assert_eq!(l.grpc_max_message_bytes, 1024);
        assert_eq!(l.idle_timeout, Duration::from_secs(7));
        assert_eq!(l.send_timeout, Duration::from_secs(6));
        assert_eq!(l.max_connections_per_ip, 9);
        assert_eq!(l.max_waiting, 50);
        assert_eq!(l.envoy_max_wait, Duration::from_millis(150));
        let p = &s.proxy.as_ref().unwrap().limits;
        assert_eq!(p.upgrades, ["websocket", "h2c"]);
        assert_eq!(p.tunnel_idle_timeout, Duration::from_secs(60));
        assert_eq!(p.connect_timeout, Duration::from_secs(1));
        assert_eq!(p.response_timeout, Duration::from_secs(10));
        assert_eq!(p.body_idle_timeout, Duration::from_secs(2));
        assert_eq!(p.pool_idle_timeout, Duration::from_secs(3));
    }

    #[test]
    fn a_shorter_keepalive_interval_pulls_the_unwritten_ping_timeout_down() {
        let config = from_str("[server]\nhttp2_keepalive_interval = \"5s\"\n", "t.toml").unwrap();
        let l = config.server.limits;
        assert_eq!(l.http2_keepalive_interval, Some(Duration::from_secs(5)));
        assert_eq!(l.http2_keepalive_timeout, Duration::from_secs(5));
        let found = errors(
            "[server]\nhttp2_keepalive_interval = \"5s\"\nhttp2_keepalive_timeout = \"6s\"\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].0, found[0].1), (3, 27), "{found:?}");
    }

    #[test]
    fn pings_are_off_unless_an_interval_is_written() {
        let l = from_str("[server]\n", "t.toml").unwrap().server.limits;
        assert_eq!(l.http2_keepalive_interval, None);
        let found = errors("[server]\nhttp2_keepalive_timeout = \"5s\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].0, found[0].1), (2, 27), "{found:?}");
        assert!(
            found[0].2.contains("needs http2_keepalive_interval"),
            "{found:?}"
        );
        let found = errors("[server]\nhttp2_keepalive_interval = \"2h\"\n");
        assert!(found[0].2.contains("between 100ms and 1h"), "{found:?}");
    }

    #[test]
    fn zero_and_absurd_values_are_refused_where_written() {
        for (text, column, words) in [
            (
                "header_read_timeout = \"0ms\"",
                23,
                "header_read_timeout in [server] must be between 100ms and 1h, not 0ms",
            ),
            (
                "grpc_timeout = \"2d\"",
                16,
                "grpc_timeout in [server] must be between",
            ),
            (
                "max_header_bytes = 100",
                20,
                "max_header_bytes in [server] must be between 8192 and 1048576, not 100",
            ),
            (
                "max_concurrent_streams = 0",
                26,
                "must be between 1 and 65536",
            ),
            (
                "max_waiting = 0",
                15,
                "max_waiting in [server] must be between 1 and 1000000, not 0",
            ),
            (
                "envoy_max_wait = \"11m\"",
                18,
                "envoy_max_wait in [server] must be between",
            ),
            (
                "grpc_max_message_bytes = 1000000000",
                26,
                "grpc_max_message_bytes",
            ),
            (
                "max_connections = 2305843009213693952",
                19,
                "max_connections must be at most 1000000",
            ),
            ("health = \"nowhere\"", 10, "invalid address \"nowhere\""),
            (
                "header_read_timeout = \"50ms\"",
                23,
                "header_read_timeout in [server] must be between 100ms and 1h, not 50ms",
            ),
            (
                "http2_keepalive_interval = \"1ms\"",
                28,
                "http2_keepalive_interval in [server] must be between 100ms",
            ),
            (
                "http2_keepalive_timeout = \"1ms\"\nhttp2_keepalive_interval = \"20s\"",
                27,
                "http2_keepalive_timeout in [server] must be between 100ms",
            ),
            (
                "http2_keepalive_timeout = \"30s\"\nhttp2_keepalive_interval = \"20s\"",
                27,
                "http2_keepalive_timeout in [server] (30s) must not be longer than http2_keepalive_interval (20s)",
            ),
            ("idle_timeout = \"10ms\"", 16, "idle_timeout in [server] must be between 100ms"),
            ("send_timeout = \"0s\"", 16, "send_timeout in [server] must be between 100ms"),
            (
                "max_connections_per_ip = 0",
                26,
                "max_connections_per_ip in [server] must be between 1 and 1000000",
            ),
        ] {
            let src = format!("[server]\n{text}\n");
            let found = errors(&src);
            assert_eq!(found.len(), 1, "{src}: {found:?}");
            assert_eq!((found[0].0, found[0].1), (2, column), "{src}: {found:?}");
            assert!(found[0].2.contains(words), "{src}: {found:?}");
        }
        let found = errors("[server]\nproxy = { listen = \"127.0.0.1:1\", upstream = \"http://a\", upgrades = [\"websocket\", \"a b\"], body_idle_timeout = \"0s\" }\n");
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found
                .iter()
                .any(|e| e.2.contains("invalid upgrade \"a b\"")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|e| e
                .2
                .contains("body_idle_timeout in [server.proxy] must be between")),
            "{found:?}"
        );
    }
}
