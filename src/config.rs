//! What the proxy serves: the HTTP listener and a list of SockJS *services*.
//!
//! A service is a URL prefix, its SockJS options and its own pair of bound 0MQ
//! sockets (PUSH towards backends, PULL from them). The CLI flags describe one
//! service at `/`; a TOML file given with `--config` describes any number:
//!
//! ```toml
//! http_address = "127.0.0.1"
//! http_port = 8081
//!
//! [[service]]
//! prefix = "/echo"
//! push = "tcp://127.0.0.1:9350"
//! pull = "tcp://127.0.0.1:9351"
//! response_limit = 4096
//! ```
//!
//! Everything is validated here, before any socket is bound, so that a typo is
//! a one-line error at start-up rather than a surprise at the first connection.

use std::path::PathBuf;
use std::time::Duration;

use crate::backend::{self, endpoint};
use crate::cli::{Cli, ZmqEngine};
use crate::sockjs;

mod auth;
mod bridge;
mod checks;
pub mod curve;
mod exposure;
mod file;
mod mongrel2;
mod scale_out;
pub use bridge::BridgeError;
use checks::{
    check_unique, millis, normalize_prefix, poll_batch, positive, static_dir, tcp_endpoint,
};
pub use exposure::warnings;
use file::{FileService, read_file};
/// Where the proxy serves a local sockjs-client copy.
pub const LOCAL_SOCKJS_URL: &str = "/sockjs-client/sockjs.min.js";
/// Where a local copy is looked for when `--sockjs-client` is not given.
pub const DEFAULT_SOCKJS_CLIENT: &str = "node_modules/sockjs-client/dist/sockjs.min.js";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(transparent)]
    Endpoint(#[from] endpoint::EndpointError),
    #[error("bad service prefix {0:?}: it must start with '/' and contain no '?', '#' or '.'")]
    Prefix(String),
    #[error("service prefix {0:?} is defined twice")]
    DuplicatePrefix(String),
    #[error("endpoint {0:?} is used twice")]
    DuplicateEndpoint(String),
    #[error("the config defines no service and no mongrel2 route")]
    NoService,
    #[error("{name} must be {rule}, got {value}")]
    Range {
        name: &'static str,
        rule: &'static str,
        value: u64,
    },
    #[error("static path {0:?} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{what} file {path:?} is not a file")]
    NotAFile { what: &'static str, path: PathBuf },
    #[error(
        "allowed origin {0:?} is not one a browser sends: scheme://host[:port] with no path (e.g. https://app.example.com), null, or *"
    )]
    Origin(String),
    #[error("static url {0:?} must start with '/'")]
    StaticUrl(String),
    /// Bridge mode's settings, checked in `config::bridge`.
    #[error(transparent)]
    Bridge(Box<BridgeError>),
    /// Connection info and authentication, checked in `config::auth`.
    #[error("{0}")]
    Auth(String),
    /// `[[mongrel2]]` routes, checked in `config::mongrel2`.
    #[error("{0}")]
    Mongrel2(String),
    #[error("bad instance id {0:?}: it must be 1 to 64 letters, digits, '-' or '_'")]
    InstanceId(String),
    /// CURVE keys and where they may be used, checked in `config::curve`.
    #[error("{0}")]
    Curve(String),
    /// Flags that configure the command line's one service, given with
    /// `--config`: never silently dropped.
    #[error(
        "{0} set the service of the command line; with --config, set them in each [[service]] of the file ({1})"
    )]
    FlagsWithFile(String, String),
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub http_address: String,
    pub http_port: u16,
    pub workers: usize,
    pub services: Vec<ServiceConfig>,
    /// `[[mongrel2]]` routes: URL prefixes served by Mongrel2 handlers.
    pub mongrel2: Vec<crate::mongrel2::link::Settings>,
    /// Directories served as they are: (url prefix, directory).
    pub static_dirs: Vec<(String, PathBuf)>,
    /// A local sockjs-client file served at [`LOCAL_SOCKJS_URL`].
    pub sockjs_client: Option<PathBuf>,
    /// A separate port for /metrics and /healthz.
    pub metrics_port: Option<u16>,
    pub metrics_address: String,
    /// /metrics on the public HTTP port as well.
    pub metrics_public: bool,
    /// How long a graceful shutdown may take.
    pub shutdown_linger: Duration,
    /// Certificate chain and key files for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Bridge mode: `None` unless `--bridge` is given.
    pub bridge: Option<crate::bridge::BridgeConfig>,
    /// Scale-out mode: `None` unless `--connect` is given.
    pub scale_out: Option<crate::backend::topology::ScaleOutConfig>,
}

