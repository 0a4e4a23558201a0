//! Who is connected, and whether they may stay: the connection info of a new
//! session and the *admission* seam that decides on it before the
//! application hears of the session.
//!
//! The SockJS layer knows no 0MQ and no tokens: it builds a [`ConnectInfo`]
//! from the session's first request (client address through
//! `trusted_proxies`, transport, prefix, query string, an allowlist of
//! headers) and, when the service has one, asks its [`Admission`] (given
//! with the [`super::Service`]) for a [`Decision`]. The auth service client
//! and the JWT checker implement it elsewhere (`crate::auth`).
//!
//! While the decision is pending the session is open towards the client (it
//! has its `o` frame: sockjs-client gives a transport only a few hundred
//! milliseconds to open before trying the next one, so the open frame cannot
//! wait for a slow auth service), but the application knows nothing of it:
//! what the client sends waits in the session, bounded by `max_queue`
//! messages and `max_queue_bytes` (beyond, dropped and counted). An allow
//! opens the session towards the application (with `user` and `auth`) and
//! hands it the waiting messages in order; a deny closes the session with
//! `c[4403,"<reason>"]` and the application never hears of it. A raw
//! websocket, which has no open frame, is asked before the upgrade and gets
//! HTTP 403 instead.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;
use serde_json::{Map, Value};

use super::Service;
use super::metrics::Transport;

/// The close code of a denied session (4403: "forbidden", in the range
/// RFC 6455 leaves to applications).
pub const DENIED_CODE: u16 = 4403;

/// sockjs-node 0.3's safe headers, plus `origin`: what `connect_headers`
/// lists when it is not set. `cookie` and `authorization` are never in it.
pub const DEFAULT_HEADERS: [&str; 15] = [
    "referer",
    "x-client-ip",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-cluster-client-ip",
    "via",
    "x-real-ip",
    "x-forwarded-proto",
    "x-ssl",
    "dnt",
    "host",
    "user-agent",
    "accept-language",
    "origin",
];

/// What the proxy knows of a new session's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectInfo {
    /// The client's address, through the trusted proxies.
    pub remote_addr: Option<IpAddr>,
    pub transport: Transport,
    /// The service's prefix.
    pub prefix: String,
    /// The query string of the session's first request, undecoded.
    pub query: String,
    /// The allowed headers the first request carried (names in lower case).
    pub headers: Vec<(String, String)>,
}

impl ConnectInfo {
    /// The info of the request that opens a session; `allowed` are header
    /// names in lower case.
    pub fn of(
        req: &HttpRequest,
        service: &Service,
        transport: Transport,
        allowed: &[String],
    ) -> ConnectInfo {
        let headers = allowed
            .iter()
            .filter_map(|name| {
                let values: Vec<&str> = req
                    .headers()
                    .get_all(name.as_str())
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                (!values.is_empty()).then(|| (name.clone(), values.join(", ")))
            })
            .collect();
        ConnectInfo {
            remote_addr: super::http::client_address(req, &service.options.trusted_proxies),
            transport,
            prefix: service.prefix.clone(),
            query: req.query_string().to_string(),
            headers,
        }
    }

    /// Adds the info's fields to a JSON object.
    pub fn to_json(&self, into: &mut Map<String, Value>) {
        let headers: Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        into.insert(
            "remote_addr".into(),
            self.remote_addr.map(|a| a.to_string()).into(),
        );
        into.insert("transport".into(), self.transport.name().into());
        into.insert("prefix".into(), self.prefix.as_str().into());
        into.insert("query".into(), self.query.as_str().into());
        into.insert("headers".into(), Value::Object(headers));
    }
}

/// Who the application is told of in `on_open`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Connected {
    /// Set when the service gives connection info.
    pub info: Option<Arc<ConnectInfo>>,
    /// Set by an admission that names the user.
    pub user: Option<String>,
    /// What an admission adds about the user (claims, service data).
    pub auth: Option<Value>,
}

impl Connected {
    /// The `connect` data: one JSON object, or `None` when there is nothing
    /// to say (neither connection info nor an admission), as in SockJSProxy 0.7.
    pub fn to_json(&self) -> Option<String> {
        if self.info.is_none() && self.user.is_none() && self.auth.is_none() {
            return None;
        }
        let mut object = Map::new();
        if let Some(info) = &self.info {
            info.to_json(&mut object);
        }
        if let Some(user) = &self.user {
            object.insert("user".into(), user.as_str().into());
        }
        if let Some(auth) = &self.auth {
            object.insert("auth".into(), auth.clone());
        }
        Some(Value::Object(object).to_string())
    }
}

/// An admission's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allow {
        user: Option<String>,
        auth: Option<Value>,
    },
    Deny {
        /// What the client reads in the close frame.
        reason: String,
        /// The metrics label, one of a fixed few.
        label: &'static str,
    },
}

