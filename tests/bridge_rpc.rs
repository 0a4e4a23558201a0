//! The RPC helpers as backends behind the proxy, over a real websocket: the
//! Rust `RpcServer` on a REP socket and `PubRpcClient` on a PUB socket, and
//! the Python module `samples/zmqbridge.py` (when pyzmq is installed).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::bridge::*;
use serde_json::{Value, json};
use sockjsproxy::bridge::rpc::{PubRpcClient, RpcError, RpcServer};

const REQ: i64 = 3;
const SUB: i64 = 2;

fn open_policy() -> String {
    let text = "[[allow]]\nendpoint = \"tcp://127.0.0.1:*\"\nsocket_types = [\"REQ\", \"SUB\"]\n";
    policy_file(text).display().to_string()
}

/// Sends one RPC request on virtual socket `id` and returns the decoded reply.
async fn rpc(c: &mut Client, id: &str, request: Value) -> Value {
    c.send_data(id, &request.to_string()).await;
    let frame = c.recv().await;
    assert_eq!(frame["identity"], id, "{frame}");
    serde_json::from_str(frame["content"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn rust_rpc_server_and_pub_client_behind_the_proxy() {
    let (rep_ep, pub_ep) = (endpoint(), endpoint());
    let server = RpcServer::new()
        .function("echo", |c| Ok(c.arg(0, "msg")?.clone()))
        .function("add_user", |_| Ok(json!({"status": "success"})))
        .guard("add_user", |c| {
            c.arg(0, "username").is_ok_and(|u| u == "hugo")
        })
        .function("fail", |_| Err(RpcError::Failed("no luck".into())));
    let socket = tmq::reply(&tmq::Context::new())
        .set_linger(0)
        .bind(&rep_ep)
        .unwrap();
    tokio::spawn(async move { server.serve(socket).await });
    let publish = tmq::publish(&tmq::Context::new())
        .set_linger(0)
        .bind(&pub_ep)
        .unwrap();
    let mut pub_rpc = PubRpcClient::new(publish);
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut c = proxy.client().await;
    assert_connected(&c.connect_socket("R", &rep_ep, REQ, json!({})).await, "R");

    let echo = rpc(
        &mut c,
        "R",
        json!({"funcname": "echo", "args": ["hi"], "kwargs": {}}),
    )
    .await;
    assert_eq!(echo, json!({"returnval": "hi"}));
    let hugo = rpc(
        &mut c,
        "R",
        json!({"funcname": "add_user", "args": ["hugo", "pw"]}),
    )
    .await;
    assert_eq!(hugo, json!({"returnval": {"status": "success"}}));
    let eve = rpc(
        &mut c,
        "R",
        json!({"funcname": "add_user", "args": ["eve", "pw"]}),
    )
    .await;
    assert_eq!(
        eve,
        json!({"status": "error", "error_msg": "unauthorized access"})
    );
    let fail = rpc(&mut c, "R", json!({"funcname": "fail"})).await;
    assert_eq!(fail["error_msg"], "no luck");

    // Only calls of `tick` pass this SUB's prefix.
    let filter = r#"{"funcname":"tick""#;
    assert_connected(
        &c.connect_socket("S", &pub_ep, SUB, json!({"msgfilter": filter}))
            .await,
        "S",
    );
    let mut n = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let call = loop {
        // Resent until the SUB has joined: PUB drops what no one takes.
        pub_rpc.rpc("other", &[json!(n)]).await.unwrap();
        pub_rpc.rpc("tick", &[json!(n)]).await.unwrap();
        n += 1;
        if let Some(frame) = c.recv_within(Duration::from_millis(50)).await {
            break frame;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no published call arrived"
        );
    };
    assert_eq!(call["identity"], "S");
    let call: Value = serde_json::from_str(call["content"].as_str().unwrap()).unwrap();
    assert_eq!(call["funcname"], "tick");
}

fn pyzmq_available() -> bool {
    Command::new("python3")
        .args(["-c", "import zmq"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn python_rpc_helpers_behind_the_proxy() {
    if !pyzmq_available() {
        eprintln!("SKIPPED python_rpc_helpers_behind_the_proxy: python3 with pyzmq not found");
        return;
    }
    let module = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/zmqbridge.py");
    let doctest = Command::new("python3")
        .args(["-m", "doctest", module])
        .status()
        .unwrap();
    assert!(doctest.success(), "zmqbridge.py doctests failed");

    let rep_ep = endpoint();
    let mut service = Command::new("python3")
        .args([module, &rep_ep])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for the service's "demo RPC service on ..." log line:
    // on a loaded machine python may take longer to start than a frame wait.
    let stderr = service.stderr.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(30), ready).await;
    let line = line
        .expect("python service did not start")
        .unwrap()
        .unwrap();
    assert!(line.contains("demo RPC service"), "{line}");
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut c = proxy.client().await;
    assert_connected(&c.connect_socket("P", &rep_ep, REQ, json!({})).await, "P");
    let hugo = rpc(
        &mut c,
        "P",
        json!({"funcname": "add_user", "args": ["hugo", "pw"], "kwargs": {"type": "girl"}}),
    )
    .await;
    assert_eq!(
        hugo["returnval"],
        json!({"status": "success", "user": "hugo", "type": "girl"})
    );
    let eve = rpc(
        &mut c,
        "P",
        json!({"funcname": "add_user", "args": ["eve", "pw"]}),
    )
    .await;
    assert_eq!(eve["error_msg"], "unauthorized access");
    let private = rpc(&mut c, "P", json!({"funcname": "_Demo__init__"})).await;
    assert_eq!(private["status"], "error");
    let echo = rpc(&mut c, "P", json!({"funcname": "echo", "args": "hello!"})).await;
    assert_eq!(echo["returnval"], "hello!");
    let _ = service.kill();
    let _ = service.wait();
}
