//! floodgate-config owns floodgate's TOML configuration: it parses a file
//! into validated domain types (`floodgate-core` policies, server, store and
//! fallback settings) and reports every error at once with file, line and
//! column. It must never depend on tokio, a store or a transport.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cost;
mod duration;
mod endpoint;
mod error;
mod fallback;
mod identity;
mod policy;
mod raw;
mod section;
pub mod server;
pub mod store;
mod summary;
pub mod traces;

use std::path::Path;

use floodgate_core::{EndpointTable, PolicySet};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub use admin::{AdminConfig, AdminToken};
pub use error::{ConfigError, ConfigErrors};
pub use fallback::{FallbackConfig, Instances};
pub use identity::{
    IdentityConfig, JwtAlgorithm, JwtConfig, JwtKey, JwtKeys, DEFAULT_LEEWAY,
    MAX_HEADER_ATTRIBUTES, MAX_JWKS_KEYS, MAX_LEEWAY, MIN_SECRET_BYTES, RESERVED_ATTRIBUTES,
};
pub use traces::TracesConfig;

use crate::error::Diagnostics;
use crate::raw::RawRoot;
use crate::section::Section;

/// A whole, valid configuration (docs/configuration.md). Every section is optional in
/// the file; `Config::default()` is what an empty file gives.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `[server]`: listeners, headers, shutdown.
    pub server: server::Config,
    /// `[store]`: local or Redis.
    pub store: store::Config,
    /// `[fallback]`: behaviour while Redis is unreachable.
    pub fallback: FallbackConfig,
    /// `[identity]`: where `user` and `ip` come from in HTTP integrations.
    pub identity: IdentityConfig,
    /// `[traces]`: OpenTelemetry span export; `None` when the file has no
    /// such section (the `OTEL_*` environment variables decide).
    pub traces: Option<TracesConfig>,
    /// `[admin]`: the admin API; `None` (off) when the file has no such
    /// section.
    pub admin: Option<AdminConfig>,
    /// `[[endpoint]]`: path → endpoint class, first match wins.
    pub endpoints: EndpointTable,
    /// The `cost` of endpoint classes, by class name: what the reverse
    /// proxy reserves and settles for them.
    pub costs: std::collections::HashMap<String, cost::Cost>,
    /// `[[policy]]`: the policies, in file order, names unique.
    pub policies: PolicySet,
}

/// Parses and validates a configuration held in memory. `origin` is the
/// file name shown in errors.
///
/// # Errors
/// A TOML syntax error alone (the document cannot be read past it);
/// otherwise every unknown key, wrong type and invalid value in the file,
/// in file order.
pub fn from_str(src: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let root = DeTable::parse(src).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        ConfigErrors(vec![error::at(
            origin,
            src,
            offset,
            format!("invalid TOML: {}", e.message()),
        )])
    })?;
    let root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut diag = Diagnostics::new(src);
    let config = Config::read(&root, &mut diag);
    diag.finish(origin).map(|()| config)
}

/// Reads the file at `path` and parses it with [`from_str`].
///
/// # Errors
/// As [`read_source`], then as [`from_str`].
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    from_str(&read_source(path)?, &path.display().to_string())
}

/// The text of the file at `path`.
///
/// # Errors
/// A file that cannot be read (or is not UTF-8), as one error at line 0,
/// column 0.
pub fn read_source(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            origin: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the configuration file: {e}"),
        }])
    })
}

impl Config {
    /// Reads every section of the document, recording every problem.
    fn read<'a>(root: &'a Spanned<DeValue<'a>>, diag: &mut Diagnostics<'_>) -> Config {
        let Some(top) = Section::<RawRoot>::read(root, "the top level", diag) else {
            return Config::default();
        };
        let server = server::Config::read(top.child("server"), diag);
        let store = store::Config::read(top.child("store"), diag);
        let fallback = FallbackConfig::read(top.child("fallback"), diag);
        let identity = IdentityConfig::read(top.child("identity"), diag);
        let traces = TracesConfig::read(top.child("traces"), diag);
        let admin = AdminConfig::read(top.child("admin"), &server.listeners(), diag);
        let (endpoints, costs) = endpoint::read_endpoints(top.child("endpoint"), diag);
        Config {
            server,
            store,
            fallback,
            identity,
            traces,
            admin,
            endpoints,
            costs,
            policies: policy::read_policies(top.child("policy"), diag),
        }
    }
}

#[cfg(test)]
mod tests;
