//! `[server]`: where floodgate listens, how it answers, how it shuts down.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::Diagnostics;
use crate::raw::{RawProxy, RawServer};
use crate::section::{Node, Section};

mod limits;

pub use limits::{Limits, ProxyLimits, MAX_CONNECTIONS_LIMIT};

/// The most `workers` a config may ask for.
pub const MAX_WORKERS: usize = 1024;

/// Which rate-limit headers responses carry (docs/api.md, "Response headers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderMode {
    /// `RateLimit-Policy` and `RateLimit` (IETF httpapi draft); the default.
    #[default]
    Draft,
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset`, as express-rate-limit.
    Legacy,
    /// Both sets.
    Both,
    /// No rate-limit headers (`Retry-After` is still sent on deny).
    None,
}

impl HeaderMode {
    /// Every mode, by its configuration name.
    pub const ALL: [(&'static str, HeaderMode); 4] = [
        ("draft", HeaderMode::Draft),
        ("legacy", HeaderMode::Legacy),
        ("both", HeaderMode::Both),
        ("none", HeaderMode::None),
    ];

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderMode::Draft => "draft",
            HeaderMode::Legacy => "legacy",
            HeaderMode::Both => "both",
            HeaderMode::None => "none",
        }
    }
}

/// `[server] proxy`: the built-in reverse proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Address the proxy accepts client connections on.
    pub listen: SocketAddr,
    /// Base URL requests are forwarded to: `http://host[:port]`, checked to
    /// have the `http` scheme and a host.
    pub upstream: String,
    /// Upstream timeouts and tunnelled upgrades.
    pub limits: ProxyLimits,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// JSON API, nginx `auth_request`, `/metrics`, health.
    pub http: SocketAddr,
    /// floodgate.v1, Envoy RLS v3, ext_authz v3, grpc.health.v1.
    pub grpc: SocketAddr,
    /// Reverse proxy mode, off unless configured.
    pub proxy: Option<ProxyConfig>,
    /// A listener serving only `/healthz`, `/readyz` and `/metrics`, for
    /// probes and scrapers that must not reach the check API; off unless
    /// configured.
    pub health: Option<SocketAddr>,
    /// Which rate-limit headers to send.
    pub headers: HeaderMode,
    /// Global shadow mode: every policy counts and reports, none denies.
    pub shadow: bool,
    /// A tracing filter (`"info"`, `"floodgate=debug"`); `None` leaves it
    /// to the environment.
    pub log: Option<String>,
    /// How long in-flight work may take to drain on SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Cap on open connections per listener; 1 to [`MAX_CONNECTIONS_LIMIT`].
    pub max_connections: usize,
    /// Threads answering requests, 1 to [`MAX_WORKERS`]; `None`: one per
    /// CPU the process may use (or `TOKIO_WORKER_THREADS`).
    pub workers: Option<usize>,
    /// Timeouts and size limits of every listener.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: SocketAddr::from(([127, 0, 0, 1], 9720)),
            grpc: SocketAddr::from(([127, 0, 0, 1], 9721)),
            proxy: None,
            health: None,
            headers: HeaderMode::Draft,
            shadow: false,
            log: None,
            shutdown_grace: Duration::from_secs(10),
            max_connections: 10_000,
            workers: None,
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// Reads `[server]`, reporting every problem into `diag`.
    pub(crate) fn read(node: Option<&Node<'_>>, diag: &mut Diagnostics<'_>) -> Config {
        let section = Section::<RawServer>::read_or_default(node, "[server]", diag);
        let raw = &section.raw;
        let default = Config::default();
        let proxy = section
            .child("proxy")
            .and_then(|n| Section::<RawProxy>::read(n, "[server.proxy]", diag))
            .and_then(|s| read_proxy(&s, diag));
        let max_connections = raw.max_connections.unwrap_or(default.max_connections);
        if max_connections == 0 {
            diag.push(
                section.at("max_connections"),
                "max_connections must be at least 1",
            );
        } else if max_connections > MAX_CONNECTIONS_LIMIT {
            diag.push(
                section.at("max_connections"),
                format!("max_connections must be at most {MAX_CONNECTIONS_LIMIT}, not {max_connections}"),
            );
        }
        let workers = raw.workers.filter(|&workers| {
            let valid = (1..=MAX_WORKERS).contains(&workers);
            if !valid {
                diag.push(
                    section.at("workers"),
                    format!("workers must be between 1 and {MAX_WORKERS}, not {workers}"),
                );
            }
            valid
        });
        if let Some(log) = &raw.log {
            // Parsed as the server will: a directive it cannot read would
            // be dropped at start-up, leaving only errors logged.
            let parsed = tracing_subscriber::EnvFilter::builder().parse(log);
            if log.trim().is_empty() || log.chars().any(char::is_control) || parsed.is_err() {
                let why = parsed.err().map(|e| format!(" ({e})")).unwrap_or_default();
                diag.push(
                    section.at("log"),
                    format!("invalid log filter {log:?}{why}: expected a tracing filter like \"info\" or \"floodgate=debug,info\""),
                );
            }
        }
        let config = Config {
            http: address(&section, "http", raw.http.as_deref(), diag).unwrap_or(default.http),
            grpc: address(&section, "grpc", raw.grpc.as_deref(), diag).unwrap_or(default.grpc),
            proxy,
            health: address(&section, "health", raw.health.as_deref(), diag),
            headers: section
                .choice("headers", raw.headers.as_deref(), &HeaderMode::ALL, diag)
                .unwrap_or(default.headers),
            shadow: raw.shadow.unwrap_or(default.shadow),
            log: raw.log.clone(),
            shutdown_grace: raw.shutdown_grace.map_or(default.shutdown_grace, |d| d.0),
            max_connections,
            workers,
            limits: Limits::read(&section, diag),
        };
        config.report_shared_ports(&section, diag);
        config
    }

    /// Every listener this section configures, by key.
    pub(crate) fn listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        let listeners = [
            ("http", Some(self.http)),
            ("grpc", Some(self.grpc)),
            ("health", self.health),
            ("proxy", self.proxy.as_ref().map(|p| p.listen)),
        ];
        (listeners.into_iter())
            .filter_map(|(key, addr)| Some((key, addr?)))
            .collect()
    }

    /// Reports a listener on the port of another (see [`clash`]): `serve`
    /// could not bind it. Reported on the later key, or on the earlier one
    /// when the later is a default the file does not write.
    fn report_shared_ports<T>(&self, section: &Section<'_, T>, diag: &mut Diagnostics<'_>) {
        let listeners = self.listeners();
        for (i, &(key, addr)) in listeners.iter().enumerate() {
            if let Some(&(other, at)) = listeners[..i].iter().find(|(_, at)| clash(*at, addr)) {
                let written = if section.has(key) { key } else { other };
                diag.push(
                    section.at(written),
                    format!("{key} ({addr}) and {other} ({at}) listen on one port: each listener needs a port of its own (or port 0 for any free one)"),
                );
            }
        }
    }
}

