//! A peer's byte stream, after the greeting, split into messages and commands.
//!
//! The [`Decoder`] takes a peer's bytes within [`Limits`]: frames per message,
//! bytes per message, bytes per command. ZMTP itself bounds none of them (a
//! frame may claim 2^63 bytes, a message may have MORE frames for ever), so
//! the limits are checked at each frame header, before any of its body is
//! buffered, and a peer that breaks one gets an error, which its connection
//! does not survive: the rest of its stream cannot be trusted, and skipping an
//! endless message would cost reading it all. See `super::pull` for
//! the values on the command socket.

use bytes::{Buf, Bytes, BytesMut};

use super::wire::{COMMAND, LONG, MORE, WireError};

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
    use super::super::wire::{encode_command, encode_message};
    use super::*;
    use bytes::BufMut;

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
}
