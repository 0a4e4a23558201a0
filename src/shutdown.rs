//! Graceful shutdown on SIGTERM or SIGINT.
//!
//! Stop accepting connections; close every session with a SockJS close frame
//! (`c[1001,"Server shutting down"]`, a websocket close for raw websockets and
//! the websockets of Mongrel2 routes) so that clients know to reconnect
//! elsewhere; let each session's `disconnect` reach the backend (or Mongrel2
//! handler); then stop. Every step is bounded by the linger time, so a stuck
//! client or an absent backend cannot hold the exit.
//!
//! What is closed is anything [`Closing`]: a zmq service's [`Backend`], a
//! Mongrel2 service's sessions, a Mongrel2 route's link.

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

/// Something the shutdown closes and waits for.
pub trait Closing: Send + Sync {
    /// Closes every session (or websocket) with `code` and `reason`: how
    /// many it closes.
    fn close_all(&self, code: u16, reason: &'static str) -> usize;
    /// Whether all are closed and every goodbye was handed on.
    fn settled(&self) -> bool;
    /// Events not handed on yet (for the log line when the linger is over).
    fn unsent(&self) -> usize {
        0
    }
}

impl Closing for Backend {
    fn close_all(&self, code: u16, reason: &'static str) -> usize {
        Backend::close_all(self, code, reason)
    }

    fn settled(&self) -> bool {
        self.session_count() == 0 && self.is_drained()
    }

    fn unsent(&self) -> usize {
        self.queue_depth()
    }
}

/// Waits for a signal, then shuts the server down within `linger`.
pub async fn on_signal(server: ServerHandle, all: Vec<Arc<dyn Closing>>, linger: Duration) {
    let name = signal().await;
    let deadline = Instant::now() + linger;
    server.pause().await;
    let (code, reason) = SHUTDOWN_CLOSE;
    let closing: usize = all.iter().map(|c| c.close_all(code, reason)).sum();
    log::info!("{name}: closing {closing} sessions, then stopping (at most {linger:?})");

    let settled = || all.iter().all(|c| c.settled());
    while !settled() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !settled() {
        let left: usize = all.iter().map(|c| c.unsent()).sum();
        log::warn!("shutdown: linger over with {left} backend events unsent");
    }
    server.stop(true).await;
}
