//! A sample auth service in Rust: a ROUTER that answers the proxy's
//! questions like a REP service would, but many at once (the proxy keeps
//! many in flight on one DEALER). It lets in the users of `USERS`, named by
//! the session's `token` query parameter; see `samples/auth_service.py` for
//! the message shapes, and README.rst, "Who is connected".
//!
//! ```text
//! target/release/examples/auth_service tcp://127.0.0.1:9250 &
//! target/release/sockjsproxy --samples samples --connect-info --auth tcp://127.0.0.1:9250
//! ```

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

const USERS: [(&str, &str); 2] = [("alice", "admin"), ("bob", "user")];

fn decide(question: &[u8]) -> Value {
    let Ok(question) = serde_json::from_slice::<Value>(question) else {
        return json!({"allow": false, "reason": "bad question"});
    };
    let query = question["query"].as_str().unwrap_or("");
    let token: Option<String> = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .find_map(|(k, v)| (k == "token").then_some(v));
    match token {
        None => json!({"allow": false, "reason": "token missing"}),
        Some(t) => match USERS.iter().find(|(name, _)| *name == t) {
            Some((name, role)) => json!({"allow": true, "user": name, "data": {"role": role}}),
            None => json!({"allow": false, "reason": "unknown user"}),
        },
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:9250".into());
    let zmq = tmq::Context::new();
    let mut router = match tmq::router(&zmq).bind(&bind) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("auth_service: cannot bind {bind}: {e}");
            std::process::exit(2);
        }
    };
    log::info!("auth service on {bind}");
    while let Some(Ok(question)) = router.next().await {
        // [peer, id, "", body]: everything but the body goes back as it came.
        let mut parts: Vec<tmq::Message> = question.into_iter().collect();
        let Some(body) = parts.pop() else { continue };
        let answer = decide(&body).to_string();
        parts.push(tmq::Message::from(answer.as_bytes()));
        if router.send(tmq::Multipart::from(parts)).await.is_err() {
            break;
        }
    }
}
