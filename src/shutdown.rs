//! Graceful shutdown on SIGTERM or SIGINT.
//!
//! Stop accepting connections; close every session with a SockJS close frame
//! (`c[1001,"Server shutting down"]`, a websocket close for raw websockets) so
//! that clients know to reconnect elsewhere; let each session's `disconnect`
//! reach the backend; then stop. Every step is bounded by the linger time, so
//! a stuck client or an absent backend cannot hold the exit.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use tokio::time::Instant;

use crate::backend::Backend;

/// The close frame every session gets at shutdown.
pub const SHUTDOWN_CLOSE: (u16, &str) = (1001, "Server shutting down");

/// Resolves with the signal's name when SIGTERM or SIGINT arrives.
pub async fn signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// Waits for a signal, then shuts the server down within `linger`.
pub async fn on_signal(server: ServerHandle, backends: Vec<Arc<Backend>>, linger: Duration) {
    let name = signal().await;
    let deadline = Instant::now() + linger;
    server.pause().await;
    let (code, reason) = SHUTDOWN_CLOSE;
    let closing: usize = backends.iter().map(|b| b.close_all(code, reason)).sum();
    log::info!("{name}: closing {closing} sessions, then stopping (at most {linger:?})");

    let settled = || {
        backends
            .iter()
            .all(|b| b.session_count() == 0 && b.is_drained())
    };
    while !settled() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !settled() {
        let left: usize = backends.iter().map(|b| b.queue_depth()).sum();
        log::warn!("shutdown: linger over with {left} backend events unsent");
    }
    server.stop(true).await;
}
