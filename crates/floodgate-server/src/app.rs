//! What every request handler shares.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use floodgate_config::cost::Cost;
use floodgate_config::server::HeaderMode;
use floodgate_config::server::Limits;
use floodgate_config::store::StoreKind;
use floodgate_config::{Config, IdentityConfig};
use floodgate_core::{AlgorithmKind, EndpointTable, PolicySet};
use floodgate_store::{
    check_waiting, Check, LeaseMode, LimitError, Limiter, PolicySnapshot, PolicySource, Resets,
    Store, Verdict, WaitRoom, Waited, WakeOnRelease,
};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::identity::{attributes, HttpRequestInfo};

/// Everything a reload may change without restarting listeners, swapped
/// whole: a check loads it once and sees the endpoint table, identity
/// settings, header mode, policies and shadow mode of one configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which rate-limit headers responses carry.
    pub headers: HeaderMode,
    /// How HTTP integrations derive `user` and `ip`.
    pub identity: IdentityConfig,
    /// Path → endpoint class.
    pub endpoints: EndpointTable,
    /// The `cost` of endpoint classes the proxy reserves and settles.
    pub costs: Arc<HashMap<String, Cost>>,
    /// The policies and global shadow mode the limiter decides with.
    pub policies: Arc<PolicySnapshot>,
    /// `[admin]`: the admin API's token and listener; `None`: off.
    pub admin: Option<floodgate_config::AdminConfig>,
}

impl Settings {
    /// The settings of `config`; `cli_shadow` is the `--shadow` flag (shadow
    /// mode is on if it or `[server] shadow` says so).
    pub fn from_config(config: &Config, cli_shadow: bool) -> Self {
        Settings {
            headers: config.server.headers,
            identity: config.identity.clone(),
            endpoints: config.endpoints.clone(),
            costs: Arc::new(config.costs.clone()),
            admin: config.admin.clone(),
            policies: Arc::new(PolicySnapshot::new(
                config.policies.clone(),
                cli_shadow || config.server.shadow,
            )),
        }
    }
}

/// The limiter's view of [`Settings`]: the policies it holds.
struct SettingsSource(Arc<ArcSwap<Settings>>);

impl PolicySource for SettingsSource {
    fn load(&self) -> Arc<PolicySnapshot> {
        self.0.load().policies.clone()
    }

    fn update(&self, change: &dyn Fn(&Arc<PolicySnapshot>) -> Arc<PolicySnapshot>) {
        self.0.rcu(|settings| Settings {
            policies: change(&settings.policies),
            ..Settings::clone(settings)
        });
    }
}

/// The transports with no "request finished" signal, where `concurrency`
/// policies are not applied.
pub const UNRELEASABLE_TRANSPORTS: &str = "nginx /v1/auth, Envoy ext_authz and Envoy RLS";

/// Shared state of the servers.
pub struct App {
    /// Decides checks; reads its policies from `settings`.
    pub limiter: Arc<Limiter>,
    /// Reloadable settings, swapped whole (policies included).
    pub settings: Arc<ArcSwap<Settings>>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Builds and exports spans of checks; `None` when tracing is off.
    pub traces: Option<Arc<crate::traces::Tracer>>,
    /// Where checks wait for their turn (`max_wait`); closed on shutdown.
    pub waits: Arc<WaitRoom>,
    /// The listeners' timeouts, which bound how long a check may wait.
    pub limits: Limits,
    /// Admin resets: forgets reset keys here and announces them to every
    /// sidecar.
    pub resets: Arc<Resets>,
}

/// How often the first waiter on a `concurrency` counter re-checks with no
/// release seen: the local store (whose releases all pass here) and a
/// shared store (whose releases on other sidecars arrive by message, which
/// may be lost).
fn wait_poll(kind: StoreKind) -> std::time::Duration {
    match kind {
        StoreKind::Local => std::time::Duration::from_secs(1),
        StoreKind::Redis => std::time::Duration::from_millis(250),
    }
}

impl App {
    /// The shared state for `config` over `store`; `cli_shadow` as in
    /// [`Settings::from_config`].
    pub fn new(
        config: &Config,
        cli_shadow: bool,
        store: Arc<dyn Store>,
        metrics: PrometheusHandle,
    ) -> App {
        let settings = Arc::new(ArcSwap::from_pointee(Settings::from_config(
            config, cli_shadow,
        )));
        let waits = Arc::new(WaitRoom::new(
            config.server.limits.max_waiting,
            wait_poll(config.store.kind()),
        ));
        let store = Arc::new(WakeOnRelease::new(store, waits.clone()));
        let resets = Arc::new(Resets::new(store.clone()));
        let limiter = Limiter::with_source(Arc::new(SettingsSource(settings.clone())), store);
        App {
            limiter: Arc::new(limiter),
            settings,
            metrics,
            traces: None,
            waits,
            limits: config.server.limits,
            resets,
        }
    }

