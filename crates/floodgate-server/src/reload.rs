//! Live reload of the configuration file (docs/configuration.md): on SIGHUP and whenever
//! the file changes on disk, the file is re-read and validated; a valid file
//! swaps the policies and reloadable settings atomically (one swap of one
//! [`Settings`], which carries the policies), an invalid one is
//! rejected with every error logged and the old policies stay.
//!
//! Change detection polls the file's metadata (mtime, length, inode) every
//! [`POLL_EVERY`] instead of using inotify through the `notify` crate:
//! `std::fs::metadata` follows symlinks, so an editor that writes a new file
//! and renames it over the old one (new inode) and a Kubernetes ConfigMap
//! update (the `..data` symlink swapped to a new directory) are both seen,
//! with no extra dependency and no watch to re-arm when the file is
//! replaced. The cost is up to half a second of latency and one `stat` per
//! poll.
//!
//! A file seen changing is read only once it has held still for
//! `SETTLE`, and an empty file (nothing but whitespace and comments) is
//! rejected (it would parse as "no policies"), so a writer caught between
//! truncating and writing does not wipe the limits. A missing, unreadable
//! or invalid file counts as a failed reload: the old policies stay and the
//! next change is tried again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use floodgate_config::Config;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::app::{App, Settings};

/// How often the file's metadata is polled for changes.
pub const POLL_EVERY: Duration = Duration::from_millis(500);

/// How long a changed file must hold still before it is read.
const SETTLE: Duration = Duration::from_millis(100);

/// How many times [`settle`] waits for a file that keeps changing.
const SETTLE_TRIES: u32 = 5;

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    /// Last modification time.
    mtime: Option<SystemTime>,
    /// Size in bytes.
    len: u64,
    /// Inode (changes when the file is replaced by a rename).
    inode: u64,
    /// Device of the inode.
    dev: u64,
}

/// The stamp of the file at `path` (following symlinks), `None` when it
/// cannot be stat'ed (missing, unreadable directory).
fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        mtime: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
        dev: meta.dev(),
    })
}

/// The parts of the startup configuration that only a restart can change:
/// listeners, proxy, connection cap, workers, drain grace, log filter, store,
/// fallback and traces.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixed {
    /// `[server] http`.
    http: std::net::SocketAddr,
    /// `[server] grpc`.
    grpc: std::net::SocketAddr,
    /// `[server] health`.
    health: Option<std::net::SocketAddr>,
    /// `[server] proxy`.
    proxy: Option<floodgate_config::server::ProxyConfig>,
    /// `[server]` max_connections, workers, shutdown_grace, log, and the
    /// listener timeouts and limits (built into the listeners at startup).
    server_other: (
        usize,
        Option<usize>,
        Duration,
        Option<String>,
        floodgate_config::server::Limits,
    ),
    /// `[store]`.
    store: floodgate_config::store::Config,
    /// `[fallback]` (built into the failover store at startup).
    fallback: floodgate_config::FallbackConfig,
    /// `[traces]` (the exporter is started once).
    traces: Option<floodgate_config::TracesConfig>,
    /// `[admin] listen` (bound once).
    admin_listen: Option<std::net::SocketAddr>,
}

impl Fixed {
    /// The restart-only parts of `config`.
    pub fn of(config: &Config) -> Self {
        Fixed {
            http: config.server.http,
            grpc: config.server.grpc,
            health: config.server.health,
            proxy: config.server.proxy.clone(),
            server_other: (
                config.server.max_connections,
                config.server.workers,
                config.server.shutdown_grace,
                config.server.log.clone(),
                config.server.limits,
            ),
            store: config.store.clone(),
            fallback: config.fallback,
            traces: config.traces.clone(),
            admin_listen: config.admin.as_ref().and_then(|a| a.listen),
        }
    }

    /// The names of the sections of `self` that differ from `other`.
    fn changed(&self, other: &Fixed) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.http != other.http || self.grpc != other.grpc || self.health != other.health {
            changed.push("[server] listeners");
        }
        if self.proxy != other.proxy {
            changed.push("[server] proxy");
        }
        if self.server_other != other.server_other {
            changed.push("[server] max_connections/workers/shutdown_grace/log/timeouts and limits");
        }
        if self.store != other.store {
            changed.push("[store]");
        }
        if self.fallback != other.fallback {
            changed.push("[fallback]");
        }
        if self.traces != other.traces {
            changed.push("[traces]");
        }
        if self.admin_listen != other.admin_listen {
            changed.push("[admin] listen");
        }
        changed
    }
}

/// Reloads `path` on SIGHUP and on changes until `shutdown` fires.
/// `current` is what the running listeners and store were built from;
/// `cli_shadow` is the `--shadow` flag, which a reload cannot turn off.
///
/// The SIGHUP handler is installed and the file's first stamp taken when
/// this is called, not when the future is first polled, so a SIGHUP or a
/// change right after startup is not lost (nor does SIGHUP kill us).
pub fn run(
    path: PathBuf,
    app: Arc<App>,
    current: Fixed,
    cli_shadow: bool,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let hup = match signal(SignalKind::hangup()) {
        Ok(hup) => Some(hup),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reloading on file changes only");
            None
        }
    };
    let last = stamp(&path);
    watch(path, app, current, cli_shadow, shutdown, hup, last)
}

