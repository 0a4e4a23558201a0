//! `[[mongrel2]]` routes in the config file, with the names of a Mongrel2
//! `Handler` (`send_spec`, `send_ident`, `recv_spec`, `recv_ident`,
//! `protocol`) and its `route`, checked here and handed to
//! [`crate::mongrel2`] as [`link::Settings`]:
//!
//! ```toml
//! [[mongrel2]]
//! route = "/handlertest"
//! send_spec = "tcp://127.0.0.1:9997"
//! send_ident = "54c6755b-9628-40a4-9a2d-cc82a816345e"
//! recv_spec = "tcp://127.0.0.1:9996"
//! recv_ident = ""
//! protocol = "json"            # or "tnetstring"
//! handler_timeout_ms = 30000
//! max_message_bytes = 1048576  # largest request body or websocket message
//! body_timeout_ms = 10000      # a request body must arrive within this: else 408
//! reply_queue_bytes = 1048576  # replies held for a client that does not read
//! ```
//!
//! `max_message_bytes` and `body_timeout_ms` default to the global ones
//! (`--max-message-bytes`, `--body-timeout-ms`). A `[[service]]` with
//! `backend = "mongrel2"` holds for each session at most its
//! `max_queue_bytes` of replies.

use serde::Deserialize;
use std::collections::HashSet;

use super::ConfigError;
use super::checks::{millis, normalize_prefix, positive};
use crate::backend::endpoint;
use crate::mongrel2::link::{self, Settings};
use crate::mongrel2::request::Protocol;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRoute {
    route: String,
    send_spec: String,
    send_ident: String,
    recv_spec: String,
    #[serde(default)]
    recv_ident: String,
    protocol: Option<String>,
    handler_timeout_ms: Option<u64>,
    max_message_bytes: Option<usize>,
    body_timeout_ms: Option<u64>,
    reply_queue_bytes: Option<usize>,
}

/// What a route does not say takes these.
#[derive(Debug, Clone, Copy)]
pub(super) struct Defaults {
    pub max_message_bytes: usize,
    pub body_timeout: Duration,
    pub reply_queue_bytes: usize,
}

impl Defaults {
    /// A route's defaults: the global limits.
    pub fn global(options: &crate::sockjs::Options) -> Defaults {
        Defaults {
            max_message_bytes: options.max_message_bytes,
            body_timeout: options.body_timeout,
            reply_queue_bytes: link::REPLY_QUEUE_BYTES,
        }
    }
}

fn bad(message: String) -> ConfigError {
    ConfigError::Mongrel2(message)
}

/// Checks every route.
pub(super) fn routes_from_file(
    routes: &[FileRoute],
    defaults: Defaults,
) -> Result<Vec<Settings>, ConfigError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in routes {
        let route = normalize_prefix(&r.route)?;
        if !seen.insert(route.clone()) {
            return Err(bad(format!(
                "mongrel2 route {:?} is defined twice",
                r.route
            )));
        }
        out.push(Settings {
            route,
            send_spec: endpoint::check(&r.send_spec)?,
            send_ident: sender_ident(&r.send_ident)?,
            recv_spec: endpoint::check(&r.recv_spec)?,
            recv_ident: r.recv_ident.clone(),
            protocol: protocol(r.protocol.as_deref())?,
            handler_timeout: millis(
                "handler_timeout_ms",
                r.handler_timeout_ms,
                link::HANDLER_TIMEOUT,
            )?,
            max_message_bytes: positive(
                "max_message_bytes",
                r.max_message_bytes.unwrap_or(defaults.max_message_bytes),
            )?,
            body_timeout: millis("body_timeout_ms", r.body_timeout_ms, defaults.body_timeout)?,
            serves: link::Serves::Route,
            reply_queue_bytes: positive(
                "reply_queue_bytes",
                r.reply_queue_bytes.unwrap_or(defaults.reply_queue_bytes),
            )?,
        });
    }
    Ok(out)
}

/// A `send_ident` is what replies start with: letters, digits and `-`, as
/// Mongrel2's reply grammar allows.
pub(super) fn sender_ident(ident: &str) -> Result<String, ConfigError> {
    let ok = !ident.is_empty()
        && ident.len() <= 128
        && ident
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(ident.to_string())
    } else {
        Err(bad(format!(
            "bad send_ident {ident:?}: it must be 1 to 128 letters, digits or '-'"
        )))
    }
}

