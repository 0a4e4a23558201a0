//! The 0MQ side of a service: a bound PUSH socket that carries session events
//! to backends and a bound PULL socket that takes their commands (in scale-out
//! mode, a connected PUSH and DEALER instead: see [`topology`]).
//!
//! Bound TCP and IPC sockets use the native ZMTP transport of [`zmtp`] by
//! default (`--zmq-engine native`): it runs on the sessions' own thread, with
//! no libzmq I/O thread between them and the kernel. Other endpoints, scale-out
//! mode and `--zmq-engine libzmq` use libzmq through tmq.
//!
//! Either way each socket is owned by one task: the *writer* drains the
//! channel of events into PUSH, the *reader* turns PULL messages into calls on
//! session handles. A backend that is down or slow stalls only the writer;
//! sessions never wait on 0MQ. The channel is bounded in bytes by the
//! service's [`Budget`] (`backend_queue_bytes`, 16 MiB by default): each
//! client message holds its share until the writer has handed it to a
//! backend connection, and while the budget is spent the transports hold
//! their clients back (see `sockjs::budget`) rather than drop anything.
//! Connect and disconnect events never wait; beyond the budget's headroom
//! they are dropped, counted and logged.

mod connect_info;
pub mod endpoint;
pub mod event;
pub mod peer;
mod reader;
mod settings;
pub mod topology;
mod writer;
pub mod zmtp;
pub use settings::{BackendError, Engine, QUEUE_BYTES, Settings};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::sockjs::admission::Connected;
use crate::sockjs::budget::{Budget, Held, MESSAGE_OVERHEAD};
use crate::sockjs::{Application, SessionHandle, SessionKey};
use event::Event;

/// An event on its way to the PUSH socket, with the budget bytes it holds
/// until the writer is done with it.
pub(crate) struct Queued {
    pub event: Event,
    _held: Held,
}
/// 0MQ's own send/receive queue bound, in messages.
const HWM: i32 = 100_000;
/// Messages the PULL reader takes per readiness of its socket.
const READ_BATCH: usize = 256;
/// How long 0MQ may go on sending after the proxy is done with a socket, in ms:
/// the shutdown linger already waited for the queue, this only covers the last
/// batch in flight.
const LINGER_MS: i32 = 200;
/// Most bytes in one message to the native PULL (all frames); most frames in
/// one (the protocol has 3: see `zmtp::pull` for why a few more are let
/// through to be dropped as malformed). A backend whose message breaks either
/// is disconnected at that frame's header, nothing of it buffered, counted.
/// `--zmq-engine libzmq` bounds each frame to the same bytes (`ZMQ_MAXMSGSIZE`).
const MAX_COMMAND_BYTES: u64 = 64 << 20;
const MAX_COMMAND_FRAMES: usize = 8;
/// Largest ZMTP command (PING, ...) a backend may send.
const MAX_ZMTP_COMMAND: u64 = 4096;

/// Counters of what went wrong, for logs and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events dropped because the writer's queue was full.
    pub events_dropped: AtomicU64,
    /// Backend messages dropped as malformed.
    pub bad_commands: AtomicU64,
    /// Backend messages for a session that does not exist (any more).
    pub unknown_sessions: AtomicU64,
    /// What the native ZMTP sockets count: peers disconnected, events lost.
    pub native: Arc<zmtp::Counters>,
}

/// One service's backend connection; the service's [`Application`].
pub struct Backend {
    name: String,
    sessions: Mutex<HashMap<SessionKey, SessionHandle>>,
    events: mpsc::UnboundedSender<Queued>,
    budget: Arc<Budget>,
    /// Events in the channel (the writer takes them off).
    queued: Arc<AtomicUsize>,
    /// The writer holds events it took from the queue but has not yet handed
    /// to 0MQ.
    writer_busy: Arc<AtomicBool>,
    /// Bytes the native PUSH accepted and has not yet written to a socket.
    unflushed: Arc<AtomicUsize>,
    pub stats: Stats,
    /// Set in scale-out mode (`--connect`), where session ids name the instance.
    scale: Option<Arc<topology::ScaleOut>>,
}

/// Bound sockets whose tasks have not started yet; see [`Backend::start`].
pub struct Sockets {
    push: Bound,
    pull: Bound,
    queue: EventQueue,
    curve: Option<Arc<zmtp::curve::Keys>>,
    allow: Arc<[ipnet::IpNet]>,
}

/// The writer's end of the event channel.
pub(crate) struct EventQueue {
    rx: mpsc::UnboundedReceiver<Queued>,
    queued: Arc<AtomicUsize>,
}

impl EventQueue {
    pub(crate) async fn recv(&mut self) -> Option<Queued> {
        let q = self.rx.recv().await?;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        Some(q)
    }

