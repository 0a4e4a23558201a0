//! The bridge websocket: the HTTP upgrade at `--bridge PATH`, which asks the
//! auth service first when there is one, and the task that reads the browser's
//! messages (with [`crate::websocket_reader`]) and hands each to the session
//! actor.
//!
//! A refused upgrade is `403 Forbidden` with the service's reason (the
//! original answered a bare 404); so is one whose `Origin` header
//! `--allow-origin` does not allow, as for the SockJS services.

use std::sync::Arc;

use actix::{Actor, Addr};
use actix_http::ws;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::Bridge;
use super::outbox::Outbox;
use super::session::{BridgeSession, BrowserGone, FromBrowser, Peer};
use crate::websocket_reader::{Incoming, MessageReader};

/// Largest message a browser may send, fragments included.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

pub async fn upgrade(req: HttpRequest, payload: web::Payload, bridge: Arc<Bridge>) -> HttpResponse {
    if let Err(e) = ws::verify_handshake(req.head()) {
        return HttpResponse::BadRequest()
            .content_type("text/plain; charset=UTF-8")
            .body(format!("Not a valid websocket request: {e}"));
    }
    let accept = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| ws::hash_key(k.as_bytes()))
        .and_then(|k| HeaderValue::from_bytes(&k).ok());
    let Some(accept) = accept else {
        return HttpResponse::BadRequest().body("Not a valid websocket request");
    };
    if let Some(origin) = req.headers().get(header::ORIGIN)
        && !bridge.config.origin_allowed(origin.as_bytes())
    {
        return forbidden(&format!("origin {origin:?} not allowed"));
    }
    let mut peer = Peer {
        path: req.path().to_string(),
        remote_addr: crate::sockjs::client_address(&req, &bridge.config.trusted_proxies)
            .map(|a| a.to_string()),
        session: None,
    };
    if let Some(auth) = bridge.auth() {
        let question = json!({
            "type": "websocket",
            "path": peer.path,
            "query": req.query_string(),
            "headers": headers(&req),
            "remote_addr": peer.remote_addr,
        });
        match auth.ask(&question).await {
            Ok(v) if v.allow => peer.session = v.session,
            Ok(v) => {
                let reason = v.reason.unwrap_or_else(|| "no reason given".into());
                return forbidden(&format!("denied by auth service: {reason}"));
            }
            Err(e) => return forbidden(&format!("denied: {e}")),
        }
    }
    let (outbox, body) = Outbox::new(bridge.config.outbox_bytes);
    let session = BridgeSession::new(bridge, outbox.clone(), peer).start();
    actix_web::rt::spawn(read_browser(payload, session, outbox));
    HttpResponse::SwitchingProtocols()
        .upgrade("websocket")
        .insert_header((header::SEC_WEBSOCKET_ACCEPT, accept))
        .streaming(body)
}

fn forbidden(reason: &str) -> HttpResponse {
    log::info!("bridge: websocket refused: {reason}");
    HttpResponse::Forbidden()
        .content_type("text/plain; charset=UTF-8")
        .body(reason.to_string())
}

/// Header names in lower case; repeated headers joined with ", ".
fn headers(req: &HttpRequest) -> Map<String, Value> {
    let mut map = Map::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match map.get_mut(name.as_str()) {
            Some(Value::String(old)) => {
                old.push_str(", ");
                old.push_str(&value);
            }
            _ => {
                map.insert(name.as_str().to_string(), Value::String(value));
            }
        }
    }
    map
}

/// Reads frames until the browser closes or breaks the protocol; the session
/// ends with it.
async fn read_browser(mut payload: web::Payload, session: Addr<BridgeSession>, outbox: Outbox) {
    let mut reader = MessageReader::new(MAX_MESSAGE_BYTES);
    'read: while let Some(Ok(chunk)) = payload.next().await {
        reader.feed(&chunk);
        while let Some(incoming) = reader.next_event() {
            match incoming {
                Incoming::Message(text) => {
                    if session.send(FromBrowser(text)).await.is_err() {
                        break 'read;
                    }
                }
                Incoming::Ping(p) => outbox.pong(p),
                Incoming::Pong => {}
                Incoming::Close(code) => {
                    outbox.close(code);
                    break 'read;
                }
            }
        }
    }
    session.do_send(BrowserGone);
}
