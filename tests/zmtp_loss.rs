//! What a backend that dies with a backlog costs, and what `/metrics` says of
//! it: a real backend process (the `echo` example, libzmq) is stopped
//! (SIGSTOP: it reads nothing more, its kernel buffers fill, then the proxy's)
//! and then SIGKILLed. Events it never got are either passed on to the next
//! backend (those still in the proxy's own buffer) or lost; the lost ones
//! that the proxy's side still held are counted as unconfirmed, and the
//! count is never more than what was really lost. A typical run: 40,000
//! events of 200 bytes, 21,281 passed on, 18,719 lost, 18,139 counted (the
//! rest was in the backend's receive buffer, which the proxy cannot see).

mod common;

use std::time::{Duration, Instant};

use common::backend::Backend;
use common::procs::{example, spawn};
use common::{IO_LIMIT, Proxy, bounded, ws};

/// Client messages sent while the backend is stopped, and their size: 8 MiB
/// in all, more than the kernel buffers of a loopback connection hold at
/// first (16 KiB to send, 128 KiB to receive, growing to 4 MiB and 32 MiB).
const EVENTS: usize = 40_000;
const SIZE: usize = 200;

fn port(endpoint: &str) -> String {
    endpoint.rsplit(':').next().unwrap().to_string()
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

#[tokio::test]
async fn a_backend_killed_with_a_backlog_shows_the_events_it_cannot_have_had() {
    bounded(async {
        let proxy = Proxy::start().await;
        let service = &proxy.services[0];
        let args = [
            "--address".to_string(),
            "127.0.0.1".to_string(),
            "--in-port".to_string(),
            port(&service.push),
            "--out-port".to_string(),
            port(&service.pull),
        ];
        let mut echo = spawn(&example("echo"), &args, "info");
        proxy.wait_for_log("connected to PUSH").await;
        proxy.wait_for_log("connected to PULL").await;
        let mut ws = ws::connect(proxy.http_port, "/echo/websocket").await;
        ws::send(&mut ws, "hello").await;
        assert_eq!(ws::text(&mut ws).await, "hello", "the echo works");

        let pid = echo.child.id().expect("echo's pid");
        signal(pid, "STOP");
        let text = "x".repeat(SIZE);
        for _ in 0..EVENTS {
            ws::send(&mut ws, &text).await;
        }
        // Every message has become an event, and the writer has had time to
        // hand what it could to the kernel.
        let received = "sockjsproxy_messages_total{service=\"/echo\",direction=\"in\"}";
        let deadline = Instant::now() + IO_LIMIT;
        while proxy.metric(received).await < (EVENTS + 1) as f64 {
            assert!(
                Instant::now() < deadline,
                "the proxy did not take every message"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        signal(pid, "KILL");
        let _ = echo.child.wait().await;
        let line = proxy.wait_for_log("left PUSH").await;

        let events = "sockjsproxy_backend_unconfirmed_events_total{service=\"/echo\"}";
        let bytes = "sockjsproxy_backend_unconfirmed_bytes_total{service=\"/echo\"}";
        let (unconfirmed, unconfirmed_bytes) = (
            proxy.metric(events).await as usize,
            proxy.metric(bytes).await as usize,
        );

        // What the proxy still held goes to the next backend.
        let mut next = Backend::connect(&proxy);
        let mut passed_on = 0;
        while let Some(event) = next.next_within(Duration::from_millis(1000)).await {
            assert_eq!((event.kind.as_str(), event.data.len()), ("message", SIZE));
            passed_on += 1;
        }
        let lost = EVENTS - passed_on;
        eprintln!(
            "{EVENTS} events of {SIZE} bytes to a stopped, then killed backend: {passed_on} \
             passed on, {lost} lost, {unconfirmed} counted unconfirmed ({unconfirmed_bytes} \
             bytes); {line}"
        );
        assert!(unconfirmed > 0, "no unconfirmed events counted: {line}");
        assert!(
            unconfirmed <= lost,
            "{unconfirmed} counted, but only {lost} were lost"
        );
        // Here the backend's side held only its 128 KiB receive buffer (it
        // stopped before it could grow), so most of the loss is visible.
        assert!(
            unconfirmed * 2 >= lost,
            "only {unconfirmed} of {lost} lost events counted"
        );
        // Each event is its 200 bytes, a session id and 13 bytes of framing (the
        // first may be counted from where it was cut).
        let per_event = unconfirmed_bytes as f64 / unconfirmed as f64;
        assert!(
            (SIZE as f64..SIZE as f64 + 40.0).contains(&per_event),
            "{per_event} bytes per unconfirmed event"
        );
        assert!(line.contains(&format!("{unconfirmed} events")), "{line}");
    })
    .await
}
