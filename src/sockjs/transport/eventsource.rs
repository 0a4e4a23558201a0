//! eventsource: a `GET /eventsource` read by the browser's EventSource, one
//! `data: frame` event per frame.

use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;

use super::super::Service;
use super::super::http::{self, cors, jsessionid, no_cache};
use super::super::metrics::Transport;
use super::super::receiver::Encoding;
use super::{open_receiver, streaming};

pub async fn eventsource(req: HttpRequest, service: Arc<Service>, id: &str) -> HttpResponse {
    if req.method() != Method::GET {
        return http::method_not_allowed("GET");
    }
    // A blank line first: some browsers need data before they fire `open`.
    let prelude = Bytes::from_static(b"\r\n");
    match open_receiver(
        &service,
        &req,
        id,
        Transport::EventSource,
        streaming(&service),
        Encoding::EventSource,
        Some(prelude),
    )
    .await
    {
        Ok(body) => {
            let mut res = cors(&req, StatusCode::OK);
            jsessionid(&req, &service.options, &mut res);
            no_cache(&mut res).content_type(http::EVENT_STREAM);
            http::streaming(&req, res, body)
        }
        Err(e) => e.response(),
    }
}
