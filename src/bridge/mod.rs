//! Bridge mode: browser JavaScript talks to any 0MQ REP or PUB service through
//! one websocket, in ZmqWebBridge's wire format, while the proxy holds only
//! access control.
//!
//! A second actor family beside the SockJS one:
//! - [`websocket`]: the upgrade (asking the auth service) and the frame reader;
//! - [`session`]: one actor per websocket, owning its *virtual sockets*;
//! - [`gateway`]: the shared DEALER and SUB sockets towards backends;
//! - [`wire`]: the JSON frames; [`outbox`]: the outgoing frame queue;
//! - [`endpoint`], [`policy`] and [`auth`]: deny-by-default access control;
//! - [`rpc`]: helpers for backends written in Rust;
//! - [`settings`]: what bridge mode is told (built by `config` from the `--bridge*` flags).
//!
//! The browser client, `static/zmq-bridge.js`, is compiled into the binary and
//! served at [`CLIENT_URL`].

pub mod auth;
pub mod endpoint;
pub mod gateway;
pub mod outbox;
pub mod policy;
pub mod rpc;
pub mod session;
pub mod settings;
pub(crate) mod stats;
pub mod websocket;
pub mod wire;

use std::sync::Arc;

use actix_web::{HttpResponse, web};

pub use settings::BridgeConfig;

/// Where the proxy serves the browser client.
pub const CLIENT_URL: &str = "/zmq-bridge.js";
const CLIENT_JS: &str = include_str!("../../static/zmq-bridge.js");

/// Bridge mode's shared state: settings, gateways and the auth client.
pub struct Bridge {
    pub config: BridgeConfig,
    pub gateways: Arc<gateway::Gateways>,
    auth: Option<auth::AuthClient>,
}

impl Bridge {
    /// Makes no socket yet: gateways and the auth client open on first use,
    /// inside the worker that needs them.
    pub fn new(config: &BridgeConfig) -> Arc<Bridge> {
        let zmq = tmq::Context::new();
        if config.policy.is_none() && config.auth.is_none() {
            log::warn!(
                "bridge: neither --bridge-policy nor --bridge-auth given: every connect is denied"
            );
        }
        let auth = config
            .auth
            .clone()
            .map(|endpoint| auth::AuthClient::new(zmq.clone(), endpoint, config.auth_timeout));
        log::info!(
            "bridge: websocket at {}, client at {CLIENT_URL}, request timeout {:?}",
            config.path,
            config.timeout
        );
        stats::enable();
        Arc::new(Bridge {
            gateways: gateway::Gateways::new(zmq, config.hwm, config.queue_bytes, config.timeout),
            auth,
            config: config.clone(),
        })
    }

    pub fn auth(&self) -> Option<&auth::AuthClient> {
        self.auth.as_ref()
    }

    /// Mounts the websocket and the client script.
    pub fn mount(self: &Arc<Self>, app: &mut web::ServiceConfig) {
        let bridge = self.clone();
        app.route(
            &self.config.path,
            web::get().to(move |req, payload| websocket::upgrade(req, payload, bridge.clone())),
        );
        app.route(
            CLIENT_URL,
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("application/javascript; charset=UTF-8")
                    .body(CLIENT_JS)
            }),
        );
    }
}
