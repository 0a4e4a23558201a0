//! The command line, kept compatible with SockJSProxy 0.7's `sockjsproxy` so that
//! existing deployment scripts keep working, plus the flags the original lacked
//! (`--config`, `--http-address`, `--sockjs-url`, `--workers`).
//!
//! The flags describe one SockJS service mounted at `/`; `--config` replaces that
//! with any number of services read from a TOML file (see [`crate::config`]).

use std::path::PathBuf;

use clap::Parser;

/// Proxy messages between SockJS clients and a pair of 0MQ sockets.
#[derive(Debug, Clone, Parser)]
#[command(name = "sockjsproxy", version, about, long_about = None)]
pub struct Cli {
    /// The 0MQ address to bind to (default `*`, every interface). With
    /// --config, each [[service]] names its own endpoints instead.
    #[arg(short = 'a', long)]
    pub address: Option<String>,

    /// Port of the bound PUSH socket that sends client events to backends
    /// (default 9241).
    #[arg(short = 'i', long, value_parser = clap::value_parser!(u16).range(1..))]
    pub in_port: Option<u16>,

    /// Port of the bound PULL socket that takes commands from backends
    /// (default 9242).
    #[arg(short = 'o', long, value_parser = clap::value_parser!(u16).range(1..))]
    pub out_port: Option<u16>,

    /// Port for HTTP (SockJS) connections (default 8080, or the config file's http_port).
    #[arg(short = 'p', long, value_parser = clap::value_parser!(u16).range(1..))]
    pub http_port: Option<u16>,

    /// Address the HTTP server listens on (default 0.0.0.0, all interfaces).
    #[arg(long)]
    pub http_address: Option<String>,

    /// A local directory to serve under --static-url.
    #[arg(short = 's', long, requires = "static_url")]
    pub static_path: Option<PathBuf>,

    /// The URL prefix where the files of --static-path are served.
    #[arg(short = 'u', long, requires = "static_path")]
    pub static_url: Option<String>,

    /// Serve the samples directory at /samples/ (give its path, e.g. `samples`).
    #[arg(long)]
    pub samples: Option<PathBuf>,

    /// Where the SockJS iframe page loads sockjs-client from. Default: the local
    /// copy under /sockjs-client/ when one is found, else the public CDN.
    #[arg(long)]
    pub sockjs_url: Option<String>,

    /// A local sockjs-client build to serve at /sockjs-client/sockjs.min.js
    /// (default: node_modules/sockjs-client/dist/sockjs.min.js when present).
    #[arg(long)]
    pub sockjs_client: Option<PathBuf>,

