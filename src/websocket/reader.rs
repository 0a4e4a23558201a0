//! Reading what a client sends on a websocket, shared by SockJS's websocket
//! transports and bridge mode: RFC 6455 frames decoded with actix-http's codec,
//! fragments put back together, text checked as UTF-8, all under one size
//! limit. Callers get whole messages and control events, never frames.
//!
//! Every way the client can break the rules ends in [`Incoming::Close`] with
//! the close code to answer with: 1002 for a protocol error, 1009 for a message
//! over the limit, 1007 for text that is not UTF-8, 1000 when the client
//! closed. After it the caller stops reading.
//!
//! The size limit is applied to a frame's *header*: actix-http's codec only
//! compares a frame's length with its `max_size` once the whole payload has
//! arrived, so a client announcing 2^40 bytes and streaming data made the proxy
//! buffer gigabytes (1.5 GB after 2 s). [`MessageReader::next_event`] reads the
//! announced length first and answers 1009 before buffering any payload; at
//! most one read chunk is ever held beyond the limit.

use actix_codec::Decoder;
use actix_http::ws::{CloseCode, Codec, Frame, Item, ProtocolError};
use bytes::{Bytes, BytesMut};

/// A client can break the protocol as often as it connects: summarised.
static PROTOCOL: crate::ratelog::Throttle =
    crate::ratelog::Throttle::new("websockets closed, protocol broken");

/// What the client sent, as the caller acts on it.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// One whole text (or binary, read as text) message.
    Message(String),
    /// A ping; answer with a pong carrying these bytes.
    Ping(Bytes),
    /// A pong, the answer to our ping.
    Pong,
    /// The connection ends: close it with this code.
    Close(CloseCode),
}

/// Turns the bytes of a websocket's incoming side into [`Incoming`] events.
pub struct MessageReader {
    codec: Codec,
    buf: BytesMut,
    /// A fragmented message being put together.
    fragments: Option<BytesMut>,
    max_message_bytes: usize,
}

impl MessageReader {
    pub fn new(max_message_bytes: usize) -> MessageReader {
        MessageReader {
            codec: Codec::new().max_size(max_message_bytes),
            buf: BytesMut::new(),
            fragments: None,
            max_message_bytes,
        }
    }

    /// Adds bytes read from the client.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next event in the bytes fed so far, or `None` until more arrive.
    pub fn next_event(&mut self) -> Option<Incoming> {
        loop {
            if let Some(announced) = announced_length(&self.buf) {
                let held = self.fragments.as_ref().map_or(0, |f| f.len() as u64);
                if announced.saturating_add(held) > self.max_message_bytes as u64 {
                    log::debug!("websocket: a frame announces {announced} bytes, over the limit");
                    self.buf = BytesMut::new();
                    self.fragments = None;
                    return Some(Incoming::Close(CloseCode::Size));
                }
            }
            let frame = match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return None,
                Err(e) => {
                    PROTOCOL.warn(format_args!("{e}"));
                    return Some(Incoming::Close(match e {
                        ProtocolError::Overflow => CloseCode::Size,
                        _ => CloseCode::Protocol,
                    }));
                }
            };
            let message = match frame {
                Frame::Text(b) | Frame::Binary(b) => b,
                Frame::Continuation(Item::FirstText(b) | Item::FirstBinary(b)) => {
                    self.fragments = Some(BytesMut::from(&b[..]));
                    continue;
                }
                Frame::Continuation(Item::Continue(b)) => {
                    if !self.append_fragment(&b) {
                        return Some(Incoming::Close(CloseCode::Size));
                    }
                    continue;
                }
                Frame::Continuation(Item::Last(b)) => {
                    if !self.append_fragment(&b) {
                        return Some(Incoming::Close(CloseCode::Size));
                    }
                    match self.fragments.take() {
                        Some(whole) => whole.freeze(),
                        None => return Some(Incoming::Close(CloseCode::Size)),
                    }
                }
                Frame::Ping(p) => return Some(Incoming::Ping(p)),
                Frame::Pong(_) => return Some(Incoming::Pong),
                Frame::Close(_) => return Some(Incoming::Close(CloseCode::Normal)),
            };
            return Some(match String::from_utf8(message.into()) {
                Ok(text) => Incoming::Message(text),
                Err(_) => {
                    PROTOCOL.warn(format_args!("message is not UTF-8"));
                    Incoming::Close(CloseCode::Invalid)
                }
            });
        }
    }

    /// Adds a continuation to the message being put together; false when
    /// there is none or the whole would be over the limit.
    fn append_fragment(&mut self, b: &[u8]) -> bool {
        match self.fragments.as_mut() {
            Some(f) if f.len() + b.len() <= self.max_message_bytes => {
                f.extend_from_slice(b);
                true
            }
            _ => {
                self.fragments = None;
                false
            }
        }
    }
}

