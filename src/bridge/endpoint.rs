//! Endpoints a browser asks the bridge to connect to, parsed into their parts
//! before the policy or 0MQ sees them, and the policy's endpoint patterns,
//! which match those parts rather than the raw string.
//!
//! Why: the policy used to glob the raw string, and libzmq reads that string
//! by rules of its own. `tcp://127.0.0.1:2131*` admitted
//! `tcp://127.0.0.1:21319;127.0.0.1:21350`, which libzmq (`tcp_address.cpp`)
//! reads as *source* `127.0.0.1:21319`, *destination* `127.0.0.1:21350`: the
//! request reached a port the policy never allowed. libzmq has more such
//! readings, each refused here rather than guessed at:
//!
//! - `;` introduces a source address (and an interface name) before the
//!   destination: refused;
//! - the port is read with `atoi` into a `u16`: `21350abc`, `+21350`,
//!   `021350` and `86886` (= 21350 + 65536) all mean port 21350; only plain
//!   decimal 1 to 65535 without leading zeros is taken;
//! - brackets are stripped from any host, so `[127.0.0.1]` is 127.0.0.1; here
//!   brackets hold an IPv6 address and nothing else, and an IPv6 address
//!   needs them (libzmq splits host and port at the *last* colon);
//! - `%zone` selects an interface: refused;
//! - the host goes to `getaddrinfo`, which takes `127.1`, `0x7f.0.0.1`,
//!   `0177.0.0.1` and `2130706433` for 127.0.0.1: a host that looks numeric
//!   must be a dotted-quad IPv4 address as Rust writes it (`Ipv4Addr`); other
//!   hosts are DNS names (letters, digits, `-`, dots; compared in lower case);
//! - `*` is a bind wildcard, never a connect target;
//! - whitespace, control and non-ASCII characters are refused anywhere.
//!
//! `ipc://` and `inproc://` endpoints parse too, but a policy rule reaches
//! them only if its own pattern is `ipc://…` or `inproc://…`.
//!
//! Patterns (`[[allow]] endpoint = …`): `tcp://HOST:PORT` where
//! - HOST is `*` (any host), a bracketed IPv6 address (exact), an IPv4
//!   pattern of four parts of digits and `*` (`10.0.*.*`; matches IPv4
//!   addresses only, `*` standing for digits), or a DNS name pattern whose
//!   `*` stays within one label (`*.example.com` matches `a.example.com`, not
//!   `a.b.example.com` nor `127.0.0.1.example.com.evil`);
//! - PORT is `*`, a number, a range `LOW-HIGH`, or digits and `*` matched
//!   against the decimal port (`2131*`: 2131 and 21310 to 21319);
//!
//! and `ipc://PATH` (`*` matches within one path segment) or `inproc://NAME`
//! (`*` matches anything).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest endpoint string taken (a DNS name is at most 253 bytes).
const MAX_LEN: usize = 512;

/// A connect endpoint, in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: Host, port: u16 },
    Ipc(String),
    Inproc(String),
}

/// The host of a tcp endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    /// A DNS name, in lower case.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// The canonical form, which is what 0MQ is given.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Ipc(path) => write!(f, "ipc://{path}"),
            Endpoint::Inproc(name) => write!(f, "inproc://{name}"),
        }
    }
}

/// Why an endpoint (or pattern) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad endpoint {endpoint:?}: {reason}")]
pub struct EndpointError {
    pub endpoint: String,
    pub reason: &'static str,
}

/// Splits `scheme://rest` after the character checks every string gets.
fn split(text: &str) -> Result<(&str, &str), &'static str> {
    if text.len() > MAX_LEN {
        return Err("too long");
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("only printable ASCII without spaces is allowed");
    }
    let (scheme, rest) = text
        .split_once("://")
        .ok_or("expected transport://address")?;
    if rest.is_empty() {
        return Err("empty address");
    }
    Ok((scheme, rest))
}

