//! A sample auth service for `sockjsproxy --bridge-auth`: a 0MQ REP socket
//! that answers the proxy's questions with `{"allow": bool, "reason": ..}`.
//! Auth lives here, in any language; the proxy only obeys.
//!
//! This one lets every websocket in, and allows a connect when its params
//! carry `username = "hugo"` and `password = "monkey"`.
//!
//! ```text
//! cargo run --example bridge_auth -- tcp://127.0.0.1:10003
//! sockjsproxy --bridge /data --bridge-auth tcp://127.0.0.1:10003
//! ```

use serde_json::{Value, json};

fn decide(question: &Value) -> Value {
    match question["type"].as_str() {
        Some("websocket") => json!({"allow": true}),
        Some("connect") => {
            let params = &question["params"];
            if params["username"] == "hugo" && params["password"] == "monkey" {
                json!({"allow": true})
            } else {
                json!({"allow": false, "reason": "unknown user or wrong password"})
            }
        }
        _ => json!({"allow": false, "reason": "unknown question"}),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), tmq::TmqError> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:10003".to_string());
    let mut rep = tmq::reply(&tmq::Context::new())
        .set_linger(0)
        .bind(&endpoint)?;
    println!("auth service on {endpoint}");
    loop {
        let (request, sender) = rep.recv().await?;
        let body: Vec<u8> = request.iter().flat_map(|m| m.to_vec()).collect();
        let answer = match serde_json::from_slice(&body) {
            Ok(question) => decide(&question),
            Err(_) => json!({"allow": false, "reason": "bad question"}),
        };
        println!("{} -> {answer}", String::from_utf8_lossy(&body));
        let reply = answer.to_string();
        rep = sender
            .send(tmq::Multipart::from(vec![tmq::Message::from(
                reply.as_bytes(),
            )]))
            .await?;
    }
}
