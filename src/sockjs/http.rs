//! The HTTP details every SockJS endpoint shares: CORS, caching, the JSESSIONID
//! cookie, content types, and reading request bodies with a size limit.
//!
//! The exact header values are the protocol's: the suite and the browsers
//! compare them literally.

use std::time::{Duration, SystemTime};

use actix_web::http::header::{self, HttpDate};
use actix_web::http::{StatusCode, Version};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::Options;
use super::frame::{MessageCounter, PayloadError};

pub const JAVASCRIPT: &str = "application/javascript; charset=UTF-8";
pub const PLAIN: &str = "text/plain; charset=UTF-8";
pub const JSON: &str = "application/json; charset=UTF-8";
pub const HTML: &str = "text/html; charset=UTF-8";
pub const EVENT_STREAM: &str = "text/event-stream";

const ONE_YEAR: u64 = 365 * 24 * 3600;
const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";

/// A response builder with the given status and the CORS headers a browser's
/// credentialed cross-origin request needs: the Origin echoed (`*` only when
/// there is none, since browsers refuse `*` with credentials).
pub fn cors(req: &HttpRequest, status: StatusCode) -> HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    match req.headers().get(header::ORIGIN).filter(|o| !o.is_empty()) {
        Some(origin) => {
            res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
            res.insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"));
        }
        None => {
            res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
        }
    }
    if let Some(h) = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|h| !h.is_empty())
    {
        res.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
    }
    res
}

/// Marks a response as never to be cached (session data travels over GET too).
pub fn no_cache(res: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    res.insert_header((header::CACHE_CONTROL, NO_CACHE))
}

/// Marks a response as cacheable for a year.
pub fn cache_for_a_year(res: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    let expires = HttpDate::from(SystemTime::now() + Duration::from_secs(ONE_YEAR));
    res.insert_header((header::CACHE_CONTROL, format!("public, max-age={ONE_YEAR}")))
        .insert_header((header::EXPIRES, expires))
}

/// Sets `JSESSIONID` (the client's own value, or `dummy`) when the service
/// asks for sticky-session cookies.
pub fn jsessionid(req: &HttpRequest, options: &Options, res: &mut HttpResponseBuilder) {
    if !options.cookie_needed {
        return;
    }
    let value = req
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().strip_prefix("JSESSIONID="))
        .find(|v| {
            v.bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        })
        .unwrap_or("dummy");
    res.insert_header((header::SET_COOKIE, format!("JSESSIONID={value}; path=/")));
}

/// The answer to a CORS preflight: cacheable for a year.
pub fn preflight(req: &HttpRequest, methods: &'static str) -> HttpResponse {
    let mut res = cors(req, StatusCode::NO_CONTENT);
    cache_for_a_year(&mut res)
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, ONE_YEAR.to_string()))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, methods))
        .finish()
}

/// `500` with a plain-text explanation, as the protocol answers bad input.
pub fn error_500(req: &HttpRequest, message: &str) -> HttpResponse {
    let mut res = cors(req, StatusCode::INTERNAL_SERVER_ERROR);
    no_cache(&mut res)
        .content_type(PLAIN)
        .body(message.to_string())
}

pub fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type(PLAIN)
        .body("404 Not Found")
}

pub fn method_not_allowed(allow: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allow))
        .finish()
}

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body over {0} bytes")]
    TooLarge(usize),
    #[error("request body broken: {0}")]
    Broken(String),
    #[error("request body not complete within {0:?}")]
    Timeout(std::time::Duration),
    #[error("more than {0} messages in one request")]
    TooManyMessages(usize),
}

/// Reads a request body, refusing one over `options.max_message_bytes` as
/// soon as it passes it, and one that has not fully arrived within
/// `options.body_timeout` (a client announcing 100,000 bytes and sending 4
/// would otherwise hold its connection, and a descriptor, for ever). With a
/// `counter`, a body of client messages is also refused as soon as it holds
/// more than `max_messages_per_send`, the rest unread.
pub async fn read_body(
    payload: web::Payload,
    options: &Options,
    counter: Option<MessageCounter>,
) -> Result<Bytes, BodyError> {
    read_bounded(
        payload,
        options.max_message_bytes,
        options.body_timeout,
        counter,
    )
    .await
}

/// [`read_body`] with its bounds given: at most `limit` bytes, all within
/// `timeout`. Mongrel2 routes read their request bodies with it too.
pub async fn read_bounded(
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
    mut counter: Option<MessageCounter>,
) -> Result<Bytes, BodyError> {
    let read = async {
        let mut body = BytesMut::new();

        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
            if body.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge(limit));
            }
            if let Some(Err(PayloadError::TooMany(max))) = counter.as_mut().map(|c| c.feed(&chunk))
            {
                return Err(BodyError::TooManyMessages(max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::Timeout(timeout)))
}

/// `413` for a body over the limit or with too many messages, `400` for a
/// broken one, `408` for one too slow; the connection is closed after each
/// but the first (what is left of the body is not read).
pub fn body_error(req: &HttpRequest, err: &BodyError) -> HttpResponse {
    let status = match err {
        BodyError::TooLarge(_) | BodyError::TooManyMessages(_) => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
    };
    static REFUSED: crate::ratelog::Throttle =
        crate::ratelog::Throttle::new("request bodies refused");
    REFUSED.warn(format_args!("{} {}: {err}", req.method(), req.path()));
    let mut res = cors(req, status);
    if !matches!(err, BodyError::TooLarge(_)) {
        res.force_close();
    }
    no_cache(&mut res).content_type(PLAIN).body(err.to_string())
}

/// A streaming response: chunked for HTTP/1.1, one frame per chunk; for an
/// HTTP/1.0 client raw bytes ended by closing the connection, since 1.0 has
/// no chunked encoding.
pub fn streaming<S>(req: &HttpRequest, mut res: HttpResponseBuilder, body: S) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
{
    let http10 = req.version() < Version::HTTP_11;
    if http10 {
        res.force_close();
    }
    let mut response = res.streaming(body);
    if http10 {
        response.head_mut().no_chunking(true);
    }
    response
}

/// The client's address: the TCP peer, or, when the peer is one of the
/// `trusted` reverse proxies, the last address in `X-Forwarded-For` that is
/// not itself a trusted proxy. Untrusted peers cannot spoof it.
pub fn client_address(req: &HttpRequest, trusted: &[std::net::IpAddr]) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|a| !trusted.contains(a))
            .unwrap_or(peer),
    )
}
