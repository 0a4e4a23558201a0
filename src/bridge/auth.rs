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
//! One DEALER is shared by all questions; each carries a proxy-made envelope
//! frame so that answers find their question, and a REP service sees only the
//! JSON body.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// Questions waiting for the DEALER before askers are refused at once.
const QUEUE: usize = 1024;
/// How long a question may wait for 0MQ to take it.
const SEND_BOUND: Duration = Duration::from_secs(1);

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

struct Question {
    body: Vec<u8>,
    answer: oneshot::Sender<Vec<u8>>,
}

/// The proxy's client of the auth service. Its socket is made on first use,
/// inside the runtime that asks (tmq needs one).
pub struct AuthClient {
    endpoint: String,
    zmq: tmq::Context,
    timeout: Duration,
    queue: OnceLock<Result<mpsc::Sender<Question>, AuthError>>,
}

impl AuthClient {
    pub fn new(zmq: tmq::Context, endpoint: String, timeout: Duration) -> AuthClient {
        AuthClient {
            endpoint,
            zmq,
            timeout,
            queue: OnceLock::new(),
        }
    }

    /// Asks one question; any failure is an error, which callers treat as "no".
    pub async fn ask(&self, question: &Value) -> Result<Verdict, AuthError> {
        let queue = self.queue.get_or_init(|| self.start()).clone()?;
        let (answer, answered) = oneshot::channel();
        let body = question.to_string().into_bytes();
        queue
            .try_send(Question { body, answer })
            .map_err(|_| AuthError::Busy)?;
        let raw = match tokio::time::timeout(self.timeout, answered).await {
            Ok(Ok(raw)) => raw,
            _ => return Err(AuthError::Timeout(self.timeout)),
        };
        parse_verdict(&raw)
    }

    fn start(&self) -> Result<mpsc::Sender<Question>, AuthError> {
        let dealer = tmq::dealer(&self.zmq)
            .set_linger(0)
            .connect(&self.endpoint)
            .map_err(|e| AuthError::Socket(self.endpoint.clone(), e.to_string()))?;
        let (queue, questions) = mpsc::channel(QUEUE);
        tokio::spawn(run(dealer, questions, self.endpoint.clone()));
        log::info!("bridge: asking auth service at {}", self.endpoint);
        Ok(queue)
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

/// Owns the DEALER: sends questions as `[id, "", body]` and matches answers
/// `[id, "", answer]` to their askers.
async fn run(
    mut dealer: tmq::dealer::Dealer,
    mut questions: mpsc::Receiver<Question>,
    name: String,
) {
    let mut next_id: u64 = 0;
    let mut waiting: HashMap<Vec<u8>, oneshot::Sender<Vec<u8>>> = HashMap::new();
    loop {
        tokio::select! {
            question = questions.recv() => {
                let Some(question) = question else { break };
                next_id += 1;
                let id = format!("auth:{next_id:x}").into_bytes();
                let parts = vec![
                    tmq::Message::from(&id[..]),
                    tmq::Message::new(),
                    tmq::Message::from(&question.body[..]),
                ];
                let sent = tokio::time::timeout(SEND_BOUND, dealer.send(tmq::Multipart::from(parts))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    log::warn!("bridge: auth service {name}: question not sent");
                    continue; // the asker times out
                }
                // Askers that timed out leave closed senders behind.
                if waiting.len() >= QUEUE {
                    waiting.retain(|_, s| !s.is_closed());
                }
                waiting.insert(id, question.answer);
            }
            answer = dealer.next() => {
                let Some(Ok(answer)) = answer else {
                    log::error!("bridge: auth service {name}: receive failed");
                    break;
                };
                let parts: Vec<&[u8]> = answer.iter().map(|m| &m[..]).collect();
                let (Some(id), Some(body)) = (parts.first(), parts.last()) else { continue };
                match waiting.remove(*id) {
                    Some(asker) => { let _ = asker.send(body.to_vec()); }
                    None => log::debug!("bridge: late auth answer dropped"),
                }
            }
        }
    }
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
