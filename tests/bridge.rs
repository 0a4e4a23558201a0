//! Bridge mode over a real websocket, against the real binary and real 0MQ
//! REP and PUB peers: the wire format, identity isolation, SUB fan-out,
//! malformed input, timeouts, ordering and many virtual sockets.
//! Access control has its own file, `bridge_access.rs`.

mod common;

use std::time::Duration;

use common::bridge::*;
use serde_json::json;

const REQ: i64 = 3;
const SUB: i64 = 2;

/// A policy allowing REQ and SUB to any loopback port.
fn open_policy() -> String {
    policy_file(
        r#"
        [[allow]]
        endpoint = "tcp://127.0.0.1:*"
        socket_types = ["REQ", "SUB"]
        "#,
    )
    .display()
    .to_string()
}

#[tokio::test]
async fn req_round_trip_keeps_the_originals_wire_format() {
    let ep = endpoint();
    let seen = rep_peer(&ep, echo("echo:"));
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut c = proxy.client().await;

    let reply = c
        .connect_socket("9F3A", &ep, REQ, json!({"username": "hugo"}))
        .await;
    assert_eq!(
        reply,
        json!({"identity": "9F3A", "msg_type": "connection_reply", "content": "{\"status\":\"success\"}"})
    );
    c.send_data("9F3A", "hello").await;
    assert_eq!(
        c.recv().await,
        json!({"identity": "9F3A", "content": "echo:hello"})
    );
    // The REP backend sees the content alone: the proxy's route is an envelope.
    assert_eq!(*seen.lock().unwrap(), vec!["hello".to_string()]);
    // Non-ASCII passes both ways (the original dropped it silently).
    c.send_data("9F3A", "héllo ☃").await;
    assert_eq!(c.recv().await["content"], "echo:héllo ☃");
}

