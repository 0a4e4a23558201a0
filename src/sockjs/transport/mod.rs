//! Transports: each turns HTTP requests (or one websocket) into receivers for a
//! session and client messages into it. One file per transport, as in
//! sockjs-node; what they share is here.

pub mod eventsource;
pub mod hixie76;
pub mod htmlfile;
pub mod jsonp;
pub mod websocket;
pub mod xhr;
pub mod xhr_streaming;

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;

use super::Service;
use super::admission::{self, Admit};
use super::budget::reserve_for;
use super::frame::{MessageCounter, PayloadError, decode_messages};
use super::http;
use super::liveness::ClientSocket;
use super::metrics::{Metrics, Transport};
use super::per_address::{Refusal, Slot};
use super::receiver::{Encoding, Kind, Receiver, ReceiverBody};
use super::session::{Attach, FromClient, Registration, Session};

/// Why a request could not get a receiver.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("too many sessions ({0})")]
    TooManySessions(usize),
    #[error(transparent)]
    Address(#[from] Refusal),
    #[error("the session ended while the request joined it")]
    SessionEnded,
}

impl OpenError {
    pub fn response(&self) -> HttpResponse {
        static REFUSED: crate::ratelog::Throttle =
            crate::ratelog::Throttle::new("new sessions refused");
        REFUSED.warn(format_args!("{self}"));
        let mut res = match self {
            OpenError::Address(_) => HttpResponse::TooManyRequests(),
            _ => HttpResponse::ServiceUnavailable(),
        };
        res.content_type(http::PLAIN).body(self.to_string())
    }
}

/// Starts a session that no URL id names (websockets); `admit` is what
/// [`admission::admit`] made of its request.
pub fn start_session(
    service: &Service,
    req: &HttpRequest,
    transport: Transport,
    admit: Option<Admit>,
) -> Result<Addr<Session>, OpenError> {
    let slot = check_capacity(service, req)?;
    let admit = admit.unwrap_or_else(|| admission::admit(req, service, transport));
    Ok(Session::new(service, transport, None, slot, admit).start())
}

/// Whether the service, and the client's address, may open one more session.
fn check_capacity(service: &Service, req: &HttpRequest) -> Result<Option<Slot>, OpenError> {
    if service.open_sessions() >= service.options.max_sessions {
        Metrics::add(&service.metrics.sessions_refused, 1);
        return Err(OpenError::TooManySessions(service.options.max_sessions));
    }
    let address = http::client_address(req, &service.options.trusted_proxies);
    service.addresses.admit(address).map_err(|e| {
        Metrics::add(&service.metrics.sessions_refused, 1);
        OpenError::from(e)
    })
}

/// What a request that receives frames asks for.
pub struct ReceiverSpec {
    /// The transport, for metrics.
    pub transport: Transport,
    pub kind: Kind,
    pub encoding: Encoding,
    /// What goes out before the first frame.
    pub prelude: Option<Bytes>,
    pub content_type: &'static str,
}

/// Opens a receiver on the session `id` (creating the session if there is
/// none) and answers with the streaming response the receiver feeds.
pub async fn receive(
    req: &HttpRequest,
    service: &Arc<Service>,
    id: &str,
    spec: ReceiverSpec,
) -> HttpResponse {
    match open_receiver(service, req, id, &spec).await {
        Ok(body) => {
            let mut res = headers(req, service, StatusCode::OK);
            res.content_type(spec.content_type);
            http::streaming(req, res, body)
        }
        Err(e) => e.response(),
    }
}

/// The headers of every session response: CORS, no caching, and the
/// JSESSIONID cookie when the service wants it.
pub fn headers(req: &HttpRequest, service: &Service, status: StatusCode) -> HttpResponseBuilder {
    let mut res = http::cors(req, status);
    http::jsessionid(req, &service.options, &mut res);
    http::no_cache(&mut res);
    res
}

