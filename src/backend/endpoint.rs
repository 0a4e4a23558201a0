//! 0MQ endpoint strings as the backend sockets take them: checked before 0MQ
//! (or the native engine) sees them, so that a typo is an error naming the
//! problem at start-up, and turned from a bound address into the address a
//! backend on the same host connects to.

/// Why an endpoint string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad endpoint {endpoint:?}: {reason}")]
pub struct EndpointError {
    pub endpoint: String,
    pub reason: &'static str,
}

/// Checks an endpoint string before 0MQ sees it: `tcp://host:port` (port 1 to
/// 65535), `ipc://path` or `inproc://name`.
pub fn check(endpoint: &str) -> Result<String, EndpointError> {
    let bad = |reason| EndpointError {
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
            // Digits and dots only is meant as an IPv4 address; 0MQ would
            // take a bad one for an interface name ("No such device").
            let dotted = host.chars().all(|c| c.is_ascii_digit() || c == '.');
            if dotted && host.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(bad("not an IPv4 address"));
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

/// Whether peers on other hosts can reach a bound endpoint: a `tcp://` one
/// whose host is not a loopback address or `localhost` (a wildcard, an
/// interface name or a routable address). `ipc://` and `inproc://` stay on
/// this host.
pub fn reachable_from_other_hosts(bound: &str) -> bool {
    let Some(rest) = bound.strip_prefix("tcp://") else {
        return false;
    };
    let host = rest.rsplit_once(':').map_or(rest, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return false;
    }
    !host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_before_zmq_sees_them() {
        assert!(check("tcp://*:9241").is_ok());
        assert!(check("tcp://10.1.2.3:9241").is_ok());
        assert!(check("tcp://eth0:9241").is_ok());
        assert!(check("ipc:///tmp/x").is_ok());
        assert_eq!(
            check("tcp://999.1.1.1:9241").unwrap_err().reason,
            "not an IPv4 address"
        );
        for bad in [
            "tcp://*:0",
            "tcp://1.2.3:1",
            "tcp://*:70000",
            "tcp://:1",
            "udp://x:1",
            "9241",
            "tcp://x",
            "ipc://",
        ] {
            assert!(check(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn wildcard_hosts_connect_over_loopback() {
        assert_eq!(connect_endpoint("tcp://*:9241"), "tcp://127.0.0.1:9241");
        assert_eq!(connect_endpoint("tcp://10.0.0.1:1"), "tcp://10.0.0.1:1");
    }

    #[test]
    fn only_loopback_and_local_transports_stay_on_this_host() {
        for local in [
            "tcp://127.0.0.1:9241",
            "tcp://127.0.0.2:1",
            "tcp://localhost:1",
            "tcp://[::1]:1",
            "ipc:///tmp/x",
            "inproc://x",
        ] {
            assert!(!reachable_from_other_hosts(local), "{local}");
        }
        for open in [
            "tcp://*:9241",
            "tcp://0.0.0.0:1",
            "tcp://10.0.0.1:1",
            "tcp://eth0:1",
            "tcp://[::]:1",
        ] {
            assert!(reachable_from_other_hosts(open), "{open}");
        }
    }
}
