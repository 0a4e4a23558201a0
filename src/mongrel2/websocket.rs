//! Websockets under a Mongrel2 route, as Mongrel2 1.8+ carries them:
//! - the upgrade is checked here ([`crate::websocket::accept`]), then sent
//!   to the handler as a `WEBSOCKET_HANDSHAKE` request whose body is the
//!   `Sec-WebSocket-Accept` value; the handler's `101` opens the websocket
//!   (any other response goes to the client as it is);
//! - every message the client sends (fragments put together, under
//!   `max_message_bytes`), and every ping, pong and close, is one
//!   `WEBSOCKET` request with the header `FLAGS` (hex of the frame's first
//!   byte) and the unmasked payload;
//! - the handler's replies are websocket frames it encoded itself: checked
//!   ([`super::frames`]) and written as they are, or refused whole (counted,
//!   logged); an empty reply closes the connection;
//! - the connection's end, whoever ends it, is told to the handler with
//!   Mongrel2's disconnect message; at shutdown the proxy ends it with a
//!   close frame 1001 (Going Away).
//!
//! Outgoing frames go through the one websocket queue
//! ([`crate::websocket::queue`]); a client that does not read holds the
//! handler's replies in its link queue, and loses the connection when that
//! overflows (see [`super::link`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use actix_codec::Decoder;
use actix_http::ws::{CloseCode, Codec, Frame, Item};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::frames::FrameChecker;
use super::link::{Conn, Link};
use super::response::ResponseParser;
use super::route::{MAX_HEAD_BYTES, handler_headers, pass_on, read_head, refused};
use crate::websocket::queue::{self, Queue, Sender};

/// Frames queued for a client at most (beside the byte bound).
const QUEUE_FRAMES: usize = 256;

static REFUSED_FRAMES: crate::ratelog::Throttle =
    crate::ratelog::Throttle::new("mongrel2 handler frames refused");

pub(super) async fn upgrade(
    req: HttpRequest,
    payload: web::Payload,
    link: Arc<Link>,
) -> HttpResponse {
    let accept = match crate::websocket::accept(&req) {
        Ok(accept) => accept,
        Err(refused) => return refused,
    };
    let mut conn = link.open();
    let mut headers = handler_headers(&req, "WEBSOCKET_HANDSHAKE", &link);
    if let Err(e) = conn.send(req.path(), headers.clone(), accept.as_bytes().to_vec()) {
        conn.finish();
        return refused(&link, e);
    }
    let mut parser = ResponseParser::new(false, MAX_HEAD_BYTES);
    let (head, parts) = match read_head(&mut conn, &mut parser).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    if head.status != 101 {
        return pass_on(conn, parser, head, parts);
    }
    headers.retain(|(k, _)| k != "METHOD");
    let max_bytes = link.settings().max_message_bytes.max(64 * 1024);
    let (tx, rx) = queue::bounded(QUEUE_FRAMES, max_bytes);
    let mut response = HttpResponse::SwitchingProtocols();
    response
        .upgrade("websocket")
        .insert_header((header::SEC_WEBSOCKET_ACCEPT, accept));
    if let Some(p) = head
        .header("sec-websocket-protocol")
        .and_then(|p| HeaderValue::from_bytes(p).ok())
    {
        response.insert_header((header::SEC_WEBSOCKET_PROTOCOL, p));
    }
    let path = req.path().to_string();
    actix_web::rt::spawn(run(conn, payload, tx, path, headers));
    response.streaming(Frames(rx))
}

/// The response body: the queue's frames.
struct Frames(Queue);

