//! The bridge websocket: the HTTP upgrade at `--bridge PATH`, which asks the
//! auth service first when there is one, and the task that reads the browser's
//! messages (with [`crate::websocket::read`], under `--max-message-bytes`
//! and with `--websocket-ping-ms` keepalive pings) and hands each to the
//! session actor.
//!
//! A refused upgrade is `403 Forbidden` with the service's reason (the
//! original answered a bare 404); so is one whose `Origin` header
//! `--allow-origin` does not allow, as for the SockJS services.

use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::Bridge;
use super::outbox::Outbox;
use super::session::{BridgeSession, BrowserGone, BrowserInfo, FromBrowser};
use crate::websocket;

pub async fn upgrade(req: HttpRequest, payload: web::Payload, bridge: Arc<Bridge>) -> HttpResponse {
    let accept = match websocket::accept(&req) {
        Ok(accept) => accept,
        Err(refused) => return refused,
    };
    if let Some(origin) = req.headers().get(header::ORIGIN)
        && !bridge.config.origin_allowed(origin.as_bytes())
    {
        return forbidden(&format!("origin {origin:?} not allowed"));
    }
    let mut peer = BrowserInfo {
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
    let settings = bridge.config.websocket;
    let session = BridgeSession::new(bridge, outbox.clone(), peer).start();
    actix_web::rt::spawn(read_browser(payload, settings, session, outbox));
    websocket::switching_protocols(accept, body)
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

/// Reads messages until the browser closes or breaks the protocol; the
/// session ends with it.
async fn read_browser(
    payload: web::Payload,
    settings: websocket::Settings,
    session: Addr<BridgeSession>,
    outbox: Outbox,
) {
    websocket::read(payload, settings, outbox.control(), async |text| {
        session.send(FromBrowser(text)).await.is_ok()
    })
    .await;
    session.do_send(BrowserGone);
}