pub(super) fn protocol(name: Option<&str>) -> Result<Protocol, ConfigError> {
    match name {
        None | Some("json") => Ok(Protocol::Json),
        Some("tnetstring") => Ok(Protocol::Tnetstring),
        Some(other) => Err(bad(format!(
            "bad protocol {other:?}: it must be \"json\" or \"tnetstring\""
        ))),
    }
}

/// A `[[service]]`'s Mongrel2 handler: `Some` for `backend = "mongrel2"`
/// (which takes the handler keys and not `push`/`pull`).
pub(super) fn service_handler(
    s: &super::FileService,
    prefix: &str,
    options: &crate::sockjs::Options,
) -> Result<Option<Settings>, ConfigError> {
    let service = if prefix.is_empty() { "/" } else { prefix };
    let handler_keys = [
        ("send_spec", s.send_spec.is_some()),
        ("send_ident", s.send_ident.is_some()),
        ("recv_spec", s.recv_spec.is_some()),
        ("recv_ident", s.recv_ident.is_some()),
        ("protocol", s.protocol.is_some()),
        ("handler_timeout_ms", s.handler_timeout_ms.is_some()),
    ];
    match s.backend.as_deref() {
        None | Some("zmq") => match handler_keys.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(bad(format!(
                "service {service}: {key} needs backend = \"mongrel2\""
            ))),
            None => Ok(None),
        },
        Some("mongrel2") => {
            if s.push.is_some() || s.pull.is_some() {
                return Err(bad(format!(
                    "service {service}: a mongrel2 backend takes send_spec and recv_spec, not push and pull"
                )));
            }
            let need = |key: &str, v: &Option<String>| {
                v.clone().ok_or_else(|| {
                    bad(format!(
                        "service {service}: backend = \"mongrel2\" needs {key}"
                    ))
                })
            };
            let file = FileRoute {
                route: if prefix.is_empty() {
                    "/".into()
                } else {
                    prefix.into()
                },
                send_spec: need("send_spec", &s.send_spec)?,
                send_ident: need("send_ident", &s.send_ident)?,
                recv_spec: need("recv_spec", &s.recv_spec)?,
                recv_ident: s.recv_ident.clone().unwrap_or_default(),
                protocol: s.protocol.clone(),
                handler_timeout_ms: s.handler_timeout_ms,
                max_message_bytes: None,
                body_timeout_ms: None,
                reply_queue_bytes: None,
            };
            // A session's replies are bounded as its outgoing messages are.
            let defaults = Defaults {
                reply_queue_bytes: options.max_queue_bytes,
                ..Defaults::global(options)
            };
            let mut settings = routes_from_file(&[file], defaults)?;
            Ok(settings.pop().map(|s| link::Settings {
                serves: link::Serves::SockjsService,
                ..s
            }))
        }
        Some(other) => Err(bad(format!(
            "service {service}: bad backend {other:?}: it must be \"zmq\" or \"mongrel2\""
        ))),
    }
}

/// A zmq service's `push` and `pull`, which it must have.
pub(super) fn zmq_endpoints(
    s: &super::FileService,
    prefix: &str,
) -> Result<(String, String), ConfigError> {
    let service = if prefix.is_empty() { "/" } else { prefix };
    match (&s.push, &s.pull) {
        (Some(push), Some(pull)) => Ok((push.clone(), pull.clone())),
        _ => Err(bad(format!(
            "service {service}: push and pull are required"
        ))),
    }
}