#[tokio::test]
async fn same_identity_on_two_websockets_gets_only_its_own_replies() {
    let ep = endpoint();
    // Slow replies, so that both requests are in flight together.
    rep_peer(&ep, |m| (Duration::from_millis(100), format!("re:{m}")));
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut alice = proxy.client().await;
    let mut mallory = proxy.client().await;
    assert_connected(
        &alice.connect_socket("SAME", &ep, REQ, json!({})).await,
        "SAME",
    );
    assert_connected(
        &mallory.connect_socket("SAME", &ep, REQ, json!({})).await,
        "SAME",
    );

    for round in 0..3 {
        alice.send_data("SAME", &format!("alice-{round}")).await;
        mallory.send_data("SAME", &format!("mallory-{round}")).await;
        assert_eq!(alice.recv().await["content"], format!("re:alice-{round}"));
        assert_eq!(
            mallory.recv().await["content"],
            format!("re:mallory-{round}")
        );
    }
    // Nothing else arrives on either side.
    assert_eq!(alice.recv_within(Duration::from_millis(300)).await, None);
    assert_eq!(mallory.recv_within(Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn sub_fans_out_to_matching_prefixes() {
    let ep = endpoint();
    let messages = vec![
        "apple".to_string(),
        "banana".to_string(),
        "avocado".to_string(),
    ];
    let publisher = pub_peer(&ep, Duration::from_millis(10), messages);
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut c = proxy.client().await;
    let mut other = proxy.client().await;
    assert_connected(
        &c.connect_socket("A", &ep, SUB, json!({"msgfilter": "a"}))
            .await,
        "A",
    );
    assert_connected(
        &c.connect_socket("ALL", &ep, SUB, json!({"msgfilter": ""}))
            .await,
        "ALL",
    );
    // "na" is inside "banana": the original's substring match let it through.
    assert_connected(
        &other
            .connect_socket("NA", &ep, SUB, json!({"msgfilter": "na"}))
            .await,
        "NA",
    );

    let (mut a, mut all) = (Vec::new(), Vec::new());
    while a.len() < 10 || all.len() < 10 {
        let frame = c.recv().await;
        assert_eq!(frame.get("msg_type"), None, "{frame}");
        let content = frame["content"].as_str().unwrap().to_string();
        match frame["identity"].as_str().unwrap() {
            "A" => a.push(content),
            "ALL" => all.push(content),
            other => panic!("frame for {other}"),
        }
    }
    assert!(a.iter().all(|m| m.starts_with('a')), "{a:?}");
    assert!(all.iter().any(|m| m == "banana") && all.iter().any(|m| m == "apple"));
    assert_eq!(other.recv_within(Duration::from_millis(300)).await, None);
    publisher.abort();
}

#[tokio::test]
async fn malformed_input_gets_error_frames_and_the_websocket_carries_on() {
    let ep = endpoint();
    rep_peer(&ep, echo("ok:"));
    let sub_ep = endpoint();
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut c = proxy.client().await;

    for bad in ["not json", "[1,2]", r#"{"msg_type":"user","content":"x"}"#] {
        c.send_text(bad).await;
        assert_error(&c.recv().await, "", "error", "");
    }
    c.send_text(r#"{"identity":"X","msg_type":"user","content":{"a":1}}"#)
        .await;
    assert_error(&c.recv().await, "X", "error", "content");
    c.send(json!({"identity": "X", "msg_type": "connect", "content": "{not json"}))
        .await;
    assert_error(&c.recv().await, "X", "connection_reply", "connect content");

    for (endpoint, needle) in [
        ("tcp://", "bad endpoint"),
        ("tcp://127.0.0.1", "bad endpoint"),
        ("tcp://127.0.0.1:99999", "bad endpoint"),
        ("garbage", "bad endpoint"),
        ("", "bad endpoint"),
    ] {
        let reply = c.connect_socket("E", endpoint, REQ, json!({})).await;
        assert_error(&reply, "E", "connection_reply", needle);
    }
    for socket_type in [7, 4, 0, -1] {
        let reply = c.connect_socket("T", &ep, socket_type, json!({})).await;
        assert_error(&reply, "T", "connection_reply", "not supported");
    }
    c.send(json!({"identity": "T", "msg_type": "connect",
        "content": json!({"zmq_conn_string": ep, "socket_type": "3"}).to_string()}))
        .await;
    assert_error(&c.recv().await, "T", "connection_reply", "socket_type");

    c.send_data("NOBODY", "hi").await;
    assert_error(&c.recv().await, "NOBODY", "error", "not connected");
    assert_connected(&c.connect_socket("S", &sub_ep, SUB, json!({})).await, "S");
    c.send_data("S", "hi").await;
    assert_error(&c.recv().await, "S", "error", "SUB");

    // After all that, the same websocket still works, and so does a new one.
    assert_connected(&c.connect_socket("GOOD", &ep, REQ, json!({})).await, "GOOD");
    c.send_data("GOOD", "still here").await;
    assert_eq!(c.recv().await["content"], "ok:still here");
    let mut fresh = proxy.client().await;
    assert_connected(
        &fresh.connect_socket("GOOD", &ep, REQ, json!({})).await,
        "GOOD",
    );
}

#[tokio::test]
async fn unanswered_request_times_out_and_a_late_reply_is_not_mixed_up() {
    let ep = endpoint();
    // "slow" is answered 400 ms after the proxy gave up on it, "fast" at once.
    rep_peer(&ep, |m| {
        let delay = if m == "slow" { 1400 } else { 0 };
        (Duration::from_millis(delay), format!("reply-to-{m}"))
    });
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy, "--bridge-timeout", "1"]).await;
    let mut c = proxy.client().await;
    assert_connected(&c.connect_socket("R", &ep, REQ, json!({})).await, "R");

    let started = std::time::Instant::now();
    c.send_data("R", "slow").await;
    c.send_data("R", "fast").await;
    assert_error(&c.recv().await, "R", "error", "timeout");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // "fast" went out when "slow" expired; the late "reply-to-slow" comes
    // first and must not be taken for its answer.
    assert_eq!(c.recv().await["content"], "reply-to-fast");
    assert_eq!(c.recv_within(Duration::from_millis(800)).await, None);

    // A REQ to an endpoint nobody serves also ends in a timeout error.
    let nobody = endpoint();
    assert_connected(&c.connect_socket("N", &nobody, REQ, json!({})).await, "N");
    c.send_data("N", "anyone?").await;
    assert_error(&c.recv().await, "N", "error", "timeout");
}

#[tokio::test]
async fn requests_in_flight_are_answered_in_order_or_refused() {
    let ep = endpoint();
    rep_peer(&ep, |m| {
        let delay = if m == "block" { 1500 } else { 0 };
        (Duration::from_millis(delay), format!("re:{m}"))
    });
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut c = proxy.client().await;
    assert_connected(&c.connect_socket("Q", &ep, REQ, json!({})).await, "Q");

    c.send_data("Q", "block").await;
    let waiting = 64; // the proxy's MAX_WAITING
    for i in 0..waiting + 3 {
        c.send_data("Q", &format!("m{i}")).await;
    }
    // The three beyond the limit are refused at once, before "block" is answered.
    for _ in 0..3 {
        assert_error(&c.recv().await, "Q", "error", "refused");
    }
    assert_eq!(c.recv().await["content"], "re:block");
    for i in 0..waiting {
        assert_eq!(c.recv().await["content"], format!("re:m{i}"));
    }
}

#[tokio::test]
async fn waiting_requests_are_bounded_in_bytes_per_websocket() {
    let ep = endpoint();
    rep_peer(&ep, |m| {
        let delay = if m == "block" { 1000 } else { 0 };
        (Duration::from_millis(delay), format!("{}", m.len()))
    });
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut c = proxy.client().await;
    assert_connected(&c.connect_socket("Q", &ep, REQ, json!({})).await, "Q");
    c.send_data("Q", "block").await;
    // 40 × 100 KiB fit in the proxy's 4 MiB (MAX_WAITING_BYTES); the 41st does not.
    let big = "x".repeat(100 * 1024);
    for _ in 0..41 {
        c.send_data("Q", &big).await;
    }
    assert_error(
        &c.recv().await,
        "Q",
        "error",
        "bytes of requests already wait",
    );
    assert_eq!(c.recv().await["content"], "5");
    for _ in 0..40 {
        assert_eq!(c.recv().await["content"], "102400");
    }
}

#[tokio::test]
async fn a_hundred_virtual_sockets_share_one_websocket() {
    let ep = endpoint();
    let seen = rep_peer(&ep, echo("re:"));
    let sub_ep = endpoint();
    let publisher = pub_peer(&sub_ep, Duration::from_millis(20), vec!["tick".into()]);
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut c = proxy.client().await;
    for i in 0..100 {
        let id = format!("S{i:03}");
        assert_connected(&c.connect_socket(&id, &ep, REQ, json!({})).await, &id);
    }
    assert_connected(
        &c.connect_socket("TICK", &sub_ep, SUB, json!({})).await,
        "TICK",
    );
    for i in 0..100 {
        c.send_data(&format!("S{i:03}"), &format!("from S{i:03}"))
            .await;
    }
    let mut answered = std::collections::HashSet::new();
    while answered.len() < 100 {
        let frame = c.recv().await;
        let id = frame["identity"].as_str().unwrap().to_string();
        if id == "TICK" {
            continue;
        }
        assert_eq!(frame["content"], format!("re:from {id}"));
        assert!(answered.insert(id), "two replies for one socket");
    }
    assert_eq!(seen.lock().unwrap().len(), 100);
    publisher.abort();
}

#[tokio::test]
async fn the_client_script_is_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port()))
        .await
        .unwrap();
    s.write_all(b"GET /zmq-bridge.js HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(FRAME_WAIT, s.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert!(body.starts_with("HTTP/1.0 200"), "{body:.100}");
    assert!(body.contains("application/javascript"));
    assert!(body.contains("RPCClient") && body.contains("PubRPCServer"));
}