/// Splits a tcp address into host and port text; `[v6]` keeps its brackets.
fn host_port(rest: &str) -> Result<(&str, &str), &'static str> {
    if rest.contains(';') {
        return Err("a source address (`source;destination`) is not allowed");
    }
    if rest.contains(['/', '?', '#', '@', '%', ',', '\\']) {
        return Err("tcp takes host:port and nothing else");
    }
    let (host, port) = if rest.starts_with('[') {
        let close = rest.find(']').ok_or("unclosed '['")?;
        let port = rest[close + 1..]
            .strip_prefix(':')
            .ok_or("expected ':' and a port after ']'")?;
        (&rest[..=close], port)
    } else {
        let (host, port) = rest.rsplit_once(':').ok_or("tcp needs host:port")?;
        if host.contains(':') {
            return Err("an IPv6 address must be in brackets");
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("empty host");
    }
    if port.is_empty() {
        return Err("empty port");
    }
    Ok((host, port))
}

fn parse_port(text: &str) -> Result<u16, &'static str> {
    let canonical =
        text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
    match text.parse::<u16>() {
        Ok(port) if canonical => Ok(port),
        _ => Err("the port must be a number from 1 to 65535 without leading zeros"),
    }
}

/// A name label that `getaddrinfo` could read as part of a number.
fn numeric_label(label: &str) -> bool {
    !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit())
        || label.len() > 1 && (label.starts_with("0x") || label.starts_with("0X"))
}

fn parse_host(text: &str) -> Result<Host, &'static str> {
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("unclosed '['")?;
        return inner
            .parse::<Ipv6Addr>()
            .map(Host::V6)
            .map_err(|_| "brackets must hold an IPv6 address");
    }
    if text == "*" || text.contains('*') {
        return Err("'*' is a bind wildcard, not a host to connect to");
    }
    if let Ok(v4) = text.parse::<Ipv4Addr>()
        && v4.to_string() == text
    {
        return Ok(Host::V4(v4));
    }
    let name = text.to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    if labels.last().is_some_and(|l| numeric_label(l)) {
        return Err("a numeric host must be a dotted-quad IPv4 address (a.b.c.d)");
    }
    if name.len() > 253 {
        return Err("host name too long");
    }
    for label in &labels {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err("a host name is dot-separated labels of letters, digits and '-'");
        }
    }
    Ok(Host::Name(name))
}

fn check_path(scheme: &str, path: &str) -> Result<(), &'static str> {
    if scheme == "ipc" && path.split('/').any(|segment| segment == "..") {
        return Err("'..' is not allowed in an ipc path");
    }
    if scheme == "ipc" && path.len() > 107 {
        return Err("ipc path too long");
    }
    Ok(())
}

impl Endpoint {
    /// Parses a connect endpoint, refusing anything libzmq could read
    /// differently (see the module docs).
    pub fn parse(text: &str) -> Result<Endpoint, EndpointError> {
        Endpoint::parse_parts(text).map_err(|reason| EndpointError {
            endpoint: text.to_string(),
            reason,
        })
    }

    fn parse_parts(text: &str) -> Result<Endpoint, &'static str> {
        let (scheme, rest) = split(text)?;
        match scheme {
            "tcp" => {
                let (host, port) = host_port(rest)?;
                Ok(Endpoint::Tcp {
                    host: parse_host(host)?,
                    port: parse_port(port)?,
                })
            }
            "ipc" | "inproc" if rest.contains('*') => {
                Err("'*' is a bind wildcard, not an address to connect to")
            }
            "ipc" => check_path(scheme, rest).map(|()| Endpoint::Ipc(rest.to_string())),
            "inproc" => Ok(Endpoint::Inproc(rest.to_string())),
            _ => Err("the transport must be tcp, ipc or inproc"),
        }
    }
}

