//! The pre-RFC websocket of 2010 (draft hixie-76), which the protocol suite
//! still tests and some old proxies and clients speak.
//!
//! The handshake proves the server read the request: the client sends two
//! keys in headers and eight bytes after them, and the server answers the MD5
//! of the keys' numbers and those bytes. The client sends the eight bytes only
//! after it has seen the response headers (the "haproxy" case), so the body
//! waits for them before anything else. Frames are `0x00 text 0xFF`; a close is
//! `0xFF 0x00`.
//!
//! A frame has no length field, so the reader bounds it itself: a frame
//! longer than `max_message_bytes` closes the connection, and the search for
//! its `0xFF` resumes where the last chunk's search ended (once rescanning the
//! whole buffer on every chunk cost 27 CPU-seconds in 31 s for one client
//! sending `0x00` and no end). The eight challenge bytes must arrive within
//! [`HANDSHAKE_DEADLINE`], so a client cannot hold a half-open connection.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix::Addr;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::sync::oneshot;

use super::start_session;
use crate::sockjs::Service;
use crate::sockjs::budget::{Budget, Share};
use crate::sockjs::frame::decode_messages;
use crate::sockjs::http;
use crate::sockjs::metrics::Transport;
use crate::sockjs::receiver::{Encoding, Kind, Receiver, ReceiverBody};
use crate::sockjs::session::{Attach, ClientGone, Session};

/// How long the client has to send the challenge's eight bytes.
pub const HANDSHAKE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a request is a hixie-76 handshake.
pub fn is_handshake(headers: &HeaderMap) -> bool {
    headers.contains_key("sec-websocket-key1") && headers.contains_key("sec-websocket-key2")
}

/// The number a key stands for: its digits divided by its spaces.
fn key_number(key: &str) -> Option<u32> {
    let digits: String = key.chars().filter(char::is_ascii_digit).collect();
    let spaces = key.chars().filter(|c| *c == ' ').count() as u64;
    let n: u64 = digits.parse().ok()?;
    if spaces == 0 || !n.is_multiple_of(spaces) {
        return None;
    }
    u32::try_from(n / spaces).ok()
}

/// The 16 bytes that answer the challenge.
pub fn challenge_response(key1: u32, key2: u32, key3: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(key1.to_be_bytes());
    md5.update(key2.to_be_bytes());
    md5.update(key3);
    md5.finalize().into()
}

pub async fn websocket(
    req: HttpRequest,
    payload: web::Payload,
    service: Arc<Service>,
) -> HttpResponse {
    let key = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(key_number)
    };
    let (Some(key1), Some(key2)) = (key("sec-websocket-key1"), key("sec-websocket-key2")) else {
        return HttpResponse::BadRequest()
            .content_type(http::PLAIN)
            .body("Not a valid websocket request");
    };
    let addr = match start_session(&service, &req, Transport::Websocket, None) {
        Ok(addr) => addr,
        Err(e) => return e.response(),
    };
    let (receiver, mut body) = Receiver::new(Kind::WebSocket, Encoding::Hixie76, None);
    body.report_to(addr.clone());
    addr.do_send(Attach(receiver));
    let (challenge_tx, challenge_rx) = oneshot::channel();
    let limit = (
        service.options.max_message_bytes,
        service.options.max_messages_per_send,
    );
    let budget = service.budget.clone();
    actix_web::rt::spawn(read_client(
        payload,
        addr,
        (key1, key2),
        (limit, budget),
        challenge_tx,
    ));

    let host = req.connection_info().host().to_string();
    let location = format!(
        "ws://{host}{}",
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let mut res = HttpResponse::SwitchingProtocols();
    res.upgrade("WebSocket")
        .insert_header(("Sec-WebSocket-Location", location));
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        res.insert_header(("Sec-WebSocket-Origin", origin.clone()));
    }
    res.streaming(HixieBody {
        challenge: Some(challenge_rx),
        frames: body,
    })
}

