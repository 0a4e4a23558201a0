//! The link to one route's handlers, as Mongrel2 makes it: a PUSH socket
//! bound at `send_spec` that hands requests to the handlers connected to it
//! (round-robin), and a SUB socket bound at `recv_spec`, subscribed to
//! `send_ident`, on which handlers publish their replies.
//!
//! Each client connection (an HTTP request, a websocket, a SockJS session)
//! [`Link::open`]s a [`Conn`] with its own id and an inbox of the reply
//! bodies addressed to it, bounded in bytes ([`Settings::reply_queue_bytes`])
//! and in count (256 replies). One reader task per link parses every
//! reply and puts its body in the inbox of each listed connection:
//! - a reply for an id no connection holds is counted and dropped (an empty
//!   one, a close of a connection already gone, is simply ignored);
//! - a connection whose inbox would pass its bound (a client that does not
//!   read what its handler sends) is cut: what it held is freed at once,
//!   that reply and every later one for it are counted as dropped (as
//!   replies for an unknown connection once it is gone), the cut is logged,
//!   and the connection ends, since it can no longer give its client a
//!   faithful stream. An empty inbox takes any one reply (up to
//!   [`MAX_REPLY_BYTES`]), so a handler may send a large response whole;
//! - a reply that does not parse is counted, logged and dropped.
//!
//! Requests never wait: when no handler is connected, or every one is
//! [`HWM`] requests behind, [`Link::send`] refuses at once (502).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::inbox::{Inbox, Put};
use super::reply;
use super::request::{Protocol, Request};

/// Default of [`Settings::handler_timeout`].
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests 0MQ holds for each handler before the proxy refuses new ones.
pub const HWM: i32 = 10_000;
/// Default of [`Settings::reply_queue_bytes`], as a SockJS session's
/// `max_queue_bytes`.
pub const REPLY_QUEUE_BYTES: usize = 1 << 20;
/// Largest reply message a handler may publish.
pub const MAX_REPLY_BYTES: usize = 64 << 20;
/// How long 0MQ may go on sending after the proxy is done with a socket, in ms.
const LINGER_MS: i32 = 200;

/// One route's (or service's) handler settings, with Mongrel2's names.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The route's URL prefix (`""` for `/`): its name in logs and metrics.
    pub route: String,
    pub send_spec: String,
    pub send_ident: String,
    pub recv_spec: String,
    /// The SUB socket's 0MQ identity (Mongrel2 sets it; empty: none).
    pub recv_ident: String,
    pub protocol: Protocol,
    /// How long a handler may take to start answering: then 504.
    pub handler_timeout: Duration,
    /// Largest request body (or websocket message) sent to a handler.
    pub max_message_bytes: usize,
    /// Bytes of replies one connection may hold before its client takes
    /// them; past it the connection is cut (see the module's doc).
    pub reply_queue_bytes: usize,
    /// How long a request body under a route may take to arrive: then 408.
    pub body_timeout: Duration,
    /// A `[[mongrel2]]` route, or a SockJS `[[service]]` with `backend =
    /// "mongrel2"`: what logs call it.
    pub serves: Serves,
}

/// What a link's handlers serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    Route,
    SockjsService,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("route {route}: cannot bind {kind} socket to {endpoint}: {source}")]
    Bind {
        route: String,
        kind: &'static str,
        endpoint: String,
        source: zmq::Error,
    },
    #[error("route {route}: cannot start the SUB socket: {source}")]
    Start {
        route: String,
        source: tmq::TmqError,
    },
}

/// Why a request did not reach a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no handler connected, or every handler is full")]
    NoHandler,
    #[error("the PUSH socket failed")]
    Failed,
}

/// What happened on a link, for logs and `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests handed to a handler (disconnect messages included).
    pub requests: AtomicU64,
    /// Requests refused: no handler (502).
    pub no_handler: AtomicU64,
    /// Connections whose handler did not answer in time (504).
    pub timeouts: AtomicU64,
    /// Reply messages taken from the SUB socket.
    pub replies: AtomicU64,
    /// Reply messages that did not parse, or named another sender.
    pub bad_replies: AtomicU64,
    /// Reply bodies for a connection that does not exist (any more).
    pub unknown_connections: AtomicU64,
    /// Reply bodies dropped because their connection's inbox was full (or
    /// was cut for it before).
    pub dropped_replies: AtomicU64,
    /// Connections cut because their inbox was full.
    pub cut_connections: AtomicU64,
    /// Bytes of replies held in the inboxes now.
    pub queued_bytes: AtomicU64,
    /// Handler responses that are not valid HTTP, or frames not valid
    /// websocket frames: refused, never passed on.
    pub refused: AtomicU64,
}

/// A bound SUB socket whose reader has not started yet (see [`Link::start`]).
pub struct Sub(zmq::Socket);

/// One route's handlers.
pub struct Link {
    settings: Settings,
    push: Mutex<zmq::Socket>,
    conns: Mutex<HashMap<u64, Arc<Inbox>>>,
    next_id: AtomicU64,
    /// Set at shutdown: the route's websockets close (see
    /// [`Link::shutting_down`]).
    shutdown: watch::Sender<bool>,
    pub stats: Stats,
}

