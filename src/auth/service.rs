//! The auth service of a SockJS service (`auth = "tcp://host:port"`): a 0MQ
//! REP socket, in any language, asked once per new session whether it may
//! reach the backend. The message shape is `--bridge-auth`'s, so that one
//! service can serve both modes: the question is one JSON object,
//!
//! ```json
//! {"type": "sockjs", "remote_addr": "203.0.113.9", "transport": "websocket",
//!  "prefix": "/chat", "query": "token=...", "headers": {"user-agent": "..."}}
//! ```
//!
//! and the answer `{"allow": true, "user": "alice", "data": {...}}` or
//! `{"allow": false, "reason": "..."}`. Questions go over one DEALER
//! ([`crate::reqrep`]), many in flight, so a slow answer holds up only its
//! own session. No answer within the timeout, an answer that is not that
//! shape, a service that is down or overloaded: denied, logged, counted.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::reqrep::{self, ReqRepError};
use crate::sockjs::admission::{ConnectInfo, Decision};

/// Questions in flight to one auth service before new sessions are denied
/// at once as "busy".
const IN_FLIGHT: usize = 16 * 1024;
/// Longest reason passed on to the client.
const MAX_REASON: usize = 120;

/// `auth`'s settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    pub endpoint: String,
    pub timeout: Duration,
}

/// The client of one auth service. Its socket is made on first use, inside
/// the runtime that asks (tmq needs one).
pub struct AuthService {
    settings: ServiceSettings,
    zmq: tmq::Context,
    client: OnceLock<Result<reqrep::Client, String>>,
}

impl AuthService {
    pub fn new(zmq: tmq::Context, settings: ServiceSettings) -> AuthService {
        AuthService {
            settings,
            zmq,
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&reqrep::Client, &String> {
        self.client
            .get_or_init(|| {
                let limits = reqrep::Limits {
                    max_in_flight: IN_FLIGHT,
                    max_queue_bytes: 16 * 1024 * 1024,
                    ..reqrep::Limits::default()
                };
                let client = reqrep::Client::open(&self.zmq, &self.settings.endpoint, limits, None)
                    .map_err(|e| e.to_string())?;
                log::info!("asking auth service at {}", self.settings.endpoint);
                Ok(client)
            })
            .as_ref()
    }

    /// Asks about one new session; the future always ends, by the timeout
    /// at the latest.
    pub fn ask(
        self: &Arc<Self>,
        info: &ConnectInfo,
    ) -> impl std::future::Future<Output = Decision> + Send + 'static {
        let question = question(info);
        let asked = self
            .client()
            .map_err(|e| ReqRepError::Connect(self.settings.endpoint.clone(), e.clone()))
            .and_then(|c| c.request(question.into_bytes(), self.settings.timeout));
        async move {
            let answer = match asked {
                Ok(pending) => pending.await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(raw) => parse_answer(&raw),
                Err(e) => {
                    static FAILED: crate::ratelog::Throttle =
                        crate::ratelog::Throttle::new("auth service questions unanswered");
                    FAILED.warn(format_args!("{e}"));
                    match e {
                        ReqRepError::Timeout(..) => {
                            Decision::deny("service_timeout", "auth service did not answer")
                        }
                        _ => Decision::deny("service_unavailable", "auth service unavailable"),
                    }
                }
            }
        }
    }
}

fn question(info: &ConnectInfo) -> String {
    let mut object = serde_json::Map::new();
    object.insert("type".into(), "sockjs".into());
    info.to_json(&mut object);
    Value::Object(object).to_string()
}

/// `{"allow": bool, ...}`; anything else is garbage, and a denial.
fn parse_answer(raw: &[u8]) -> Decision {
    let garbage = || {
        static GARBAGE: crate::ratelog::Throttle =
            crate::ratelog::Throttle::new("auth service answers not understood");
        GARBAGE.warn(format_args!(
            "{:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(80)])
        ));
        Decision::deny("service_garbage", "auth service answer not understood")
    };
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(raw) else {
        return garbage();
    };
    match answer.get("allow") {
        Some(Value::Bool(true)) => {
            let user = match answer.get("user") {
                None | Some(Value::Null) => None,
                Some(Value::String(u)) => Some(u.clone()),
                Some(_) => return garbage(),
            };
            Decision::Allow {
                user,
                auth: answer.get("data").filter(|d| !d.is_null()).cloned(),
            }
        }
        Some(Value::Bool(false)) => {
            let reason = answer
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("denied by auth service");
            let reason: String = reason.chars().take(MAX_REASON).collect();
            Decision::deny("service_denied", reason)
        }
        _ => garbage(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_parse_and_anything_else_is_garbage() {
        assert_eq!(
            parse_answer(br#"{"allow":true,"user":"alice","data":{"role":"admin"}}"#),
            Decision::Allow {
                user: Some("alice".into()),
                auth: Some(json!({"role": "admin"}))
            }
        );
        assert_eq!(
            parse_answer(br#"{"allow":true}"#),
            Decision::Allow {
                user: None,
                auth: None
            }
        );
        assert_eq!(
            parse_answer(br#"{"allow":false,"reason":"banned"}"#),
            Decision::deny("service_denied", "banned")
        );
        let long = format!(r#"{{"allow":false,"reason":"{}"}}"#, "x".repeat(500));
        match parse_answer(long.as_bytes()) {
            Decision::Deny { reason, .. } => assert_eq!(reason.len(), MAX_REASON),
            other => panic!("{other:?}"),
        }
        for garbage in [
            &b"yes"[..],
            b"",
            b"\xff\xfe",
            br#"{"allow":"yes"}"#,
            br#"[true]"#,
            br#"{"allow":true,"user":42}"#,
        ] {
            assert_eq!(
                parse_answer(garbage),
                Decision::deny("service_garbage", "auth service answer not understood"),
                "{garbage:?}"
            );
        }
    }
}
