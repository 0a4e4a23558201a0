//! One websocket connection, for every websocket the proxy serves: SockJS's
//! framed websocket, the raw `/websocket` endpoint and bridge mode's socket.
//!
//! Each has the same four parts, written once here:
//! - the handshake ([`accept`]): RFC 6455's checks and `Sec-WebSocket-Accept`,
//!   with the SockJS protocol's wording for the mistakes clients make most;
//! - the reader ([`reader::MessageReader`]): whole messages under a size
//!   limit checked at each frame's header, control frames, close codes;
//! - the one outbound queue ([`queue`]), bounded in frames and bytes, that the
//!   response body drains; pongs, pings and the one close frame go through it;
//! - the read loop ([`read`]) with keepalive pings: a connection that leaves a
//!   ping unanswered until the next is due is closed (1001), so dead peers
//!   behind NATs do not hold sessions.
//!
//! What differs between SockJS and bridge mode is only what a message means,
//! which the caller gives [`read`] as a closure.

pub mod queue;
pub mod reader;

use std::time::Duration;

use actix_http::ws::{self, CloseCode, CloseReason, OpCode, Parser};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use queue::Sender;
use reader::{Incoming, MessageReader};

/// How one websocket reads: its message limit and keepalive.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Largest message, fragments included; beyond it, close 1009.
    pub max_message_bytes: usize,
    /// Ping interval; `None`: no pings.
    pub ping: Option<Duration>,
    /// Bytes waiting to be written to the client beyond which its next
    /// message is not read (`None`: read regardless). A client that does not
    /// read what it is sent is not read either, so that what it sends cannot
    /// keep the application producing answers that pile up for it. Pings go
    /// on meanwhile: one that cannot reach the client ends it.
    pub backlog: Option<usize>,
}

/// Checks an upgrade request; the `Sec-WebSocket-Accept` value to answer
/// with, or the 400 response that refuses it.
#[allow(clippy::result_large_err)]
pub fn accept(req: &HttpRequest) -> Result<HeaderValue, HttpResponse> {
    let refuse = |text: String| {
        Err(HttpResponse::BadRequest()
            .content_type("text/plain; charset=UTF-8")
            .body(text))
    };
    if let Err(e) = ws::verify_handshake(req.head()) {
        // The SockJS protocol's wording for the two cases clients get wrong most.
        return refuse(match e {
            ws::HandshakeError::NoWebsocketUpgrade => {
                "Can \"Upgrade\" only to \"WebSocket\".".to_string()
            }
            ws::HandshakeError::NoConnectionUpgrade => {
                "\"Connection\" must be \"Upgrade\".".to_string()
            }
            other => format!("Not a valid websocket request: {other}"),
        });
    }
    let accept = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| ws::hash_key(k.as_bytes()))
        .and_then(|k| HeaderValue::from_bytes(&k).ok());
    match accept {
        Some(accept) => Ok(accept),
        None => refuse("Not a valid websocket request".to_string()),
    }
}

/// The 101 response whose body writes `frames`.
pub fn switching_protocols<S, E>(accept: HeaderValue, frames: S) -> HttpResponse
where
    S: Stream<Item = Result<Bytes, E>> + 'static,
    E: Into<Box<dyn std::error::Error>> + 'static,
{
    HttpResponse::SwitchingProtocols()
        .upgrade("websocket")
        .insert_header((header::SEC_WEBSOCKET_ACCEPT, accept))
        .streaming(frames)
}

/// Reads the client's frames until it closes, breaks the protocol, misses
/// a pong, or `on_message` returns false; answers pings and the client's
/// close through `control`. Reading also stops once a close frame is queued
/// (the session ended): what the client goes on sending is of no use.
pub async fn read(
    mut payload: web::Payload,
    settings: Settings,
    control: &Sender,
    mut on_message: impl AsyncFnMut(String) -> bool,
) {
    let mut reader = MessageReader::new(settings.max_message_bytes);
    let mut keepalive = Keepalive::new(settings.ping);
    loop {
        let backed_up = settings
            .backlog
            .is_some_and(|limit| control.queued_bytes() >= limit);
        let chunk = tokio::select! {
            chunk = payload.next(), if !backed_up => chunk,
            () = control.backlog_below(settings.backlog.unwrap_or(usize::MAX)), if backed_up => {
                continue;
            }
            () = keepalive.tick() => {
                if !keepalive.ping(control) {
                    log::info!("websocket: no pong within {:?}, closing", settings.ping);
                    close(control, CloseCode::Away);
                    return;
                }
                continue;
            }
        };
        let Some(Ok(chunk)) = chunk else { return };
        reader.feed(&chunk);
        while let Some(incoming) = reader.next_event() {
            match incoming {
                Incoming::Message(text) => {
                    if control.is_finished() || !on_message(text).await {
                        return;
                    }
                }
                Incoming::Ping(p) => {
                    let mut out = BytesMut::new();
                    Parser::write_message(&mut out, p, OpCode::Pong, true, false);
                    let _ = control.try_send(out.freeze());
                }
                Incoming::Pong => keepalive.pong(),
                Incoming::Close(code) => {
                    close(control, code);
                    return;
                }
            }
        }
    }
}

/// Queues the close frame, unless one already is (RFC 6455: one per side);
/// the bytes queued (0 when one was before).
pub fn close(control: &Sender, code: CloseCode) -> usize {
    let mut out = BytesMut::new();
    let reason = CloseReason {
        code,
        description: None,
    };
    Parser::write_close(&mut out, Some(reason), false);
    control.send_last_with(|| out.freeze()).unwrap_or(0)
}

/// Websocket pings beside whatever heartbeat the protocol above has.
struct Keepalive {
    interval: Option<tokio::time::Interval>,
    awaiting_pong: bool,
}

impl Keepalive {
    fn new(every: Option<Duration>) -> Keepalive {
        let interval = every.map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        Keepalive {
            interval,
            awaiting_pong: false,
        }
    }

    /// Resolves when a ping is due; never when pings are off.
    async fn tick(&mut self) {
        match self.interval.as_mut() {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Sends a ping; false when the last one was never answered.
    fn ping(&mut self, control: &Sender) -> bool {
        if self.awaiting_pong {
            return false;
        }
        let mut out = BytesMut::new();
        Parser::write_message(&mut out, b"", OpCode::Ping, true, false);
        let _ = control.try_send(out.freeze());
        self.awaiting_pong = true;
        true
    }

    fn pong(&mut self) {
        self.awaiting_pong = false;
    }
}
