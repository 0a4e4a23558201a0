//! The auth service of `--bridge-auth ENDPOINT`: a 0MQ REP socket, in any
//! language, that the proxy asks before each websocket upgrade and each
//! connect, so that the web tier's only application code can live outside it.
//!
//! Questions are JSON objects with `"type": "websocket"` (path, headers,
//! remote address) or `"type": "connect"` (endpoint, socket type, msgfilter,
//! params, plus the websocket's path, remote address and the `session` value
//! the service returned for the upgrade). Answers are
//! `{"allow": bool, "reason": str, "session": any}`; anything else, and no
//! answer within the timeout, is a refusal: access is denied by default.
//!
//! One DEALER ([`crate::reqrep`]'s client) is shared by all questions, many
//! in flight at once; each carries a proxy-made id frame so that answers find
//! their question, and a REP service sees only the JSON body.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::reqrep::{self, ReqRepError};

/// Questions in flight before askers are refused at once.
const IN_FLIGHT: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("auth service {0} cannot be reached: {1}")]
    Socket(String, String),
    #[error("auth service is overloaded")]
    Busy,
    #[error("auth service did not answer within {0:?}")]
    Timeout(Duration),
    #[error("auth service answer is not {{\"allow\": bool}}")]
    BadAnswer,
}

/// What the service decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub allow: bool,
    pub reason: Option<String>,
    /// Opaque value from a websocket answer, passed back with each connect.
    pub session: Option<Value>,
}

/// The proxy's client of the auth service. Its socket is made on first use,
/// inside the runtime that asks (tmq needs one).
pub struct AuthClient {
    endpoint: String,
    zmq: tmq::Context,
    timeout: Duration,
    client: OnceLock<Result<reqrep::Client, AuthError>>,
}

impl AuthClient {
    pub fn new(zmq: tmq::Context, endpoint: String, timeout: Duration) -> AuthClient {
        AuthClient {
            endpoint,
            zmq,
            timeout,
            client: OnceLock::new(),
        }
    }

    /// Asks one question; any failure is an error, which callers treat as "no".
    pub async fn ask(&self, question: &Value) -> Result<Verdict, AuthError> {
        let client = self.client.get_or_init(|| self.start()).clone()?;
        let body = question.to_string().into_bytes();
        let raw = client.ask(body, self.timeout).await.map_err(|e| match e {
            ReqRepError::Busy(_) => AuthError::Busy,
            ReqRepError::Connect(endpoint, why) => AuthError::Socket(endpoint, why),
            _ => AuthError::Timeout(self.timeout),
        })?;
        parse_verdict(&raw)
    }

    fn start(&self) -> Result<reqrep::Client, AuthError> {
        let limits = reqrep::Limits {
            max_in_flight: IN_FLIGHT,
            max_queue_bytes: IN_FLIGHT * 4096,
            ..reqrep::Limits::default()
        };
        let client = reqrep::Client::open(&self.zmq, &self.endpoint, limits, None)
            .map_err(|e| AuthError::Socket(self.endpoint.clone(), e.to_string()))?;
        log::info!("bridge: asking auth service at {}", self.endpoint);
        Ok(client)
    }
}

fn parse_verdict(raw: &[u8]) -> Result<Verdict, AuthError> {
    let value: Value = serde_json::from_slice(raw).map_err(|_| AuthError::BadAnswer)?;
    let allow = value
        .get("allow")
        .and_then(Value::as_bool)
        .ok_or(AuthError::BadAnswer)?;
    Ok(Verdict {
        allow,
        reason: value
            .get("reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        session: value.get("session").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_and_garbage_is_refused() {
        let v = parse_verdict(br#"{"allow":true,"session":{"user":"hugo"}}"#).unwrap();
        assert!(v.allow);
        assert_eq!(v.session.unwrap()["user"], "hugo");
        let v = parse_verdict(br#"{"allow":false,"reason":"nope"}"#).unwrap();
        assert_eq!((v.allow, v.reason.as_deref()), (false, Some("nope")));
        assert_eq!(parse_verdict(b"yes"), Err(AuthError::BadAnswer));
        assert_eq!(
            parse_verdict(br#"{"allow":"yes"}"#),
            Err(AuthError::BadAnswer)
        );
    }
}
