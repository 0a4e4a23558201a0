//! websocket: RFC 6455 at `/<server>/<session>/websocket` with SockJS framing,
//! and the raw endpoint `/websocket` for clients that are not sockjs-client
//! (one websocket message per message, a real close frame for a close).
//!
//! Each websocket is a session of its own. Outgoing frames go through the
//! session's receiver; this file reads the incoming side (whole messages, from
//! [`crate::websocket_reader`]) and hands client messages to the session.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_http::ws::{self, CloseCode, CloseReason, OpCode, Parser};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::BytesMut;
use futures_util::StreamExt;

use super::super::Service;
use super::super::budget::{Budget, Share, reserve_for};
use super::super::frame::decode_messages;
use super::super::http;
use super::super::metrics::Transport;
use super::super::queue::Sender;
use super::super::receiver::{Encoding, Kind, Receiver};
use super::super::session::{Attach, ClientGone, FromClient, Session};
use super::start_session;
use crate::websocket_reader::{Incoming, MessageReader};

/// Which framing a websocket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    SockJs,
    Raw,
}

pub async fn websocket(
    req: HttpRequest,
    payload: web::Payload,
    service: Arc<Service>,
    framing: Framing,
) -> HttpResponse {
    if !service.options.websocket {
        return http::not_found();
    }
    if req.method() != actix_web::http::Method::GET {
        return http::method_not_allowed("GET");
    }
    if framing == Framing::SockJs && super::hixie76::is_handshake(req.headers()) {
        return super::hixie76::websocket(req, payload, service).await;
    }
    if let Err(e) = ws::verify_handshake(req.head()) {
        // The protocol's wording for the two cases clients get wrong most.
        let text = match e {
            ws::HandshakeError::NoWebsocketUpgrade => {
                "Can \"Upgrade\" only to \"WebSocket\".".to_string()
            }
            ws::HandshakeError::NoConnectionUpgrade => {
                "\"Connection\" must be \"Upgrade\".".to_string()
            }
            other => format!("Not a valid websocket request: {other}"),
        };
        return HttpResponse::BadRequest()
            .content_type(http::PLAIN)
            .body(text);
    }
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| ws::hash_key(k.as_bytes()));
    let accept = key
        .map(|k| HeaderValue::from_bytes(&k))
        .and_then(Result::ok);
    let Some(accept) = accept else {
        return HttpResponse::BadRequest()
            .content_type(http::PLAIN)
            .body("Not a valid websocket request");
    };
    let (encoding, transport) = match framing {
        Framing::SockJs => (Encoding::WebSocket, Transport::Websocket),
        Framing::Raw => (Encoding::RawWebSocket, Transport::RawWebsocket),
    };
    let addr = match start_session(&service, &req, transport) {
        Ok(addr) => addr,
        Err(e) => return e.response(),
    };
    let (receiver, mut body) = Receiver::new(Kind::WebSocket, encoding, None);
    let control = receiver.control_sender();
    body.report_to(addr.clone());
    addr.do_send(Attach(receiver));
    let max = (
        service.options.max_message_bytes,
        service.options.max_messages_per_send,
    );
    let ping = service.options.websocket_ping;
    let budget = service.budget.clone();
    actix_web::rt::spawn(read_client(
        payload, addr, control, framing, max, ping, budget,
    ));

    HttpResponse::SwitchingProtocols()
        .upgrade("websocket")
        .insert_header((header::SEC_WEBSOCKET_ACCEPT, accept))
        .streaming(body)
}

/// Reads the client's websocket frames until it closes, breaks the protocol
/// or sends broken JSON; then the session ends.
async fn read_client(
    mut payload: web::Payload,
    session: Addr<Session>,
    control: Sender,
    framing: Framing,
    (max_message_bytes, max_messages): (usize, usize),
    ping: Option<Duration>,
    budget: Option<Arc<Budget>>,
) {
    let mut reader = MessageReader::new(max_message_bytes);
    let share = Share::default();
    let mut keepalive = Keepalive::new(ping);
    'read: loop {
        let chunk = tokio::select! {
            chunk = payload.next() => chunk,
            () = keepalive.tick() => {
                if !keepalive.ping(&control) {
                    log::info!("websocket: no pong within {ping:?}, closing");
                    send_close(&control, CloseCode::Away);
                    break 'read;
                }
                continue;
            }
        };
        let Some(Ok(chunk)) = chunk else { break };
        reader.feed(&chunk);
        while let Some(incoming) = reader.next_event() {
            let text = match incoming {
                Incoming::Message(text) => text,
                Incoming::Ping(p) => {
                    let mut out = BytesMut::new();
                    Parser::write_message(&mut out, p, OpCode::Pong, true, false);
                    let _ = control.try_send(out.freeze());
                    continue;
                }
                Incoming::Pong => {
                    keepalive.pong();
                    continue;
                }
                Incoming::Close(code) => {
                    send_close(&control, code);
                    break 'read;
                }
            };
            let messages = match framing {
                Framing::Raw => vec![text],
                Framing::SockJs if text.is_empty() => continue,
                Framing::SockJs => {
                    let decoded = decode_messages(text.as_bytes(), max_messages);
                    // Not held beside its messages while they wait for room.
                    drop(text);
                    match decoded {
                        Ok(messages) => messages,
                        Err(e) => {
                            static BROKEN: crate::ratelog::Throttle =
                                crate::ratelog::Throttle::new("websockets closed, payload refused");
                            BROKEN.warn(format_args!("{e}"));
                            break 'read;
                        }
                    }
                }
            };
            if control.is_finished() {
                // The session has closed (say with 3001 for a client that
                // stopped reading): stop reading, rather than buffer and drop
                // what the client goes on sending.
                break 'read;
            }
            if !messages.is_empty() && !deliver(&session, (budget.as_ref(), &share), messages).await
            {
                break 'read;
            }
        }
    }
    session.do_send(ClientGone);
}

/// Hands client messages to the session once the application's budget has
/// room for them. Both waits (for the budget, and for the session's bounded
/// mailbox) stop reading the socket and so push back on the client, instead
/// of buffering without end or dropping. False when the session is gone.
pub async fn deliver(
    session: &Addr<Session>,
    (budget, share): (Option<&Arc<Budget>>, &Share),
    messages: Vec<String>,
) -> bool {
    let held = reserve_for(budget, share, &messages).await;
    match session.try_send(FromClient(messages, held)) {
        Ok(()) => true,
        Err(actix::prelude::SendError::Full(msg)) => session.send(msg).await.is_ok(),
        Err(actix::prelude::SendError::Closed(_)) => false,
    }
}

/// Websocket pings beside SockJS heartbeats: a connection that does not
/// answer one ping before the next is due is closed, so that dead peers behind
/// NATs and proxies do not hold sessions.
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

fn send_close(control: &Sender, code: CloseCode) {
    let mut out = BytesMut::new();
    Parser::write_close(
        &mut out,
        Some(CloseReason {
            code,
            description: None,
        }),
        false,
    );
    let _ = control.send_last_with(|| out.freeze());
}
