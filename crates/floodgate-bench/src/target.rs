//! `--target` parsing and the loopback guard: a [`Target`] can only be built
//! for a host that resolves to loopback addresses, so the load generator
//! cannot be pointed at another machine.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::error::BenchError;

/// A validated load target: a loopback socket address.
///
/// Invariant: `addr.ip()` is in 127.0.0.0/8, `::1` or `::ffff:127.0.0.0/104`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address connections go to (resolved once, so no later lookup can
    /// send traffic elsewhere).
    addr: SocketAddr,
    /// The target as the user wrote it, for reports.
    spec: String,
}

impl Target {
    /// Parses `host:port` or `http://host:port` (no path), resolves the host
    /// and checks that every address it resolves to is a loopback address.
    ///
    /// # Errors
    /// [`BenchError::BadTarget`] for a malformed target,
    /// [`BenchError::Resolve`] when the host does not resolve,
    /// [`BenchError::NotLoopback`] when any address is not loopback.
    pub fn parse(spec: &str) -> Result<Target, BenchError> {
        let bad = |reason: &str| BenchError::BadTarget {
            target: spec.to_string(),
            reason: reason.to_string(),
        };
        let rest = match spec.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "scheme {scheme:?} is not supported; use http:// or none"
                )))
            }
            None => spec,
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(bad("expected host:port with no path, query or user"));
        }
        let Some((_, port)) = authority.rsplit_once(':') else {
            return Err(bad("missing :port"));
        };
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
        let addrs: Vec<SocketAddr> = authority
            .to_socket_addrs()
            .map_err(|source| BenchError::Resolve {
                target: spec.to_string(),
                source,
            })?
            .collect();
        let Some(&first) = addrs.first() else {
            return Err(bad("the host resolves to no address"));
        };
        if !addrs.iter().all(|a| is_loopback(a.ip())) {
            return Err(BenchError::NotLoopback {
                target: spec.to_string(),
                addrs,
            });
        }
        Ok(Target {
            addr: first,
            spec: spec.to_string(),
        })
    }

    /// The loopback address to connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The target as given on the command line.
    pub fn spec(&self) -> &str {
        &self.spec
    }
}

/// True for 127.0.0.0/8, `::1` and IPv4-mapped 127.0.0.0/8.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_targets() {
        for spec in [
            "127.0.0.1:9721",
            "http://127.0.0.1:9720",
            "http://127.0.0.1:9720/",
            "127.1.2.3:80",
            "[::1]:9721",
            "http://[::1]:9721",
            "[::ffff:127.0.0.1]:9721",
        ] {
            let target = Target::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert!(is_loopback(target.addr().ip()), "{spec}");
            assert_eq!(target.spec(), spec);
        }
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        // Where /etc/hosts maps localhost, it maps it to loopback only.
        if let Ok(target) = Target::parse("localhost:9721") {
            assert!(is_loopback(target.addr().ip()));
        }
    }

    #[test]
    fn refuses_non_loopback_addresses() {
        for spec in [
            "10.0.0.1:9721",
            "192.168.1.10:80",
            "172.16.0.1:80",
            "8.8.8.8:53",
            "0.0.0.0:9721",
            "[::]:9721",
            "[fe80::1]:9721",
            "[2001:db8::1]:9721",
            "http://1.2.3.4:80",
        ] {
            match Target::parse(spec) {
                Err(BenchError::NotLoopback { target, addrs }) => {
                    assert_eq!(target, spec);
                    assert!(!addrs.is_empty());
                }
                other => panic!("{spec}: expected NotLoopback, got {other:?}"),
            }
        }
        let message = Target::parse("10.0.0.1:1").unwrap_err().to_string();
        assert!(message.contains("only sends load to loopback"), "{message}");
    }

    #[test]
    fn rejects_malformed_targets() {
        for spec in [
            "",
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "127.0.0.1:port",
            "https://127.0.0.1:443",
            "grpc://127.0.0.1:9721",
            "http://127.0.0.1:9720/v1/check",
            "http://user@127.0.0.1:9720",
        ] {
            assert!(
                matches!(Target::parse(spec), Err(BenchError::BadTarget { .. })),
                "{spec}: {:?}",
                Target::parse(spec)
            );
        }
    }
}