/// One SockJS service: its prefix, the SockJS layer's options and the
/// backend layer's settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// URL prefix, without a trailing slash (`""` for the root).
    pub prefix: String,
    pub options: sockjs::Options,
    pub backend: backend::Settings,
    /// Set for `backend = "mongrel2"`: the sessions go to Mongrel2 handlers
    /// (`backend` then only names the same two endpoints).
    pub mongrel2: Option<crate::mongrel2::link::Settings>,
    /// Who may open sessions (see [`crate::auth`]).
    pub auth: crate::auth::Settings,
}

impl Config {
    /// Builds the configuration from the command line (and its `--config` file).
    pub fn from_cli(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => Some(read_file(path)?),
            None => None,
        };
        let file_ref = file.as_ref();

        let given_client = cli
            .sockjs_client
            .clone()
            .or_else(|| file_ref.and_then(|f| f.sockjs_client.clone()));
        if let Some(path) = &given_client
            && !path.is_file()
        {
            return Err(ConfigError::NotAFile {
                what: "sockjs-client",
                path: path.clone(),
            });
        }
        let sockjs_client = given_client.or_else(|| {
            let default = PathBuf::from(DEFAULT_SOCKJS_CLIENT);
            default.is_file().then_some(default)
        });
        let global_sockjs_url = cli
            .sockjs_url
            .clone()
            .or_else(|| file_ref.and_then(|f| f.sockjs_url.clone()))
            .unwrap_or_else(|| match sockjs_client {
                Some(_) => LOCAL_SOCKJS_URL.to_string(),
                None => sockjs::CDN_SOCKJS_URL.to_string(),
            });

        let defaults = defaults_from_cli(cli, &global_sockjs_url)?;
        let bridge_websocket = crate::websocket::Settings {
            max_message_bytes: defaults.max_message_bytes,
            ping: defaults.websocket_ping,
            backlog: None,
        };
        let route_defaults = mongrel2::Defaults::global(&defaults);
        let backend_queue = positive(
            "backend_queue_bytes",
            cli.backend_queue_bytes.unwrap_or(backend::QUEUE_BYTES),
        )?;
        let engine = match cli.zmq_engine {
            ZmqEngine::Native => backend::Engine::Native,
            ZmqEngine::Libzmq => backend::Engine::Libzmq,
        };
        let services = match file_ref {
            Some(f) => {
                checks::no_service_flags(cli)?;
                if f.service.is_empty() && f.mongrel2.is_empty() {
                    return Err(ConfigError::NoService);
                }
                f.service
                    .iter()
                    .map(|s| service_from_file(s, &defaults, backend_queue, engine))
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => {
                let address = cli.address.as_deref().unwrap_or("*");
                vec![ServiceConfig {
                    prefix: String::new(),
                    options: defaults,
                    backend: backend::Settings {
                        push: tcp_endpoint(address, cli.in_port.unwrap_or(9241))?,
                        pull: tcp_endpoint(address, cli.out_port.unwrap_or(9242))?,
                        queue_bytes: backend_queue,
                        engine,
                        curve: curve::keys(
                            cli.curve_secret_key.as_deref(),
                            cli.curve_clients.as_deref(),
                        )?,
                        allow: curve::allow(&cli.backend_allow)?,
                    },
                    mongrel2: None,
                    auth: auth::auth_from_cli(&cli.who)?,
                }]
            }
        };
        check_unique(&services)?;
        curve::check_engine(&services, cli.connect, engine)?;
        let mongrel2 = match file_ref {
            Some(f) => mongrel2::routes_from_file(&f.mongrel2, route_defaults)?,
            None => Vec::new(),
        };
        mongrel2::check_against_services(&mongrel2, &services)?;

        let mut static_dirs = Vec::new();
        if let (Some(path), Some(url)) = (&cli.static_path, &cli.static_url) {
            static_dirs.push(static_dir(url, path)?);
        }
        if let Some(path) = &cli.samples {
            static_dirs.push(static_dir("/samples", path)?);
        }
        for s in file_ref
            .map(|f| f.static_dirs.as_slice())
            .unwrap_or_default()
        {
            static_dirs.push(static_dir(&s.url, &s.path)?);
        }

        let workers = cli
            .workers
            .or_else(|| file_ref.and_then(|f| f.workers))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if workers == 0 || workers > 256 {
            return Err(ConfigError::Range {
                name: "workers",
                rule: "1 to 256",
                value: workers as u64,
            });
        }

        Ok(Config {
            http_address: cli
                .http_address
                .clone()
                .or_else(|| file_ref.and_then(|f| f.http_address.clone()))
                .unwrap_or_else(|| "0.0.0.0".to_string()),
            http_port: match cli.http_port.or_else(|| file_ref.and_then(|f| f.http_port)) {
                Some(0) => {
                    return Err(ConfigError::Range {
                        name: "http_port",
                        rule: "1 to 65535",
                        value: 0,
                    });
                }
                Some(port) => port,
                None => 8080,
            },
            workers,
            services,
            mongrel2,
            static_dirs,
            sockjs_client,
            metrics_port: cli.metrics_port,
            metrics_address: cli.metrics_address.clone(),
            metrics_public: cli.metrics_public,
            tls: cli.tls_cert.clone().zip(cli.tls_key.clone()),
            shutdown_linger: millis(
                "shutdown_linger_ms",
                Some(cli.shutdown_linger_ms),
                Duration::ZERO,
            )?,
            bridge: bridge::from_cli(cli, bridge_websocket)
                .map_err(|e| ConfigError::Bridge(Box::new(e)))?,
            scale_out: None,
        })
        .and_then(|mut config| {
            config.scale_out = scale_out::from_cli(cli, config.http_port)?;
            Ok(config)
        })
    }
}

