//! Waiting for the signals that stop the process.

use std::future::Future;

/// Installs the SIGTERM and SIGINT handlers now — before the listeners
/// open, so a signal sent as soon as floodgate says it is listening drains
/// it instead of killing it — and resolves with the signal's name when one
/// arrives.
pub fn signal() -> impl Future<Output = &'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            // Without signal handlers only a server failure stops us.
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
}