    /// A TOML file defining the services (replaces the single service of the flags).
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Number of HTTP worker threads (default: the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,

    /// Largest client message or request body, in bytes (default 1 MiB).
    #[arg(long)]
    pub max_message_bytes: Option<usize>,

    /// Most sessions held at once per service; new ones get 503 (default 100000).
    #[arg(long)]
    pub max_sessions: Option<usize>,

    /// Outgoing messages a session holds for a slow client (default 1024).
    #[arg(long)]
    pub max_queue: Option<usize>,

    /// Sessions one client address may hold per service; more get 429
    /// (default 10000; 0: no limit).
    #[arg(long)]
    pub max_sessions_per_address: Option<usize>,

    /// New sessions one client address may open per second per service;
    /// more get 429 (default 0: no limit).
    #[arg(long)]
    pub new_sessions_per_second: Option<usize>,

    /// Bytes of outgoing messages a session holds for a slow client
    /// (default 1 MiB; one message always fits).
    #[arg(long)]
    pub max_queue_bytes: Option<usize>,

    /// Bytes of client messages a service holds for its backend; clients
    /// wait while it is spent (default 16 MiB).
    #[arg(long)]
    pub backend_queue_bytes: Option<usize>,

    /// Most messages in one xhr_send or jsonp_send body; more get 413
    /// (default 10000).
    #[arg(long)]
    pub max_messages_per_send: Option<usize>,

    /// How long a request body may take to arrive, in ms; slower ones get
    /// 408 and their connection closed (default 10000).
    #[arg(long)]
    pub body_timeout_ms: Option<u64>,

    /// Interval of SockJS heartbeat frames, in ms (default 25000).
    #[arg(long)]
    pub heartbeat_delay_ms: Option<u64>,

    /// How long a session lives without a receiver, in ms (default 5000).
    #[arg(long)]
    pub disconnect_delay_ms: Option<u64>,

    /// An origin allowed to use the services (repeatable; default: any).
    /// Requests with another `Origin` header get 403.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,

    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// A reverse proxy (IP address, repeatable) whose X-Forwarded-For header
    /// gives the client address in logs and to access control.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Websocket ping interval in ms; a connection missing a pong is closed.
    /// 0 turns pings off (default 30000).
    #[arg(long)]
    pub websocket_ping_ms: Option<u64>,

    /// How long a polling response waits after its first message for more,
    /// in ms, so that a burst shares one response; 0 answers at once (default 5).
    #[arg(long)]
    pub poll_batch_ms: Option<u64>,

    /// Serve /metrics (and /healthz) on this port, on --metrics-address.
    /// Without it, /metrics is not served unless --metrics-public.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub metrics_port: Option<u16>,

    /// Address of the --metrics-port listener (loopback unless said otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    pub metrics_address: String,

    /// Also serve /metrics on the public HTTP port: anyone who reaches it
    /// reads the counters. /healthz is always public.
    #[arg(long)]
    pub metrics_public: bool,

    /// How long shutdown may take, in ms: sessions are closed and backends told
    /// within it.
    #[arg(long, default_value_t = 2000)]
    pub shutdown_linger_ms: u64,

    /// Which 0MQ implementation binds the PUSH and PULL sockets: `native` (a
    /// ZMTP 3.1 transport on the sessions' thread, for tcp:// and ipc://
    /// endpoints) or `libzmq`. Scale-out mode always uses libzmq.
    #[arg(long, value_enum, default_value_t = ZmqEngine::Native)]
    pub zmq_engine: ZmqEngine,

    /// Log debug information.
    #[arg(short = 'v', long)]
    pub verbose: bool,

    // Securing the backend link (see README.rst).
    /// Speak CURVE on the PUSH and PULL sockets, with the proxy's secret
    /// certificate in this file (ZeroMQ format; `sockjsproxy keygen` writes
    /// one). Backends need its public key. Native engine only.
    #[arg(long, value_name = "FILE")]
    pub curve_secret_key: Option<PathBuf>,

    /// Take only CURVE backends whose public key has a certificate in this
    /// directory (default: any backend that knows our public key).
    #[arg(long, value_name = "DIR", requires = "curve_secret_key")]
    pub curve_clients: Option<PathBuf>,

    /// Take backends only from this network or address (CIDR such as
    /// 10.0.0.0/8, or one address; repeatable); others are refused at
    /// accept. Native engine, tcp:// endpoints.
    #[arg(long = "backend-allow", value_name = "CIDR")]
    pub backend_allow: Vec<String>,

    // Bridge mode.
    /// Serve bridge mode's websocket at this path (e.g. /data).
    #[arg(long, value_name = "PATH")]
    pub bridge: Option<String>,

    /// TOML file of endpoints and socket types browsers may reach (deny by default).
    #[arg(long, value_name = "FILE", requires = "bridge")]
    pub bridge_policy: Option<PathBuf>,

    /// 0MQ REP endpoint of an auth service asked for each upgrade and connect.
    #[arg(long, value_name = "ENDPOINT", requires = "bridge")]
    pub bridge_auth: Option<String>,

    /// High-water mark of the bridge's backend sockets.
    #[arg(long, value_name = "MESSAGES", default_value_t = 1000, requires = "bridge",
          value_parser = clap::value_parser!(i32).range(1..))]
    pub bridge_hwm: i32,

    /// Seconds a bridge REQ waits for its reply before the browser gets an error.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30.0,
        requires = "bridge"
    )]
    pub bridge_timeout: f64,

    /// Bytes of frames waiting for one bridge browser; beyond them published
    /// messages are dropped and a reply closes the websocket (default 1 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = crate::bridge::outbox::OUTBOX_BYTES as u64,
          requires = "bridge", value_parser = clap::value_parser!(u64).range(1024..=1 << 30))]
    pub bridge_outbox_bytes: u64,

    /// Bytes of requests waiting for one bridge REP endpoint, all browsers
    /// together; beyond them requests are refused (default 16 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = crate::bridge::gateway::QUEUE_BYTES as u64,
          requires = "bridge", value_parser = clap::value_parser!(u64).range(1024..=1 << 32))]
    pub bridge_queue_bytes: u64,

    /// Seconds the --bridge-auth service has to answer; silence means "denied".
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 5.0,
        requires = "bridge_auth"
    )]
    pub bridge_auth_timeout: f64,

    // Scale-out mode (see README.rst, "Scale-out").
    /// Connect each service's sockets to a broker instead of binding them: the
    /// PUSH to the service's push endpoint, a DEALER (identity: the instance id)
    /// to its pull endpoint. Session ids become `<instance>.<n>`.
    #[arg(long)]
    pub connect: bool,

    /// This proxy's name among many, in session ids and as its DEALER identity
    /// (letters, digits, '-' and '_'; default: `<host name>-<http port>`).
    #[arg(long, value_name = "ID", requires = "connect")]
    pub instance_id: Option<String>,

    /// Interval of the heartbeats a --connect proxy sends its broker, in ms.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub scaleout_heartbeat_ms: u64,

    // Who is connected (see README.rst, "Who is connected").
    #[command(flatten)]
    pub who: WhoArgs,

    #[command(subcommand)]
    pub tool: Option<Tool>,
}

