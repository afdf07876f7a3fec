//! `[admin]`: the admin API (state, reset and top keys of a counter), off
//! unless the section is present. Its bearer token is read from a file or
//! an environment variable at load (and at every reload), never from the
//! TOML itself.

use std::fmt;
use std::net::SocketAddr;

use crate::error::Diagnostics;
use crate::raw::RawAdmin;
use crate::section::{Node, Section};

/// Shortest token accepted, in bytes.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The admin bearer token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(Vec<u8>);

impl AdminToken {
    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// The bearer token every admin request must carry.
    pub token: AdminToken,
    /// A listener of its own for the admin routes; `None`: they are served
    /// on the HTTP listener.
    pub listen: Option<SocketAddr>,
}

impl AdminConfig {
    /// Reads `[admin]` when present, reporting every problem into `diag`;
    /// its `listen` must not share a port with the `[server]` `listeners`.
    pub(crate) fn read(
        node: Option<&Node<'_>>,
        listeners: &[(&str, SocketAddr)],
        diag: &mut Diagnostics<'_>,
    ) -> Option<AdminConfig> {
        let section = Section::<RawAdmin>::read(node?, "[admin]", diag)?;
        let raw = &section.raw;
        if raw.token.is_some() {
            diag.push(
                section.at("token"),
                "the admin token must not be written in the configuration file (it is often readable by more people and ends up in version control): put it in a file named by token_file, or in an environment variable named by token_env",
            );
        }
        let token = match (&raw.token_file, &raw.token_env) {
            (Some(_), Some(_)) => {
                diag.push(
                    section.at("token_env"),
                    "give only one of token_file, token_env",
                );
                None
            }
            (None, None) => {
                if raw.token.is_none() {
                    diag.push(
                        section.header(),
                        "[admin] needs its bearer token: token_file = \"/path/to/file\" or token_env = \"VARIABLE\"",
                    );
                }
                None
            }
            (Some(path), None) => read_file(path)
                .map_err(|e| diag.push(section.at("token_file"), e))
                .ok(),
            (None, Some(var)) => read_env(var)
                .map_err(|e| diag.push(section.at("token_env"), e))
                .ok(),
        };
        let listen = raw.listen.as_deref().and_then(|value| match value.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                diag.push(
                    section.at("listen"),
                    format!("invalid address {value:?} for listen in [admin]: expected IP:port like \"127.0.0.1:9723\""),
                );
                None
            }
        });
        let shared = listen.and_then(|addr| {
            (listeners.iter())
                .find_map(|&(key, at)| crate::server::clash(at, addr).then_some((addr, key, at)))
        });
        if let Some((addr, key, at)) = shared {
            diag.push(
                section.at("listen"),
                format!("listen ({addr}) and [server] {key} ({at}) listen on one port: the admin listener needs a port of its own (or port 0 for any free one)"),
            );
        }
        Some(AdminConfig {
            token: token?,
            listen,
        })
    }
}

/// The token in the file at `path`, surrounding whitespace trimmed.
fn read_file(path: &str) -> Result<AdminToken, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read token_file {path:?}: {e}"))?;
    token(&bytes).map_err(|e| format!("token_file {path:?}: {e}"))
}

/// The token in environment variable `var`, surrounding whitespace trimmed.
fn read_env(var: &str) -> Result<AdminToken, String> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => {
            token(v.as_encoded_bytes()).map_err(|e| format!("token_env {var:?}: {e}"))
        }
        _ => Err(format!(
            "environment variable {var:?} (token_env) is not set or empty"
        )),
    }
}

/// Checks a token: at least [`MIN_TOKEN_BYTES`] of visible ASCII once
/// trimmed (it travels in an HTTP header).
fn token(bytes: &[u8]) -> Result<AdminToken, String> {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err("the token is empty".into());
    }
    if trimmed.len() < MIN_TOKEN_BYTES {
        return Err(format!(
            "the token is too short ({} bytes): use at least {MIN_TOKEN_BYTES}, like the output of `openssl rand -hex 32`",
            trimmed.len()
        ));
    }
    if !trimmed.iter().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the token must be visible ASCII characters (no spaces or control characters)".into(),
        );
    }
    Ok(AdminToken(trimmed.to_vec()))
}