/// Reads the eight challenge bytes, then the client's frames.
async fn read_client(
    mut payload: web::Payload,
    session: Addr<Session>,
    (key1, key2): (u32, u32),
    ((max_message_bytes, max_messages), budget): ((usize, usize), Option<Arc<Budget>>),
    challenge: oneshot::Sender<[u8; 16]>,
) {
    let mut buf = BytesMut::new();
    let deadline = tokio::time::Instant::now() + HANDSHAKE_DEADLINE;
    while buf.len() < 8 {
        match tokio::time::timeout_at(deadline, payload.next()).await {
            Ok(Some(Ok(chunk))) => buf.extend_from_slice(&chunk),
            Ok(_) => return session.do_send(ClientGone),
            Err(_) => {
                log::info!("hixie-76: no challenge within {HANDSHAKE_DEADLINE:?}, closing");
                return session.do_send(ClientGone);
            }
        }
    }
    let key3 = buf.split_to(8);
    let _ = challenge.send(challenge_response(key1, key2, &key3));
    let mut frames = FrameReader::new(max_message_bytes);
    let share = Share::default();
    'read: loop {
        loop {
            match frames.next(&mut buf) {
                Ok(None) => break,
                Ok(Some(text)) if text.is_empty() => {}
                Ok(Some(text)) => match decode_messages(text.as_bytes(), max_messages) {
                    Ok(messages) if messages.is_empty() => {}
                    Ok(messages) => {
                        if !super::websocket::deliver(&session, (budget.as_ref(), &share), messages)
                            .await
                        {
                            break 'read;
                        }
                    }
                    Err(_) => break 'read,
                },
                Err(e) => {
                    log::info!("hixie-76: {e}, closing");
                    break 'read;
                }
            }
        }
        match payload.next().await {
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    session.do_send(ClientGone);
}

/// Why a hixie-76 connection ends.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum FrameError {
    #[error("frame over {0} bytes")]
    TooLong(usize),
    #[error("frame is not UTF-8")]
    NotUtf8,
    /// `0xFF 0x00`, or a byte that starts no frame.
    #[error("client closed")]
    Closed,
}

/// Splits `0x00 text 0xFF` frames off a buffer, scanning each byte once.
struct FrameReader {
    /// Bytes of the current frame already searched for its end.
    scanned: usize,
    max: usize,
}

impl FrameReader {
    fn new(max: usize) -> FrameReader {
        FrameReader { scanned: 0, max }
    }

    /// The next whole frame's text, `None` until more bytes arrive.
    fn next(&mut self, buf: &mut BytesMut) -> Result<Option<String>, FrameError> {
        match buf.first() {
            None => return Ok(None),
            Some(0x00) => {}
            Some(_) => return Err(FrameError::Closed),
        }
        let from = self.scanned.max(1);
        match buf[from..].iter().position(|b| *b == 0xff) {
            Some(at) => {
                let end = from + at;
                self.scanned = 0;
                let frame = buf.split_to(end + 1);
                match std::str::from_utf8(&frame[1..end]) {
                    Ok(text) => Ok(Some(text.to_string())),
                    Err(_) => Err(FrameError::NotUtf8),
                }
            }
            None if buf.len() - 1 > self.max => Err(FrameError::TooLong(self.max)),
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }
}

/// The response body: the challenge answer, then the session's frames.
struct HixieBody {
    challenge: Option<oneshot::Receiver<[u8; 16]>>,
    frames: ReceiverBody,
}

impl Stream for HixieBody {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(challenge) = self.challenge.as_mut() {
            let answer = std::task::ready!(Pin::new(challenge).poll(cx));
            self.challenge = None;
            return Poll::Ready(answer.ok().map(|a| Ok(Bytes::copy_from_slice(&a))));
        }
        Pin::new(&mut self.frames).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_come_out_whole_and_the_limit_holds() {
        let stream = b"\x00[\"a\"]\xff\x00\xff\x00[\"\xc3\xa9\"]\xff";
        for split in 0..=stream.len() {
            let mut reader = FrameReader::new(100);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                buf.extend_from_slice(part);
                while let Some(text) = reader.next(&mut buf).unwrap() {
                    out.push(text);
                }
            }
            assert_eq!(out, ["[\"a\"]", "", "[\"\u{e9}\"]"], "split {split}");
        }
        let mut reader = FrameReader::new(4);
        let mut buf = BytesMut::from(&b"\x00abcd"[..]);
        assert_eq!(reader.next(&mut buf), Ok(None));
        buf.extend_from_slice(b"e");
        assert_eq!(reader.next(&mut buf), Err(FrameError::TooLong(4)));
        let mut buf = BytesMut::from(&b"\xff\x00"[..]);
        assert_eq!(reader.next(&mut buf), Err(FrameError::Closed));
    }

    #[test]
    fn keys_are_digits_divided_by_spaces() {
        assert_eq!(key_number("4 @1  46546xW%0l 1 5"), Some(829_309_203));
        assert_eq!(key_number("12998 5 Y3 1  .P00"), Some(259_970_620));
        assert_eq!(key_number("123"), None);
    }

    #[test]
    fn challenge_answer_is_the_md5_of_keys_and_body() {
        let answer = challenge_response(829_309_203, 259_970_620, b"aaaaaaaa");
        assert_eq!(&answer, b"\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{");
    }
}