/// Whether listeners on `a` and `b` could not both be bound: one non-zero
/// port, and one address, or one of them holding the other's too —
/// `0.0.0.0` every IPv4 address, `[::]` every address of either family
/// (floodgate leaves `IPV6_V6ONLY` off, so it takes IPv4 too).
pub(crate) fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    let holds = |wide: SocketAddr, other: SocketAddr| {
        wide.ip().is_unspecified() && (wide.is_ipv6() || other.is_ipv4())
    };
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || holds(a, b) || holds(b, a))
}

fn read_proxy(section: &Section<'_, RawProxy>, diag: &mut Diagnostics<'_>) -> Option<ProxyConfig> {
    let raw = &section.raw;
    let mut missing = false;
    for (key, present) in [
        ("listen", raw.listen.is_some()),
        ("upstream", raw.upstream.is_some()),
    ] {
        if !present && !section.has_failed(key) {
            diag.push(
                section.header(),
                format!("[server.proxy] needs `{key}` (for example proxy = {{ listen = \"0.0.0.0:8000\", upstream = \"http://127.0.0.1:3000\" }})"),
            );
            missing = true;
        }
    }
    let listen = address(section, "listen", raw.listen.as_deref(), diag);
    let upstream = raw
        .upstream
        .as_deref()
        .and_then(|u| match check_upstream(u) {
            Ok(()) => Some(u.to_string()),
            Err(message) => {
                diag.push(section.at("upstream"), message);
                None
            }
        });
    let limits = ProxyLimits::read(section, diag);
    if missing {
        return None;
    }
    Some(ProxyConfig {
        listen: listen?,
        upstream: upstream?,
        limits,
    })
}

/// Parses the socket address at `key`, or reports it.
fn address<T>(
    section: &Section<'_, T>,
    key: &str,
    value: Option<&str>,
    diag: &mut Diagnostics<'_>,
) -> Option<SocketAddr> {
    let value = value?;
    match value.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            diag.push(
                section.at(key),
                format!("invalid address {value:?} for {key} in {}: expected IP:port like \"127.0.0.1:9720\" or \"[::1]:9720\"", section.name),
            );
            None
        }
    }
}

/// `http://host[:port][/path]` with a non-empty host and a numeric port.
fn check_upstream(url: &str) -> Result<(), String> {
    let expected = "expected a URL like \"http://127.0.0.1:3000\"";
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "invalid upstream {url:?}: only http:// upstreams are supported; {expected}"
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!(
            "invalid upstream {url:?}: credentials in the URL are not supported; {expected}"
        ));
    }
    match crate::store::split_host_port(authority) {
        Ok(_) => Ok(()),
        Err(problem) => Err(format!("invalid upstream {url:?}: {problem}; {expected}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams() {
        assert!(check_upstream("http://127.0.0.1:3000").is_ok());
        assert!(check_upstream("http://app").is_ok());
        assert!(check_upstream("http://[::1]:80/base").is_ok());
        assert!(check_upstream("https://app").is_err());
        assert!(check_upstream("http://").is_err());
        assert!(check_upstream("http://:80").is_err());
        assert!(check_upstream("http://app:port").is_err());
        assert!(check_upstream("127.0.0.1:3000").is_err());
    }
}
