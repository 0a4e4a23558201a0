//! xhr-streaming: one long `POST /xhr_streaming` carries frames as they come,
//! each in its own HTTP chunk, until `response_limit` bytes have gone out.

use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;

use super::super::Service;
use super::super::http::{self, cors, jsessionid, no_cache};
use super::super::metrics::Transport;
use super::super::receiver::Encoding;
use super::{open_receiver, streaming};

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
            match open_receiver(
                &service,
                &req,
                id,
                Transport::XhrStreaming,
                streaming(&service),
                Encoding::Newline,
                Some(prelude()),
            )
            .await
            {
                Ok(body) => {
                    let mut res = cors(&req, StatusCode::OK);
                    jsessionid(&req, &service.options, &mut res);
                    no_cache(&mut res).content_type(http::JAVASCRIPT);
                    http::streaming(&req, res, body)
                }
                Err(e) => e.response(),
            }
        }
        _ => http::method_not_allowed("OPTIONS, POST"),
    }
}
