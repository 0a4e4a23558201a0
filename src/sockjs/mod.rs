//! A SockJS server on actix-web: the protocol of sockjs-client 1.x and of the
//! official `sockjs-protocol` suite, with no knowledge of 0MQ.
//!
//! The pieces, in the protocol's own words:
//! - a *service* ([`Service`]) is a URL prefix with its [`Options`] and the
//!   [`Application`] that receives its sessions' events;
//! - a *session* ([`session::Session`], one actix actor each) outlives the HTTP
//!   requests that carry it, queues outgoing messages and sends heartbeats;
//! - a *transport* (`transport/*`) turns HTTP requests or a websocket into a
//!   *receiver* attached to a session and reads client messages into it;
//! - a *frame* ([`frame::Frame`]) is what travels: `o`, `h`, `a[...]`, `c[...]`.
//!
//! Data flows one way in each direction: transport → session → application, and
//! application → [`SessionHandle`] → session → receiver → transport.

pub mod admission;
pub mod budget;
pub mod frame;
pub(crate) mod http;
mod liveness;
pub mod metrics;
mod pages;
pub mod per_address;
mod receiver;
mod registry;
mod router;
pub mod session;
mod transport;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::Addr;

pub use http::client_address;
pub use liveness::on_connect;
pub use router::{Services, dispatch};

/// Where the iframe page loads sockjs-client from when nothing local is served.
pub const CDN_SOCKJS_URL: &str = "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js";

/// The options of one SockJS service, named as in sockjs-node.
#[derive(Debug, Clone)]
pub struct Options {
    /// Offer the websocket transport (and say so in `/info`).
    pub websocket: bool,
    /// Set a `JSESSIONID` cookie for sticky load balancers (and say so in `/info`).
    pub cookie_needed: bool,
    /// Bytes a streaming response carries before it is closed, so that the
    /// browser can free the memory it holds for it.
    pub response_limit: usize,
    /// How often a session with a receiver gets an `h` frame.
    pub heartbeat_delay: Duration,
    /// How long a session lives with no receiver attached.
    pub disconnect_delay: Duration,
    /// Outgoing messages a session holds while no receiver takes them.
    pub max_queue: usize,
    /// Bytes of outgoing messages a session holds (beside `max_queue`
    /// messages) while no receiver takes them; one message always fits.
    pub max_queue_bytes: usize,
    /// Largest client message or request body accepted, in bytes.
    pub max_message_bytes: usize,
    /// Most messages in one `xhr_send` or `jsonp_send` body.
    pub max_messages_per_send: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// Sessions this service holds at once; new ones beyond get 503.
    pub max_sessions: usize,
    /// Sessions one client address holds at once (0: no limit); beyond, 429.
    pub max_sessions_per_address: usize,
    /// New sessions one client address opens per second (0: no limit).
    pub new_sessions_per_second: usize,
    /// What `/info` reports as `origins`.
    pub origins: Vec<String>,
    /// Where the iframe page loads sockjs-client from.
    pub sockjs_url: String,
    /// Origins allowed to use the service (exact `scheme://host[:port]`, or
    /// `*`); empty means any, as SockJS expects by default.
    pub allow_origins: Vec<String>,
    /// Websocket ping interval; a connection missing a pong is closed.
    pub websocket_ping: Option<Duration>,
    /// Reverse proxies whose `X-Forwarded-For` names the real client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How long a polling response (xhr, jsonp) waits after its first message
    /// for more, so that a burst of backend replies shares one response
    /// instead of costing a poll each. Zero answers at once.
    pub poll_batch: Duration,
    /// Give the application each session's connection info on open (see
    /// [`admission`]); off, `connect` data stays empty.
    pub connect_info: bool,
    /// Headers the connection info carries, in lower case.
    pub connect_headers: Vec<String>,
}

impl Options {
    /// Whether a request with this `Origin` header may use the service.
    pub fn origin_allowed(&self, origin: &[u8]) -> bool {
        origin_allowed(&self.allow_origins, origin)
    }
}

/// The origin rule of `--allow-origin`, for SockJS services and bridge mode
/// alike: none listed or `*` allows any; otherwise an exact match.
pub fn origin_allowed(allowed: &[String], origin: &[u8]) -> bool {
    allowed.is_empty() || allowed.iter().any(|o| o == "*" || o.as_bytes() == origin)
}

