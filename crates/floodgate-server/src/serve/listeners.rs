//! The listeners `floodgate serve` opens: bound together before any
//! serves (a port in use fails start-up), announced in one log line, then
//! each served on its own task until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use floodgate_config::server::ProxyConfig;
use floodgate_config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::ListenerSettings;
use crate::app::App;

/// Every listener of `[server]` and `[admin]`, bound.
pub(super) struct Listeners {
    /// The HTTP API.
    http: TcpListener,
    /// The gRPC services.
    grpc: TcpListener,
    /// The reverse proxy and its settings, when `[server.proxy]` is set.
    proxy: Option<(TcpListener, ProxyConfig)>,
    /// The health-only listener, when `health` is set.
    health: Option<TcpListener>,
    /// The admin API's own listener, when `[admin] listen` is set.
    admin: Option<TcpListener>,
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// The address `listener` is bound to, or `off`.
fn addr_or_off(listener: Option<&TcpListener>) -> anyhow::Result<String> {
    Ok(match listener {
        Some(listener) => listener.local_addr()?.to_string(),
        None => "off".to_string(),
    })
}

impl Listeners {
    /// Binds every listener `config` names.
    ///
    /// # Errors
    /// When an address cannot be bound (named in the message).
    pub(super) async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let http = bind(config.server.http, "HTTP").await?;
        let grpc = bind(config.server.grpc, "gRPC").await?;
        let proxy = match &config.server.proxy {
            Some(proxy) => Some((bind(proxy.listen, "the proxy").await?, proxy.clone())),
            None => None,
        };
        let health = match config.server.health {
            Some(addr) => Some(bind(addr, "health").await?),
            None => None,
        };
        let admin = match config.admin.as_ref().and_then(|a| a.listen) {
            Some(addr) => Some(bind(addr, "the admin API").await?),
            None => None,
        };
        Ok(Listeners {
            http,
            grpc,
            proxy,
            health,
            admin,
        })
    }

    /// Logs the one "floodgate listening" line: every bound address, the
    /// store in use, the policy count and the runtime's worker threads.
    pub(super) fn announce(&self, config: &Config, app: &App) -> anyhow::Result<()> {
        let admin_addr = match (&self.admin, &config.admin) {
            (Some(listener), _) => listener.local_addr()?.to_string(),
            (None, Some(_)) => "http-listener".to_string(),
            (None, None) => "off".to_string(),
        };
        tracing::info!(
            http = %self.http.local_addr()?,
            grpc = %self.grpc.local_addr()?,
            proxy = %addr_or_off(self.proxy.as_ref().map(|(listener, _)| listener))?,
            health = %addr_or_off(self.health.as_ref())?,
            admin = %admin_addr,
            store = app.limiter.store_mode().as_str(),
            policies = config.policies.len(),
            shadow = app.limiter.shadow(),
            workers = tokio::runtime::Handle::current().metrics().num_workers(),
            "floodgate listening"
        );
        Ok(())
    }

    /// Serves every listener on `tracker` until `shutdown`. A gRPC or
    /// proxy server that fails stops the whole process (cancels
    /// `shutdown`).
    pub(super) fn serve(
        self,
        config: &Config,
        app: &Arc<App>,
        shutdown: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        let settings = |what| ListenerSettings {
            what,
            max_connections: config.server.max_connections,
            limits: config.server.limits,
            grace: config.server.shutdown_grace,
            tunnels: false,
        };
        let http = crate::http::serve(self.http, app.clone(), settings("http"), shutdown.clone());
        tracker.spawn(http);
        if let Some(admin) = self.admin {
            let served =
                crate::admin::serve(admin, app.clone(), settings("admin"), shutdown.clone());
            tracker.spawn(served);
        }
        if let Some(health) = self.health {
            let (app, shutdown) = (app.clone(), shutdown.clone());
            tracker.spawn(crate::http::serve_health(
                health,
                app,
                settings("health"),
                shutdown,
            ));
        }
        let (grpc, grpc_app, grpc_settings) = (self.grpc, app.clone(), settings("grpc"));
        let grpc_shutdown = shutdown.clone();
        tracker.spawn(async move {
            let served = crate::grpc::serve(grpc, grpc_app, grpc_settings, grpc_shutdown.clone());
            if let Err(error) = served.await {
                tracing::error!(%error, "gRPC server failed");
                grpc_shutdown.cancel();
            }
        });
        if let Some((listener, proxy)) = self.proxy {
            let (app, shutdown) = (app.clone(), shutdown.clone());
            let proxy_settings = ListenerSettings {
                tunnels: true,
                ..settings("proxy")
            };
            tracing::info!(upstream = %proxy.upstream, "proxying");
            tracker.spawn(async move {
                let served =
                    crate::proxy::serve(listener, app, &proxy, proxy_settings, shutdown.clone());
                if let Err(error) = served.await {
                    tracing::error!("{error:#}");
                    shutdown.cancel();
                }
            });
        }
    }
}