/// What `sockjsproxy` does instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Tool {
    /// Write a new CURVE key pair as ZeroMQ certificates: DIR/NAME.key
    /// (public: give it to backends, or put it in --curve-clients) and
    /// DIR/NAME.key_secret (for --curve-secret-key or a backend's socket).
    Keygen {
        /// Where to write them (created if missing; no file is replaced).
        dir: PathBuf,
        /// The files' name.
        #[arg(long, default_value = "sockjsproxy")]
        name: String,
    },
}

/// Connection info and authentication of the default service's sessions
/// (`connect_info`, `auth`, `[service.auth_jwt]` in a `--config` file).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WhoArgs {
    /// Give the backend each session's connection info (client address,
    /// transport, query, allowed headers) as the `connect` event's data.
    #[arg(long)]
    pub connect_info: bool,

    /// A header the connection info carries (repeatable; default:
    /// sockjs-node's safe list). `cookie` and `authorization` only if named.
    #[arg(long = "connect-header", value_name = "NAME")]
    pub connect_headers: Vec<String>,

    /// Ask this auth service (a 0MQ REP endpoint) about each new session.
    #[arg(long, value_name = "ENDPOINT")]
    pub auth: Option<String>,

    /// How long the auth service has to answer, in ms; silence is a denial
    /// (default 2000).
    #[arg(long, value_name = "MS")]
    pub auth_timeout_ms: Option<u64>,

    /// Check each new session's JWT with the key in this file (the secret for
    /// HS256, a PEM public key for RS256 and ES256).
    #[arg(long, value_name = "FILE")]
    pub auth_jwt_key: Option<PathBuf>,

    /// The JWT signature algorithm: HS256, RS256 or ES256 (default HS256).
    #[arg(long, value_name = "ALG", requires = "auth_jwt_key")]
    pub auth_jwt_algorithm: Option<String>,

    /// The `aud` a token must carry.
    #[arg(long, value_name = "AUD", requires = "auth_jwt_key")]
    pub auth_jwt_audience: Option<String>,

    /// The `iss` a token must carry.
    #[arg(long, value_name = "ISS", requires = "auth_jwt_key")]
    pub auth_jwt_issuer: Option<String>,

    /// The query parameter holding the token (default `token`).
    #[arg(long, value_name = "NAME", requires = "auth_jwt_key")]
    pub auth_jwt_query_param: Option<String>,

    /// A header holding the token (`Authorization: Bearer` works).
    #[arg(long, value_name = "NAME", requires = "auth_jwt_key")]
    pub auth_jwt_header: Option<String>,

    /// A cookie holding the token.
    #[arg(long, value_name = "NAME", requires = "auth_jwt_key")]
    pub auth_jwt_cookie: Option<String>,

    /// A claim copied into the session's `auth` object (repeatable).
    #[arg(
        long = "auth-jwt-claim",
        value_name = "CLAIM",
        requires = "auth_jwt_key"
    )]
    pub auth_jwt_claims: Vec<String>,
}

/// `--zmq-engine`: which 0MQ implementation binds the PUSH and PULL sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ZmqEngine {
    /// The native ZMTP transport for `tcp://` and `ipc://` endpoints (libzmq
    /// for any other).
    Native,
    /// libzmq for every socket.
    Libzmq,
}