impl Decision {
    pub fn deny(label: &'static str, reason: impl Into<String>) -> Decision {
        Decision::Deny {
            reason: reason.into(),
            label,
        }
    }

    /// Both must allow; the first denial wins; users and auth data merge
    /// (the later's user, both auth objects).
    pub fn and(self, other: Decision) -> Decision {
        match (self, other) {
            (deny @ Decision::Deny { .. }, _) | (_, deny @ Decision::Deny { .. }) => deny,
            (Decision::Allow { user: u1, auth: a1 }, Decision::Allow { user: u2, auth: a2 }) => {
                Decision::Allow {
                    user: u2.or(u1),
                    auth: match (a1, a2) {
                        (Some(Value::Object(mut a)), Some(Value::Object(b))) => {
                            a.extend(b);
                            Some(Value::Object(a))
                        }
                        (a, b) => b.or(a),
                    },
                }
            }
        }
    }
}

/// A decision still to come.
pub type Pending = Pin<Box<dyn Future<Output = Decision> + Send + 'static>>;

/// Decides whether a new session may reach the application. Called on the
/// actix worker that serves the request: take what is needed from `headers`
/// and return at once; the future does the waiting. It must end (a timeout
/// is the implementation's to set).
pub trait Admission: Send + Sync + 'static {
    fn admit(&self, info: &Arc<ConnectInfo>, headers: &HeaderMap) -> Pending;
}

/// How a new session learns whether it may reach the application.
pub(crate) enum Admit {
    /// Already known (no admission, or a raw websocket asked before upgrading).
    Known(Connected),
    /// The admission's future decides; `Connected` is what is known so far.
    Ask(Connected, Pending),
}

/// What a new session starts with, from its first request: connection info
/// when the service gives it, and the admission's pending decision.
pub(crate) fn admit(req: &HttpRequest, service: &Service, transport: Transport) -> Admit {
    let options = &service.options;
    if !options.connect_info && service.admission.is_none() {
        return Admit::Known(Connected::default());
    }
    let info = Arc::new(ConnectInfo::of(
        req,
        service,
        transport,
        &options.connect_headers,
    ));
    let connected = Connected {
        info: options.connect_info.then(|| info.clone()),
        ..Connected::default()
    };
    match &service.admission {
        None => Admit::Known(connected),
        Some(a) => Admit::Ask(connected, a.admit(&info, req.headers())),
    }
}

/// Lower-cases a list of header names, for `Options::connect_headers`.
pub fn header_names<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    names
        .iter()
        .map(|n| n.as_ref().to_ascii_lowercase())
        .collect()
}

/// A fixed decision, for tests and for services that refuse everyone.
pub struct Fixed(pub Decision);

impl Admission for Fixed {
    fn admit(&self, _: &Arc<ConnectInfo>, _: &HeaderMap) -> Pending {
        let d = self.0.clone();
        Box::pin(async move { d })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn allow(user: &str, auth: Value) -> Decision {
        Decision::Allow {
            user: Some(user.into()),
            auth: Some(auth),
        }
    }

    #[test]
    fn with_nothing_to_say_connect_data_stays_empty() {
        assert_eq!(Connected::default().to_json(), None);
    }

    #[test]
    fn connect_json_has_the_info_and_the_user() {
        let info = ConnectInfo {
            remote_addr: Some("10.0.0.1".parse().unwrap()),
            transport: Transport::XhrStreaming,
            prefix: "/echo".into(),
            query: "a=1&token=x".into(),
            headers: vec![("user-agent".into(), "test".into())],
        };
        let c = Connected {
            info: Some(Arc::new(info)),
            user: Some("alice".into()),
            auth: Some(json!({"role": "admin"})),
        };
        let v: Value = serde_json::from_str(&c.to_json().unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"remote_addr": "10.0.0.1", "transport": "xhr_streaming",
                   "prefix": "/echo", "query": "a=1&token=x",
                   "headers": {"user-agent": "test"},
                   "user": "alice", "auth": {"role": "admin"}})
        );
        let only_user = Connected {
            user: Some("bob".into()),
            ..Connected::default()
        };
        assert_eq!(only_user.to_json().unwrap(), r#"{"user":"bob"}"#);
    }

    #[test]
    fn both_must_allow_and_the_first_denial_wins() {
        let no = Decision::deny("jwt_expired", "token expired");
        let other = Decision::deny("service", "nope");
        assert_eq!(allow("a", json!({})).and(no.clone()), no);
        assert_eq!(no.clone().and(other.clone()), no);
        assert_eq!(
            allow("a", json!({"x": 1})).and(allow("b", json!({"y": 2}))),
            allow("b", json!({"x": 1, "y": 2}))
        );
    }

    #[test]
    fn the_default_headers_never_include_credentials() {
        assert!(!DEFAULT_HEADERS.contains(&"cookie"));
        assert!(!DEFAULT_HEADERS.contains(&"authorization"));
        assert_eq!(header_names(&["User-Agent"]), vec!["user-agent"]);
    }
}