/// A policy rule's endpoint pattern (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointPattern {
    Tcp {
        host: HostPattern,
        port: PortPattern,
    },
    Ipc(String),
    Inproc(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    V6(Ipv6Addr),
    /// Four parts of digits and `*`.
    V4([String; 4]),
    /// Labels in lower case, each possibly with `*`.
    Name(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortPattern {
    Range(u16, u16),
    /// Digits and `*`, matched against the decimal port.
    Glob(String),
}

impl EndpointPattern {
    pub fn parse(text: &str) -> Result<EndpointPattern, EndpointError> {
        EndpointPattern::parse_parts(text).map_err(|reason| EndpointError {
            endpoint: text.to_string(),
            reason,
        })
    }

    fn parse_parts(text: &str) -> Result<EndpointPattern, &'static str> {
        let (scheme, rest) = split(text)?;
        match scheme {
            "tcp" => {
                let (host, port) = host_port(rest)?;
                Ok(EndpointPattern::Tcp {
                    host: host_pattern(host)?,
                    port: port_pattern(port)?,
                })
            }
            "ipc" => check_path(scheme, rest).map(|()| EndpointPattern::Ipc(rest.to_string())),
            "inproc" => Ok(EndpointPattern::Inproc(rest.to_string())),
            _ => Err("the transport must be tcp, ipc or inproc"),
        }
    }

    pub fn matches(&self, endpoint: &Endpoint) -> bool {
        match (self, endpoint) {
            (EndpointPattern::Tcp { host: hp, port: pp }, Endpoint::Tcp { host, port }) => {
                hp.matches(host) && pp.matches(*port)
            }
            (EndpointPattern::Ipc(p), Endpoint::Ipc(path)) => {
                let (ps, ts): (Vec<_>, Vec<_>) =
                    (p.split('/').collect(), path.split('/').collect());
                ps.len() == ts.len() && ps.iter().zip(&ts).all(|(p, t)| glob_match(p, t))
            }
            (EndpointPattern::Inproc(p), Endpoint::Inproc(name)) => glob_match(p, name),
            _ => false,
        }
    }
}

fn host_pattern(text: &str) -> Result<HostPattern, &'static str> {
    if text == "*" {
        return Ok(HostPattern::Any);
    }
    if text.starts_with('[') {
        return match parse_host(text)? {
            Host::V6(a) => Ok(HostPattern::V6(a)),
            _ => Err("brackets must hold an IPv6 address"),
        };
    }
    let lower = text.to_ascii_lowercase();
    let labels: Vec<String> = lower.split('.').map(str::to_string).collect();
    let v4ish = |l: &String| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit() || b == b'*');
    if labels.iter().all(v4ish) {
        return match <[String; 4]>::try_from(labels) {
            Ok(parts) => Ok(HostPattern::V4(parts)),
            Err(_) => Err("an IPv4 pattern has four parts of digits and '*' (10.0.*.*)"),
        };
    }
    // Check it as a name with every `*` read as a letter.
    match parse_host(&lower.replace('*', "x")) {
        Ok(Host::Name(_)) => Ok(HostPattern::Name(labels)),
        Ok(_) | Err(_) => {
            Err("a host pattern is '*', [IPv6], a.b.c.d with '*', or a DNS name with '*'")
        }
    }
}

fn port_pattern(text: &str) -> Result<PortPattern, &'static str> {
    const BAD: &str = "a port pattern is '*', a port, LOW-HIGH, or digits with '*'";
    if let Some((low, high)) = text.split_once('-') {
        let (low, high) = (parse_port(low)?, parse_port(high)?);
        return if low <= high {
            Ok(PortPattern::Range(low, high))
        } else {
            Err(BAD)
        };
    }
    if text.contains('*') {
        return if text.bytes().all(|b| b.is_ascii_digit() || b == b'*') {
            Ok(PortPattern::Glob(text.to_string()))
        } else {
            Err(BAD)
        };
    }
    let port = parse_port(text)?;
    Ok(PortPattern::Range(port, port))
}

impl HostPattern {
    fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::V6(p), Host::V6(a)) => p == a,
            (HostPattern::V4(parts), Host::V4(a)) => parts
                .iter()
                .zip(a.octets())
                .all(|(p, octet)| glob_match(p, &octet.to_string())),
            (HostPattern::Name(labels), Host::Name(name)) => {
                let host_labels: Vec<&str> = name.split('.').collect();
                labels.len() == host_labels.len()
                    && labels
                        .iter()
                        .zip(&host_labels)
                        .all(|(p, l)| glob_match(p, l))
            }
            _ => false,
        }
    }
}

impl PortPattern {
    fn matches(&self, port: u16) -> bool {
        match self {
            PortPattern::Range(low, high) => (*low..=*high).contains(&port),
            PortPattern::Glob(p) => glob_match(p, &port.to_string()),
        }
    }
}

/// `*` matches any run of characters (including none); everything else is
/// literal. Iterative with one backtrack point, so no pattern is slow.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
