//! xhr-streaming: one long `POST /xhr_streaming` carries frames as they come,
//! each in its own HTTP chunk, until `response_limit` bytes have gone out.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;

use super::{ReceiverSpec, receive, streaming};
use crate::sockjs::Service;
use crate::sockjs::http;
use crate::sockjs::metrics::Transport;
use crate::sockjs::receiver::Encoding;

/// 2 KiB of `h` and a newline: old browsers deliver nothing of an XHR
/// response before they have seen this much.
fn prelude() -> Bytes {
    let mut p = vec![b'h'; 2048];
    p.push(b'\n');
    Bytes::from(p)
}

pub async fn xhr_streaming(req: HttpRequest, service: Arc<Service>, id: &str) -> HttpResponse {
    match *req.method() {
        Method::OPTIONS => http::preflight(&req, "OPTIONS, POST"),
        Method::POST => {
            let spec = ReceiverSpec {
                transport: Transport::XhrStreaming,
                kind: streaming(&service),
                encoding: Encoding::Newline,
                prelude: Some(prelude()),
                content_type: http::JAVASCRIPT,
            };
            receive(&req, &service, id, spec).await
        }
        _ => http::method_not_allowed("OPTIONS, POST"),
    }
}
