//! Bridge mode's settings: what `config` builds from the `--bridge*` flags
//! (see `config::bridge`), checked there before anything is served.

use std::path::PathBuf;
use std::time::Duration;

use super::policy::Policy;

/// Everything bridge mode needs to know.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Where the websocket is served, e.g. `/data`.
    pub path: String,
    /// `None`: no policy file; then only the auth service can allow anything.
    pub policy: Option<Policy>,
    pub policy_file: Option<PathBuf>,
    /// Endpoint of the auth service (a REP socket).
    pub auth: Option<String>,
    /// HWM of every gateway socket, both directions.
    pub hwm: i32,
    /// How long a REQ waits for its reply before the browser gets an error.
    pub timeout: Duration,
    pub auth_timeout: Duration,
    /// Reverse proxies whose X-Forwarded-For names the client (`--trusted-proxy`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Origins whose upgrades are served (`--allow-origin`); empty: any.
    pub allow_origins: Vec<String>,
    /// Bytes of frames one browser's outbox holds (`--bridge-outbox-bytes`).
    pub outbox_bytes: usize,
    /// Bytes of requests one REQ gateway queues (`--bridge-queue-bytes`).
    pub queue_bytes: usize,
    /// Browsers' message limit (`--max-message-bytes`) and keepalive pings
    /// (`--websocket-ping-ms`), as for the SockJS services.
    pub websocket: crate::websocket::Settings,
}

impl BridgeConfig {
    /// Whether an upgrade with this `Origin` header is served: the rule of
    /// the SockJS services (`--allow-origin`, repeatable; `*` or none: any).
    pub fn origin_allowed(&self, origin: &[u8]) -> bool {
        crate::sockjs::origin_allowed(&self.allow_origins, origin)
    }
}