async fn open_receiver(
    service: &Arc<Service>,
    req: &HttpRequest,
    id: &str,
    spec: &ReceiverSpec,
) -> Result<ReceiverBody, OpenError> {
    // A session can stop between the look-up and the attach; then the second
    // round makes a new one.
    for _ in 0..2 {
        let addr = service.registry.get_or_create(id, || {
            let slot = check_capacity(service, req)?;
            let registration = Registration {
                id: id.to_string(),
                registry: service.registry.clone(),
            };
            let admit = admission::admit(req, service, spec.transport);
            Ok::<_, OpenError>(
                Session::new(service, spec.transport, Some(registration), slot, admit).start(),
            )
        })?;
        let (mut receiver, mut body) =
            Receiver::new(spec.kind, spec.encoding.clone(), spec.prelude.clone());
        receiver.peer = ClientSocket::of(req);
        body.report_to(addr.clone());
        if addr.send(Attach(receiver)).await.is_ok() {
            return Ok(body);
        }
    }
    Err(OpenError::SessionEnded)
}

/// Why client messages were not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no such session")]
    NoSession,
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("more than {0} messages in one request")]
    TooMany(usize),
}

impl SendError {
    pub fn response(&self, req: &HttpRequest) -> HttpResponse {
        match self {
            SendError::NoSession => http::not_found(),
            SendError::TooMany(_) => {
                static TOO_MANY: crate::ratelog::Throttle =
                    crate::ratelog::Throttle::new("requests with too many messages refused");
                TOO_MANY.warn(format_args!("{} {}: {self}", req.method(), req.path()));
                let mut res = http::cors(req, StatusCode::PAYLOAD_TOO_LARGE);
                http::no_cache(&mut res)
                    .content_type(http::PLAIN)
                    .body(self.to_string())
            }
            SendError::Payload(e) => {
                static BROKEN: crate::ratelog::Throttle =
                    crate::ratelog::Throttle::new("client payloads refused");
                BROKEN.warn(format_args!("{} {}: {e}", req.method(), req.path()));
                http::error_500(req, &e.to_string())
            }
        }
    }
}

/// Hands a client payload (`["a","b"]`) to the session `id`.
/// The payload is dropped once decoded, so that a client waiting for room
/// holds its messages only, not the body as well.
pub async fn send_to_session(
    service: &Service,
    id: &str,
    payload: impl AsRef<[u8]>,
) -> Result<(), SendError> {
    let (addr, share) = service.registry.get(id).ok_or(SendError::NoSession)?;
    let decoded = decode_messages(payload.as_ref(), service.options.max_messages_per_send);
    drop(payload);
    let messages = match decoded {
        Err(PayloadError::TooMany(max)) => return Err(SendError::TooMany(max)),
        other => other?,
    };
    if !messages.is_empty() {
        // The answer waits for room in the application's budget: a client
        // that floods is held back, not the other sessions.
        let held = reserve_for(service.budget.as_ref(), &share, &messages).await;
        addr.send(FromClient(messages, held))
            .await
            .map_err(|_| SendError::NoSession)?;
    }
    Ok(())
}

/// What counts a client payload's messages while its body streams in.
pub fn counter(service: &Service) -> MessageCounter {
    MessageCounter::new(service.options.max_messages_per_send)
}

/// Why a jsonp or htmlfile callback name was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("\"callback\" parameter required")]
    Missing,
    #[error("invalid \"callback\" parameter")]
    Invalid,
}

impl CallbackError {
    pub fn response(&self, req: &HttpRequest) -> HttpResponse {
        http::error_500(req, &self.to_string())
    }
}

/// The `c` query parameter of jsonp and htmlfile, checked so that it cannot
/// inject script: letters, digits, `_`, `-` and `.` only.
pub fn callback(req: &HttpRequest) -> Result<String, CallbackError> {
    let query: HashMap<String, String> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    match query.get("c").filter(|c| !c.is_empty()) {
        None => Err(CallbackError::Missing),
        Some(c)
            if c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) =>
        {
            Ok(c.clone())
        }
        Some(_) => Err(CallbackError::Invalid),
    }
}

/// Whether a streaming or polling receiver is what this transport makes.
pub fn streaming(service: &Service) -> Kind {
    Kind::Streaming {
        limit: service.options.response_limit,
    }
}