    pub(crate) fn len(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// A bound (or, in scale-out mode, connected) socket of either engine.
enum Bound {
    Zmq(zmq::Socket),
    Native(zmtp::Listener),
}

impl Backend {
    /// Binds both sockets, so that a bad endpoint or a port in use is an error
    /// at start-up. Their tasks start with [`Backend::start`].
    pub fn bind(
        zmq: &zmq::Context,
        name: &str,
        settings: &Settings,
    ) -> Result<(Arc<Backend>, Sockets), BackendError> {
        let (push, pull, engine) = (&settings.push, &settings.pull, settings.engine);
        let bind = |kind: &'static str, socket_type, endpoint: &str, hwm: i32, linger: i32| {
            let native = match engine {
                Engine::Native => zmtp::Listener::bind(endpoint),
                Engine::Libzmq => None,
            };
            if let Some(listener) = native {
                return listener
                    .map(Bound::Native)
                    .map_err(|source| BackendError::BindNative {
                        kind,
                        endpoint: endpoint.to_string(),
                        source,
                    });
            }
            let err = |e: zmq::Error| BackendError::Bind {
                kind,
                endpoint: endpoint.to_string(),
                source: e.into(),
            };
            let socket = zmq.socket(socket_type).map_err(err)?;
            socket.set_linger(linger).map_err(err)?;
            match socket_type {
                zmq::PUSH => socket.set_sndhwm(hwm).map_err(err)?,
                _ => {
                    socket.set_rcvhwm(hwm).map_err(err)?;
                    // libzmq bounds each frame (not the message), and drops
                    // a peer that breaks it, uncounted: it tells no one.
                    let max = MAX_COMMAND_BYTES as i64;
                    socket.set_maxmsgsize(max).map_err(err)?;
                }
            }
            socket.bind(endpoint).map_err(err)?;
            Ok::<_, BackendError>(Bound::Zmq(socket))
        };
        let push_socket = bind("PUSH", zmq::PUSH, push, HWM, LINGER_MS)?;
        let pull_socket = bind("PULL", zmq::PULL, pull, HWM, 0)?;
        if !settings.allow.is_empty() {
            for (kind, socket, endpoint) in
                [("PUSH", &push_socket, push), ("PULL", &pull_socket, pull)]
            {
                if !matches!(socket, Bound::Native(zmtp::Listener::Tcp(_))) {
                    return Err(BackendError::AllowNeedsTcp {
                        name: name.to_string(),
                        kind,
                        endpoint: endpoint.clone(),
                    });
                }
            }
        }
        if settings.curve.is_some() {
            // Never a CURVE setting silently ignored.
            for (kind, socket, endpoint) in
                [("PUSH", &push_socket, push), ("PULL", &pull_socket, pull)]
            {
                if let Bound::Zmq(_) = socket {
                    return Err(BackendError::CurveNeedsNative {
                        name: name.to_string(),
                        kind,
                        endpoint: endpoint.clone(),
                    });
                }
            }
        }
        let (backend, queue) = Backend::new(name, None, settings.queue_bytes);
        let engine = |b: &Bound| match b {
            Bound::Zmq(_) => "libzmq",
            Bound::Native(_) => "native",
        };
        // Whether the link is secured, in the line an operator checks.
        let mut security = String::new();
        if let Some(keys) = &settings.curve {
            security += &format!(
                "; CURVE, server key {}, {}",
                zmtp::curve::cert::z85_key(keys.public.as_bytes()),
                match &keys.clients {
                    Some(c) => format!("{} client key(s) allowed", c.len()),
                    None => "any client key".to_string(),
                }
            );
        }
        if !settings.allow.is_empty() {
            security += &format!(
                "; backends from {} address range(s) only",
                settings.allow.len()
            );
        }
        log::info!(
            "service {}: PUSH bound to {push} ({}), PULL bound to {pull} ({}){security}",
            backend.name,
            engine(&push_socket),
            engine(&pull_socket),
        );
        Ok((
            backend,
            Sockets {
                push: push_socket,
                pull: pull_socket,
                queue,
                curve: settings.curve.clone(),
                allow: settings.allow.clone().into(),
            },
        ))
    }

    fn new(
        name: &str,
        scale: Option<Arc<topology::ScaleOut>>,
        queue_bytes: usize,
    ) -> (Arc<Backend>, EventQueue) {
        let (events, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let queue = EventQueue {
            rx,
            queued: queued.clone(),
        };
        let backend = Arc::new(Backend {
            name: if name.is_empty() {
                "/".to_string()
            } else {
                name.to_string()
            },
            sessions: Mutex::default(),
            events,
            budget: Budget::new(queue_bytes),
            queued,
            writer_busy: Arc::default(),
            unflushed: Arc::default(),
            stats: Stats::default(),
            scale,
        });
        (backend, queue)
    }

    /// Starts the writer and reader tasks on the current thread. The server
    /// calls this on an HTTP worker, so that with one worker the sessions and
    /// the sockets share a thread and no message crosses threads.
    pub fn start(self: &Arc<Self>, sockets: Sockets) -> Result<(), BackendError> {
        use tmq::FromZmqSocket;
        let err = |kind, source| BackendError::Start {
            kind,
            name: self.name.clone(),
            source,
        };
        let native_err = |kind, source| BackendError::StartNative {
            kind,
            name: self.name.clone(),
            source,
        };
        let busy = self.writer_busy.clone();
        match sockets.push {
            Bound::Native(listener) => {
                let push = zmtp::push::Push::start(
                    listener,
                    self.name.clone(),
                    sockets.curve.clone(),
                    sockets.allow.clone(),
                    self.unflushed.clone(),
                    self.stats.native.clone(),
                )
                .map_err(|e| native_err("PUSH", e))?;
                actix_web::rt::spawn(writer::write_native(
                    push,
                    sockets.queue,
                    busy,
                    self.name.clone(),
                ));
            }
            Bound::Zmq(socket) => {
                let push = tmq::push::Push::from_zmq_socket(socket).map_err(|e| err("PUSH", e))?;
                actix_web::rt::spawn(writer::write_events(
                    push,
                    sockets.queue,
                    busy,
                    self.name.clone(),
                    self.scale.clone(),
                ));
            }
        }
        match sockets.pull {
            Bound::Native(listener) => {
                let inbox: Arc<dyn zmtp::pull::Inbox> = self.clone();
                let limits = zmtp::decoder::Limits {
                    frames: MAX_COMMAND_FRAMES,
                    bytes: MAX_COMMAND_BYTES,
                    command: MAX_ZMTP_COMMAND,
                };
                let counters = self.stats.native.clone();
                let (curve, allow) = (sockets.curve.clone(), sockets.allow.clone());
                zmtp::pull::start(
                    listener,
                    self.name.clone(),
                    curve,
                    allow,
                    limits,
                    inbox,
                    counters,
                )
                .map_err(|e| native_err("PULL", e))?;
            }
            // In scale-out mode the commands arrive on a DEALER (see `topology`).
            Bound::Zmq(socket) if socket.get_socket_type() == Ok(zmq::DEALER) => {
                let dealer =
                    tmq::dealer::Dealer::from_zmq_socket(socket).map_err(|e| err("DEALER", e))?;
                actix_web::rt::spawn(reader::read_commands(dealer, self.clone()));
            }
            Bound::Zmq(socket) => {
                let pull = tmq::pull::Pull::from_zmq_socket(socket).map_err(|e| err("PULL", e))?;
                // Read in batches: 0MQ is asked for the socket's state once per batch
                // instead of once per message.
                actix_web::rt::spawn(reader::read_commands(
                    pull.buffered(READ_BATCH),
                    self.clone(),
                ));
            }
        }
        let thread = std::thread::current();
        log::debug!(
            "service {}: socket tasks on thread {:?}",
            self.name,
            thread.name()
        );
        Ok(())
    }

    /// Queues a connect or disconnect: never waits; refused only beyond the
    /// budget's headroom.
    fn send_control(&self, event: Event) {
        match self.budget.try_hold(MESSAGE_OVERHEAD) {
            Some(held) => self.send_event(event, held),
            None => self.drop_event("backend queue full"),
        }
    }

    fn send_event(&self, event: Event, held: Held) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.events.send(Queued { event, _held: held }).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.drop_event("backend writer stopped");
        }
    }

