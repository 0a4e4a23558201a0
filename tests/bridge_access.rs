//! Bridge access control, deny by default: the policy file, the auth service
//! (a real 0MQ REP peer answering JSON), and both together.

mod common;

use std::time::{Duration, Instant};

use common::bridge::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Error as WsError;

const REQ: i64 = 3;
const SUB: i64 = 2;

#[tokio::test]
async fn without_policy_or_auth_every_connect_is_denied() {
    let ep = endpoint();
    rep_peer(&ep, echo(""));
    let proxy = BridgeProxy::start(&[]).await;
    let mut c = proxy.client().await;
    let reply = c.connect_socket("A", &ep, REQ, json!({})).await;
    assert_error(&reply, "A", "connection_reply", "denied");
    c.send_data("A", "hi").await;
    assert_error(&c.recv().await, "A", "error", "not connected");
}

#[tokio::test]
async fn the_policy_allows_exactly_its_rules() {
    let (rep_ep, pub_ep, other_ep) = (endpoint(), endpoint(), endpoint());
    rep_peer(&rep_ep, echo("re:"));
    let policy = policy_file(&format!(
        r#"
        [[allow]]
        endpoint = "{rep_ep}"
        socket_types = ["REQ"]

        [[allow]]
        endpoint = "{pub_ep}"
        socket_types = ["SUB"]
        params = {{ username = "hugo" }}
        "#
    ));
    let policy = policy.display().to_string();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut c = proxy.client().await;

    assert_connected(&c.connect_socket("R", &rep_ep, REQ, json!({})).await, "R");
    c.send_data("R", "x").await;
    assert_eq!(c.recv().await["content"], "re:x");
    let wrong_type = c.connect_socket("W", &rep_ep, SUB, json!({})).await;
    assert_error(&wrong_type, "W", "connection_reply", "denied by policy");
    let elsewhere = c.connect_socket("W", &other_ep, REQ, json!({})).await;
    assert_error(&elsewhere, "W", "connection_reply", "denied by policy");
    let eve = c
        .connect_socket("W", &pub_ep, SUB, json!({"username": "eve"}))
        .await;
    assert_error(&eve, "W", "connection_reply", "denied by policy");
    let nobody = c.connect_socket("W", &pub_ep, SUB, json!({})).await;
    assert_error(&nobody, "W", "connection_reply", "denied by policy");
    let hugo = c
        .connect_socket("H", &pub_ep, SUB, json!({"username": "hugo"}))
        .await;
    assert_connected(&hugo, "H");
}

/// Runs the binary with `args`, expecting it to refuse them at start-up.
fn refused_at_start(args: &[&str], needle: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sockjsproxy"))
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
}

#[tokio::test]
async fn bad_bridge_settings_stop_the_proxy_at_start() {
    let policy = policy_file("[[allow]]\nendpoint = \"tcp://*:1\"\nsocket_types = [\"REP\"]\n");
    let policy = policy.display().to_string();
    refused_at_start(
        &["--bridge", "/data", "--bridge-policy", &policy],
        "bad bridge policy",
    );
    refused_at_start(
        &["--bridge", "/data", "--bridge-policy", "/nonexistent.toml"],
        "cannot read",
    );
    refused_at_start(&["--bridge", "data"], "bad --bridge path");
    refused_at_start(
        &["--bridge", "/data", "--bridge-auth", "tcp://x"],
        "bad --bridge-auth",
    );
    refused_at_start(
        &["--bridge", "/data", "--bridge-timeout", "0"],
        "--bridge-timeout",
    );
    refused_at_start(&["--bridge-timeout", "3"], "--bridge");
    refused_at_start(&["--bridge-policy", &policy], "--bridge");
}

