//! Session life and flow: an idle session times out and its backend hears of
//! it, a session with a receiver does not, a client that leaves ends its
//! session; session ids are unique; receivers get heartbeats; a streaming
//! response ends at `response_limit` and the next one takes over; events wait
//! for a late backend; a poll carries a burst of replies in one response; and
//! 1000 messages keep their order both ways over websocket and xhr-streaming.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::http::{self, Frames, Http, Wire};
use common::{Proxy, bounded, payload, ws};

const COUNT: usize = 1000;

#[tokio::test]
async fn idle_xhr_session_times_out_and_later_sends_get_404() {
    bounded(async {
        let proxy = Proxy::with("disconnect_delay_ms = 1000").await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let xhr = Proxy::session_path("s1", "xhr");
        let xhr_send = Proxy::session_path("s1", "xhr_send");

        let start = Instant::now();
        assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
        let id = backend.expect_connect().await;
        // While it lives, the session takes messages.
        assert_eq!(http::post(port, &xhr_send, b"[\"x\"]").await.status, 204);
        assert_eq!(backend.expect_message(&id).await, "x");

        backend.expect_disconnect(&id).await;
        let lived = start.elapsed();
        assert!(
            lived >= Duration::from_millis(1000),
            "closed after {lived:?}"
        );

        let late = http::post(port, &xhr_send, b"[\"late\"]").await;
        assert_eq!(late.status, 404);
        // The URL id is free again: a new poll opens a new session.
        assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
        let new_id = backend.expect_connect().await;
        assert_ne!(new_id, id, "session ids must not be reused");
    })
    .await
}

#[tokio::test]
async fn session_with_a_streaming_receiver_does_not_time_out() {
    bounded(async {
        let proxy = Proxy::with("disconnect_delay_ms = 500").await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let path = Proxy::session_path("s1", "xhr_streaming");
        let mut stream = Frames::open(port, "POST", &path, Wire::Newline).await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");
        let id = backend.expect_connect().await;

        // Two disconnect delays and more with the receiver attached: no disconnect.
        assert_eq!(backend.next_within(Duration::from_millis(1200)).await, None);
        backend.send_message(&id, "alive");
        assert_eq!(stream.next().await, r#"a["alive"]"#);
    })
    .await
}

#[tokio::test]
async fn xhr_streaming_receiver_gets_heartbeats() {
    bounded(async {
        let proxy = Proxy::with("heartbeat_delay_ms = 200").await;
        let _backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "xhr_streaming");
        let mut stream = Frames::open(proxy.http_port, "POST", &path, Wire::Newline).await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(stream.next().await, "h");
        }
        // Three heartbeats 200 ms apart take at least two intervals.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300),
            "3 heartbeats in {took:?}"
        );
    })
    .await
}

#[tokio::test]
async fn websocket_receiver_gets_heartbeats() {
    bounded(async {
        let proxy = Proxy::with("heartbeat_delay_ms = 200").await;
        let _backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(ws::text(&mut ws).await, "h");
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300),
            "3 heartbeats in {took:?}"
        );
    })
    .await
}

#[tokio::test]
async fn no_heartbeat_before_the_heartbeat_delay() {
    bounded(async {
        // The default delay is 25 s: a quiet session sees nothing for a while.
        let proxy = Proxy::start().await;
        let _backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let extra = ws::next_within(&mut ws, Duration::from_millis(500)).await;
        assert_eq!(extra, None);
    })
    .await
}

fn numbered(prefix: &str) -> Vec<String> {
    (0..COUNT).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test]
async fn websocket_keeps_1000_messages_in_order_both_ways() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;

        let down = numbered("down ");
        for m in &down {
            backend.send_message(&id, m);
        }
        assert_eq!(ws::messages(&mut ws, COUNT).await, down);

        let up = numbered("up ");
        for m in &up {
            ws::send(&mut ws, &payload(&[m])).await;
        }
        for m in &up {
            assert_eq!(&backend.expect_message(&id).await, m);
        }
    })
    .await
}

#[tokio::test]
async fn xhr_streaming_keeps_1000_messages_in_order_both_ways() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let path = Proxy::session_path("s1", "xhr_streaming");
        let mut stream = Frames::open(port, "POST", &path, Wire::Newline).await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");
        let id = backend.expect_connect().await;

        let down = numbered("down ");
        for m in &down {
            backend.send_message(&id, m);
        }
        assert_eq!(stream.messages(COUNT).await, down);

        // One xhr_send per message, one after the other on a kept-alive connection.
        let up = numbered("up ");
        let send = Proxy::session_path("s1", "xhr_send");
        let mut http = Http::connect(port).await;
        for m in &up {
            http.request("POST", &send, &[], payload(&[m]).as_bytes())
                .await;
            assert_eq!(http.status, 204);
            http.body().await;
        }
        for m in &up {
            assert_eq!(&backend.expect_message(&id).await, m);
        }
    })
    .await
}

