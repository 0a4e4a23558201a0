//! Receivers: the outgoing half of a transport, as a session sees it.
//!
//! A session writes frames to at most one receiver at a time. A receiver is a
//! bounded channel of ready-to-write bytes plus the transport's *encoding* (how a
//! frame is wrapped: `o\n` for xhr, `data: o\r\n\r\n` for eventsource, a
//! websocket text frame, ...) and its *kind*: a polling receiver carries one
//! frame and ends, a streaming one carries frames until `response_limit` bytes,
//! a websocket one lives as long as the session.
//!
//! The other end, [`ReceiverBody`], is the HTTP response body. When the client
//! goes away actix drops the body, and the body's `Drop` tells the session, which
//! is how an aborted request becomes "Connection interrupted".

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use actix::Addr;
use actix_http::ws::{CloseCode, CloseReason, OpCode, Parser};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use super::frame::{Frame, quote_into};
use super::liveness::ClientSocket;
use super::session::{Detached, Session};
use crate::websocket::queue::{self, Queue, Refused, Sender};

/// Frames a receiver's channel holds before the session waits. Each frame may
/// batch many messages, so this stays small.
pub const CHANNEL_FRAMES: usize = 16;

/// How a frame is wrapped for one transport.
#[derive(Debug, Clone)]
pub enum Encoding {
    /// `frame\n` (xhr and xhr_streaming).
    Newline,
    /// `data: frame\r\n\r\n`.
    EventSource,
    /// `<script>\np("frame");\n</script>\r\n`.
    HtmlFile,
    /// `/**/callback("frame");\r\n`.
    Jsonp { callback: String },
    /// One websocket text message per frame.
    WebSocket,
    /// `0x00 frame 0xFF`, the pre-RFC websocket (hixie-76).
    Hixie76,
    /// No SockJS framing: one websocket text message per message, and a real
    /// websocket close frame for a close.
    RawWebSocket,
}

/// How long a receiver lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One frame, then the response ends.
    Polling,
    /// Frames until this many bytes went out, then the response ends.
    Streaming { limit: usize },
    /// As long as the session: the session ends with it.
    WebSocket,
}

/// The session's end of a receiver.
pub struct Receiver {
    pub id: u64,
    pub kind: Kind,
    encoding: Encoding,
    tx: Sender,
    sent: usize,
    /// The HTTP connection, to notice a client that hung up.
    pub peer: Option<ClientSocket>,
}

/// What became of a write.
pub enum Written {
    /// The frame went out; the receiver goes on.
    Open,
    /// The frame went out and the receiver is done (polling, or limit reached).
    Done,
    /// The channel is full: try again when it has room.
    Full,
    /// The client is gone.
    Gone,
}

impl Receiver {
    /// Makes a receiver and its response body. `prelude` goes out first (the
    /// transports' padding and headers-in-body), before any frame.
    pub fn new(kind: Kind, encoding: Encoding, prelude: Option<Bytes>) -> (Receiver, ReceiverBody) {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let (tx, rx) = queue::queue(CHANNEL_FRAMES);
        if let Some(prelude) = prelude {
            // The channel is new and empty, so this cannot fail.
            let _ = tx.try_send(prelude);
        }
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let receiver = Receiver {
            id,
            kind,
            encoding,
            tx,
            sent: 0,
            peer: None,
        };
        (
            receiver,
            ReceiverBody {
                rx,
                detach: None,
                id,
            },
        )
    }

    /// Whether the client end is gone.
    pub fn is_gone(&self) -> bool {
        self.tx.is_closed() || self.peer.is_some_and(|p| p.has_hung_up())
    }

    /// A sender for the transport's own control frames (websocket pongs).
    pub fn control_sender(&self) -> Sender {
        self.tx.clone()
    }