    fn drop_event(&self, what: &str) {
        let n = self.stats.events_dropped.fetch_add(1, Ordering::Relaxed) + 1;
        static DROPPED: crate::ratelog::Throttle =
            crate::ratelog::Throttle::new("backend events dropped");
        DROPPED.warn(format_args!("service {}: {what} ({n} so far)", self.name));
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, SessionHandle>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `f` with the session's handle, under the lock (no clone of the
    /// handle, which costs two atomic operations per backend message); false
    /// when there is no such session.
    fn with_session(&self, key: SessionKey, f: impl FnOnce(&SessionHandle)) -> bool {
        self.sessions().get(&key).map(f).is_some()
    }

    /// Sessions open now.
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    /// Events waiting for the PUSH socket.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The bytes of client messages held for the backend, and the budget.
    pub fn queue_bytes(&self) -> (usize, usize) {
        (self.budget.used(), self.budget.capacity())
    }

    /// How many times clients were held back because the budget was spent.
    pub fn backpressure_waits(&self) -> u64 {
        self.budget.waits()
    }

    /// Whether every event so far has been handed to 0MQ.
    pub fn is_drained(&self) -> bool {
        self.queue_depth() == 0
            && !self.writer_busy.load(Ordering::Acquire)
            && self.unflushed.load(Ordering::Relaxed) == 0
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
    fn on_open(&self, key: SessionKey, handle: SessionHandle, who: &Connected) {
        self.sessions().insert(key, handle);
        self.send_control(Event::Connect(key, who.to_json()));
    }

    fn on_message(&self, key: SessionKey, message: String, held: Held) {
        self.send_event(Event::Message(key, message), held);
    }

    fn budget(&self) -> Option<Arc<Budget>> {
        Some(self.budget.clone())
    }

    fn on_close(&self, key: SessionKey) {
        self.sessions().remove(&key);
        self.send_control(Event::Disconnect(key));
    }
}
