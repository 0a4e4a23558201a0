//! Finds the service and the endpoint for a request path. The protocol's URL
//! space under a service prefix is small and fixed:
//!
//! ```text
//! /                            greeting
//! /info                        server capabilities
//! /iframe[-version].html       iframe page
//! /websocket                   raw websocket
//! /<server>/<session>/<transport>
//! ```
//!
//! `server` and `session` must be non-empty and contain no dot; anything else
//! is a 404.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::transport::{eventsource, htmlfile, jsonp, websocket, xhr, xhr_streaming};
use super::{Service, http, pages};

/// The services of one server, longest prefix first so that `/a/b` wins over `/a`.
pub struct Services(Vec<Arc<Service>>);

impl Services {
    pub fn new(mut services: Vec<Arc<Service>>) -> Services {
        services.sort_by_key(|s| std::cmp::Reverse(s.prefix.len()));
        Services(services)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.0.iter()
    }

    /// The service whose prefix the path starts with, and the rest of the path.
    fn find<'p>(&self, path: &'p str) -> Option<(&Arc<Service>, &'p str)> {
        self.0.iter().find_map(|s| {
            let rest = path.strip_prefix(s.prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((s, rest))
        })
    }
}

/// The actix handler for every path the SockJS services own.
pub async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    services: web::Data<Services>,
) -> HttpResponse {
    let path = req.path().to_string();
    let Some((service, rest)) = services.find(&path) else {
        return http::not_found();
    };
    let service = service.clone();
    if log::log_enabled!(log::Level::Debug) {
        let client = http::client_address(&req, &service.options.trusted_proxies);
        log::debug!("{} {} from {client:?}", req.method(), req.path());
    }
    if let Some(origin) = req.headers().get(header::ORIGIN)
        && !service.options.origin_allowed(origin.as_bytes())
    {
        static REFUSED: crate::ratelog::Throttle =
            crate::ratelog::Throttle::new("requests from origins not allowed refused");
        REFUSED.warn(format_args!(
            "{} {}: origin {origin:?} not allowed",
            req.method(),
            req.path()
        ));
        return HttpResponse::Forbidden()
            .content_type(http::PLAIN)
            .body("Origin not allowed");
    }
    match rest {
        "" | "/" => pages::greeting(&req),
        "/info" => pages::info(&req, &service),
        "/websocket" => websocket::websocket(req, payload, service, websocket::Framing::Raw).await,
        name if pages::is_iframe_path(name) => pages::iframe(&req, &service),
        _ => match session_path(rest) {
            Some((id, transport)) => session_endpoint(req, payload, service, id, transport).await,
            None => http::not_found(),
        },
    }
}

/// Longest server or session id accepted.
const MAX_ID_LEN: usize = 128;

/// Splits `/<server>/<session>/<transport>`.
fn session_path(rest: &str) -> Option<(&str, &str)> {
    let mut parts = rest.strip_prefix('/')?.split('/');
    let (server, session, transport) = (parts.next()?, parts.next()?, parts.next()?);
    // Ids are the client's choice; keep them short and printable so that
    // they are safe in logs and maps.
    let valid = |s: &str| {
        (1..=MAX_ID_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic() && b != b'.')
    };
    (parts.next().is_none() && valid(server) && valid(session)).then_some((session, transport))
}

async fn session_endpoint(
    req: HttpRequest,
    payload: web::Payload,
    service: Arc<Service>,
    id: &str,
    transport: &str,
) -> HttpResponse {
    match transport {
        "websocket" => {
            websocket::websocket(req, payload, service, websocket::Framing::SockJs).await
        }
        "xhr" => xhr::xhr(req, service, id).await,
        "xhr_send" => xhr::xhr_send(req, payload, service, id).await,
        "xhr_streaming" => xhr_streaming::xhr_streaming(req, service, id).await,
        "eventsource" => eventsource::eventsource(req, service, id).await,
        "htmlfile" => htmlfile::htmlfile(req, service, id).await,
        "jsonp" => jsonp::jsonp(req, service, id).await,
        "jsonp_send" => jsonp::jsonp_send(req, payload, service, id).await,
        _ => http::not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_urls_need_three_parts_without_dots() {
        assert_eq!(session_path("/000/abc/xhr"), Some(("abc", "xhr")));
        assert_eq!(session_path("/_/_1/xhr"), Some(("_1", "xhr")));
        for bad in [
            "//xhr",
            "/a./a/xhr",
            "/a/a./xhr",
            "/./././xhr",
            "/a/xhr",
            "/a/b/c/d",
        ] {
            assert_eq!(session_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_are_at_most_128_printable_ascii_characters() {
        let max = "x".repeat(MAX_ID_LEN);
        assert!(session_path(&format!("/0/{max}/xhr")).is_some());
        assert!(session_path(&format!("/{max}/s/xhr")).is_some());
        let over = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(session_path(&format!("/0/{over}/xhr")), None);
        assert_eq!(session_path(&format!("/{over}/s/xhr")), None);
        for bad in [
            "a\u{1}b",
            "a\tb",
            "a b",
            "a\u{7f}b",
            "caf\u{e9}",
            "\u{2028}",
        ] {
            assert_eq!(session_path(&format!("/0/{bad}/xhr")), None, "{bad:?}");
        }
    }
}
