//! The `floodgate admin` subcommands as clap parses them, and their run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::cli::{self, AdminAction, Call};
use crate::cli_output;

/// The options every admin action shares.
#[derive(Debug, clap::Args)]
pub struct AdminTarget {
    /// The server's HTTP listener (or `[admin] listen`).
    #[arg(long, default_value = "http://127.0.0.1:9720")]
    pub url: String,
    /// A file holding the admin token (default: FLOODGATE_ADMIN_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// `floodgate admin <action>`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Every applicable policy's used / remaining / limit for a key, without
    /// charging it.
    State {
        #[command(flatten)]
        target: AdminTarget,
        /// The key's attributes, as name=value (user=u1 endpoint=ai).
        #[arg(required = true)]
        attributes: Vec<String>,
    },
    /// Clear a key's counters in every applicable policy (or one), on
    /// every sidecar.
    Reset {
        #[command(flatten)]
        target: AdminTarget,
        /// Only this policy.
        #[arg(long)]
        policy: Option<String>,
        /// The key's attributes, as name=value (user=u1 endpoint=ai).
        #[arg(required = true)]
        attributes: Vec<String>,
    },
    /// The keys each policy denied most over the last minutes (this
    /// sidecar's count).
    Top {
        #[command(flatten)]
        target: AdminTarget,
        /// Only this policy.
        #[arg(long)]
        policy: Option<String>,
        /// Keys per policy (1 to 64).
        #[arg(short = 'n', default_value_t = 10)]
        n: usize,
    },
}

/// Runs one `floodgate admin` command: prints the answer, or one line on
/// stderr and exits with 2 (bad arguments, no token) or 1 (anything else).
pub fn run(command: AdminCommand) -> ExitCode {
    let (action, target, policy, attributes, n) = match command {
        AdminCommand::State { target, attributes } => {
            (AdminAction::State, target, None, attributes, None)
        }
        AdminCommand::Reset {
            target,
            policy,
            attributes,
        } => (AdminAction::Reset, target, policy, attributes, None),
        AdminCommand::Top { target, policy, n } => {
            (AdminAction::Top, target, policy, Vec::new(), Some(n))
        }
    };
    let fail = |message: String, code: u8| {
        eprintln!("floodgate admin: {message}");
        ExitCode::from(code)
    };
    let attributes = match cli::parse_attributes(&attributes) {
        Ok(attributes) => attributes,
        Err(message) => return fail(message, 2),
    };
    let token = match cli::token(target.token_file.as_deref()) {
        Ok(token) => token,
        Err(message) => return fail(message, 2),
    };
    let call = Call {
        action,
        url: target.url,
        attributes,
        policy,
        n,
    };
    let request = match cli::request(&call, &token) {
        Ok(request) => request,
        Err(message) => return fail(message, 2),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => return fail(format!("cannot start the runtime: {error}"), 1),
    };
    match runtime.block_on(cli::run(&call, request)) {
        Ok(answer) => cli_output::print(format!("{answer}\n").as_bytes()),
        Err(message) => fail(message, 1),
    }
}