/// The reload loop of [`run`]: waits for each trigger, then reloads.
async fn watch(
    path: PathBuf,
    app: Arc<App>,
    current: Fixed,
    cli_shadow: bool,
    shutdown: CancellationToken,
    mut hup: Option<tokio::signal::unix::Signal>,
    mut last: Option<Stamp>,
) {
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while let Some(trigger) = next_trigger(&path, &shutdown, &mut hup, &mut poll, &mut last).await {
        reload(&path, &app, &current, cli_shadow, trigger).await;
    }
}

/// Waits for the next reason to reload: a SIGHUP, or a change of the file
/// at `path` from the stamp `last` (updated once the file holds still).
/// `None` once `shutdown` fires.
async fn next_trigger(
    path: &Path,
    shutdown: &CancellationToken,
    hup: &mut Option<tokio::signal::unix::Signal>,
    poll: &mut tokio::time::Interval,
    last: &mut Option<Stamp>,
) -> Option<&'static str> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            Some(()) = sighup(hup) => return Some("SIGHUP"),
            _ = poll.tick() => {
                let now = stamp(path);
                if now != *last {
                    *last = settle(path, now).await;
                    return Some("file change");
                }
            }
        }
    }
}

/// The next SIGHUP; never, without a handler.
async fn sighup(hup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hup.as_mut() {
        Some(hup) => hup.recv().await,
        None => std::future::pending().await,
    }
}

/// Re-reads `path` for `trigger` and swaps in the result when it is valid;
/// otherwise logs why and keeps the old policies.
async fn reload(path: &Path, app: &App, current: &Fixed, cli_shadow: bool, trigger: &str) {
    // Read off the async workers: it is a blocking file read.
    let read = path.to_path_buf();
    match tokio::task::spawn_blocking(move || read_config(&read)).await {
        Ok(None) => {
            // A file with no settings parses as "no policies": far more
            // likely a writer caught between truncate and write, or a
            // template that rendered nothing, than a wish.
            tracing::warn!(
                trigger,
                path = %path.display(),
                "config reload: the file is empty (nothing but whitespace and comments); \
                 keeping the old policies"
            );
            count_failure();
        }
        Ok(Some(Ok(config))) => apply(app, config, current, cli_shadow, trigger),
        Ok(Some(Err(errors))) => {
            for error in &errors.0 {
                tracing::warn!(trigger, "config reload: {error}");
            }
            tracing::warn!(
                trigger,
                errors = errors.0.len(),
                "config reload rejected; keeping the old policies"
            );
            count_failure();
        }
        Err(error) => {
            tracing::warn!(%error, "config reload failed; keeping the old policies");
            count_failure();
        }
    }
}

/// Reads and parses the file at `path`; `None` when it holds nothing but
/// whitespace and comments.
fn read_config(path: &Path) -> Option<Result<Config, floodgate_config::ConfigErrors>> {
    let src = match floodgate_config::read_source(path) {
        Ok(src) => src,
        Err(errors) => return Some(Err(errors)),
    };
    (!is_blank(&src)).then(|| floodgate_config::from_str(&src, &path.display().to_string()))
}

/// Whether `src` holds no TOML at all: only whitespace and comments.
fn is_blank(src: &str) -> bool {
    src.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    })
}

/// Counts a reload that left the old policies in force.
fn count_failure() {
    metrics::counter!(floodgate_core::metric::CONFIG_RELOADS_TOTAL, "result" => "failure")
        .increment(1);
}

/// Waits until a file seen changing holds still for [`SETTLE`] (at most
/// [`SETTLE_TRIES`] times), so a writer in the middle of writing is not read
/// half-way; its final stamp.
async fn settle(path: &Path, mut seen: Option<Stamp>) -> Option<Stamp> {
    for _ in 0..SETTLE_TRIES {
        tokio::time::sleep(SETTLE).await;
        let now = stamp(path);
        if now == seen {
            break;
        }
        seen = now;
    }
    seen
}

