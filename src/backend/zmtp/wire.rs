//! ZMTP 3.1's bytes (RFC 37): the 64-byte greeting, command bodies and the
//! frames that carry message parts. Pure functions over buffers, no I/O.
//!
//! A frame is a flags byte (MORE `0x01`, LONG `0x02`, COMMAND `0x04`; the other
//! bits must be zero), a size (one byte, or eight big-endian bytes when LONG)
//! and the body. A message is a run of frames whose last has no MORE.
//!
//! The [`Decoder`] takes a peer's bytes within [`Limits`]: frames per message,
//! bytes per message, bytes per command. ZMTP itself bounds none of them (a
//! frame may claim 2^63 bytes, a message may have MORE frames for ever), so
//! the limits are checked at each frame header, before any of its body is
//! buffered, and a peer that breaks one gets an error, which its connection
//! does not survive: the rest of its stream cannot be trusted, and skipping an
//! endless message would cost reading it all. See `backend::zmtp::pull` for
//! the values on the command socket.

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
    #[error("a message, where this socket takes none")]
    NoMessages,
    #[error("a message of more than {0} frames")]
    TooManyFrames(usize),
    #[error("a message of {size} bytes or more, over the {limit} byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("a command of {size} bytes, over the {limit} byte limit")]
    CommandTooLarge { size: u64, limit: u64 },
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
}

/// How much one peer may send: the [`Decoder`] refuses a frame whose header
/// would take a message or command over these bounds, before reading its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most frames in one message; 0: the peer may send no message at all
    /// (a PULL peer of our PUSH, or any peer before its READY).
    pub frames: usize,
    /// Most bytes in one message, all its frames' bodies together.
    pub bytes: u64,
    /// Largest command body.
    pub command: u64,
}

impl Limits {
    /// A peer that may send commands of up to `command` bytes and no message.
    pub const fn commands_only(command: u64) -> Limits {
        Limits {
            frames: 0,
            bytes: 0,
            command,
        }
    }
}

