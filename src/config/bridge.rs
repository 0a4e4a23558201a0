//! Bridge mode's settings, from the `--bridge*` flags into
//! [`BridgeConfig`], checked at start-up so that a bad policy file or
//! endpoint is a one-line error before anything is served.

use std::time::Duration;

use crate::backend::endpoint::{self, EndpointError};
use crate::bridge::BridgeConfig;
use crate::bridge::policy::{Policy, PolicyError};
use crate::cli::Cli;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("bad --bridge path {0:?}: it must start with '/', not be '/' and not end with '/'")]
    Path(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("bad --bridge-auth: {0}")]
    Auth(#[from] EndpointError),
    #[error("{0} must be between 0.01 and 86400 seconds, got {1}")]
    Timeout(&'static str, f64),
}

/// `None` when `--bridge` is not given (clap refuses the other bridge flags
/// without it). `websocket`: the message limit and pings of the SockJS
/// services' flags, which the bridge's websocket shares.
pub(super) fn from_cli(
    cli: &Cli,
    websocket: crate::websocket::Settings,
) -> Result<Option<BridgeConfig>, BridgeError> {
    let Some(path) = &cli.bridge else {
        return Ok(None);
    };
    let valid = path.starts_with('/')
        && path.len() > 1
        && !path.ends_with('/')
        && !path.contains(['?', '#', ' ']);
    if !valid {
        return Err(BridgeError::Path(path.clone()));
    }
    let policy = match &cli.bridge_policy {
        Some(file) => Some(Policy::load(file)?),
        None => None,
    };
    let auth = match &cli.bridge_auth {
        Some(e) => Some(endpoint::check(e)?),
        None => None,
    };
    // clap bounds it to sizes a usize holds.
    let outbox_bytes = usize::try_from(cli.bridge_outbox_bytes).unwrap_or(usize::MAX);
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
        outbox_bytes,
        queue_bytes: usize::try_from(cli.bridge_queue_bytes).unwrap_or(usize::MAX),
        // A browser that does not read its replies is not read either.
        websocket: crate::websocket::Settings {
            backlog: Some(outbox_bytes / 2),
            ..websocket
        },
    }))
}

fn seconds(flag: &'static str, secs: f64) -> Result<Duration, BridgeError> {
    if (0.01..=86_400.0).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(BridgeError::Timeout(flag, secs))
    }
}
