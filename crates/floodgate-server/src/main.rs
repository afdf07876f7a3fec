//! The `floodgate` binary: parses flags, sets up telemetry, loads the config,
//! starts the servers, waits for a signal, drains.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use floodgate_server::{cli_output, explain, serve, shutdown, telemetry};

/// A distributed rate-limiting sidecar.
#[derive(Debug, Parser)]
#[command(name = "floodgate", version)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sidecar.
    Serve {
        /// The TOML configuration file.
        #[arg(long, env = "FLOODGATE_CONFIG")]
        config: PathBuf,
        /// Count and report, never deny (global shadow mode).
        #[arg(long)]
        shadow: bool,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: telemetry::LogFormat,
    },
    /// Validate a configuration file: print a summary, or every error.
    CheckConfig {
        /// The TOML configuration file.
        path: PathBuf,
    },
    /// Show which policies a check with these attributes meets, the counter
    /// key each uses, and why the others do not apply.
    Explain {
        /// The TOML configuration file.
        #[arg(long, env = "FLOODGATE_CONFIG")]
        config: PathBuf,
        /// The check's domain (Envoy RLS); none by default.
        #[arg(long)]
        domain: Option<String>,
        /// Attributes of the check, as name=value (user=u1 endpoint=ai).
        attributes: Vec<String>,
    },
    /// Ask a running floodgate's admin API (`[admin]`): the state of a key,
    /// its reset, or the keys denied most. The token comes from
    /// FLOODGATE_ADMIN_TOKEN or --token-file.
    Admin {
        /// What to do.
        #[command(subcommand)]
        action: floodgate_server::admin::command::AdminCommand,
    },
    /// Print a completion script for a shell.
    Completions {
        /// The shell: bash, zsh or fish.
        #[arg(value_enum)]
        shell: cli_output::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// mimalloc instead of the system allocator: a check allocates and frees
/// small buffers on several threads (h2 frames, protobuf, Redis replies),
/// where glibc's malloc took a quarter of floodgate's CPU under load
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { path } => match floodgate_config::load(&path) {
            Ok(config) => cli_output::print(config.summary().as_bytes()),
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Explain {
            config,
            domain,
            attributes,
        } => {
            let attributes = match explain::parse_attributes(&attributes) {
                Ok(attributes) => attributes,
                Err(message) => {
                    eprintln!("floodgate explain: {message}");
                    return ExitCode::from(2);
                }
            };
            match floodgate_config::load(&config) {
                Ok(config) => cli_output::print(
                    explain::explain(&config, &attributes, domain.as_deref()).as_bytes(),
                ),
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Admin { action } => floodgate_server::admin::command::run(action),
        Command::Completions { shell } => {
            cli_output::print(&cli_output::completions(shell, &mut Cli::command()))
        }
        Command::Man => match cli_output::man_page(Cli::command()) {
            Ok(page) => cli_output::print(&page),
            Err(error) => {
                eprintln!("floodgate man: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Serve {
            config,
            shadow,
            log_format,
        } => serve(config, shadow, log_format),
    }
}

fn serve(path: PathBuf, shadow: bool, log_format: telemetry::LogFormat) -> ExitCode {
    let config = match floodgate_config::load(&path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init_tracing(log_format, config.server.log.as_deref().unwrap_or("info"));
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = config.server.workers {
        runtime.worker_threads(workers);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let metrics = telemetry::init_metrics()?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let on_signal = shutdown.clone();
        let signalled = shutdown::signal();
        tokio::spawn(async move {
            let signal = signalled.await;
            tracing::info!(signal, "shutting down");
            on_signal.cancel();
        });
        let startup = serve::Startup {
            config_path: path.clone(),
            shadow,
            metrics,
        };
        serve::run(config, startup, shutdown.clone(), tracker.clone()).await?;
        tracker.close();
        shutdown.cancelled().await;
        tracker.wait().await;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("floodgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
