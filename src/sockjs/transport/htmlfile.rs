//! htmlfile: a `GET /htmlfile?c=callback` page that stays open inside a hidden
//! iframe, each frame a `<script>` calling the parent's callback.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;

use super::{ReceiverSpec, callback, receive, streaming};
use crate::sockjs::Service;
use crate::sockjs::http;
use crate::sockjs::metrics::Transport;
use crate::sockjs::receiver::Encoding;

/// The page head, padded past 1 KiB so that browsers start rendering it.
fn prelude(callback: &str) -> Bytes {
    let mut head = format!(
        r#"<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>"#
    );
    head.push_str(&" ".repeat(1024));
    head.push_str("\r\n\r\n");
    Bytes::from(head)
}

pub async fn htmlfile(req: HttpRequest, service: Arc<Service>, id: &str) -> HttpResponse {
    if req.method() != Method::GET {
        return http::method_not_allowed("GET");
    }
    let callback = match callback(&req) {
        Ok(c) => c,
        Err(e) => return e.response(&req),
    };
    let spec = ReceiverSpec {
        transport: Transport::HtmlFile,
        kind: streaming(&service),
        encoding: Encoding::HtmlFile,
        prelude: Some(prelude(&callback)),
        content_type: http::HTML,
    };
    receive(&req, &service, id, spec).await
}
