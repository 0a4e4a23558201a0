//! websocket: RFC 6455 at `/<server>/<session>/websocket` with SockJS framing,
//! and the raw endpoint `/websocket` for clients that are not sockjs-client
//! (one websocket message per message, a real close frame for a close).
//!
//! Each websocket is a session of its own. Outgoing frames go through the
//! session's receiver; this file reads the incoming side (whole messages, from
//! [`crate::websocket::read`]) and hands client messages to the session.

use std::sync::Arc;

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};

use super::start_session;
use crate::sockjs::Service;
use crate::sockjs::admission::{self, Admit, Decision};
use crate::sockjs::budget::{Budget, Share, reserve_for};
use crate::sockjs::frame::decode_messages;
use crate::sockjs::http;
use crate::sockjs::metrics::{Metrics, Transport};
use crate::sockjs::receiver::{Encoding, Kind, Receiver};
use crate::sockjs::session::{Attach, ClientGone, FromClient, Session};
use crate::websocket::{self, queue::Sender};

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
    let accept = match websocket::accept(&req) {
        Ok(accept) => accept,
        Err(refused) => return refused,
    };
    let (encoding, transport) = match framing {
        Framing::SockJs => (Encoding::WebSocket, Transport::Websocket),
        Framing::Raw => (Encoding::RawWebSocket, Transport::RawWebsocket),
    };
    // A raw websocket has no open frame to send a denial after: it is asked
    // before the upgrade and a denial is an HTTP 403.
    let admit = match framing {
        Framing::SockJs => None,
        Framing::Raw => match admission::admit(&req, &service, transport) {
            Admit::Ask(mut who, pending) => match pending.await {
                Decision::Allow { user, auth } => {
                    Metrics::add(&service.metrics.sessions_admitted, 1);
                    who.user = user;
                    who.auth = auth;
                    Some(Admit::Known(who))
                }
                Decision::Deny { reason, label } => {
                    service.metrics.count_denial(label);
                    static DENIED: crate::ratelog::Throttle =
                        crate::ratelog::Throttle::new("raw websockets denied");
                    DENIED.warn(format_args!("{label}: {reason}"));
                    return HttpResponse::Forbidden()
                        .content_type(http::PLAIN)
                        .body(reason);
                }
            },
            known => Some(known),
        },
    };
    let addr = match start_session(&service, &req, transport, admit) {
        Ok(addr) => addr,
        Err(e) => return e.response(),
    };
    let (receiver, mut body) = Receiver::new(Kind::WebSocket, encoding, None);
    let control = receiver.control_sender();
    body.report_to(addr.clone());
    addr.do_send(Attach(receiver));
    let settings = websocket::Settings {
        max_message_bytes: service.options.max_message_bytes,
        ping: service.options.websocket_ping,
        backlog: Some(service.options.max_queue_bytes / 2),
    };
    let max_messages = service.options.max_messages_per_send;
    let budget = service.budget.clone();
    actix_web::rt::spawn(async move {
        read_client(
            payload,
            addr,
            control,
            framing,
            settings,
            max_messages,
            budget,
        )
        .await
    });
    websocket::switching_protocols(accept, body)
}

/// Reads the client's websocket messages until it closes, breaks the
/// protocol or sends broken JSON; then the session ends.
///
/// A client that stops reading stops being read once half its session's
/// `max_queue_bytes` wait for it (`Settings::backlog`): otherwise each
/// message it sends can make the application answer, and with an echo the
/// answers pile up until the session closes with 3001, after the client had
/// the backend and the proxy carry megabytes for nothing (issue 11, "clients
/// that do not read"). Held this way it costs nothing until the websocket
/// ping finds it deaf.
async fn read_client(
    payload: web::Payload,
    session: Addr<Session>,
    control: Sender,
    framing: Framing,
    settings: websocket::Settings,
    max_messages: usize,
    budget: Option<Arc<Budget>>,
) {
    let share = Share::default();
    websocket::read(payload, settings, &control, async |text: String| {
        let messages = match framing {
            Framing::Raw => vec![text],
            Framing::SockJs if text.is_empty() => return true,
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
                        return false;
                    }
                }
            }
        };
        messages.is_empty() || deliver(&session, (budget.as_ref(), &share), messages).await
    })
    .await;
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
