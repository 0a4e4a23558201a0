//! eventsource: a `GET /eventsource` read by the browser's EventSource, one
//! `data: frame` event per frame.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;

use super::{ReceiverSpec, receive, streaming};
use crate::sockjs::Service;
use crate::sockjs::http;
use crate::sockjs::metrics::Transport;
use crate::sockjs::receiver::Encoding;

pub async fn eventsource(req: HttpRequest, service: Arc<Service>, id: &str) -> HttpResponse {
    if req.method() != Method::GET {
        return http::method_not_allowed("GET");
    }
    let spec = ReceiverSpec {
        transport: Transport::EventSource,
        kind: streaming(&service),
        encoding: Encoding::EventSource,
        // A blank line first: some browsers need data before they fire `open`.
        prelude: Some(Bytes::from_static(b"\r\n")),
        content_type: http::EVENT_STREAM,
    };
    receive(&req, &service, id, spec).await
}
