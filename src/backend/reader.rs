//! What becomes of backend messages: each is parsed as a command and passed to
//! its session. Garbage is logged at warn, counted and dropped; the proxy runs
//! on. The libzmq PULL (or DEALER) is read by a task here; the native PULL
//! delivers to the backend's [`Inbox`] from its peers' tasks.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::StreamExt;

use super::Backend;
use super::event::Command;
use super::zmtp::pull::Inbox;
use crate::sockjs::session::GO_AWAY;

pub async fn read_commands<S>(mut pull: S, backend: Arc<Backend>)
where
    S: futures_util::Stream<Item = Result<tmq::Multipart, tmq::TmqError>> + Unpin,
{
    while let Some(message) = pull.next().await {
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                log::error!("service {}: PULL receive failed: {e}", backend.name);
                continue;
            }
        };
        let parts: Vec<&[u8]> = message.iter().map(|m| &m[..]).collect();
        handle(&backend, &parts);
    }
}

impl Inbox for Backend {
    fn message(&self, parts: &[Bytes]) {
        handle(self, parts);
    }

    fn cut_off(&self) {
        // Logged with the peer's disconnection.
        self.stats.bad_commands.fetch_add(1, Ordering::Relaxed);
    }
}

/// Parses one backend message and carries it out.
fn handle<P: AsRef<[u8]>>(backend: &Backend, parts: &[P]) {
    let command = match &backend.scale {
        Some(scale) => scale.parse_command(parts),
        None => Command::parse(parts),
    };
    match command {
        Ok(command) => dispatch(backend, command),
        Err(e) => {
            backend.stats.bad_commands.fetch_add(1, Ordering::Relaxed);
            static BAD: crate::ratelog::Throttle =
                crate::ratelog::Throttle::new("backend commands");
            BAD.warn(format_args!(
                "service {}: backend message dropped: {e}",
                backend.name
            ));
        }
    }
}

fn dispatch(backend: &Backend, command: Command) {
    let (code, reason) = GO_AWAY;
    match command {
        Command::Message(key, data) => {
            if !backend.with_session(key, |s| s.send(data)) {
                unknown(backend, "message", key)
            }
        }
        Command::Disconnect(key) => {
            if !backend.with_session(key, |s| s.close(code, reason)) {
                unknown(backend, "disconnect", key)
            }
        }
        Command::DisconnectAll => {
            let all: Vec<_> = backend.sessions().values().cloned().collect();
            log::info!(
                "service {}: disconnectall closes {} sessions",
                backend.name,
                all.len()
            );
            for session in all {
                session.close(code, reason);
            }
        }
    }
}

fn unknown(backend: &Backend, kind: &str, key: crate::sockjs::SessionKey) {
    backend
        .stats
        .unknown_sessions
        .fetch_add(1, Ordering::Relaxed);
    // A backend answering sessions that just closed can send many of these.
    static UNKNOWN: crate::ratelog::Throttle = crate::ratelog::Throttle::new("backend commands");
    UNKNOWN.warn(format_args!(
        "service {}: {kind} for unknown session {key} dropped",
        backend.name
    ));
}