static BAD_REPLY: crate::ratelog::Throttle =
    crate::ratelog::Throttle::new("mongrel2 replies dropped as malformed");
static UNKNOWN: crate::ratelog::Throttle =
    crate::ratelog::Throttle::new("mongrel2 replies dropped for unknown connections");
static FULL: crate::ratelog::Throttle =
    crate::ratelog::Throttle::new("mongrel2 connections cut, reply queue full");

impl Link {
    /// Binds both sockets, so that a bad endpoint or a port in use is an
    /// error at start-up.
    pub fn bind(ctx: &zmq::Context, settings: Settings) -> Result<(Arc<Link>, Sub), LinkError> {
        let bind = |kind: &'static str, socket_type, endpoint: &str| {
            let err = |source| LinkError::Bind {
                route: display(&settings.route).to_string(),
                kind,
                endpoint: endpoint.to_string(),
                source,
            };
            let socket = ctx.socket(socket_type).map_err(err)?;
            socket.set_linger(LINGER_MS).map_err(err)?;
            if socket_type == zmq::PUSH {
                socket.set_sndhwm(HWM).map_err(err)?;
            } else {
                socket.set_maxmsgsize(MAX_REPLY_BYTES as i64).map_err(err)?;
                if !settings.recv_ident.is_empty() {
                    socket
                        .set_identity(settings.recv_ident.as_bytes())
                        .map_err(err)?;
                }
            }
            socket.bind(endpoint).map_err(err)?;
            Ok(socket)
        };
        let push = bind("PUSH", zmq::PUSH, &settings.send_spec)?;
        let sub = bind("SUB", zmq::SUB, &settings.recv_spec)?;
        log::info!(
            "{}: PUSH bound to {}, SUB bound to {} (sender {})",
            label(&settings),
            settings.send_spec,
            settings.recv_spec,
            settings.send_ident,
        );
        let link = Arc::new(Link {
            settings,
            push: Mutex::new(push),
            conns: Mutex::default(),
            next_id: AtomicU64::new(1),
            shutdown: watch::Sender::new(false),
            stats: Stats::default(),
        });
        super::metrics::enrol(&link);
        Ok((link, Sub(sub)))
    }

    /// Starts the reader of the SUB socket on the current thread's runtime.
    pub fn start(self: &Arc<Self>, sub: Sub) -> Result<(), LinkError> {
        use tmq::FromZmqSocket;
        let err = |source| LinkError::Start {
            route: display(&self.settings.route).to_string(),
            source,
        };
        let sub = tmq::subscribe::SubscribeWithoutTopic::from_zmq_socket(sub.0)
            .and_then(|s| s.subscribe(self.settings.send_ident.as_bytes()))
            .map_err(err)?;
        let link = self.clone();
        actix_web::rt::spawn(async move {
            let mut sub = sub;
            while let Some(msg) = sub.next().await {
                match msg {
                    Ok(mut parts) if parts.len() == 1 => {
                        if let Some(msg) = parts.pop_front() {
                            link.deliver(Bytes::from_owner(Message(msg)));
                        }
                    }
                    Ok(_) => link.bad_reply(format_args!("a reply of several frames")),
                    Err(e) => {
                        log::error!("{}: SUB failed: {e}", link.label());
                        return;
                    }
                }
            }
        });
        Ok(())
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The route's name in metrics: its prefix, `/` for the root.
    pub fn name(&self) -> &str {
        display(&self.settings.route)
    }

    /// What logs call it: `mongrel2 route /x` or `mongrel2 SockJS service /x`.
    pub fn label(&self) -> String {
        label(&self.settings)
    }

    /// A new connection, with an id no other holds.
    pub fn open(self: &Arc<Self>) -> Conn {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let inbox = Arc::new(Inbox::default());
        self.conns().insert(id, inbox.clone());
        Conn {
            id,
            inbox,
            link: self.clone(),
            notify: true,
        }
    }

    /// Hands one request to a handler, never waiting.
    pub fn send(&self, request: &Request) -> Result<(), Refused> {
        let bytes = request.encode(self.settings.protocol);
        let sent = self
            .push
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(bytes, zmq::DONTWAIT);
        match sent {
            Ok(()) => {
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(zmq::Error::EAGAIN) => {
                self.stats.no_handler.fetch_add(1, Ordering::Relaxed);
                Err(Refused::NoHandler)
            }
            Err(e) => {
                log::error!("{}: PUSH failed: {e}", self.label());
                Err(Refused::Failed)
            }
        }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.conns().len()
    }

    /// Changes once, when the proxy shuts down: whoever holds a long-lived
    /// connection (a route's websocket) then closes it.
    pub fn shutting_down(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<Inbox>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts one reply's body in the queue of each connection it names.
    fn deliver(&self, msg: Bytes) {
        self.stats.replies.fetch_add(1, Ordering::Relaxed);
        let reply = match reply::parse(&msg) {
            Ok(r) if r.uuid == self.settings.send_ident.as_bytes() => r,
            Ok(r) => {
                let uuid = String::from_utf8_lossy(r.uuid);
                return self.bad_reply(format_args!("sender {uuid:?} is not this route's"));
            }
            Err(e) => return self.bad_reply(format_args!("{e}")),
        };
        // The body stays in the message 0MQ received: no copy.
        let body = msg.slice_ref(reply.body);
        let conns = self.conns();
        for id in reply.ids {
            let Some(inbox) = conns.get(&id) else {
                if !body.is_empty() {
                    let n = self
                        .stats
                        .unknown_connections
                        .fetch_add(1, Ordering::Relaxed)
                        + 1;
                    UNKNOWN.warn(format_args!(
                        "route {}: connection {id} ({n} so far)",
                        self.name()
                    ));
                }
                continue;
            };
            // Counted before it is queued, so that its taker never
            // subtracts what was not added.
            let len = body.len() as u64;
            self.stats.queued_bytes.fetch_add(len, Ordering::Relaxed);
            match inbox.put(&body, self.settings.reply_queue_bytes) {
                Put::Queued => {}
                Put::Cut { replies, freed } => {
                    let queued = &self.stats.queued_bytes;
                    queued.fetch_sub(freed + len, Ordering::Relaxed);
                    self.stats.cut_connections.fetch_add(1, Ordering::Relaxed);
                    let dropped = &self.stats.dropped_replies;
                    let n = dropped.fetch_add(replies + 1, Ordering::Relaxed) + replies + 1;
                    FULL.warn(format_args!(
                        "route {}: connection {id} held {freed} bytes, over {} with this \
                         reply of {} ({n} replies dropped so far)",
                        self.name(),
                        self.settings.reply_queue_bytes,
                        body.len(),
                    ));
                }
                Put::Dropped => {
                    self.stats.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                    self.stats.dropped_replies.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn bad_reply(&self, what: std::fmt::Arguments<'_>) {
        let n = self.stats.bad_replies.fetch_add(1, Ordering::Relaxed) + 1;
        BAD_REPLY.warn(format_args!("route {}: {what} ({n} so far)", self.name()));
    }
}

/// At shutdown, a route's websockets close with 1001 (and their handlers
/// hear the disconnect); its HTTP requests may finish within the linger.
impl crate::shutdown::Closing for Link {
    fn close_all(&self, _code: u16, _reason: &'static str) -> usize {
        // Counted first: each websocket lets go of its receiver as it closes.
        let open = self.shutdown.receiver_count();
        self.shutdown.send_replace(true);
        open
    }

    fn settled(&self) -> bool {
        self.connections() == 0
    }
}

/// A message as 0MQ received it, owned by the [`Bytes`] of its replies.
struct Message(zmq::Message);

impl AsRef<[u8]> for Message {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn label(settings: &Settings) -> String {
    let kind = match settings.serves {
        Serves::Route => "route",
        Serves::SockjsService => "SockJS service",
    };
    format!("mongrel2 {kind} {}", display(&settings.route))
}

fn display(route: &str) -> &str {
    if route.is_empty() { "/" } else { route }
}

/// One client connection as handlers know it: an id and the replies for it.
/// Dropped before [`Conn::finish`], it tells the handlers the client went
/// away (Mongrel2's JSON disconnect message).
pub struct Conn {
    pub id: u64,
    inbox: Arc<Inbox>,
    link: Arc<Link>,
    notify: bool,
}

impl Conn {
    /// The next reply body for this connection (empty: the handler closes
    /// it); `None` when the link cut the connection (its inbox was full).
    pub async fn recv(&mut self) -> Option<Bytes> {
        let reply = self.inbox.take().await?;
        let n = reply.len() as u64;
        self.link.stats.queued_bytes.fetch_sub(n, Ordering::Relaxed);
        Some(reply)
    }

    /// The next reply body, waiting at most the handler timeout: `Err` on
    /// timeout (counted).
    pub async fn recv_timeout(&mut self) -> Result<Option<Bytes>, ()> {
        let timeout = self.link.settings.handler_timeout;
        match tokio::time::timeout(timeout, self.recv()).await {
            Ok(reply) => Ok(reply),
            Err(_) => {
                self.link.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(())
            }
        }
    }

    /// Sends a request from this connection.
    pub fn send(
        &self,
        path: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<(), Refused> {
        self.link.send(&Request {
            uuid: self.link.settings.send_ident.clone(),
            conn_id: self.id,
            path: path.to_string(),
            headers,
            body,
        })
    }

    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// The exchange is over and the handler knows it: no disconnect message.
    pub fn finish(&mut self) {
        self.notify = false;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.link.conns().remove(&self.id);
        let freed = self.inbox.clear();
        self.link
            .stats
            .queued_bytes
            .fetch_sub(freed, Ordering::Relaxed);
        if self.notify {
            let bye = Request::disconnect(&self.link.settings.send_ident, self.id);
            let _ = self.link.send(&bye);
        }
    }
}