impl Default for Options {
    fn default() -> Self {
        Options {
            websocket: true,
            cookie_needed: false,
            response_limit: 128 * 1024,
            heartbeat_delay: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            max_queue: 1024,
            max_queue_bytes: 1024 * 1024,
            max_message_bytes: 1024 * 1024,
            max_messages_per_send: 10_000,
            body_timeout: Duration::from_secs(10),
            max_sessions: 100_000,
            max_sessions_per_address: 10_000,
            new_sessions_per_second: 0,
            origins: vec!["*:*".to_string()],
            sockjs_url: CDN_SOCKJS_URL.to_string(),
            allow_origins: Vec::new(),
            poll_batch: Duration::from_millis(5),
            websocket_ping: Some(Duration::from_secs(30)),
            trusted_proxies: Vec::new(),
            connect_info: false,
            connect_headers: admission::header_names(&admission::DEFAULT_HEADERS),
        }
    }
}

/// A session's identity towards the application: made by the server, unique and
/// never reused while the process runs (unlike the client-chosen URL id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub u64);

impl SessionKey {
    fn next() -> SessionKey {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionKey(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl std::fmt::Display for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a service does with its sessions. Called on the session's actor thread:
/// implementations hand work off and return at once.
pub trait Application: Send + Sync + 'static {
    /// A session opened (and was admitted, when the service has an
    /// [`admission::Admission`]); `handle` sends to it until
    /// [`Application::on_close`]; `who` is what is known of its client.
    fn on_open(&self, key: SessionKey, handle: SessionHandle, who: &admission::Connected);
    /// The client sent one message. `held` is its share of the application's
    /// [`budget::Budget`]: keep it until done with the message.
    fn on_message(&self, key: SessionKey, message: String, held: budget::Held);
    /// The session closed, for whatever reason. Called exactly once per open.
    fn on_close(&self, key: SessionKey);
    /// The bytes of client messages this application holds at most; clients
    /// wait while it is spent (see [`budget`]). `None`: no bound.
    fn budget(&self) -> Option<Arc<budget::Budget>> {
        None
    }
}

/// The application's way to reach one session.
#[derive(Clone)]
pub struct SessionHandle {
    addr: Addr<session::Session>,
}

impl SessionHandle {
    /// Queues one message for the client.
    pub fn send(&self, message: String) {
        self.addr.do_send(session::Deliver(message));
    }

    /// Closes the session with a SockJS close frame.
    pub fn close(&self, code: u16, reason: &'static str) {
        self.addr.do_send(session::CloseSession { code, reason });
    }
}

/// One SockJS service: prefix, options, application and its live sessions.
pub struct Service {
    pub prefix: String,
    pub options: Options,
    pub app: Arc<dyn Application>,
    registry: Arc<registry::Registry>,
    pub metrics: Arc<metrics::Metrics>,
    /// The application's budget for client messages, asked once.
    budget: Option<Arc<budget::Budget>>,
    /// What each client address holds (see [`per_address`]).
    addresses: Arc<per_address::AddressLimits>,
    /// Who decides whether a new session reaches the application.
    admission: Option<Arc<dyn admission::Admission>>,
}

impl Service {
    pub fn new(prefix: String, options: Options, app: Arc<dyn Application>) -> Service {
        Service {
            prefix,
            addresses: per_address::AddressLimits::new(
                options.max_sessions_per_address,
                options.new_sessions_per_second,
            ),
            options,
            budget: app.budget(),
            app,
            registry: Arc::default(),
            metrics: Arc::default(),
            admission: None,
        }
    }

    /// Asks `admission` about every new session before the application.
    pub fn with_admission(mut self, admission: Option<Arc<dyn admission::Admission>>) -> Service {
        self.admission = admission;
        self
    }

    /// Sessions currently alive in this service, of every transport.
    pub fn open_sessions(&self) -> usize {
        let open: i64 = metrics::Transport::ALL
            .iter()
            .map(|t| self.metrics.open(*t))
            .sum();
        open.max(0) as usize
    }
}
