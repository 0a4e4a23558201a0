//! The proxy's bounds: `max_queue` (a session whose unread outgoing messages
//! overflow it closes with 3001 after delivering what it held), `max_sessions`
//! (new sessions beyond get 503, existing ones go on) and `max_message_bytes`
//! (an HTTP body over it gets 413, a websocket message over it close 1009),
//! and the limits on one client: sessions per address and per second (429),
//! messages per send (413) and the time a request body may take (408).

mod common;

use std::time::{Duration, Instant};

use common::backend::Backend;
use common::http::{self, Frames, Wire};
use common::{Proxy, bounded, payload, ws};
use tokio_tungstenite::tungstenite;

const QUEUE_FULL: &str = r#"c[3001,"Outgoing queue full"]"#;

/// Opens an xhr session, then has the backend send 5 messages to it while no
/// receiver is attached; with `max_queue = 3` the fourth closes the session.
async fn overflow_an_xhr_session(proxy: &Proxy, backend: &mut Backend) -> String {
    let xhr = Proxy::session_path("s1", "xhr");
    assert_eq!(http::post(proxy.http_port, &xhr, b"").await.text(), "o\n");
    let id = backend.expect_connect().await;
    for m in ["m1", "m2", "m3", "m4", "m5"] {
        backend.send_message(&id, m);
    }
    // The backend hears of the close as soon as the queue overflows.
    backend.expect_disconnect(&id).await;
    let line = proxy.wait_for_log("outgoing queue full").await;
    assert!(line.contains("WARN"), "not logged at warn: {line}");
    id
}

#[tokio::test]
async fn full_outgoing_queue_delivers_what_it_held_then_closes_with_3001() {
    bounded(async {
        let proxy = Proxy::with("max_queue = 3").await;
        let mut backend = Backend::connect(&proxy);
        overflow_an_xhr_session(&proxy, &mut backend).await;

        let xhr = Proxy::session_path("s1", "xhr");
        let first = http::post(proxy.http_port, &xhr, b"").await;
        assert_eq!(first.text(), "a[\"m1\",\"m2\",\"m3\"]\n");
        for _ in 0..2 {
            let next = http::post(proxy.http_port, &xhr, b"").await;
            assert_eq!(next.text(), format!("{QUEUE_FULL}\n"));
        }
    })
    .await
}

#[tokio::test]
async fn full_outgoing_queue_streams_what_it_held_then_3001_and_ends() {
    bounded(async {
        let proxy = Proxy::with("max_queue = 3").await;
        let mut backend = Backend::connect(&proxy);
        overflow_an_xhr_session(&proxy, &mut backend).await;

        let path = Proxy::session_path("s1", "xhr_streaming");
        let mut stream = Frames::open(proxy.http_port, "POST", &path, Wire::Newline).await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, r#"a["m1","m2","m3"]"#);
        assert_eq!(stream.next().await, QUEUE_FULL);
        assert!(
            stream.http.ends_within(Duration::from_secs(5)).await,
            "the response goes on after the close frame"
        );
    })
    .await
}

#[tokio::test]
async fn max_queue_does_not_limit_messages_a_receiver_takes_at_once() {
    bounded(async {
        let proxy = Proxy::with("max_queue = 3").await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "xhr_streaming");
        let mut stream = Frames::open(proxy.http_port, "POST", &path, Wire::Newline).await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");
        let id = backend.expect_connect().await;

        let sent: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        for m in &sent {
            backend.send_message(&id, m);
        }
        assert_eq!(stream.messages(10).await, sent);
        assert_eq!(backend.next_within(Duration::from_millis(200)).await, None);
    })
    .await
}

