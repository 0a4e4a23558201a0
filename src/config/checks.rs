//! The checks every configured value passes, whichever of the command line
//! and the file it came from: ranges, URL prefixes and static directories (0MQ
//! endpoints are checked by `backend::endpoint`), each with an error that names the problem.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ConfigError, ServiceConfig};
use crate::backend::endpoint;
use crate::cli::Cli;

/// With a config file, the flags that describe the command line's one
/// service (its endpoints, and its security: CURVE, the address allowlist,
/// authentication) have no service to apply to. Dropping them would leave
/// sockets bound or services open where the operator meant otherwise, so
/// each is an error that names the file's key instead. (`--connect-info`
/// and the limits are defaults for every file service, and stay allowed.)
pub(super) fn no_service_flags(cli: &Cli) -> Result<(), ConfigError> {
    let who = &cli.who;
    let given = [
        ("--address", "push and pull", cli.address.is_some()),
        ("--in-port", "push", cli.in_port.is_some()),
        ("--out-port", "pull", cli.out_port.is_some()),
        (
            "--curve-secret-key",
            "curve_secret_key",
            cli.curve_secret_key.is_some(),
        ),
        (
            "--curve-clients",
            "curve_clients",
            cli.curve_clients.is_some(),
        ),
        (
            "--backend-allow",
            "backend_allow",
            !cli.backend_allow.is_empty(),
        ),
        ("--auth", "auth", who.auth.is_some()),
        (
            "--auth-timeout-ms",
            "auth_timeout_ms",
            who.auth_timeout_ms.is_some(),
        ),
        // Every other --auth-jwt-* flag requires this one (clap checks).
        (
            "--auth-jwt-*",
            "[service.auth_jwt]",
            who.auth_jwt_key.is_some(),
        ),
    ];
    let (flags, keys): (Vec<_>, Vec<_>) = given
        .iter()
        .filter(|(_, _, set)| *set)
        .map(|(flag, key, _)| (*flag, *key))
        .unzip();
    if flags.is_empty() {
        return Ok(());
    }
    Err(ConfigError::FlagsWithFile(
        flags.join(", "),
        keys.join(", "),
    ))
}

pub(super) fn positive(name: &'static str, value: usize) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(ConfigError::Range {
            name,
            rule: "at least 1",
            value: 0,
        });
    }
    Ok(value)
}

/// `allow_origins` entries as browsers send `Origin`: `scheme://host[:port]`
/// with no path (not even a `/`), `null`, or `*`. Anything else would
/// never match, and every browser would get 403.
pub(super) fn origins(list: &[String]) -> Result<Vec<String>, ConfigError> {
    for origin in list {
        let ok = origin == "*"
            || origin == "null"
            || origin.split_once("://").is_some_and(|(scheme, host)| {
                !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    && !host.is_empty()
                    && !host.contains(['/', '?', '#', ' '])
            });
        if !ok {
            return Err(ConfigError::Origin(origin.clone()));
        }
    }
    Ok(list.to_vec())
}

pub(super) fn millis(
    name: &'static str,
    value: Option<u64>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(ms) if (1..=86_400_000).contains(&ms) => Ok(Duration::from_millis(ms)),
        Some(ms) => Err(ConfigError::Range {
            name,
            rule: "1 to 86400000 ms",
            value: ms,
        }),
    }
}

/// The polling batch window: 0 turns it off; at most a second.
pub(super) fn poll_batch(value: Option<u64>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(ms @ 0..=1000) => Ok(Duration::from_millis(ms)),
        Some(ms) => Err(ConfigError::Range {
            name: "poll_batch_ms",
            rule: "0 to 1000 ms",
            value: ms,
        }),
    }
}

/// `"/"` and `""` mean the root; otherwise `/a/b` without a trailing slash.
pub(super) fn normalize_prefix(prefix: &str) -> Result<String, ConfigError> {
    let trimmed = prefix.trim_end_matches('/');
    let valid = prefix.starts_with('/') && !prefix.contains(['?', '#', '.', ' ']);
    if !valid {
        return Err(ConfigError::Prefix(prefix.to_string()));
    }
    Ok(trimmed.to_string())
}

pub(super) fn static_dir(url: &str, path: &Path) -> Result<(String, PathBuf), ConfigError> {
    if !url.starts_with('/') {
        return Err(ConfigError::StaticUrl(url.to_string()));
    }
    if !path.is_dir() {
        return Err(ConfigError::NotADirectory(path.to_path_buf()));
    }
    Ok((url.trim_end_matches('/').to_string(), path.to_path_buf()))
}

pub(super) fn tcp_endpoint(address: &str, port: u16) -> Result<String, ConfigError> {
    Ok(endpoint::check(&format!("tcp://{address}:{port}"))?)
}

pub(super) fn check_unique(services: &[ServiceConfig]) -> Result<(), ConfigError> {
    let mut prefixes = HashSet::new();
    let mut endpoints = HashSet::new();
    for s in services {
        if !prefixes.insert(s.prefix.as_str()) {
            return Err(ConfigError::DuplicatePrefix(s.prefix.clone()));
        }
        for e in [&s.backend.push, &s.backend.pull] {
            if !endpoints.insert(e.as_str()) {
                return Err(ConfigError::DuplicateEndpoint(e.clone()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_lose_their_trailing_slash() {
        assert_eq!(normalize_prefix("/").unwrap(), "");
        assert_eq!(normalize_prefix("/echo/").unwrap(), "/echo");
        assert!(normalize_prefix("echo").is_err());
        assert!(normalize_prefix("/a.b").is_err());
    }
}
