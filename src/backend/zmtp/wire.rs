//! ZMTP 3.1's bytes (RFC 37): the 64-byte greeting, command bodies and the
//! frames that carry message parts. Pure functions over buffers, no I/O.
//!
//! A frame is a flags byte (MORE `0x01`, LONG `0x02`, COMMAND `0x04`; the other
//! bits must be zero), a size (one byte, or eight big-endian bytes when LONG)
//! and the body. A message is a run of frames whose last has no MORE.

use bytes::{BufMut, BytesMut};

/// Length of the greeting each side sends first.
pub const GREETING_LEN: usize = 64;

pub(super) const MORE: u8 = 0x01;
pub(super) const LONG: u8 = 0x02;
pub(super) const COMMAND: u8 = 0x04;

/// The socket types the native transport speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketType {
    Push,
    Pull,
}

impl SocketType {
    pub fn name(self) -> &'static str {
        match self {
            SocketType::Push => "PUSH",
            SocketType::Pull => "PULL",
        }
    }

    /// The only peer type ZMTP allows for this one (RFC 30: PUSH pairs with PULL).
    pub fn peer(self) -> SocketType {
        match self {
            SocketType::Push => SocketType::Pull,
            SocketType::Pull => SocketType::Push,
        }
    }
}

/// Why a peer's bytes are not ZMTP 3 as this transport speaks it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a ZMTP greeting")]
    NotZmtp,
    #[error("peer speaks ZMTP {0}.x; libzmq 4 or later (ZMTP 3) is needed")]
    OldVersion(u8),
    #[error("peer wants the {theirs} security mechanism; this socket speaks {ours}")]
    Mechanism { theirs: String, ours: &'static str },
    #[error("frame flags {0:#04x} have reserved bits set")]
    Flags(u8),
    #[error("a command frame has the MORE flag")]
    CommandMore,
    #[error("malformed {0} command")]
    BadCommand(&'static str),
    #[error("a message, where this socket takes none")]
    NoMessages,
    #[error("a message of more than {0} frames")]
    TooManyFrames(usize),
    #[error("a message of {size} bytes or more, over the {limit} byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("a command of {size} bytes, over the {limit} byte limit")]
    CommandTooLarge { size: u64, limit: u64 },
    /// CURVE refused the peer, or a box it sent.
    #[error(transparent)]
    Curve(#[from] super::curve::CurveError),
}

/// A security mechanism this transport speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// No security: what libzmq uses by default.
    Null,
    /// CURVE (RFC 26), the proxy as the server.
    Curve,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Null => "NULL",
            Mechanism::Curve => "CURVE",
        }
    }
}

/// Our greeting: ZMTP 3.1 with `mechanism`; as-server under CURVE (NULL
/// ignores it).
pub fn greeting(mechanism: Mechanism) -> [u8; GREETING_LEN] {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xFF;
    // Padding ends in 1 so that ZMTP 1.0 peers read it as a length.
    g[8] = 0x01;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 1;
    let name = mechanism.name().as_bytes();
    g[12..12 + name.len()].copy_from_slice(name);
    g[32] = u8::from(mechanism == Mechanism::Curve);
    g
}

/// Checks a peer's greeting, or as much of it as has arrived: ZMTP 3.x with
/// `ours` as its mechanism. A prefix that passes may still fail once more bytes
/// come; one that fails (an HTTP request, a ZMTP 1.0 identity) is refused at
/// once instead of waiting for 64 bytes that may never come.
pub fn check_greeting(g: &[u8], ours: Mechanism) -> Result<(), WireError> {
    if g.first().is_some_and(|&b| b != 0xFF) || g.get(9).is_some_and(|&b| b & 0x01 == 0) {
        return Err(WireError::NotZmtp);
    }
    if let Some(&major) = g.get(10)
        && major < 3
    {
        return Err(WireError::OldVersion(major));
    }
    if let Some(mechanism) = g.get(12..32) {
        let end = mechanism.iter().position(|&b| b == 0).unwrap_or(20);
        if &mechanism[..end] != ours.name().as_bytes() {
            return Err(WireError::Mechanism {
                theirs: String::from_utf8_lossy(&mechanism[..end]).into_owned(),
                ours: ours.name(),
            });
        }
    }
    Ok(())
}

/// Appends one message (its parts as frames) to `out`.
pub fn encode_message(parts: &[&[u8]], out: &mut BytesMut) {
    let total: usize = parts.iter().map(|p| p.len() + 9).sum();
    out.reserve(total);
    for (i, part) in parts.iter().enumerate() {
        let more = if i + 1 < parts.len() { MORE } else { 0 };
        put_header(out, more, part.len());
        out.put_slice(part);
    }
}

/// Appends a command frame whose body is `name` and `data` (RFC 37 §2.4: the
/// name is preceded by its length).
pub fn encode_command(name: &str, data: &[u8], out: &mut BytesMut) {
    let len = 1 + name.len() + data.len();
    out.reserve(len + 9);
    put_header(out, COMMAND, len);
    out.put_u8(name.len() as u8);
    out.put_slice(name.as_bytes());
    out.put_slice(data);
}

/// The NULL mechanism's READY command announcing our socket type.
pub fn encode_ready(ours: SocketType, out: &mut BytesMut) {
    encode_command("READY", &socket_type_property(ours), out);
}