#[tokio::test]
async fn sessions_beyond_max_sessions_get_503_while_existing_ones_work() {
    bounded(async {
        let proxy = Proxy::with("max_sessions = 2").await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;

        let xhr_a = Proxy::session_path("a", "xhr");
        assert_eq!(http::post(port, &xhr_a, b"").await.text(), "o\n");
        let id_a = backend.expect_connect().await;
        let mut ws_b = ws::connect(port, &Proxy::session_path("b", "websocket")).await;
        assert_eq!(ws::text(&mut ws_b).await, "o");
        let id_b = backend.expect_connect().await;

        let refused = http::post(port, &Proxy::session_path("c", "xhr"), b"").await;
        assert_eq!(refused.status, 503);
        match ws::refused(port, &Proxy::session_path("d", "websocket")).await {
            tungstenite::Error::Http(response) => assert_eq!(response.status(), 503),
            other => panic!("websocket refused with {other}, not 503"),
        }

        // The two sessions still carry messages both ways (and no other session
        // reached the backend: the next events are theirs).
        let send_a = Proxy::session_path("a", "xhr_send");
        assert_eq!(http::post(port, &send_a, b"[\"from a\"]").await.status, 204);
        assert_eq!(backend.expect_message(&id_a).await, "from a");
        backend.send_message(&id_a, "to a");
        assert_eq!(http::post(port, &xhr_a, b"").await.text(), "a[\"to a\"]\n");
        ws::send(&mut ws_b, "[\"from b\"]").await;
        assert_eq!(backend.expect_message(&id_b).await, "from b");
        backend.send_message(&id_b, "to b");
        assert_eq!(ws::text(&mut ws_b).await, r#"a["to b"]"#);

        // Once one ends, a new session fits again.
        ws_b.close(None).await.expect("close");
        backend.expect_disconnect(&id_b).await;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let retry = http::post(port, &Proxy::session_path("c", "xhr"), b"").await;
            if retry.status == 200 {
                assert_eq!(retry.text(), "o\n");
                break;
            }
            assert_eq!(retry.status, 503);
            assert!(Instant::now() < deadline, "no room after a session ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        backend.expect_connect().await;
    })
    .await
}

/// A SockJS payload of exactly `n` bytes: `["xxx..."]`.
fn payload_of(n: usize) -> String {
    payload(&["x".repeat(n - 4).as_str()])
}

#[tokio::test]
async fn http_body_over_max_message_bytes_gets_413() {
    bounded(async {
        let proxy = Proxy::with("max_message_bytes = 64").await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        assert_eq!(
            http::post(port, &Proxy::session_path("s1", "xhr"), b"")
                .await
                .text(),
            "o\n"
        );
        let id = backend.expect_connect().await;

        let xhr_send = Proxy::session_path("s1", "xhr_send");
        let jsonp_send = Proxy::session_path("s1", "jsonp_send");
        let too_big = payload_of(65);
        assert_eq!(
            http::post(port, &xhr_send, too_big.as_bytes()).await.status,
            413
        );
        assert_eq!(
            http::post(port, &jsonp_send, too_big.as_bytes())
                .await
                .status,
            413
        );

        // At the limit is fine, and it is the first message the backend sees.
        let at_limit = payload_of(64);
        assert_eq!(
            http::post(port, &xhr_send, at_limit.as_bytes())
                .await
                .status,
            204
        );
        assert_eq!(backend.expect_message(&id).await, "x".repeat(60));
    })
    .await
}

#[tokio::test]
async fn websocket_message_over_max_message_bytes_closes_with_1009() {
    bounded(async {
        let proxy = Proxy::with("max_message_bytes = 64").await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;

        ws::send(&mut ws, &payload_of(64)).await;
        assert_eq!(backend.expect_message(&id).await, "x".repeat(60));
        ws::send(&mut ws, &payload_of(65)).await;
        assert_eq!(ws::close_frame(&mut ws).await.0, 1009);
        // The oversize message never reaches the backend; the session ends.
        backend.expect_disconnect(&id).await;
    })
    .await
}

#[tokio::test]
async fn raw_websocket_message_over_max_message_bytes_closes_with_1009() {
    bounded(async {
        let proxy = Proxy::with("max_message_bytes = 64").await;
        let mut backend = Backend::connect(&proxy);
        let mut ws = ws::connect(proxy.http_port, "/echo/websocket").await;
        let id = backend.expect_connect().await;

        ws::send(&mut ws, &"y".repeat(64)).await;
        assert_eq!(backend.expect_message(&id).await, "y".repeat(64));
        ws::send(&mut ws, &"y".repeat(65)).await;
        assert_eq!(ws::close_frame(&mut ws).await.0, 1009);
        backend.expect_disconnect(&id).await;
    })
    .await
}

#[tokio::test]
async fn websocket_client_that_stops_reading_gets_a_gapless_prefix_then_3001() {
    bounded(async {
        let proxy = Proxy::with("max_queue = 10").await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;

        // The client reads nothing while 64 KiB messages come, until they
        // overflow the socket buffers, the receiver's channel and the queue.
        let filler = "z".repeat(64 * 1024);
        let mut sent = Vec::new();
        let event = loop {
            for _ in 0..50 {
                let m = format!("{} {filler}", sent.len());
                backend.send_message(&id, &m);
                sent.push(m);
            }
            if let Some(event) = backend.next_within(Duration::from_millis(100)).await {
                break event;
            }
            assert!(
                sent.len() < 4000,
                "no overflow after {} messages",
                sent.len()
            );
        };
        assert_eq!(
            (event.kind.as_str(), event.session.as_str()),
            ("disconnect", id.as_str())
        );

        // Then it reads: messages from the first on, none missing, then 3001.
        let mut got = Vec::new();
        let close = loop {
            let frame = ws::text(&mut ws).await;
            if frame.starts_with('c') {
                break frame;
            }
            got.extend(common::messages(&frame));
        };
        assert_eq!(close, QUEUE_FULL);
        assert!(
            !got.is_empty() && got.len() < sent.len(),
            "got {}",
            got.len()
        );
        assert!(got == sent[..got.len()], "messages lost or reordered");
    })
    .await
}

#[tokio::test]
async fn one_address_holds_at_most_max_sessions_per_address_then_gets_429() {
    bounded(async {
        let proxy = Proxy::with("max_sessions_per_address = 2").await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let xhr_a = Proxy::session_path("a", "xhr");
        assert_eq!(http::post(port, &xhr_a, b"").await.text(), "o\n");
        backend.expect_connect().await;
        let mut ws_b = ws::connect(port, &Proxy::session_path("b", "websocket")).await;
        assert_eq!(ws::text(&mut ws_b).await, "o");
        let id_b = backend.expect_connect().await;

        let refused = http::post(port, &Proxy::session_path("c", "xhr"), b"").await;
        assert_eq!(refused.status, 429, "{}", refused.text());
        match ws::refused(port, &Proxy::session_path("d", "websocket")).await {
            tungstenite::Error::Http(response) => assert_eq!(response.status(), 429),
            other => panic!("websocket refused with {other}, not 429"),
        }
        // A session that ends gives its place back.
        ws::send(&mut ws_b, "").await;
        drop(ws_b);
        backend.expect_disconnect(&id_b).await;
        let again = http::post(port, &Proxy::session_path("e", "xhr"), b"").await;
        assert_eq!(again.text(), "o\n");
    })
    .await
}

#[tokio::test]
async fn new_sessions_per_second_from_one_address_are_limited() {
    bounded(async {
        let proxy = Proxy::with("new_sessions_per_second = 3").await;
        let port = proxy.http_port;
        let mut statuses = Vec::new();
        for i in 0..4 {
            let path = Proxy::session_path(&format!("r{i}"), "xhr");
            statuses.push(http::post(port, &path, b"").await.status);
        }
        assert_eq!(statuses, [200, 200, 200, 429]);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let path = Proxy::session_path("later", "xhr");
        assert_eq!(http::post(port, &path, b"").await.status, 200);
    })
    .await
}

#[tokio::test]
async fn a_send_with_more_than_max_messages_per_send_gets_413_and_reaches_nobody() {
    bounded(async {
        let proxy = Proxy::with("max_messages_per_send = 3").await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let xhr = Proxy::session_path("s", "xhr");
        assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
        let id = backend.expect_connect().await;
        let send = Proxy::session_path("s", "xhr_send");
        let refused = http::post(port, &send, br#"["","","",""]"#).await;
        assert_eq!(refused.status, 413);
        assert_eq!(refused.text(), "more than 3 messages in one request");
        assert_eq!(
            http::post(port, &send, br#"["a","b","c"]"#).await.status,
            204
        );
        for m in ["a", "b", "c"] {
            assert_eq!(backend.expect_message(&id).await, m);
        }
    })
    .await
}

#[tokio::test]
async fn a_body_is_refused_at_message_max_plus_one_without_the_rest_being_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    bounded(async {
        let proxy = Proxy::with("max_messages_per_send = 3\nbody_timeout_ms = 30000").await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let xhr = Proxy::session_path("many", "xhr");
        assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
        let id = backend.expect_connect().await;
        for (transport, content_type) in [("xhr_send", "text/plain"), ("jsonp_send", "text/plain")]
        {
            // 1 MiB announced, four messages sent, the rest never: the answer
            // cannot wait for the body (nor for body_timeout, 30 s here).
            let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let send = Proxy::session_path("many", transport);
            let head = format!(
                "POST {send} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n\
                 Content-Length: 1048576\r\n\r\n[\"a\",\"b\",\"c\",\"d"
            );
            tcp.write_all(head.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer));
            read.await.expect("answered and closed at once").unwrap();
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 413"), "{transport}: {answer}");
            assert!(
                answer.ends_with("more than 3 messages in one request"),
                "{answer}"
            );
        }
        // Nothing of the refused bodies reached the backend; the session
        // goes on.
        let send = Proxy::session_path("many", "xhr_send");
        assert_eq!(http::post(port, &send, br#"["e"]"#).await.status, 204);
        assert_eq!(backend.expect_message(&id).await, "e");
    })
    .await
}

#[tokio::test]
async fn a_request_body_slower_than_body_timeout_gets_408_and_its_connection_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    bounded(async {
        let proxy = Proxy::with("body_timeout_ms = 300").await;
        let port = proxy.http_port;
        let xhr = Proxy::session_path("slow", "xhr");
        assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let send = Proxy::session_path("slow", "xhr_send");
        let head = format!("POST {send} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n[\"a");
        tcp.write_all(head.as_bytes()).await.unwrap();
        let start = Instant::now();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer));
        read.await.expect("connection still open").unwrap();
        let took = start.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
    })
    .await
}