/// Routes and services share the URL space and the endpoints: no prefix
/// and no endpoint twice.
pub(super) fn check_against_services(
    routes: &[Settings],
    services: &[super::ServiceConfig],
) -> Result<(), ConfigError> {
    let mut endpoints: HashSet<&str> = services
        .iter()
        .flat_map(|s| [s.backend.push.as_str(), s.backend.pull.as_str()])
        .collect();
    for r in routes {
        if services.iter().any(|s| s.prefix == r.route) {
            return Err(ConfigError::DuplicatePrefix(r.route.clone()));
        }
        for e in [&r.send_spec, &r.recv_spec] {
            if !endpoints.insert(e.as_str()) {
                return Err(ConfigError::DuplicateEndpoint(e.clone()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn route(toml: &str) -> Result<Vec<Settings>, ConfigError> {
        #[derive(Deserialize)]
        struct F {
            mongrel2: Vec<FileRoute>,
        }
        let f: F = toml::from_str(toml).map_err(|e| bad(e.to_string()))?;
        let defaults = Defaults {
            max_message_bytes: 1000,
            body_timeout: Duration::from_secs(10),
            reply_queue_bytes: link::REPLY_QUEUE_BYTES,
        };
        routes_from_file(&f.mongrel2, defaults)
    }

    const OK: &str = r#"
        [[mongrel2]]
        route = "/m2/"
        send_spec = "tcp://127.0.0.1:9997"
        send_ident = "54c6755b-9628-40a4-9a2d-cc82a816345e"
        recv_spec = "tcp://127.0.0.1:9996"
    "#;

    #[test]
    fn a_route_with_mongrel2s_names() {
        let r = &route(OK).unwrap()[0];
        assert_eq!(r.route, "/m2");
        assert_eq!(r.protocol, Protocol::Json);
        assert_eq!(r.handler_timeout, Duration::from_secs(30));
        assert_eq!(r.max_message_bytes, 1000);
        assert_eq!(r.body_timeout, Duration::from_secs(10));
        assert_eq!(r.reply_queue_bytes, 1 << 20);
        let t = route(&format!(
            "{OK}protocol = \"tnetstring\"\nhandler_timeout_ms = 50\n\
             body_timeout_ms = 70\nreply_queue_bytes = 4096"
        ))
        .unwrap();
        assert_eq!(
            (t[0].protocol, t[0].handler_timeout, t[0].body_timeout),
            (
                Protocol::Tnetstring,
                Duration::from_millis(50),
                Duration::from_millis(70)
            )
        );
        assert_eq!(t[0].reply_queue_bytes, 4096);
    }

    #[test]
    fn mistakes_are_one_line_errors() {
        let err = |extra: &str| route(&format!("{OK}{extra}")).unwrap_err().to_string();
        assert!(err("protocol = \"xml\"").contains("bad protocol \"xml\""));
        assert!(err("handler_timeout_ms = 0").contains("handler_timeout_ms"));
        assert!(err("body_timeout_ms = 0").contains("body_timeout_ms"));
        assert!(err("reply_queue_bytes = 0").contains("reply_queue_bytes"));
        assert!(err("typo = 1").contains("unknown field"));
        let twice = format!("{OK}{OK}");
        assert!(
            route(&twice)
                .unwrap_err()
                .to_string()
                .contains("defined twice")
        );
        let ident = OK.replace("54c6755b-9628-40a4-9a2d-cc82a816345e", "a b");
        assert!(
            route(&ident)
                .unwrap_err()
                .to_string()
                .contains("bad send_ident")
        );
        let spec = OK.replace("tcp://127.0.0.1:9997", "udp://x");
        assert!(route(&spec).is_err());
    }

    #[test]
    fn a_service_with_a_mongrel2_backend() {
        let service = |toml: &str| {
            let s: crate::config::FileService = toml::from_str(toml).unwrap();
            let options = crate::sockjs::Options {
                max_message_bytes: 500,
                max_queue_bytes: 7000,
                ..Default::default()
            };
            service_handler(&s, "/chat", &options)
        };
        let ok = "prefix = \"/chat\"\nbackend = \"mongrel2\"\nsend_spec = \"tcp://127.0.0.1:1\"\n\
                  send_ident = \"abc\"\nrecv_spec = \"tcp://127.0.0.1:2\"\n";
        let h = service(ok).unwrap().unwrap();
        assert_eq!(
            (h.route.as_str(), h.send_ident.as_str(), h.max_message_bytes),
            ("/chat", "abc", 500)
        );
        assert_eq!(h.reply_queue_bytes, 7000);
        let err = |toml: &str| service(toml).unwrap_err().to_string();
        assert!(err(&format!("{ok}push = \"tcp://127.0.0.1:3\"")).contains("not push and pull"));
        assert!(err(&ok.replace("send_ident = \"abc\"\n", "")).contains("needs send_ident"));
        assert!(err(&ok.replace("mongrel2", "http")).contains("bad backend"));
        let zmq =
            "prefix = \"/chat\"\npush = \"tcp://127.0.0.1:3\"\npull = \"tcp://127.0.0.1:4\"\n";
        assert!(service(zmq).unwrap().is_none());
        assert!(err(&format!("{zmq}send_spec = \"tcp://127.0.0.1:1\"")).contains("needs backend"));
    }
}