/// The auth service of these tests: websockets need header `x-token: good`
/// and get session {"user": "hugo"}; connects need that session, password
/// "monkey" and the allowed endpoint.
fn auth_answer(allowed_ep: String) -> impl Fn(&str) -> (Duration, String) + Send + 'static {
    move |question| {
        let q: Value = serde_json::from_str(question).unwrap();
        let answer = match q["type"].as_str() {
            Some("websocket") if q["headers"]["x-token"] == "good" => {
                json!({"allow": true, "session": {"user": "hugo"}})
            }
            Some("websocket") => json!({"allow": false, "reason": "bad token"}),
            Some("connect")
                if q["session"]["user"] == "hugo"
                    && q["params"]["password"] == "monkey"
                    && q["endpoint"] == allowed_ep.as_str() =>
            {
                json!({"allow": true})
            }
            Some("connect") => json!({"allow": false, "reason": "wrong password"}),
            _ => json!({"allow": false}),
        };
        (Duration::ZERO, answer.to_string())
    }
}

#[tokio::test]
async fn the_auth_service_decides_upgrades_and_connects() {
    let (rep_ep, auth_ep) = (endpoint(), endpoint());
    rep_peer(&rep_ep, echo("re:"));
    let questions = rep_peer(&auth_ep, auth_answer(rep_ep.clone()));
    let proxy = BridgeProxy::start(&["--bridge-auth", &auth_ep]).await;

    match Client::connect(&proxy.url(), &[("x-token", "bad")]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("upgrade with a bad token was allowed"),
    }
    let mut c = Client::connect(&proxy.url(), &[("x-token", "good")])
        .await
        .unwrap();
    let wrong = c
        .connect_socket("A", &rep_ep, REQ, json!({"password": "x"}))
        .await;
    assert_error(&wrong, "A", "connection_reply", "wrong password");
    let right = c
        .connect_socket("A", &rep_ep, REQ, json!({"password": "monkey"}))
        .await;
    assert_connected(&right, "A");
    c.send_data("A", "hi").await;
    assert_eq!(c.recv().await["content"], "re:hi");

    let asked: Vec<Value> = questions
        .lock()
        .unwrap()
        .iter()
        .map(|q| serde_json::from_str(q).unwrap())
        .collect();
    assert_eq!(asked.len(), 4, "{asked:?}");
    assert_eq!(asked[1]["type"], "websocket");
    assert_eq!(asked[1]["path"], "/data");
    // The client's IP address (X-Forwarded-For only from a --trusted-proxy).
    assert_eq!(asked[1]["remote_addr"], "127.0.0.1");
    assert_eq!(asked[3]["type"], "connect");
    assert_eq!(asked[3]["socket_type"], REQ);
    assert_eq!(asked[3]["socket_type_name"], "REQ");
    assert_eq!(asked[3]["params"], json!({"password": "monkey"}));
}

#[tokio::test]
async fn policy_and_auth_service_must_both_allow() {
    let (rep_ep, auth_ep) = (endpoint(), endpoint());
    rep_peer(&rep_ep, echo("re:"));
    // The auth service allows everything; the policy allows SUB only.
    rep_peer(&auth_ep, |_| {
        (Duration::ZERO, r#"{"allow":true}"#.to_string())
    });
    let policy =
        policy_file("[[allow]]\nendpoint = \"tcp://127.0.0.1:*\"\nsocket_types = [\"SUB\"]\n");
    let policy = policy.display().to_string();
    let proxy = BridgeProxy::start(&["--bridge-auth", &auth_ep, "--bridge-policy", &policy]).await;
    let mut c = proxy.client().await;
    let req = c.connect_socket("R", &rep_ep, REQ, json!({})).await;
    assert_error(&req, "R", "connection_reply", "denied by policy");
    assert_connected(&c.connect_socket("S", &rep_ep, SUB, json!({})).await, "S");
}

#[tokio::test]
async fn an_auth_service_that_does_not_answer_means_no() {
    let silent = endpoint(); // nobody there
    let proxy =
        BridgeProxy::start(&["--bridge-auth", &silent, "--bridge-auth-timeout", "0.5"]).await;
    let started = Instant::now();
    match Client::connect(&proxy.url(), &[]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}
