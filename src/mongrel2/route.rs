//! A `[[mongrel2]]` route: every HTTP request under its URL prefix goes to
//! its handlers as Mongrel2 sends it, and the raw HTTP response they write
//! comes back to the client, streamed as it arrives; websocket upgrades go
//! to [`super::websocket`].
//!
//! Limits and faults: a request body over `max_message_bytes` is refused
//! with 413 before any of it reaches a handler, one that has not fully
//! arrived within `body_timeout_ms` with 408 (and the connection closed);
//! no handler connected is 502;
//! no answer within `handler_timeout_ms` is 504; a response that is not
//! valid HTTP is 502 (or, once its head went out, the connection is cut).
//! Each is logged. A client that leaves before its response is complete is
//! reported to the handler with Mongrel2's disconnect message.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;

use super::link::{Conn, Link, Refused};
use super::response::{Framing, Head, Part, ResponseError, ResponseParser};
use crate::sockjs::http::{BodyError, read_bounded};

/// Largest response head a handler may write.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Headers that describe one hop, not the response: the proxy sets its own.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
    "upgrade",
];

static REFUSED: crate::ratelog::Throttle =
    crate::ratelog::Throttle::new("mongrel2 handler responses refused");

/// Serves `link`'s route on `app`: its prefix and everything under it.
pub fn mount(link: Arc<Link>, app: &mut web::ServiceConfig) {
    let prefix = link.settings().route.clone();
    app.service(web::scope(&prefix).default_service(web::to(
        move |req: HttpRequest, payload: web::Payload| serve(req, payload, link.clone()),
    )));
}

async fn serve(req: HttpRequest, payload: web::Payload, link: Arc<Link>) -> HttpResponse {
    if req.headers().contains_key(header::UPGRADE) {
        return super::websocket::upgrade(req, payload, link).await;
    }
    let settings = link.settings();
    let read = read_bounded(
        payload,
        settings.max_message_bytes,
        settings.body_timeout,
        None,
    );
    let body = match read.await {
        Ok(body) => Vec::from(body),
        Err(e) => return body_refused(&link, e),
    };
    let mut conn = link.open();
    let headers = handler_headers(&req, req.method().as_str(), &link);
    if let Err(e) = conn.send(req.path(), headers, body) {
        conn.finish();
        return refused(&link, e);
    }
    let head_request = req.method() == actix_web::http::Method::HEAD;
    respond(conn, head_request).await
}

/// The response to a request body that was not read: 413 over
/// `max_message_bytes`, 400 broken, 408 not complete within
/// `body_timeout_ms` (the connection closed, since the rest of that body may
/// still come).
fn body_refused(link: &Link, e: BodyError) -> HttpResponse {
    let (mut res, text) = match e {
        BodyError::TooLarge(limit) => {
            log::info!("mongrel2: request body over {limit} bytes refused");
            let text = format!("request body over {limit} bytes");
            (HttpResponse::PayloadTooLarge(), text)
        }
        BodyError::Timeout(timeout) => {
            log::info!(
                "mongrel2 route {}: request body not complete within {timeout:?}: 408",
                link.name()
            );
            let mut res = HttpResponse::RequestTimeout();
            res.force_close();
            (
                res,
                format!("request body not complete within {timeout:?}\n"),
            )
        }
        BodyError::Broken(e) => (HttpResponse::BadRequest(), format!("bad request body: {e}")),
        // Not read with a message counter: cannot happen here.
        e @ BodyError::TooManyMessages(_) => (HttpResponse::BadRequest(), e.to_string()),
    };
    res.content_type("text/plain; charset=UTF-8").body(text)
}