    /// Starts timing (and, when traced, a span of) one check on
    /// `transport`; `traceparent` is the request's W3C header, if any.
    pub fn check_timer(
        &self,
        transport: &'static str,
        traceparent: Option<&[u8]>,
    ) -> crate::traces::CheckTimer {
        crate::traces::CheckTimer::start(self.traces.as_ref(), transport, traceparent)
    }

    /// Puts `settings` in force: one swap of everything a reload changes.
    pub fn reload(&self, settings: Settings) {
        self.settings.store(Arc::new(settings));
    }

    /// Puts the allowed attribute values of `info` on `timer`'s span (only
    /// when the check is traced: the attributes are derived again).
    pub fn trace_http_attributes(
        &self,
        timer: &mut crate::traces::CheckTimer,
        settings: &Settings,
        info: &HttpRequestInfo<'_>,
    ) {
        if timer.is_traced() {
            timer.attributes(&attributes(info, &settings.identity, &settings.endpoints));
        }
    }

    /// Checks one HTTP request as the HTTP-level integrations see it (nginx
    /// `auth_request`, Envoy ext_authz, the reverse proxy): attributes from
    /// `settings`' `[identity]` and `[[endpoint]]`, its policies, cost 1, no
    /// domain. The caller releases the verdict's lease (the proxy does).
    ///
    /// # Errors
    /// As [`Limiter::check`]: invalid attribute values, or no decision.
    pub async fn check_http(
        &self,
        settings: &Settings,
        info: &HttpRequestInfo<'_>,
    ) -> Result<Verdict, LimitError> {
        self.check_http_as(settings, info, LeaseMode::Held, 1, false)
            .await
    }

    /// [`App::check_http`] for a transport that cannot release leases
    /// (`/v1/auth`, ext_authz): `concurrency` policies are skipped.
    ///
    /// # Errors
    /// As [`App::check_http`].
    pub async fn check_http_unreleasable(
        &self,
        settings: &Settings,
        info: &HttpRequestInfo<'_>,
        transport: &'static str,
    ) -> Result<Verdict, LimitError> {
        self.check_http_as(settings, info, LeaseMode::Skipped(transport), 1, false)
            .await
    }

    async fn check_http_as(
        &self,
        settings: &Settings,
        info: &HttpRequestInfo<'_>,
        leases: LeaseMode,
        hits: u64,
        reserve: bool,
    ) -> Result<Verdict, LimitError> {
        let waited = self
            .check_http_waiting(
                settings,
                info,
                leases,
                std::time::Duration::ZERO,
                (hits, reserve),
            )
            .await?;
        Ok(waited.verdicts.into_iter().next().unwrap_or_default())
    }

    /// [`App::check_http`] (or, with [`LeaseMode::Skipped`], the
    /// unreleasable check) that waits up to `budget` for its turn when
    /// denied by policies with a `max_wait`; `(hits, reserve)` as in
    /// [`Check`].
    ///
    /// # Errors
    /// As [`App::check_http`].
    pub async fn check_http_waiting(
        &self,
        settings: &Settings,
        info: &HttpRequestInfo<'_>,
        leases: LeaseMode,
        budget: std::time::Duration,
        (hits, reserve): (u64, bool),
    ) -> Result<Waited, LimitError> {
        let attributes = attributes(info, &settings.identity, &settings.endpoints);
        self.check_waiting(
            &settings.policies,
            &[Check {
                attributes: &attributes,
                hits,
                domain: None,
                reserve,
            }],
            leases,
            budget,
        )
        .await
    }

    /// Decides `checks` against `snapshot`, waiting up to `budget` (see
    /// [`check_waiting`]).
    ///
    /// # Errors
    /// As [`Limiter::check_all_in`].
    pub async fn check_waiting(
        &self,
        snapshot: &PolicySnapshot,
        checks: &[Check<'_>],
        leases: LeaseMode,
        budget: std::time::Duration,
    ) -> Result<Waited, LimitError> {
        check_waiting(&self.limiter, &self.waits, snapshot, checks, leases, budget).await
    }
}

/// Logs one warning naming the `concurrency` policies of `policies`, which
/// are not applied on [`UNRELEASABLE_TRANSPORTS`] (nothing there could ever
/// release their leases). Nothing when there is none.
pub fn warn_unreleasable(policies: &PolicySet) {
    let names: Vec<&str> = policies
        .iter()
        .filter(|p| p.kind() == AlgorithmKind::Concurrency)
        .map(|p| p.name())
        .collect();
    if !names.is_empty() {
        tracing::warn!(
            policies = names.join(", "),
            "concurrency policies are not applied on {UNRELEASABLE_TRANSPORTS} (nothing there can release a lease); they apply on floodgate.v1 Check, /v1/check with /v1/release and the proxy; skips are counted in floodgate_concurrency_skipped_total"
        );
    }
}

#[cfg(test)]
mod tests;
