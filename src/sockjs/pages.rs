//! A service's endpoints that are not sessions: the greeting at its root, the
//! `/info` document the client reads first, and the iframe page that carries
//! the transports a page cannot use cross-origin.

use std::hash::{BuildHasher, Hasher};

use actix_web::http::header::{self, EntityTag, IfNoneMatch};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};

use super::Service;
use super::http::{self, cache_for_a_year, cors, no_cache};

pub fn greeting(req: &HttpRequest) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return http::method_not_allowed("GET, HEAD");
    }
    HttpResponse::Ok()
        .content_type(http::PLAIN)
        .body("Welcome to SockJS!\n")
}

/// `/info`: what the server offers, read by the client before it picks a
/// transport. `entropy` seeds the client's random numbers.
pub fn info(req: &HttpRequest, service: &Service) -> HttpResponse {
    match *req.method() {
        Method::OPTIONS => http::preflight(req, "OPTIONS, GET"),
        Method::GET => {
            let entropy = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish() as u32;
            let body = serde_json::json!({
                "websocket": service.options.websocket,
                "cookie_needed": service.options.cookie_needed,
                "origins": service.options.origins,
                "entropy": entropy,
            });
            let mut res = cors(req, StatusCode::OK);
            no_cache(&mut res)
                .content_type(http::JSON)
                .body(body.to_string())
        }
        _ => http::method_not_allowed("OPTIONS, GET"),
    }
}

/// Whether `name` (after the prefix) is one of the iframe page's names:
/// `/iframe.html` or a versioned `/iframe-1.6.1.html`.
pub fn is_iframe_path(name: &str) -> bool {
    name.strip_prefix("/iframe")
        .and_then(|rest| rest.strip_suffix(".html"))
        .is_some_and(|middle| {
            middle
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
        })
}

pub fn iframe_page(sockjs_url: &str) -> String {
    let url = sockjs_url
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;");
    format!(
        r#"<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"#
    )
}

/// The iframe page, strongly cached: the same page for every version suffix,
/// with an ETag so that a revalidation costs a 304.
pub fn iframe(req: &HttpRequest, service: &Service) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return http::method_not_allowed("GET, HEAD");
    }
    let body = iframe_page(&service.options.sockjs_url);
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(body.as_bytes());
    let etag = EntityTag::new_strong(format!("{:016x}", hasher.finish()));

    let not_modified = match req.get_header::<IfNoneMatch>() {
        Some(IfNoneMatch::Any) => true,
        Some(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&etag)),
        None => false,
    };
    if not_modified {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish();
    }
    let mut res = HttpResponse::Ok();
    cache_for_a_year(&mut res)
        .insert_header((header::ETAG, etag))
        .content_type(http::HTML)
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iframe_page_names_are_versioned_lowercase_html() {
        for ok in [
            "/iframe.html",
            "/iframe-a.html",
            "/iframe-.html",
            "/iframe-0.1.2abc-dirty.2144.html",
        ] {
            assert!(is_iframe_path(ok), "{ok}");
        }
        for bad in [
            "/iframe.htm",
            "/iframe",
            "/IFRAME.HTML",
            "/iframe.HTML",
            "/iframe.xml",
            "/iframe-/.html",
        ] {
            assert!(!is_iframe_path(bad), "{bad}");
        }
    }

    #[test]
    fn iframe_page_loads_the_configured_client() {
        assert!(iframe_page("/sockjs.js").contains(r#"<script src="/sockjs.js"></script>"#));
    }
}
