//! ZMTP 3.1's bytes (RFC 37): the 64-byte greeting, command bodies and the
//! frames that carry message parts. Pure functions over buffers, no I/O.
//!
//! A frame is a flags byte (MORE `0x01`, LONG `0x02`, COMMAND `0x04`; the other
//! bits must be zero), a size (one byte, or eight big-endian bytes when LONG)
//! and the body. A message is a run of frames whose last has no MORE.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the greeting each side sends first.
pub const GREETING_LEN: usize = 64;

const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;

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
    #[error("peer wants the {0} security mechanism; only NULL is supported")]
    Mechanism(String),
    #[error("frame flags {0:#04x} have reserved bits set")]
    Flags(u8),
    #[error("a command frame has the MORE flag")]
    CommandMore,
    #[error("malformed {0} command")]
    BadCommand(&'static str),
}

/// Our greeting: ZMTP 3.1, NULL mechanism, not as-server (NULL ignores it).
pub fn greeting() -> [u8; GREETING_LEN] {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xFF;
    // Padding ends in 1 so that ZMTP 1.0 peers read it as a length.
    g[8] = 0x01;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 1;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// Checks a peer's greeting, or as much of it as has arrived: ZMTP 3.x with
/// the NULL mechanism. A prefix that passes may still fail once more bytes
/// come; one that fails (an HTTP request, a ZMTP 1.0 identity) is refused at
/// once instead of waiting for 64 bytes that may never come.
pub fn check_greeting(g: &[u8]) -> Result<(), WireError> {
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
        if &mechanism[..end] != b"NULL" {
            return Err(WireError::Mechanism(
                String::from_utf8_lossy(&mechanism[..end]).into_owned(),
            ));
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
    let mut props = Vec::with_capacity(24);
    let (name, value) = (b"Socket-Type", ours.name().as_bytes());
    props.push(name.len() as u8);
    props.extend_from_slice(name);
    props.extend_from_slice(&(value.len() as u32).to_be_bytes());
    props.extend_from_slice(value);
    encode_command("READY", &props, out);
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
fn property<'a>(mut data: &'a [u8], wanted: &[u8]) -> Result<Option<&'a [u8]>, WireError> {
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

/// What the [`Decoder`] found in the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A whole message, its parts in order.
    Message(Vec<Bytes>),
    /// A command frame's body.
    Command(Bytes),
    /// A message with a frame over the size limit, skipped without buffering
    /// it; the size of that frame.
    Oversize(u64),
}

/// Splits a byte stream into [`Item`]s. Frames up to `max_frame` bytes are
/// buffered; a larger one is skipped as it arrives, with the rest of its
/// message, so that a runaway backend cannot make the proxy buffer gigabytes.
#[derive(Debug)]
pub struct Decoder {
    max_frame: usize,
    parts: Vec<Bytes>,
    /// Bytes of an oversize frame still to skip.
    skipping: u64,
    /// The message being read has an oversize frame (its size).
    oversize: Option<u64>,
    /// The frame being skipped is the message's last.
    skip_last: bool,
}

impl Decoder {
    pub fn new(max_frame: usize) -> Decoder {
        Decoder {
            max_frame,
            parts: Vec::new(),
            skipping: 0,
            oversize: None,
            skip_last: false,
        }
    }

    /// Takes the next item out of `buf`, or `None` until more bytes arrive.
    /// An error means the stream cannot be followed any more.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, WireError> {
        loop {
            if self.skipping > 0 {
                let n = (buf.len() as u64).min(self.skipping);
                buf.advance(n as usize);
                self.skipping -= n;
                if self.skipping > 0 {
                    return Ok(None);
                }
                if self.skip_last {
                    return Ok(self.oversize.take().map(Item::Oversize));
                }
                continue;
            }
            let Some(&flags) = buf.first() else {
                return Ok(None);
            };
            if flags & !(MORE | LONG | COMMAND) != 0 {
                return Err(WireError::Flags(flags));
            }
            if flags & COMMAND != 0 && flags & MORE != 0 {
                return Err(WireError::CommandMore);
            }
            let (header, size) = if flags & LONG != 0 {
                if buf.len() < 9 {
                    return Ok(None);
                }
                let size = u64::from_be_bytes(buf[1..9].try_into().expect("8 bytes"));
                (9, size)
            } else {
                if buf.len() < 2 {
                    return Ok(None);
                }
                (2, buf[1] as u64)
            };
            let last = flags & MORE == 0;
            if size > self.max_frame as u64 {
                buf.advance(header);
                self.parts.clear();
                self.oversize = Some(self.oversize.unwrap_or(0).max(size));
                self.skipping = size;
                self.skip_last = last;
                continue;
            }
            let size = size as usize;
            if buf.len() < header + size {
                buf.reserve(header + size - buf.len());
                return Ok(None);
            }
            buf.advance(header);
            let body = buf.split_to(size).freeze();
            if flags & COMMAND != 0 {
                return Ok(Some(Item::Command(body)));
            }
            if self.oversize.is_some() {
                if last {
                    return Ok(self.oversize.take().map(Item::Oversize));
                }
                continue;
            }
            self.parts.push(body);
            if last {
                return Ok(Some(Item::Message(std::mem::take(&mut self.parts))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Vec<Item> {
        // Byte by byte: every split point of the stream must give the same items.
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        for b in bytes {
            buf.put_u8(*b);
            while let Some(item) = decoder.decode(&mut buf).unwrap() {
                items.push(item);
            }
        }
        items
    }

    #[test]
    fn a_message_round_trips_through_short_and_long_frames() {
        let big = vec![b'x'; 300];
        let mut out = BytesMut::new();
        encode_message(&[b"message", b"17", &big], &mut out);
        encode_message(&[b""], &mut out);
        assert_eq!(&out[..2], &[MORE, 7]);
        let items = decode_all(&mut Decoder::new(1000), &out);
        assert_eq!(
            items,
            vec![
                Item::Message(vec![
                    Bytes::from_static(b"message"),
                    Bytes::from_static(b"17"),
                    Bytes::from(big)
                ]),
                Item::Message(vec![Bytes::new()]),
            ]
        );
    }

    #[test]
    fn an_oversize_message_is_skipped_and_the_next_one_read() {
        let mut out = BytesMut::new();
        encode_message(&[b"message", &[b'y'; 600], b"tail"], &mut out);
        encode_message(&[b"ok"], &mut out);
        let items = decode_all(&mut Decoder::new(500), &out);
        assert_eq!(
            items,
            vec![
                Item::Oversize(600),
                Item::Message(vec![Bytes::from_static(b"ok")])
            ]
        );
    }

    #[test]
    fn reserved_flag_bits_and_commands_with_more_are_errors() {
        let mut d = Decoder::new(10);
        assert_eq!(
            d.decode(&mut BytesMut::from(&[0x08u8, 0][..])),
            Err(WireError::Flags(0x08))
        );
        assert_eq!(
            d.decode(&mut BytesMut::from(&[0x05u8, 0][..])),
            Err(WireError::CommandMore)
        );
    }

    #[test]
    fn ready_names_the_socket_type_and_ping_keeps_its_context() {
        let mut out = BytesMut::new();
        encode_ready(SocketType::Push, &mut out);
        let Some(Item::Command(body)) = Decoder::new(100).decode(&mut out).unwrap() else {
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
        assert_eq!(check_greeting(&greeting()), Ok(()));
        let mut old = greeting();
        old[10] = 2;
        assert_eq!(check_greeting(&old), Err(WireError::OldVersion(2)));
        let mut curve = greeting();
        curve[12..17].copy_from_slice(b"CURVE");
        assert_eq!(
            check_greeting(&curve),
            Err(WireError::Mechanism("CURVE".into()))
        );
        assert_eq!(check_greeting(&[0u8; 64]), Err(WireError::NotZmtp));
        // Short prefixes: what is there is checked, what is missing is not.
        assert_eq!(
            check_greeting(b"GET / HTTP/1.0\r\n\r\n"),
            Err(WireError::NotZmtp)
        );
        assert_eq!(check_greeting(&greeting()[..1]), Ok(()));
        assert_eq!(check_greeting(&old[..11]), Err(WireError::OldVersion(2)));
        assert_eq!(check_greeting(&[]), Ok(()));
    }
}