/// The headers Mongrel2 gives a handler: PATH, the client's headers (names
/// in lower case), then its own.
pub(super) fn handler_headers(
    req: &HttpRequest,
    method: &str,
    link: &Link,
) -> Vec<(String, String)> {
    let mut h = vec![("PATH".to_string(), req.path().to_string())];
    for (name, value) in req.headers() {
        h.push((
            name.as_str().to_string(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ));
    }
    let version = match req.version() {
        actix_web::http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let uri = match req.query_string() {
        "" => req.path().to_string(),
        q => format!("{}?{q}", req.path()),
    };
    let pattern = match link.settings().route.as_str() {
        "" => "/",
        p => p,
    };
    h.push(("METHOD".into(), method.into()));
    h.push(("VERSION".into(), version.into()));
    h.push(("URI".into(), uri));
    if !req.query_string().is_empty() {
        h.push(("QUERY".into(), req.query_string().into()));
    }
    h.push(("PATTERN".into(), pattern.into()));
    h.push(("URL_SCHEME".into(), req.connection_info().scheme().into()));
    if let Some(addr) = req.peer_addr() {
        h.push(("REMOTE_ADDR".into(), addr.ip().to_string()));
    }
    h
}

/// 502 for a request no handler took.
pub(super) fn refused(link: &Link, e: Refused) -> HttpResponse {
    log::warn!("mongrel2 route {}: {e}: 502", link.name());
    text(StatusCode::BAD_GATEWAY, &format!("{e}"))
}

fn text(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=UTF-8")
        .body(format!("{message}\n"))
}

/// Reads the handler's response head: the head and the parts after it.
pub(super) async fn read_head(
    conn: &mut Conn,
    parser: &mut ResponseParser,
) -> Result<(Head, VecDeque<Part>), HttpResponse> {
    let mut parts = Vec::new();
    loop {
        let reply = match conn.recv_timeout().await {
            Ok(Some(reply)) => reply,
            Ok(None) => {
                return Err(text(StatusCode::BAD_GATEWAY, "handler link overflowed"));
            }
            Err(()) => {
                log::warn!(
                    "mongrel2 route {}: no answer within {:?}: 504",
                    conn.link().name(),
                    conn.link().settings().handler_timeout
                );
                return Err(text(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the handler did not answer",
                ));
            }
        };
        let fed = if reply.is_empty() {
            parser.close(&mut parts)
        } else {
            parser.feed(&reply, &mut parts)
        };
        if let Err(e) = fed {
            bad_response(conn.link(), &e);
            return Err(text(
                StatusCode::BAD_GATEWAY,
                &format!("bad handler response: {e}"),
            ));
        }
        let mut parts: VecDeque<Part> = std::mem::take(&mut parts).into();
        if let Some(Part::Head(head)) = parts.pop_front() {
            return Ok((head, parts));
        }
    }
}

fn bad_response(link: &Link, e: &ResponseError) {
    let n = link.stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
    REFUSED.warn(format_args!("route {}: {e} ({n} so far)", link.name()));
}

/// Waits for the handler's response and streams it to the client.
pub(super) async fn respond(mut conn: Conn, head_request: bool) -> HttpResponse {
    let mut parser = ResponseParser::new(head_request, MAX_HEAD_BYTES);
    match read_head(&mut conn, &mut parser).await {
        Ok((head, parts)) => pass_on(conn, parser, head, parts),
        Err(response) => response,
    }
}

/// Gives the client a response whose head was read: its status, its
/// headers (but those of one hop) and its body as it comes.
pub(super) fn pass_on(
    mut conn: Conn,
    parser: ResponseParser,
    head: Head,
    parts: VecDeque<Part>,
) -> HttpResponse {
    let Ok(status) = StatusCode::from_u16(head.status) else {
        let e = ResponseError::Head(format!("status {}", head.status));
        bad_response(conn.link(), &e);
        return text(
            StatusCode::BAD_GATEWAY,
            &format!("bad handler response: {e}"),
        );
    };
    let mut builder = HttpResponse::build(status);
    for (name, value) in &head.headers {
        if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            builder.append_header((n, v));
        }
    }
    if head.close {
        builder.force_close();
    }
    let framing = head.framing;
    if framing == Framing::None {
        conn.finish();
        return builder.finish();
    }
    let body = Body {
        conn,
        parser,
        parts,
        ended: false,
    };
    let stream = Box::pin(futures_util::stream::unfold(body, Body::next));
    match framing {
        Framing::Length(n) => builder.body(SizedStream::new(n, stream)),
        _ => builder.streaming(stream),
    }
}

/// The rest of a response, as the handler sends it.
struct Body {
    conn: Conn,
    parser: ResponseParser,
    parts: VecDeque<Part>,
    ended: bool,
}

impl Body {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Body)> {
        loop {
            if self.ended {
                return None;
            }
            match self.parts.pop_front() {
                Some(Part::Body(b)) if !b.is_empty() => return Some((Ok(b), self)),
                Some(Part::End) => {
                    self.ended = true;
                    self.conn.finish();
                    return None;
                }
                Some(_) => continue,
                None => {}
            }
            let fail = |what: String| std::io::Error::other(what);
            let reply = match self.conn.recv_timeout().await {
                Ok(Some(reply)) => reply,
                Ok(None) => return self.fail(fail("handler link overflowed".into())),
                Err(()) => return self.fail(fail("handler stopped answering".into())),
            };
            let mut parts = Vec::new();
            let fed = if reply.is_empty() {
                self.parser.close(&mut parts)
            } else {
                self.parser.feed(&reply, &mut parts)
            };
            if let Err(e) = fed {
                bad_response(self.conn.link(), &e);
                return self.fail(fail(e.to_string()));
            }
            self.parts.extend(parts);
        }
    }

    /// Cuts the response short: the client sees the connection end.
    fn fail(mut self, e: std::io::Error) -> Option<(Result<Bytes, std::io::Error>, Body)> {
        log::warn!(
            "mongrel2 route {}: response cut: {e}",
            self.conn.link().name()
        );
        self.ended = true;
        Some((Err(e), self))
    }
}