/// The payload length a frame's header announces, once the header's length
/// field has arrived (RFC 6455 section 5.2: 7 bits, or 126 and 16 bits, or
/// 127 and 64 bits).
pub(crate) fn announced_length(buf: &[u8]) -> Option<u64> {
    let len = *buf.get(1)? & 0x7f;
    match len {
        126 => Some(u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]))),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            Some(u64::from_be_bytes(bytes))
        }
        n => Some(u64::from(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::ws::{OpCode, Parser};

    /// A client frame: masked, as RFC 6455 requires of clients.
    fn frame(op: OpCode, fin: bool, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        Parser::write_message(&mut out, payload, op, fin, true);
        out
    }

    #[test]
    fn fragments_become_one_message_and_split_reads_do_not_matter() {
        let mut bytes = frame(OpCode::Text, false, "hé".as_bytes());
        bytes.extend_from_slice(&frame(OpCode::Continue, false, b"l"));
        bytes.extend_from_slice(&frame(OpCode::Continue, true, b"lo"));
        bytes.extend_from_slice(&frame(OpCode::Ping, true, b"p"));
        let mut reader = MessageReader::new(100);
        let mut events = Vec::new();
        for b in bytes.iter() {
            reader.feed(&[*b]);
            while let Some(e) = reader.next_event() {
                events.push(e);
            }
        }
        assert_eq!(
            events,
            vec![
                Incoming::Message("héllo".into()),
                Incoming::Ping(Bytes::from_static(b"p"))
            ]
        );
    }

    #[test]
    fn a_header_over_the_limit_closes_before_its_payload_arrives() {
        // A text frame announcing 2^40 bytes, masked, with only 3 bytes of
        // payload sent: the reader answers 1009 at once and holds nothing.
        let mut header = vec![0x81, 0xff];
        header.extend_from_slice(&(1u64 << 40).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4, b'a', b'b', b'c']);
        for split in 1..header.len() {
            let mut reader = MessageReader::new(1 << 20);
            reader.feed(&header[..split]);
            let event = reader.next_event().or_else(|| {
                reader.feed(&header[split..]);
                reader.next_event()
            });
            assert_eq!(
                event,
                Some(Incoming::Close(CloseCode::Size)),
                "split {split}"
            );
            assert!(reader.buf.is_empty());
        }
        // 16-bit lengths too, and fragments count what they already hold.
        let mut reader = MessageReader::new(1000);
        reader.feed(&[0x81, 0xfe, 0x03, 0xe9]);
        assert_eq!(reader.next_event(), Some(Incoming::Close(CloseCode::Size)));
        let mut reader = MessageReader::new(10);
        reader.feed(&frame(OpCode::Text, false, &[b'x'; 6]));
        assert_eq!(reader.next_event(), None);
        reader.feed(&[0x80, 0x85]);
        assert_eq!(reader.next_event(), Some(Incoming::Close(CloseCode::Size)));
    }

    #[test]
    fn rule_breaking_ends_with_the_matching_close_code() {
        let cases = [
            (frame(OpCode::Text, true, &[b'x'; 11]), CloseCode::Size),
            (frame(OpCode::Text, true, b"\xff"), CloseCode::Invalid),
            // A continuation with no message started: the codec's own check.
            (frame(OpCode::Continue, true, b"x"), CloseCode::Protocol),
            (frame(OpCode::Close, true, b""), CloseCode::Normal),
        ];
        for (bytes, code) in cases {
            let mut reader = MessageReader::new(10);
            reader.feed(&bytes);
            assert_eq!(reader.next_event(), Some(Incoming::Close(code)));
        }
        let mut too_long = frame(OpCode::Text, false, &[b'x'; 6]);
        too_long.extend_from_slice(&frame(OpCode::Continue, true, &[b'x'; 6]));
        let mut reader = MessageReader::new(10);
        reader.feed(&too_long);
        assert_eq!(reader.next_event(), Some(Incoming::Close(CloseCode::Size)));
        // An unmasked client frame breaks the protocol.
        let mut unmasked = BytesMut::new();
        Parser::write_message(&mut unmasked, &b"x"[..], OpCode::Text, true, false);
        let mut reader = MessageReader::new(10);
        reader.feed(&unmasked);
        assert_eq!(
            reader.next_event(),
            Some(Incoming::Close(CloseCode::Protocol))
        );
    }
}
