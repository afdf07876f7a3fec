//! What every request handler shares.

use std::sync::Arc;

use arc_swap::ArcSwap;
use floodgate_config::server::HeaderMode;
use floodgate_config::{Config, IdentityConfig};
use floodgate_core::EndpointTable;
use floodgate_store::Limiter;
use metrics_exporter_prometheus::PrometheusHandle;

/// Settings a reload may change without restarting listeners.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which rate-limit headers responses carry.
    pub headers: HeaderMode,
    /// How HTTP integrations derive `user` and `ip`.
    pub identity: IdentityConfig,
    /// Path → endpoint class.
    pub endpoints: EndpointTable,
}

impl Settings {
    /// The settings of `config`.
    pub fn from_config(config: &Config) -> Self {
        Settings {
            headers: config.server.headers,
            identity: config.identity.clone(),
            endpoints: config.endpoints.clone(),
        }
    }
}

/// Shared state of the servers.
pub struct App {
    /// Decides checks.
    pub limiter: Arc<Limiter>,
    /// Reloadable settings, swapped whole.
    pub settings: ArcSwap<Settings>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}