/// The options every service starts from: the defaults, changed by CLI flags.
fn defaults_from_cli(cli: &Cli, sockjs_url: &str) -> Result<sockjs::Options, ConfigError> {
    let d = sockjs::Options::default();
    let (connect_info, connect_headers) = auth::connect_from_cli(&cli.who, &d);
    Ok(sockjs::Options {
        max_message_bytes: positive(
            "max_message_bytes",
            cli.max_message_bytes.unwrap_or(d.max_message_bytes),
        )?,
        max_sessions: positive("max_sessions", cli.max_sessions.unwrap_or(d.max_sessions))?,
        max_sessions_per_address: cli
            .max_sessions_per_address
            .unwrap_or(d.max_sessions_per_address),
        new_sessions_per_second: cli
            .new_sessions_per_second
            .unwrap_or(d.new_sessions_per_second),
        max_queue: positive("max_queue", cli.max_queue.unwrap_or(d.max_queue))?,
        max_queue_bytes: positive(
            "max_queue_bytes",
            cli.max_queue_bytes.unwrap_or(d.max_queue_bytes),
        )?,
        max_messages_per_send: positive(
            "max_messages_per_send",
            cli.max_messages_per_send.unwrap_or(d.max_messages_per_send),
        )?,
        body_timeout: millis("body_timeout_ms", cli.body_timeout_ms, d.body_timeout)?,
        heartbeat_delay: millis(
            "heartbeat_delay_ms",
            cli.heartbeat_delay_ms,
            d.heartbeat_delay,
        )?,
        disconnect_delay: millis(
            "disconnect_delay_ms",
            cli.disconnect_delay_ms,
            d.disconnect_delay,
        )?,
        sockjs_url: sockjs_url.to_string(),
        allow_origins: checks::origins(&cli.allow_origins)?,
        trusted_proxies: cli.trusted_proxies.clone(),
        websocket_ping: match cli.websocket_ping_ms {
            None => d.websocket_ping,
            Some(0) => None,
            ms => Some(millis("websocket_ping_ms", ms, Duration::ZERO)?),
        },
        poll_batch: poll_batch(cli.poll_batch_ms, d.poll_batch)?,
        connect_info,
        connect_headers,
        ..d
    })
}

