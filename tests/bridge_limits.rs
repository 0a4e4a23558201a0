//! No single browser can take bridge mode down: endpoints are checked by their
//! parsed parts (libzmq's `source;destination` trick is refused and the
//! forbidden service never hears of it), `--allow-origin` guards the upgrade,
//! and what waits for a browser or a backend is bounded in bytes, counted in
//! `/metrics`. Real proxy, real 0MQ peers, real websockets over loopback.

mod common;

use std::time::{Duration, Instant};

use common::bridge::{Client, assert_connected, assert_error, echo, rep_peer};
use common::{Proxy, TempFile, bounded, http};
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

const REQ: i64 = 3;
const SUB: i64 = 2;

async fn bridge_proxy(args: &[&str]) -> Proxy {
    let args: Vec<String> = ["--bridge", "/data"]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect();
    Proxy::with_args("", move || args.clone(), "info").await
}

fn url(proxy: &Proxy) -> String {
    format!("ws://127.0.0.1:{}/data", proxy.http_port)
}

fn policy(rules: &str) -> TempFile {
    TempFile::new(rules.as_bytes())
}

/// The value of one `/metrics` line, by its name and labels.
async fn metric(proxy: &Proxy, series: &str) -> u64 {
    let text = http::get(proxy.http_port, "/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

/// The proxy's peak resident memory (VmHWM), in KiB.
fn peak_kib(proxy: &Proxy) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test]
async fn a_source_address_before_a_forbidden_port_is_refused_and_never_reaches_it() {
    bounded(async {
        let ports = common::free_ports(2);
        let (allowed, forbidden) = (ports[0], ports[1]);
        let heard = rep_peer(&format!("tcp://127.0.0.1:{forbidden}"), echo("leaked:"));
        // The rule of the report: a port prefix, which the raw string matched.
        let rules = policy(&format!(
            "[[allow]]\nendpoint = \"tcp://127.0.0.1:{allowed}*\"\nsocket_types = [\"REQ\"]\n"
        ));
        let proxy = bridge_proxy(&["--bridge-policy", rules.0.to_str().unwrap()]).await;
        let mut browser = Client::connect(&url(&proxy), &[]).await.unwrap();

        let attack = format!("tcp://127.0.0.1:{allowed};127.0.0.1:{forbidden}");
        let reply = browser.connect_socket("A", &attack, REQ, json!({})).await;
        assert_error(&reply, "A", "connection_reply", "source");
        browser.send_data("A", "steal").await;
        assert_error(&browser.recv().await, "A", "error", "not connected");
        // The same trick with the forbidden port first, and atoi's readings.
        for trick in [
            format!("tcp://127.0.0.1:{forbidden};127.0.0.1:{allowed}"),
            format!("tcp://127.0.0.1:{}", u32::from(forbidden) + 65536),
            format!("tcp://127.0.0.1:{forbidden}x"),
        ] {
            let reply = browser.connect_socket("B", &trick, REQ, json!({})).await;
            assert_error(&reply, "B", "connection_reply", "");
            browser.send_data("B", "steal").await;
            assert_error(&browser.recv().await, "B", "error", "not connected");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            heard.lock().unwrap().is_empty(),
            "{:?}",
            heard.lock().unwrap()
        );

        // The rule still allows what it names.
        let allowed_ep = format!("tcp://127.0.0.1:{allowed}");
        let heard_allowed = rep_peer(&allowed_ep, echo("ok:"));
        assert_connected(
            &browser
                .connect_socket("C", &allowed_ep, REQ, json!({}))
                .await,
            "C",
        );
        browser.send_data("C", "hi").await;
        assert_eq!(browser.recv().await["content"], "ok:hi");
        assert_eq!(heard_allowed.lock().unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_bridge_upgrade_from_an_origin_not_allowed_gets_403() {
    bounded(async {
        let proxy = bridge_proxy(&["--allow-origin", "https://app.example"]).await;
        let allowed = Client::connect(&url(&proxy), &[("Origin", "https://app.example")]).await;
        assert!(allowed.is_ok(), "{:?}", allowed.err());
        let without = Client::connect(&url(&proxy), &[]).await;
        assert!(without.is_ok(), "{:?}", without.err());
        match Client::connect(&url(&proxy), &[("Origin", "https://evil.example")]).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
            Err(e) => panic!("expected 403, got {e}"),
            Ok(_) => panic!("an upgrade from https://evil.example was accepted"),
        }
    })
    .await;
}

#[tokio::test]
async fn browsers_that_do_not_read_hold_at_most_their_byte_budget() {
    bounded(async {
        const BROWSERS: usize = 20;
        const MESSAGES: usize = 300;
        let pub_ep = format!("tcp://127.0.0.1:{}", common::free_port());
        let rules = policy(&format!(
            "[[allow]]\nendpoint = \"{pub_ep}\"\nsocket_types = [\"SUB\"]\n"
        ));
        let proxy = bridge_proxy(&["--bridge-policy", rules.0.to_str().unwrap()]).await;
        let mut publisher = tmq::publish(&tmq::Context::new())
            .set_linger(0)
            .bind(&pub_ep)
            .unwrap();
        let send = |text: &str| tmq::Multipart::from(vec![tmq::Message::from(text.as_bytes())]);

        // The first browser waits until published messages flow (0MQ's slow
        // joiner); then every browser stops reading.
        let mut browsers = Vec::new();
        let mut first = Client::connect(&url(&proxy), &[]).await.unwrap();
        assert_connected(
            &first.connect_socket("S", &pub_ep, SUB, json!({})).await,
            "S",
        );
        loop {
            use futures_util::SinkExt;
            publisher.send(send("warm-up")).await.unwrap();
            if first.recv_within(Duration::from_millis(50)).await.is_some() {
                break;
            }
        }
        browsers.push(first);
        for _ in 1..BROWSERS {
            let mut b = Client::connect(&url(&proxy), &[]).await.unwrap();
            assert_connected(&b.connect_socket("S", &pub_ep, SUB, json!({})).await, "S");
            browsers.push(b);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = peak_kib(&proxy);

        let big = "x".repeat(128 * 1024);
        for _ in 0..MESSAGES {
            use futures_util::SinkExt;
            publisher.send(send(&big)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Most of every browser's share is dropped and counted.
        let series = "sockjsproxy_bridge_dropped_total{reason=\"outbox_full\"}";
        let wanted = (BROWSERS * MESSAGES / 2) as u64;
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut dropped = metric(&proxy, series).await;
        while dropped < wanted {
            assert!(
                Instant::now() < deadline,
                "only {dropped} of {wanted} drops counted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            dropped = metric(&proxy, series).await;
        }
        let queued = metric(&proxy, "sockjsproxy_bridge_queued_bytes{queue=\"outbox\"}").await;
        let grown = peak_kib(&proxy).saturating_sub(before);
        eprintln!(
            "{BROWSERS} non-reading browsers × {MESSAGES} published 128 KiB messages: \
             {dropped} dropped, {} KiB queued, peak RSS grew {grown} KiB",
            queued / 1024
        );
        // Each holds its 1 MiB budget, the frame being written and the one
        // being encoded; unbounded, it was up to 1024 frames (128 MiB) each.
        assert!(
            queued <= (BROWSERS as u64) * (1024 + 130) * 1024,
            "{queued}"
        );
        assert!(grown < 96 * 1024, "peak RSS grew {grown} KiB");
        proxy.wait_for_log("published messages dropped").await;
        assert!(proxy.stderr_count("published messages dropped") < 40);
        drop(browsers);
    })
    .await;
}

#[tokio::test]
async fn requests_beyond_the_backend_queue_bytes_are_refused_and_counted() {
    bounded(async {
        // No REP listens, and a high-water mark of 1: requests pile up in the
        // gateway's queue, which holds 64 KiB.
        let rep_ep = format!("tcp://127.0.0.1:{}", common::free_port());
        let rules = policy(&format!(
            "[[allow]]\nendpoint = \"{rep_ep}\"\nsocket_types = [\"REQ\"]\n"
        ));
        let proxy = bridge_proxy(&[
            "--bridge-policy",
            rules.0.to_str().unwrap(),
            "--bridge-hwm",
            "1",
            "--bridge-queue-bytes",
            "65536",
        ])
        .await;
        let mut browser = Client::connect(&url(&proxy), &[]).await.unwrap();
        let request = "r".repeat(30 * 1024);
        for i in 0..10 {
            let id = format!("R{i}");
            assert_connected(
                &browser.connect_socket(&id, &rep_ep, REQ, json!({})).await,
                &id,
            );
        }
        for i in 0..10 {
            browser.send_data(&format!("R{i}"), &request).await;
        }
        let mut refused = 0;
        while let Some(frame) = browser.recv_within(Duration::from_secs(3)).await {
            if frame.to_string().contains("backend queue is full") {
                refused += 1;
            }
        }
        assert!(refused >= 3, "only {refused} refused");
        let counted = metric(
            &proxy,
            "sockjsproxy_bridge_dropped_total{reason=\"backend_queue_full\"}",
        )
        .await;
        assert_eq!(counted, refused);
        proxy
            .wait_for_log("requests refused, backend queue full")
            .await;
    })
    .await;
}

#[tokio::test]
async fn the_bridge_websocket_pings_and_closes_a_browser_that_never_answers() {
    bounded(async {
        let proxy = bridge_proxy(&["--websocket-ping-ms", "200"]).await;
        let mut browser = common::raw_ws::RawWs::connect(proxy.http_port, "/data").await;
        // Pings come (0x9), none answered; the second finds the first
        // unanswered and the connection ends with 1001.
        assert_eq!(browser.frame().await.0, 0x9);
        let started = Instant::now();
        let (opcode, payload) = loop {
            let frame = browser.frame().await;
            if frame.0 != 0x9 {
                break frame;
            }
        };
        assert_eq!((opcode, &payload[..2]), (0x8, &1001u16.to_be_bytes()[..]));
        assert!(started.elapsed() < Duration::from_secs(2));
    })
    .await;
}

#[tokio::test]
async fn a_browser_message_over_max_message_bytes_closes_with_1009() {
    bounded(async {
        let proxy = bridge_proxy(&["--max-message-bytes", "1000"]).await;
        let mut browser = common::raw_ws::RawWs::connect(proxy.http_port, "/data").await;
        browser.send_frame(0x1, &[b'x'; 1001]).await;
        let (opcode, payload) = browser.frame().await;
        assert_eq!((opcode, &payload[..2]), (0x8, &1009u16.to_be_bytes()[..]));
    })
    .await;
}