/// Swaps in a valid `config`.
fn apply(app: &App, config: Config, current: &Fixed, cli_shadow: bool, trigger: &str) {
    let changed = current.changed(&Fixed::of(&config));
    if !changed.is_empty() {
        tracing::warn!(
            sections = changed.join(", "),
            "config reload: these changes need a restart and are not applied"
        );
    }
    let policies = config.policies.len();
    crate::app::warn_unreleasable(&config.policies);
    // One swap: a check sees the old endpoints, identity settings and
    // policies or the new ones, never half of each.
    let mut settings = Settings::from_config(&config, cli_shadow);
    if let Some(admin) = &mut settings.admin {
        // The admin listener is bound once: the routes stay where they are
        // served (a new token applies at once).
        admin.listen = current.admin_listen;
    }
    app.reload(settings);
    app.limiter
        .denials()
        .retain(|name| config.policies.get(name).is_some());
    metrics::counter!(floodgate_core::metric::CONFIG_RELOADS_TOTAL, "result" => "success")
        .increment(1);
    tracing::info!(
        trigger,
        policies,
        shadow = app.limiter.shadow(),
        "config reloaded"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_changes_are_named() {
        let base = Config::default();
        let fixed = Fixed::of(&base);
        assert!(fixed.changed(&Fixed::of(&base)).is_empty());
        let mut threads = base.clone();
        threads.server.workers = Some(1);
        assert_eq!(
            fixed.changed(&Fixed::of(&threads)),
            ["[server] max_connections/workers/shutdown_grace/log/timeouts and limits"]
        );
        let mut other = base.clone();
        other.server.http = "127.0.0.1:1".parse().unwrap();
        other.server.shadow = true;
        assert_eq!(fixed.changed(&Fixed::of(&other)), ["[server] listeners"]);
        other.store = floodgate_config::store::Config::redis_store(
            other.store.local(),
            floodgate_config::store::RedisConfig::new(
                floodgate_config::store::RedisTopology::Standalone("redis://h".into()),
            ),
        );
        other.server.log = Some("debug".into());
        assert_eq!(
            fixed.changed(&Fixed::of(&other)),
            [
                "[server] listeners",
                "[server] max_connections/workers/shutdown_grace/log/timeouts and limits",
                "[store]"
            ]
        );
        other.fallback.mode = floodgate_core::FallbackMode::Deny;
        assert_eq!(
            fixed.changed(&Fixed::of(&other)).last(),
            Some(&"[fallback]")
        );
    }

    #[test]
    fn stamp_sees_replacement_and_disappearance() {
        let dir = tempfile_dir();
        let path = dir.join("f.toml");
        std::fs::write(&path, "a").unwrap();
        let first = stamp(&path);
        assert!(first.is_some());
        let tmp = dir.join("f.toml.new");
        std::fs::write(&tmp, "b").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_ne!(stamp(&path), first);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(stamp(&path), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A config file in a fresh directory with one policy named `name`.
    fn write_policy(path: &Path, name: &str) {
        let src = format!(
            "[[policy]]\nname = \"{name}\"\nkey = [\"user\"]\nlimit = 1\nwindow = \"1m\"\n"
        );
        std::fs::write(path, src).unwrap();
    }

    fn test_app(config: &Config) -> Arc<App> {
        let clock: Arc<dyn floodgate_core::Clock> =
            Arc::new(floodgate_core::ManualClock::new(1_700_000_000_000_000));
        let store = floodgate_store::LocalStore::new(
            floodgate_store::LocalConfig::default(),
            clock,
            floodgate_store::Source::Local,
        );
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        Arc::new(App::new(config, false, Arc::new(store), metrics))
    }

    fn policy_names(app: &App) -> Vec<String> {
        app.limiter
            .policies()
            .iter()
            .map(|p| p.name().to_string())
            .collect()
    }

    /// Lets the loop run until `virtual_time` has passed (the clock is
    /// paused; the config read runs on a blocking thread, so yield a few
    /// real moments too).
    async fn run_for(virtual_time: Duration) {
        let end = tokio::time::Instant::now() + virtual_time;
        while tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_watch_loop_reloads_a_changed_file_and_keeps_the_old_policies_on_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("floodgate.toml");
        write_policy(&path, "first");
        let config = floodgate_config::load(&path).unwrap();
        let app = test_app(&config);
        let shutdown = CancellationToken::new();
        let current = Fixed::of(&config);
        let task = tokio::spawn(watch(
            path.clone(),
            app.clone(),
            current,
            false,
            shutdown.clone(),
            None,
            stamp(&path),
        ));
        run_for(POLL_EVERY * 2).await;
        assert_eq!(policy_names(&app), ["first"], "nothing changed yet");

        // A change is read once the file has held still: one poll, then
        // SETTLE, all in virtual time.
        write_policy(&path, "second-policy");
        run_for(POLL_EVERY + SETTLE * 3).await;
        assert_eq!(policy_names(&app), ["second-policy"]);

        // A file that does not parse, and an empty one, change nothing.
        std::fs::write(&path, "[[policy]]\nname = \"broken\"\nlimit = \"many\"\n").unwrap();
        run_for(POLL_EVERY + SETTLE * 3).await;
        assert_eq!(policy_names(&app), ["second-policy"]);
        for blank in [
            "",
            "\n",
            "  \n\t\n",
            "# every policy is elsewhere now\n\n  # really\n",
        ] {
            std::fs::write(&path, blank).unwrap();
            run_for(POLL_EVERY + SETTLE * 3).await;
            assert_eq!(policy_names(&app), ["second-policy"], "{blank:?}");
        }

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the loop ends at shutdown")
            .unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("floodgate-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
