//! jsonp-polling, the last resort: `GET /jsonp?c=callback` returns one frame as
//! a script; `POST /jsonp_send` carries client messages as a form field `d` or
//! as a plain body.

use std::sync::Arc;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

use super::{ReceiverSpec, SendError, callback, counter, headers, receive, send_to_session};
use crate::sockjs::Service;
use crate::sockjs::frame::jsonp_send_payload;
use crate::sockjs::http;
use crate::sockjs::metrics::Transport;
use crate::sockjs::receiver::{Encoding, Kind};

pub async fn jsonp(req: HttpRequest, service: Arc<Service>, id: &str) -> HttpResponse {
    if req.method() != Method::GET {
        return http::method_not_allowed("GET");
    }
    let callback = match callback(&req) {
        Ok(c) => c,
        Err(e) => return e.response(&req),
    };
    let spec = ReceiverSpec {
        transport: Transport::Jsonp,
        kind: Kind::Polling,
        encoding: Encoding::Jsonp { callback },
        prelude: None,
        content_type: http::JAVASCRIPT,
    };
    receive(&req, &service, id, spec).await
}

pub async fn jsonp_send(
    req: HttpRequest,
    payload: web::Payload,
    service: Arc<Service>,
    id: &str,
) -> HttpResponse {
    if req.method() != Method::POST {
        return http::method_not_allowed("POST");
    }
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    // A form's payload is URL-encoded: its messages are counted once decoded.
    let counting = (!is_form).then(|| counter(&service));
    let body = match http::read_body(payload, &service.options, counting).await {
        Ok(body) => body,
        Err(e) => return http::body_error(&req, &e),
    };
    let data = match jsonp_send_payload(&body, is_form) {
        Ok(data) => data,
        Err(e) => return SendError::from(e).response(&req),
    };
    drop(body);
    if let Err(e) = send_to_session(&service, id, data).await {
        return e.response(&req);
    }
    headers(&req, &service, StatusCode::OK)
        .content_type(http::PLAIN)
        .body("ok")
}