    /// Waits until the channel has room for one more frame.
    pub fn wait_for_room(&self) -> impl Future<Output = ()> + 'static {
        self.tx.room()
    }

    /// Writes one frame, wrapped for this transport.
    pub fn write(&mut self, frame: &Frame<'_>) -> Written {
        let closes_websocket = matches!(frame, Frame::Close { .. })
            && matches!(self.encoding, Encoding::WebSocket | Encoding::RawWebSocket);
        let encode = || self.encode(frame);
        let sent = match if closes_websocket {
            self.tx.send_last_with(encode)
        } else {
            self.tx.send_with(encode)
        } {
            Ok(sent) => sent,
            Err(Refused::Full) => return Written::Full,
            Err(Refused::Closed) => return Written::Gone,
        };
        if sent == 0 {
            // Raw websockets have no open or heartbeat frame.
            return Written::Open;
        }
        self.sent += sent;
        match self.kind {
            Kind::Polling => Written::Done,
            Kind::Streaming { limit } if self.sent >= limit => Written::Done,
            _ if matches!(frame, Frame::Close { .. }) => Written::Done,
            _ => Written::Open,
        }
    }

    fn encode(&self, frame: &Frame<'_>) -> Bytes {
        let mut text = String::new();
        match &self.encoding {
            Encoding::Newline => {
                frame.write_to(&mut text);
                text.push('\n');
            }
            Encoding::EventSource => {
                text.push_str("data: ");
                let mut data = String::new();
                frame.write_to(&mut data);
                escape_event_data(&data, &mut text);
                text.push_str("\r\n\r\n");
            }
            Encoding::HtmlFile => {
                text.push_str("<script>\np(");
                let mut quoted = String::new();
                quote_into(&frame.to_text(), &mut quoted);
                // Inside <script>, a message holding `</script>` would end the
                // script and run the rest as HTML: no `<` may appear raw.
                text.push_str(&quoted.replace('<', "\\u003c"));
                text.push_str(");\n</script>\r\n");
            }
            Encoding::Jsonp { callback } => {
                text.push_str("/**/");
                text.push_str(callback);
                text.push('(');
                quote_into(&frame.to_text(), &mut text);
                text.push_str(");\r\n");
            }
            Encoding::WebSocket => {
                frame.write_to(&mut text);
                let mut out = BytesMut::with_capacity(text.len() + 10);
                Parser::write_message(&mut out, text.as_bytes(), OpCode::Text, true, false);
                if let Frame::Close { .. } = frame {
                    // sockjs-node ends the websocket itself with a normal closure
                    // after the SockJS close frame.
                    Parser::write_close(&mut out, Some(CloseCode::Normal.into()), false);
                }
                return out.freeze();
            }
            Encoding::Hixie76 => {
                let mut out = vec![0x00];
                frame.write_to(&mut text);
                out.extend_from_slice(text.as_bytes());
                out.push(0xff);
                if let Frame::Close { .. } = frame {
                    out.extend_from_slice(&[0xff, 0x00]);
                }
                return Bytes::from(out);
            }
            Encoding::RawWebSocket => {
                let mut out = BytesMut::new();
                match frame {
                    Frame::Messages(messages) => {
                        for m in *messages {
                            Parser::write_message(
                                &mut out,
                                m.as_bytes(),
                                OpCode::Text,
                                true,
                                false,
                            );
                        }
                    }
                    Frame::Close { code, reason } => {
                        let reason = CloseReason {
                            code: CloseCode::from(*code),
                            description: Some(reason.to_string()),
                        };
                        Parser::write_close(&mut out, Some(reason), false);
                    }
                    Frame::Open | Frame::Heartbeat => {}
                }
                return out.freeze();
            }
        }
        Bytes::from(text)
    }
}

/// An eventsource event's data as sockjs-node writes it: `%`, CR, LF and NUL
/// percent-escaped. sockjs-client calls `decodeURI` on every event's data,
/// so a raw `%` would throw "URI malformed" and stall the session, and a raw
/// line break would end the event early.
fn escape_event_data(data: &str, out: &mut String) {
    for c in data.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            '\0' => out.push_str("%00"),
            c => out.push(c),
        }
    }
}

/// The size a receiver's queue holds now (for the session's byte budget).
impl Receiver {
    pub fn queued_bytes(&self) -> usize {
        self.tx.queued_bytes()
    }

    /// Drops the frames the client has not taken; returns their bytes.
    pub fn discard_queued(&self) -> usize {
        self.tx.discard()
    }
}

/// The response body of a receiver. Dropping it (the client went away, or the
/// response completed) tells the session, which ignores it for receivers it
/// already let go.
pub struct ReceiverBody {
    rx: Queue,
    id: u64,
    detach: Option<Addr<Session>>,
}

impl ReceiverBody {
    /// Makes the body report its end to `session`.
    pub fn report_to(&mut self, session: Addr<Session>) {
        self.detach = Some(session);
    }
}

impl Stream for ReceiverBody {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|item| item.map(Ok))
    }
}

impl Drop for ReceiverBody {
    fn drop(&mut self) {
        if let Some(session) = self.detach.take() {
            session.do_send(Detached { receiver: self.id });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(encoding: Encoding, frame: &Frame<'_>) -> String {
        let (receiver, _body) = Receiver::new(Kind::Polling, encoding, None);
        String::from_utf8(receiver.encode(frame).to_vec()).unwrap()
    }

    #[test]
    fn htmlfile_frames_cannot_close_their_script_element() {
        let messages = vec!["</script><script>alert(1)</script>".to_string()];
        let html = encoded(Encoding::HtmlFile, &Frame::Messages(&messages));
        assert_eq!(html.matches("</script>").count(), 1, "{html}");
        assert!(html.contains(r"\u003c/script>"), "{html}");
    }

    #[test]
    fn eventsource_data_escapes_percent_and_line_breaks_as_sockjs_node() {
        let messages = vec!["100% \r\n\0 %25".to_string()];
        let event = encoded(Encoding::EventSource, &Frame::Messages(&messages));
        // JSON already escapes CR, LF and NUL; `%` is what decodeURI needs.
        assert_eq!(event, "data: a[\"100%25 \\r\\n\\u0000 %2525\"]\r\n\r\n");
        let mut out = String::new();
        escape_event_data("%\r\n\0x", &mut out);
        assert_eq!(out, "%25%0D%0A%00x");
    }

    #[test]
    fn each_transport_wraps_frames_its_own_way() {
        assert_eq!(encoded(Encoding::Newline, &Frame::Open), "o\n");
        assert_eq!(
            encoded(Encoding::EventSource, &Frame::Open),
            "data: o\r\n\r\n"
        );
        assert_eq!(
            encoded(Encoding::HtmlFile, &Frame::Open),
            "<script>\np(\"o\");\n</script>\r\n"
        );
        let jsonp = Encoding::Jsonp {
            callback: "cb".into(),
        };
        assert_eq!(encoded(jsonp, &Frame::Open), "/**/cb(\"o\");\r\n");
    }
}