/// The metadata announcing our socket type (RFC 37 §2.4's property list).
pub(super) fn socket_type_property(ours: SocketType) -> Vec<u8> {
    let mut props = Vec::with_capacity(24);
    let (name, value) = (b"Socket-Type", ours.name().as_bytes());
    props.push(name.len() as u8);
    props.extend_from_slice(name);
    props.extend_from_slice(&(value.len() as u32).to_be_bytes());
    props.extend_from_slice(value);
    props
}

fn put_header(out: &mut BytesMut, flags: u8, len: usize) {
    if len > 255 {
        out.put_u8(flags | LONG);
        out.put_u64(len as u64);
    } else {
        out.put_u8(flags);
        out.put_u8(len as u8);
    }
}

/// A command a peer sent, as far as PUSH and PULL care.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// NULL handshake; the peer's socket type, if it gave one.
    Ready { socket_type: Option<&'a [u8]> },
    /// The peer refuses the connection, with its reason.
    Error(&'a [u8]),
    /// A heartbeat to answer with PONG and the same context.
    Ping { context: &'a [u8] },
    /// Anything else (PONG, SUBSCRIBE, ...): ignored.
    Other,
}

/// Parses a command frame's body.
pub fn parse_command(body: &[u8]) -> Result<Command<'_>, WireError> {
    let Some((&len, rest)) = body.split_first() else {
        return Err(WireError::BadCommand("empty"));
    };
    let len = len as usize;
    if rest.len() < len {
        return Err(WireError::BadCommand("truncated"));
    }
    let (name, data) = rest.split_at(len);
    match name {
        b"READY" => Ok(Command::Ready {
            socket_type: property(data, b"Socket-Type")?,
        }),
        b"ERROR" => match data.split_first() {
            Some((&n, reason)) if reason.len() >= n as usize => {
                Ok(Command::Error(&reason[..n as usize]))
            }
            _ => Err(WireError::BadCommand("ERROR")),
        },
        b"PING" if data.len() >= 2 => Ok(Command::Ping {
            context: &data[2..data.len().min(18)],
        }),
        b"PING" => Err(WireError::BadCommand("PING")),
        _ => Ok(Command::Other),
    }
}

/// Finds a READY property by name (names are case-insensitive).
pub(super) fn property<'a>(
    mut data: &'a [u8],
    wanted: &[u8],
) -> Result<Option<&'a [u8]>, WireError> {
    let bad = || WireError::BadCommand("READY");
    while let Some((&n, rest)) = data.split_first() {
        let n = n as usize;
        if rest.len() < n + 4 {
            return Err(bad());
        }
        let (name, rest) = rest.split_at(n);
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let rest = &rest[4..];
        if rest.len() < len {
            return Err(bad());
        }
        if name.eq_ignore_ascii_case(wanted) {
            return Ok(Some(&rest[..len]));
        }
        data = &rest[len..];
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::super::decoder::{Decoder, Item, Limits};
    use super::*;

    const LIMITS: Limits = Limits {
        frames: 3,
        bytes: 1000,
        command: 100,
    };

    #[test]
    fn ready_names_the_socket_type_and_ping_keeps_its_context() {
        let mut out = BytesMut::new();
        encode_ready(SocketType::Push, &mut out);
        let Some(Item::Command(body)) = Decoder::new(LIMITS).decode(&mut out).unwrap() else {
            panic!("no command");
        };
        assert_eq!(
            parse_command(&body),
            Ok(Command::Ready {
                socket_type: Some(b"PUSH")
            })
        );
        assert_eq!(
            parse_command(b"\x04PING\x00\x0aabc"),
            Ok(Command::Ping { context: b"abc" })
        );
        assert_eq!(
            parse_command(b"\x05ERROR\x03bad"),
            Ok(Command::Error(b"bad"))
        );
        assert!(parse_command(b"\x05READY\x0bSocket-Type\x00\x00\x00\x09PU").is_err());
        assert!(parse_command(b"\x09READY").is_err());
    }

    #[test]
    fn greetings_other_than_zmtp3_null_are_refused() {
        use Mechanism::{Curve, Null};
        assert_eq!(check_greeting(&greeting(Null), Null), Ok(()));
        let mut old = greeting(Null);
        old[10] = 2;
        assert_eq!(check_greeting(&old, Null), Err(WireError::OldVersion(2)));
        let curve = greeting(Curve);
        assert_eq!(&curve[12..18], b"CURVE\0");
        assert_eq!(curve[32], 1, "as-server");
        assert_eq!(greeting(Null)[32], 0);
        assert_eq!(
            check_greeting(&curve, Null),
            Err(WireError::Mechanism {
                theirs: "CURVE".into(),
                ours: "NULL"
            })
        );
        // A NULL peer of a CURVE socket is refused at its greeting.
        assert_eq!(
            check_greeting(&greeting(Null), Curve),
            Err(WireError::Mechanism {
                theirs: "NULL".into(),
                ours: "CURVE"
            })
        );
        assert_eq!(check_greeting(&curve, Curve), Ok(()));
        assert_eq!(check_greeting(&[0u8; 64], Null), Err(WireError::NotZmtp));
        // Short prefixes: what is there is checked, what is missing is not.
        assert_eq!(
            check_greeting(b"GET / HTTP/1.0\r\n\r\n", Null),
            Err(WireError::NotZmtp)
        );
        assert_eq!(check_greeting(&greeting(Null)[..1], Null), Ok(()));
        assert_eq!(
            check_greeting(&old[..11], Null),
            Err(WireError::OldVersion(2))
        );
        assert_eq!(check_greeting(&[], Null), Ok(()));
    }
}
