//! What every request handler shares.

use std::sync::Arc;

use arc_swap::ArcSwap;
use floodgate_config::server::HeaderMode;
use floodgate_config::{Config, IdentityConfig};
use floodgate_core::EndpointTable;
use floodgate_store::{Check, LimitError, Limiter, Verdict};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::identity::{attributes, HttpRequestInfo};

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

impl App {
    /// Checks one HTTP request as the HTTP-level integrations see it (nginx
    /// `auth_request`, Envoy ext_authz, the reverse proxy): attributes from
    /// `settings`' `[identity]` and `[[endpoint]]`, cost 1, no domain.
    ///
    /// # Errors
    /// As [`Limiter::check`]: invalid attribute values, or no decision.
    pub async fn check_http(
        &self,
        settings: &Settings,
        info: &HttpRequestInfo<'_>,
    ) -> Result<Verdict, LimitError> {
        let attributes = attributes(info, &settings.identity, &settings.endpoints);
        self.limiter
            .check(Check {
                attributes: &attributes,
                hits: 1,
                domain: None,
            })
            .await
    }
}