/// Reads 0MQ monitor events (event id, endpoint) from a PAIR socket.
async fn next_event(monitor: &mut tmq::pair::Pair, wait: Duration) -> Option<u16> {
    use futures_util::StreamExt;
    let message = tokio::time::timeout(wait, monitor.next())
        .await
        .ok()??
        .ok()?;
    let first = message.iter().next()?;
    Some(u16::from_le_bytes([first[0], first[1]]))
}

#[tokio::test]
async fn one_dealer_is_shared_and_closed_when_its_last_user_leaves() {
    const ACCEPTED: u16 = 0x0020;
    const DISCONNECTED: u16 = 0x0200;
    let ep = endpoint();
    let zmq = tmq::Context::new();
    let monitor_ep = format!("inproc://monitor-{}", common::free_port());
    let events = ACCEPTED as i32 | DISCONNECTED as i32;
    let mut rep = tmq::reply(&zmq)
        .set_linger(0)
        .monitor(&monitor_ep, events)
        .bind(&ep)
        .unwrap();
    let mut monitor = tmq::pair(&zmq).connect(&monitor_ep).unwrap();
    tokio::spawn(async move {
        while let Ok((_, sender)) = rep.recv().await {
            let reply = tmq::Multipart::from(vec![tmq::Message::from("ok")]);
            match sender.send(reply).await {
                Ok(r) => rep = r,
                Err(_) => break,
            }
        }
    });
    let policy = open_policy();
    let proxy = BridgeProxy::start(&["--bridge-policy", &policy]).await;
    let mut first = proxy.client().await;
    let mut second = proxy.client().await;
    assert_connected(&first.connect_socket("A", &ep, REQ, json!({})).await, "A");
    assert_connected(&first.connect_socket("B", &ep, REQ, json!({})).await, "B");
    assert_connected(&second.connect_socket("A", &ep, REQ, json!({})).await, "A");
    first.send_data("A", "x").await;
    assert_eq!(first.recv().await["content"], "ok");

    let wait = Duration::from_secs(2);
    assert_eq!(next_event(&mut monitor, wait).await, Some(ACCEPTED));
    // Three virtual sockets on two websockets: still one connection.
    assert_eq!(
        next_event(&mut monitor, Duration::from_millis(300)).await,
        None
    );
    drop(first);
    assert_eq!(
        next_event(&mut monitor, Duration::from_millis(500)).await,
        None
    );
    drop(second);
    assert_eq!(next_event(&mut monitor, wait).await, Some(DISCONNECTED));
}