impl Stream for Frames {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// One open websocket: client frames to the handler, handler frames to the
/// client, until either side ends it.
async fn run(
    mut conn: Conn,
    mut payload: web::Payload,
    tx: Sender,
    path: String,
    headers: Vec<(String, String)>,
) {
    let settings = conn.link().settings().clone();
    let mut shutdown = conn.link().shutting_down();
    let mut client = ClientFrames::new(settings.max_message_bytes);
    let mut checker = FrameChecker::default();
    let mut reading = true;
    // Once a close went either way, how long the other side has to answer.
    let mut closing: Option<tokio::time::Instant> = None;
    let send = |conn: &Conn, flags: u8, body: Vec<u8>| {
        let mut h = headers.clone();
        h.push(("METHOD".into(), "WEBSOCKET".into()));
        h.push(("FLAGS".into(), format!("0x{flags:X}")));
        conn.send(&path, h, body)
    };
    loop {
        let deadline =
            closing.unwrap_or_else(|| tokio::time::Instant::now() + settings.handler_timeout);
        tokio::select! {
            chunk = payload.next(), if reading => {
                let Some(Ok(chunk)) = chunk else {
                    break; // the client went away
                };
                client.feed(&chunk);
                while let Some(event) = client.next() {
                    match event {
                        Ok((flags, body)) => {
                            let close = flags & 0x0F == 0x8;
                            if send(&conn, flags, body).is_err() {
                                crate::websocket::close(&tx, CloseCode::Error);
                                return;
                            }
                            if close {
                                reading = false;
                                closing.get_or_insert(tokio::time::Instant::now() + settings.handler_timeout);
                                break;
                            }
                        }
                        Err(code) => {
                            crate::websocket::close(&tx, code);
                            reading = false;
                            closing.get_or_insert(tokio::time::Instant::now() + settings.handler_timeout);
                            break;
                        }
                    }
                }
            }
            reply = conn.recv() => {
                let Some(reply) = reply else {
                    crate::websocket::close(&tx, CloseCode::Error);
                    break; // the link dropped this connection
                };
                if reply.is_empty() {
                    crate::websocket::close(&tx, CloseCode::Normal);
                    break;
                }
                match checker.check(&reply) {
                    Ok(checked) if checked.close => {
                        let _ = tx.send_last_with(|| reply);
                        closing.get_or_insert(tokio::time::Instant::now() + settings.handler_timeout);
                    }
                    Ok(_) => {
                        if tokio::time::timeout(settings.handler_timeout, tx.room()).await.is_err()
                            || tx.try_send(reply).is_err()
                        {
                            break; // the client does not read, or is gone
                        }
                    }
                    Err(e) => {
                        let n = conn.link().stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
                        REFUSED_FRAMES.warn(format_args!(
                            "route {} connection {}: {e} ({n} so far)",
                            conn.link().name(),
                            conn.id
                        ));
                    }
                }
            }
            () = tokio::time::sleep_until(deadline), if closing.is_some() => {
                crate::websocket::close(&tx, CloseCode::Normal);
                break;
            }
            _ = shutdown.wait_for(|down| *down) => {
                crate::websocket::close(&tx, CloseCode::Away);
                break;
            }
        }
    }
    // Dropping `tx` ends the body once it has written what is queued;
    // dropping `conn` tells the handler the connection is gone.
}

/// The client's frames, read as Mongrel2 forwards them: whole messages
/// (FLAGS of the first fragment, with FIN), control frames as they come.
struct ClientFrames {
    codec: Codec,
    buf: BytesMut,
    fragments: Option<(u8, BytesMut)>,
    max: usize,
}

impl ClientFrames {
    fn new(max: usize) -> ClientFrames {
        ClientFrames {
            codec: Codec::new().max_size(max),
            buf: BytesMut::new(),
            fragments: None,
            max,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next (FLAGS, payload) to send, or the close code that ends the
    /// connection.
    fn next(&mut self) -> Option<Result<(u8, Vec<u8>), CloseCode>> {
        loop {
            if let Some(announced) = crate::websocket::reader::announced_length(&self.buf) {
                let held = self.fragments.as_ref().map_or(0, |(_, f)| f.len() as u64);
                if announced.saturating_add(held) > self.max as u64 {
                    return Some(Err(CloseCode::Size));
                }
            }
            let frame = match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return None,
                Err(e) => {
                    log::debug!("mongrel2 websocket: client broke the protocol: {e}");
                    return Some(Err(CloseCode::Protocol));
                }
            };
            let out = match frame {
                Frame::Text(b) => (0x81, b.to_vec()),
                Frame::Binary(b) => (0x82, b.to_vec()),
                Frame::Ping(b) => (0x89, b.to_vec()),
                Frame::Pong(b) => (0x8A, b.to_vec()),
                Frame::Close(reason) => {
                    let mut body = Vec::new();
                    if let Some(r) = reason {
                        body.extend_from_slice(&u16::from(r.code).to_be_bytes());
                        body.extend_from_slice(r.description.unwrap_or_default().as_bytes());
                    }
                    (0x88, body)
                }
                Frame::Continuation(item) => match (item, self.fragments.take()) {
                    (Item::FirstText(b), None) => {
                        self.fragments = Some((0x81, BytesMut::from(&b[..])));
                        continue;
                    }
                    (Item::FirstBinary(b), None) => {
                        self.fragments = Some((0x82, BytesMut::from(&b[..])));
                        continue;
                    }
                    (Item::Continue(b), Some((flags, mut f))) => {
                        f.extend_from_slice(&b);
                        self.fragments = Some((flags, f));
                        continue;
                    }
                    (Item::Last(b), Some((flags, mut f))) => {
                        f.extend_from_slice(&b);
                        (flags, f.to_vec())
                    }
                    _ => return Some(Err(CloseCode::Protocol)),
                },
            };
            return Some(Ok(out));
        }
    }
}