fn service_from_file(
    s: &FileService,
    d: &sockjs::Options,
    backend_queue: usize,
    engine: backend::Engine,
) -> Result<ServiceConfig, ConfigError> {
    let d = d.clone();
    let options = sockjs::Options {
        websocket: s.websocket.unwrap_or(d.websocket),
        cookie_needed: s.cookie_needed.unwrap_or(d.cookie_needed),
        response_limit: positive(
            "response_limit",
            s.response_limit.unwrap_or(d.response_limit),
        )?,
        heartbeat_delay: millis(
            "heartbeat_delay_ms",
            s.heartbeat_delay_ms,
            d.heartbeat_delay,
        )?,
        disconnect_delay: millis(
            "disconnect_delay_ms",
            s.disconnect_delay_ms,
            d.disconnect_delay,
        )?,
        max_queue: positive("max_queue", s.max_queue.unwrap_or(d.max_queue))?,
        max_queue_bytes: positive(
            "max_queue_bytes",
            s.max_queue_bytes.unwrap_or(d.max_queue_bytes),
        )?,
        max_message_bytes: positive(
            "max_message_bytes",
            s.max_message_bytes.unwrap_or(d.max_message_bytes),
        )?,
        max_messages_per_send: positive(
            "max_messages_per_send",
            s.max_messages_per_send.unwrap_or(d.max_messages_per_send),
        )?,
        body_timeout: millis("body_timeout_ms", s.body_timeout_ms, d.body_timeout)?,
        max_sessions: positive("max_sessions", s.max_sessions.unwrap_or(d.max_sessions))?,
        max_sessions_per_address: s
            .max_sessions_per_address
            .unwrap_or(d.max_sessions_per_address),
        new_sessions_per_second: s
            .new_sessions_per_second
            .unwrap_or(d.new_sessions_per_second),
        origins: s.origins.clone().unwrap_or(d.origins),
        sockjs_url: s.sockjs_url.clone().unwrap_or(d.sockjs_url),
        allow_origins: match &s.allow_origins {
            Some(list) => checks::origins(list)?,
            None => d.allow_origins,
        },
        trusted_proxies: d.trusted_proxies,
        websocket_ping: match s.websocket_ping_ms {
            None => d.websocket_ping,
            Some(0) => None,
            ms => Some(millis("websocket_ping_ms", ms, Duration::ZERO)?),
        },
        poll_batch: poll_batch(s.poll_batch_ms, d.poll_batch)?,
        connect_info: s.connect_info.unwrap_or(d.connect_info),
        connect_headers: match &s.connect_headers {
            Some(names) => sockjs::admission::header_names(names),
            None => d.connect_headers,
        },
    };
    let prefix = normalize_prefix(&s.prefix)?;
    let handler = mongrel2::service_handler(s, &prefix, &options)?;
    let (push, pull) = match &handler {
        Some(h) => (h.send_spec.clone(), h.recv_spec.clone()),
        None => mongrel2::zmq_endpoints(s, &prefix)?,
    };
    Ok(ServiceConfig {
        prefix,
        options,
        mongrel2: handler,
        backend: backend::Settings {
            push: endpoint::check(&push)?,
            pull: endpoint::check(&pull)?,
            queue_bytes: positive(
                "backend_queue_bytes",
                s.backend_queue_bytes.unwrap_or(backend_queue),
            )?,
            engine,
            curve: curve::keys(s.curve_secret_key.as_deref(), s.curve_clients.as_deref())?,
            allow: curve::allow(s.backend_allow.as_deref().unwrap_or_default())?,
        },
        auth: auth::auth_from_file(s.auth.as_deref(), s.auth_timeout_ms, s.auth_jwt.as_ref())?,
    })
}

/// For Rust backends (`examples/echo.rs`): the proxy's own command line (and
/// its `--config` file), parsed and checked, as the endpoints of each
/// service. A bad command line ends the process with a one-line error naming
/// `program` and exit code 2, as the proxy does.
pub fn peer_endpoints(program: &str) -> Vec<backend::peer::Endpoints> {
    use clap::Parser;
    let cli = Cli::parse();
    let fail = |why: &dyn std::fmt::Display| -> ! {
        eprintln!("{program}: {why}");
        std::process::exit(2)
    };
    if cli.tool.is_some() {
        fail(&"keygen is the proxy's: run `sockjsproxy keygen DIR`");
    }
    let config = Config::from_cli(&cli).unwrap_or_else(|e| fail(&e));
    config
        .services
        .into_iter()
        .filter(|s| s.mongrel2.is_none())
        .map(|s| {
            let name = match s.prefix.as_str() {
                "" => "/".to_string(),
                p => p.to_string(),
            };
            if s.backend.curve.is_some() {
                // Its sockets are libzmq's (tmq), built without CURVE:
                // serving without would only be refused by the proxy, again
                // and again.
                fail(&format!(
                    "service {name:?} uses CURVE, which this backend cannot speak (its libzmq has none); a pyzmq backend can (samples/datereply-sjp.py --curve-secret ...)"
                ));
            }
            backend::peer::Endpoints {
                name,
                push: s.backend.push,
                pull: s.backend.pull,
            }
        })
        .collect()
}
