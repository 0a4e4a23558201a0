//! xhr-polling: `POST /xhr` waits for one frame; `POST /xhr_send` carries client
//! messages for every HTTP transport that cannot send on its own connection.

use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

use super::{ReceiverSpec, counter, headers, receive, send_to_session};
use crate::sockjs::Service;
use crate::sockjs::http;
use crate::sockjs::metrics::Transport;
use crate::sockjs::receiver::{Encoding, Kind};

pub async fn xhr(req: HttpRequest, service: Arc<Service>, id: &str) -> HttpResponse {
    match *req.method() {
        Method::OPTIONS => http::preflight(&req, "OPTIONS, POST"),
        Method::POST => {
            let spec = ReceiverSpec {
                transport: Transport::Xhr,
                kind: Kind::Polling,
                encoding: Encoding::Newline,
                prelude: None,
                content_type: http::JAVASCRIPT,
            };
            receive(&req, &service, id, spec).await
        }
        _ => http::method_not_allowed("OPTIONS, POST"),
    }
}

pub async fn xhr_send(
    req: HttpRequest,
    payload: web::Payload,
    service: Arc<Service>,
    id: &str,
) -> HttpResponse {
    match *req.method() {
        Method::OPTIONS => http::preflight(&req, "OPTIONS, POST"),
        Method::POST => {
            let body =
                match http::read_body(payload, &service.options, Some(counter(&service))).await {
                    Ok(body) => body,
                    Err(e) => return http::body_error(&req, &e),
                };
            if let Err(e) = send_to_session(&service, id, body).await {
                return e.response(&req);
            }
            headers(&req, &service, StatusCode::NO_CONTENT)
                .content_type(http::PLAIN)
                .finish()
        }
        _ => http::method_not_allowed("OPTIONS, POST"),
    }
}
