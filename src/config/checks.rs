//! The checks every configured value passes, whichever of the command line
//! and the file it came from: ranges, URL prefixes, static directories and 0MQ
//! endpoints, each with an error that names the problem.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ConfigError, ServiceConfig};

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
    check_endpoint(&format!("tcp://{address}:{port}"))
}

/// Checks an endpoint string before 0MQ sees it, so the error names the problem.
pub fn check_endpoint(endpoint: &str) -> Result<String, ConfigError> {
    let bad = |reason| ConfigError::Endpoint {
        endpoint: endpoint.to_string(),
        reason,
    };
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| bad("expected scheme://address"))?;
    match scheme {
        "tcp" => {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("tcp needs host:port"))?;
            if host.is_empty() || host.contains(['/', ' ']) {
                return Err(bad("bad host"));
            }
            match port.parse::<u16>() {
                Ok(p) if p > 0 => Ok(endpoint.to_string()),
                _ => Err(bad("port must be 1 to 65535")),
            }
        }
        "ipc" | "inproc" if !rest.is_empty() => Ok(endpoint.to_string()),
        "ipc" | "inproc" => Err(bad("empty address")),
        _ => Err(bad("scheme must be tcp, ipc or inproc")),
    }
}

/// The endpoint a backend connects to for a bound one: a wildcard host
/// (`*`, `0.0.0.0`) becomes loopback.
pub fn connect_endpoint(bound: &str) -> String {
    for wildcard in ["tcp://*:", "tcp://0.0.0.0:"] {
        if let Some(port) = bound.strip_prefix(wildcard) {
            return format!("tcp://127.0.0.1:{port}");
        }
    }
    bound.to_string()
}

pub(super) fn check_unique(services: &[ServiceConfig]) -> Result<(), ConfigError> {
    let mut prefixes = HashSet::new();
    let mut endpoints = HashSet::new();
    for s in services {
        if !prefixes.insert(s.prefix.as_str()) {
            return Err(ConfigError::DuplicatePrefix(s.prefix.clone()));
        }
        for e in [&s.push, &s.pull] {
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
    fn endpoints_are_checked_before_zmq_sees_them() {
        assert!(check_endpoint("tcp://*:9241").is_ok());
        assert!(check_endpoint("ipc:///tmp/x").is_ok());
        for bad in [
            "tcp://*:0",
            "tcp://*:70000",
            "tcp://:1",
            "udp://x:1",
            "9241",
            "tcp://x",
            "ipc://",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn wildcard_hosts_connect_over_loopback() {
        assert_eq!(connect_endpoint("tcp://*:9241"), "tcp://127.0.0.1:9241");
        assert_eq!(connect_endpoint("tcp://10.0.0.1:1"), "tcp://10.0.0.1:1");
    }

    #[test]
    fn prefixes_lose_their_trailing_slash() {
        assert_eq!(normalize_prefix("/").unwrap(), "");
        assert_eq!(normalize_prefix("/echo/").unwrap(), "/echo");
        assert!(normalize_prefix("echo").is_err());
        assert!(normalize_prefix("/a.b").is_err());
    }
}
