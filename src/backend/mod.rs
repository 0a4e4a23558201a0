//! The 0MQ side of a service: a bound PUSH socket that carries session events
//! to backends and a bound PULL socket that takes their commands.
//!
//! tmq sockets are `Send` but not `Sync`, so each is owned by one task: the
//! *writer* drains a bounded channel of events into PUSH, the *reader* turns
//! PULL messages into calls on session handles. A backend that is down or slow
//! stalls only the writer; sessions never wait on 0MQ, and what does not fit
//! the channel is dropped, counted and logged.

pub mod frame;
mod reader;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::sockjs::{Application, SessionHandle, SessionKey};
use frame::Event;

/// Events that wait for the PUSH socket before new ones are dropped.
pub const EVENT_QUEUE: usize = 65_536;
/// 0MQ's own send/receive queue bound, in messages.
const HWM: i32 = 100_000;
/// How long 0MQ may go on sending after the proxy is done with a socket, in ms:
/// the shutdown linger already waited for the queue, this only covers the last
/// batch in flight.
const LINGER_MS: i32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot bind {kind} socket to {endpoint}: {source}")]
    Bind {
        kind: &'static str,
        endpoint: String,
        source: tmq::TmqError,
    },
}

/// Counters of what went wrong, for logs and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events dropped because the writer's queue was full.
    pub events_dropped: AtomicU64,
    /// Backend messages dropped as malformed.
    pub bad_commands: AtomicU64,
    /// Backend messages for a session that does not exist (any more).
    pub unknown_sessions: AtomicU64,
}

/// One service's backend connection; the service's [`Application`].
pub struct Backend {
    name: String,
    sessions: Mutex<HashMap<SessionKey, SessionHandle>>,
    events: mpsc::Sender<Event>,
    /// The writer holds events it took from the queue but has not yet handed
    /// to 0MQ.
    writer_busy: Arc<AtomicBool>,
    pub stats: Stats,
}

impl Backend {
    /// Binds both sockets and starts their tasks. Must run inside the actix
    /// system (tmq registers its sockets with the running tokio reactor).
    pub fn bind(
        zmq: &tmq::Context,
        push: &str,
        pull: &str,
        name: &str,
    ) -> Result<Arc<Backend>, BackendError> {
        let push_socket = tmq::push(zmq)
            .set_linger(LINGER_MS)
            .set_sndhwm(HWM)
            .bind(push)
            .map_err(|source| BackendError::Bind {
                kind: "PUSH",
                endpoint: push.to_string(),
                source,
            })?;
        let pull_socket = tmq::pull(zmq)
            .set_linger(0)
            .set_rcvhwm(HWM)
            .bind(pull)
            .map_err(|source| BackendError::Bind {
                kind: "PULL",
                endpoint: pull.to_string(),
                source,
            })?;
        let (events, queue) = mpsc::channel(EVENT_QUEUE);
        let backend = Arc::new(Backend {
            name: if name.is_empty() {
                "/".to_string()
            } else {
                name.to_string()
            },
            sessions: Mutex::default(),
            events,
            writer_busy: Arc::default(),
            stats: Stats::default(),
        });
        log::info!(
            "service {}: PUSH bound to {push}, PULL bound to {pull}",
            backend.name
        );
        actix_web::rt::spawn(writer::write_events(
            push_socket,
            queue,
            backend.writer_busy.clone(),
            backend.name.clone(),
        ));
        actix_web::rt::spawn(reader::read_commands(pull_socket, backend.clone()));
        Ok(backend)
    }

    fn send_event(&self, event: Event) {
        if let Err(e) = self.events.try_send(event) {
            let n = self.stats.events_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let what = match e {
                mpsc::error::TrySendError::Full(_) => "backend queue full",
                mpsc::error::TrySendError::Closed(_) => "backend writer stopped",
            };
            log::warn!("service {}: {what}, event dropped ({n} so far)", self.name);
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, SessionHandle>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn session(&self, key: SessionKey) -> Option<SessionHandle> {
        self.sessions().get(&key).cloned()
    }

    /// Sessions open now.
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    /// Events waiting for the PUSH socket.
    pub fn queue_depth(&self) -> usize {
        EVENT_QUEUE - self.events.capacity()
    }

    /// Whether every event so far has been handed to 0MQ.
    pub fn is_drained(&self) -> bool {
        self.queue_depth() == 0 && !self.writer_busy.load(Ordering::Acquire)
    }

    /// Closes every session with a SockJS close frame; each then sends its
    /// `disconnect` to the backend.
    pub fn close_all(&self, code: u16, reason: &'static str) -> usize {
        let all: Vec<SessionHandle> = self.sessions().values().cloned().collect();
        for session in &all {
            session.close(code, reason);
        }
        all.len()
    }

    /// The name used in logs and metrics: the service prefix.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Application for Backend {
    fn on_open(&self, key: SessionKey, handle: SessionHandle) {
        self.sessions().insert(key, handle);
        self.send_event(Event::Connect(key));
    }

    fn on_message(&self, key: SessionKey, message: String) {
        self.send_event(Event::Message(key, message));
    }

    fn on_close(&self, key: SessionKey) {
        self.sessions().remove(&key);
        self.send_event(Event::Disconnect(key));
    }
}