#[tokio::test]
async fn streaming_client_that_goes_away_interrupts_its_session_at_once() {
    bounded(async {
        // Default heartbeat (25 s): nothing is written after `o`, so only the
        // closed connection itself can tell the proxy the client left.
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let path = Proxy::session_path("s1", "xhr_streaming");
        let mut stream = Frames::open(port, "POST", &path, Wire::Newline).await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");
        let id = backend.expect_connect().await;

        drop(stream);
        let event = backend.next_within(Duration::from_secs(2)).await;
        assert!(
            event
                .as_ref()
                .is_some_and(|e| e.kind == "disconnect" && e.session == id),
            "no disconnect within 2 s of the client leaving: {event:?}"
        );
        // As the protocol says, the session's next receiver hears why it ended.
        let poll = http::post(port, &Proxy::session_path("s1", "xhr"), b"").await;
        assert_eq!(poll.text(), "c[1002,\"Connection interrupted\"]\n");
    })
    .await
}

#[tokio::test]
async fn websocket_dropped_without_closing_handshake_disconnects() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;

        drop(ws);
        let event = backend.next_within(Duration::from_secs(2)).await;
        assert!(
            event
                .as_ref()
                .is_some_and(|e| e.kind == "disconnect" && e.session == id),
            "no disconnect within 2 s of the client leaving: {event:?}"
        );
    })
    .await
}

#[tokio::test]
async fn session_ids_are_distinct_decimal_integers_even_for_one_url_id() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let mut ids = HashSet::new();
        for i in 0..5 {
            let xhr = Proxy::session_path(&format!("s{i}"), "xhr");
            assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
            ids.insert(backend.expect_connect().await);
        }
        // Each websocket is a session of its own, even on one URL id.
        let path = Proxy::session_path("same", "websocket");
        let mut first = ws::connect(port, &path).await;
        let mut second = ws::connect(port, &path).await;
        assert_eq!(ws::text(&mut first).await, "o");
        assert_eq!(ws::text(&mut second).await, "o");
        ids.insert(backend.expect_connect().await);
        ids.insert(backend.expect_connect().await);
        assert_eq!(ids.len(), 7, "session ids reused: {ids:?}");
    })
    .await
}

#[tokio::test]
async fn xhr_streaming_response_ends_at_response_limit_and_the_next_one_takes_over() {
    bounded(async {
        let proxy = Proxy::with("response_limit = 4096").await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let path = Proxy::session_path("s1", "xhr_streaming");
        let mut stream = Frames::open(port, "POST", &path, Wire::Newline).await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");
        let id = backend.expect_connect().await;

        // 8 messages of 1000 bytes: more than the limit allows in one response.
        let sent: Vec<String> = (0..8).map(|i| format!("{i}{}", "x".repeat(999))).collect();
        for m in &sent {
            backend.send_message(&id, m);
        }
        let mut got = Vec::new();
        let mut frame_bytes = 2; // "o\n"
        while let Some(frame) = stream.next_or_end().await {
            frame_bytes += frame.len() + 1;
            got.extend(common::messages(&frame));
        }
        assert!(frame_bytes >= 4096, "ended after {frame_bytes} bytes");
        assert!(got.len() < sent.len(), "one response carried all messages");
        assert_eq!(got, sent[..got.len()]);

        // The next receiver gets the rest, with no second `o`.
        let mut next = Frames::open(port, "POST", &path, Wire::Newline).await;
        next.prelude(2049).await;
        let rest = next.messages(sent.len() - got.len()).await;
        assert_eq!(rest, sent[got.len()..]);
    })
    .await
}

#[tokio::test]
async fn events_wait_for_a_backend_that_connects_late() {
    bounded(async {
        let proxy = Proxy::start().await;
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        ws::send(&mut ws, r#"["early"]"#).await;
        tokio::time::sleep(Duration::from_millis(100)).await;

        let mut backend = Backend::connect(&proxy);
        let id = backend.expect_connect().await;
        assert_eq!(backend.expect_message(&id).await, "early");
    })
    .await
}

/// A polling response waits `poll_batch_ms` after its first message, so that
/// backend replies sent close together share one response instead of costing
/// a poll each; with 0 it answers with the first message alone.
#[tokio::test]
async fn a_poll_carries_a_burst_of_replies_in_one_response() {
    bounded(async {
        for (window_ms, expected) in [(300, vec!["r0", "r1", "r2"]), (0, vec!["r0"])] {
            let proxy = Proxy::with(&format!("poll_batch_ms = {window_ms}")).await;
            let mut backend = Backend::connect(&proxy);
            let port = proxy.http_port;
            let xhr = Proxy::session_path("s1", "xhr");
            assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
            let id = backend.expect_connect().await;

            let waiting = xhr.clone();
            let poll = tokio::spawn(async move { http::post(port, &waiting, b"").await });
            // Let the poll attach, then reply three times, 20 ms apart.
            tokio::time::sleep(Duration::from_millis(100)).await;
            for i in 0..3 {
                backend.send_message(&id, &format!("r{i}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let answer = poll.await.expect("poll task").text();
            assert_eq!(
                common::messages(&answer),
                expected,
                "poll_batch_ms = {window_ms}: {answer:?}"
            );
        }
    })
    .await
}
