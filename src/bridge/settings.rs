//! Bridge mode's settings, from the `--bridge*` flags, checked at start-up so
//! that a bad policy file or endpoint is a one-line error before anything is
//! served.

use std::path::PathBuf;
use std::time::Duration;

use super::policy::{Policy, PolicyError};
use crate::cli::Cli;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("bad --bridge path {0:?}: it must start with '/', not be '/' and not end with '/'")]
    Path(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("bad --bridge-auth: {0}")]
    Auth(#[from] crate::config::ConfigError),
    #[error("{0} must be between 0.01 and 86400 seconds, got {1}")]
    Timeout(&'static str, f64),
}

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
}

impl BridgeConfig {
    /// Whether an upgrade with this `Origin` header is served: the rule of
    /// the SockJS services (`--allow-origin`, repeatable; `*` or none: any).
    pub fn origin_allowed(&self, origin: &[u8]) -> bool {
        crate::sockjs::origin_allowed(&self.allow_origins, origin)
    }
}

impl BridgeConfig {
    /// `None` when `--bridge` is not given (clap refuses the other bridge
    /// flags without it).
    pub fn from_cli(cli: &Cli) -> Result<Option<BridgeConfig>, SettingsError> {
        let Some(path) = &cli.bridge else {
            return Ok(None);
        };
        let valid = path.starts_with('/')
            && path.len() > 1
            && !path.ends_with('/')
            && !path.contains(['?', '#', ' ']);
        if !valid {
            return Err(SettingsError::Path(path.clone()));
        }
        let policy = match &cli.bridge_policy {
            Some(file) => Some(Policy::load(file)?),
            None => None,
        };
        let auth = match &cli.bridge_auth {
            Some(endpoint) => Some(crate::config::check_endpoint(endpoint)?),
            None => None,
        };
        Ok(Some(BridgeConfig {
            path: path.clone(),
            policy,
            policy_file: cli.bridge_policy.clone(),
            auth,
            hwm: cli.bridge_hwm,
            timeout: seconds("--bridge-timeout", cli.bridge_timeout)?,
            auth_timeout: seconds("--bridge-auth-timeout", cli.bridge_auth_timeout)?,
            trusted_proxies: cli.trusted_proxies.clone(),
            allow_origins: cli.allow_origins.clone(),
            // clap bounds both to sizes a usize holds.
            outbox_bytes: usize::try_from(cli.bridge_outbox_bytes).unwrap_or(usize::MAX),
            queue_bytes: usize::try_from(cli.bridge_queue_bytes).unwrap_or(usize::MAX),
        }))
    }
}

fn seconds(flag: &'static str, secs: f64) -> Result<Duration, SettingsError> {
    if (0.01..=86_400.0).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(SettingsError::Timeout(flag, secs))
    }
}