/// Splits a byte stream into [`Item`]s, within [`Limits`]. A frame that would
/// break them is an error as soon as its header is in, whatever its body: the
/// decoder never holds more than one message's worth, so that a runaway or
/// hostile peer cannot make the proxy buffer gigabytes (one did, with an
/// endless run of MORE frames each under the old per-frame limit).
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    parts: Vec<Bytes>,
    /// Body bytes of `parts`.
    bytes: u64,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            parts: Vec::new(),
            bytes: 0,
        }
    }

    /// Takes the next item out of `buf`, or `None` until more bytes arrive.
    /// An error means the stream cannot or must not be followed any more.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, WireError> {
        loop {
            let Some(&flags) = buf.first() else {
                return Ok(None);
            };
            if flags & !(MORE | LONG | COMMAND) != 0 {
                return Err(WireError::Flags(flags));
            }
            let command = flags & COMMAND != 0;
            if command && flags & MORE != 0 {
                return Err(WireError::CommandMore);
            }
            // The frame count is known from the flags byte alone.
            if !command && self.parts.len() >= self.limits.frames {
                return Err(match self.limits.frames {
                    0 => WireError::NoMessages,
                    n => WireError::TooManyFrames(n),
                });
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
            if command && size > self.limits.command {
                return Err(WireError::CommandTooLarge {
                    size,
                    limit: self.limits.command,
                });
            }
            let total = self.bytes.saturating_add(size);
            if !command && total > self.limits.bytes {
                return Err(WireError::TooLarge {
                    size: total,
                    limit: self.limits.bytes,
                });
            }
            // Within the limits, so within usize.
            let size = size as usize;
            if buf.len() < header + size {
                buf.reserve(header + size - buf.len());
                return Ok(None);
            }
            buf.advance(header);
            let body = buf.split_to(size).freeze();
            if command {
                return Ok(Some(Item::Command(body)));
            }
            self.parts.push(body);
            self.bytes = total;
            if flags & MORE == 0 {
                self.bytes = 0;
                return Ok(Some(Item::Message(std::mem::take(&mut self.parts))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        frames: 3,
        bytes: 1000,
        command: 100,
    };

    /// What a fresh decoder makes of `bytes` fed in the pieces `cuts` marks
    /// (offsets where a new read starts): the items, and the error that ended
    /// the stream with how many bytes had been fed when it came.
    fn feed(
        limits: Limits,
        bytes: &[u8],
        cuts: &[usize],
    ) -> (Vec<Item>, Option<(WireError, usize)>) {
        let mut decoder = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        let mut ends: Vec<usize> = cuts.iter().copied().filter(|&c| c < bytes.len()).collect();
        ends.push(bytes.len());
        let mut from = 0;
        for to in ends {
            buf.put_slice(&bytes[from..to]);
            from = to;
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(item)) => items.push(item),
                    Ok(None) => break,
                    Err(e) => return (items, Some((e, to))),
                }
            }
        }
        (items, None)
    }

    /// Byte by byte, then at every split point into two reads: every way of
    /// cutting the stream must give the same items and the same error, and
    /// the error must come with the byte that shows it (`error_at`), not later.
    fn decode_every_way(
        limits: Limits,
        bytes: &[u8],
        error_at: Option<usize>,
    ) -> (Vec<Item>, Option<WireError>) {
        let all: Vec<usize> = (1..bytes.len()).collect();
        let (items, error) = feed(limits, bytes, &all);
        assert_eq!(
            error.as_ref().map(|e| e.1),
            error_at,
            "error at the wrong byte: {error:?}"
        );
        let error = error.map(|e| e.0);
        for k in 0..=bytes.len() {
            let (split_items, split_error) = feed(limits, bytes, &[k]);
            assert_eq!(split_items, items, "split at {k}");
            assert_eq!(split_error.map(|e| e.0), error, "split at {k}");
        }
        (items, error)
    }

    fn message(parts: &[&[u8]]) -> BytesMut {
        let mut out = BytesMut::new();
        encode_message(parts, &mut out);
        out
    }

    #[test]
    fn a_message_round_trips_through_short_and_long_frames() {
        let big = vec![b'x'; 300];
        let mut out = message(&[b"message", b"17", &big]);
        encode_message(&[b""], &mut out);
        encode_command("PING", b"\x00\x0actx", &mut out);
        assert_eq!(&out[..2], &[MORE, 7]);
        let (items, error) = decode_every_way(LIMITS, &out, None);
        assert_eq!(error, None);
        assert_eq!(
            items,
            vec![
                Item::Message(vec![
                    Bytes::from_static(b"message"),
                    Bytes::from_static(b"17"),
                    Bytes::from(big)
                ]),
                Item::Message(vec![Bytes::new()]),
                Item::Command(Bytes::from_static(b"\x04PING\x00\x0actx")),
            ]
        );
    }

    #[test]
    fn endless_more_frames_are_refused_at_the_first_flags_byte_over_the_frame_limit() {
        let mut out = BytesMut::new();
        for _ in 0..5 {
            out.put_slice(&[MORE, 1, b'x']);
        }
        // Frames 1 to 3 are in; the fourth's flags byte (byte 10) ends it.
        let (items, error) = decode_every_way(LIMITS, &out, Some(10));
        assert_eq!((items, error), (vec![], Some(WireError::TooManyFrames(3))));
        // A message of exactly the limit is fine, and so is the next one.
        let mut ok = message(&[b"a", b"b", b"c"]);
        ok.put_slice(&message(&[b"d"]));
        let (items, error) = decode_every_way(LIMITS, &ok, None);
        assert_eq!((items.len(), error), (2, None));
    }

    #[test]
    fn a_message_over_the_byte_limit_is_refused_at_the_header_of_the_frame_that_breaks_it() {
        // 600 + 401 bytes: the second frame's 9-byte header (ending at byte
        // 9 + 600 + 9) is enough to know, none of its body is read.
        let out = message(&[&[b'y'; 600], &[b'z'; 401]]);
        let (items, error) = decode_every_way(LIMITS, &out, Some(9 + 600 + 9));
        assert_eq!(items, vec![]);
        assert_eq!(
            error,
            Some(WireError::TooLarge {
                size: 1001,
                limit: 1000
            })
        );
        // One frame claiming 2^63 bytes: refused at its header, nothing reserved.
        let mut huge = BytesMut::from(&[LONG, 0x80, 0, 0, 0, 0, 0, 0, 0][..]);
        let mut decoder = Decoder::new(LIMITS);
        assert_eq!(
            decoder.decode(&mut huge),
            Err(WireError::TooLarge {
                size: 1 << 63,
                limit: 1000
            })
        );
        assert!(huge.capacity() < 1000, "buffer grew to {}", huge.capacity());
        // Exactly at the limit is a message.
        let exact = message(&[&[b'y'; 600], &[b'z'; 400]]);
        let (items, error) = decode_every_way(LIMITS, &exact, None);
        assert_eq!((items.len(), error), (1, None));
    }

    #[test]
    fn a_peer_that_may_send_no_message_is_refused_at_the_flags_byte_and_its_commands_read() {
        let mut out = BytesMut::new();
        encode_command("PING", b"\x00\x0a", &mut out);
        let ping_len = out.len();
        out.put_slice(&message(&[b"message", b"1", b"hi"]));
        let (items, error) = decode_every_way(Limits::commands_only(100), &out, Some(ping_len + 1));
        assert_eq!(
            items,
            vec![Item::Command(Bytes::from_static(b"\x04PING\x00\x0a"))]
        );
        assert_eq!(error, Some(WireError::NoMessages));
    }

    #[test]
    fn a_command_over_its_limit_is_refused_at_its_header() {
        let mut out = BytesMut::new();
        encode_command("SUBSCRIBE", &[b't'; 200], &mut out);
        let (items, error) = decode_every_way(LIMITS, &out, Some(2));
        assert_eq!(items, vec![]);
        assert_eq!(
            error,
            Some(WireError::CommandTooLarge {
                size: 210,
                limit: 100
            })
        );
    }

    #[test]
    fn reserved_flag_bits_and_commands_with_more_are_errors() {
        let mut d = Decoder::new(LIMITS);
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
