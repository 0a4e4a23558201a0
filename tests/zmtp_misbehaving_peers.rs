//! Backends that misbehave on the native ZMTP engine's sockets, against the
//! real binary: non-ZMTP bytes are turned away at once; a backend whose
//! message breaks the bounds (8 frames, 64 MiB) is disconnected at that
//! frame's header, logged and counted, with the proxy's peak memory unmoved,
//! and others work on; so is a PULL peer that sends our PUSH a message.

mod common;

use std::time::Duration;

use common::backend::{Backend, raw_session as session};
use common::meter::peak_rss_kib;
use common::zmtp_raw::{frame_header, handshaken, read_until_closed};
use common::{IO_LIMIT, Proxy, bounded, ws};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn non_zmtp_bytes_on_the_pull_port_are_dropped_at_once() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut http = TcpStream::connect(proxy.services[0].pull.trim_start_matches("tcp://"))
            .await
            .unwrap();
        http.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        // Well within the 10 s a silent peer gets for its handshake.
        let got = read_until_closed(&mut http, Duration::from_secs(2)).await;
        assert_eq!(
            got.len(),
            64,
            "more than a greeting sent to an HTTP client: {got:?}"
        );
        proxy
            .wait_for_log("refused on PULL: not a ZMTP greeting")
            .await;

        let mut backend = Backend::connect(&proxy);
        let (mut ws, id) = session(&proxy, &mut backend).await;
        backend.send_message(&id, "after the garbage");
        assert_eq!(ws::text(&mut ws).await, "after the garbage");
    })
    .await
}

/// The `/metrics` sample of backends disconnected for `reason`.
fn disconnects(reason: &str) -> String {
    format!("sockjsproxy_backend_disconnects_total{{service=\"/echo\",reason=\"{reason}\"}}")
}

const BAD: &str = "sockjsproxy_dropped_total{service=\"/echo\",reason=\"bad_backend_message\"}";

#[tokio::test]
async fn a_backend_sending_more_frames_for_ever_is_disconnected_and_the_proxy_stays_small() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let (mut ws, id) = session(&proxy, &mut backend).await;
        let before = peak_rss_kib(proxy.pid());

        // Frames of 1 MiB, each with MORE: one message that never ends (the
        // old reader kept every frame: 4 GiB in 11 s). Up to 256 MiB.
        let mut raw = handshaken(&proxy.services[0].pull, "PUSH").await;
        let address = raw.local_addr().unwrap().to_string();
        let mut frame = frame_header(true, 1 << 20);
        frame.resize(frame.len() + (1 << 20), b'x');
        let mut sent = 0;
        let stream = async {
            while sent < 256 && raw.write_all(&frame).await.is_ok() {
                sent += 1;
            }
        };
        tokio::time::timeout(IO_LIMIT, stream)
            .await
            .expect("the proxy neither read nor closed");
        assert!(sent < 64, "the proxy took {sent} MiB of one message");
        let line = proxy
            .wait_for_log("sent PULL a message of more than 8 frames; disconnected")
            .await;
        assert!(line.contains(&address) && line.contains("WARN"), "{line}");
        assert_eq!(proxy.metric(&disconnects("too_many_frames")).await, 1.0);
        assert_eq!(proxy.metric(BAD).await, 1.0, "the cut message is a drop");
        let grown = peak_rss_kib(proxy.pid()).saturating_sub(before);
        assert!(grown < 32 << 10, "peak RSS grew by {grown} KiB");

        // The good backend on the same socket was not disturbed.
        backend.send_message(&id, "still here");
        assert_eq!(ws::text(&mut ws).await, "still here");
        assert_eq!(
            proxy.stderr_count("left PULL"),
            1,
            "{:?}",
            proxy.stderr_lines()
        );
        eprintln!("endless message: cut after {sent} MiB sent; peak RSS grew by {grown} KiB");
    })
    .await
}

#[tokio::test]
async fn a_message_over_64_mib_disconnects_its_backend_unbuffered_and_the_next_one_is_delivered() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let (mut ws, id) = session(&proxy, &mut backend).await;
        let before = peak_rss_kib(proxy.pid());

        // 7 + 1 bytes, then two frames of 32 MiB: the fourth header is refused.
        let half = vec![b'x'; 32 << 20];
        backend.send(&[b"message", id.as_bytes(), &half, &half, b"!"]);
        drop(half);
        backend.send_message(&id, "next");
        // libzmq reconnects and sends what was queued behind the huge message
        // (which would have come first and broken the client's limit).
        assert_eq!(ws::text(&mut ws).await, "next");
        proxy
            .wait_for_log(
                "a message of 67108872 bytes or more, over the 67108864 byte limit; disconnected",
            )
            .await;
        assert_eq!(proxy.metric(&disconnects("message_too_large")).await, 1.0);
        assert_eq!(proxy.metric(BAD).await, 1.0);
        let grown = peak_rss_kib(proxy.pid()).saturating_sub(before);
        assert!(grown < 48 << 10, "peak RSS grew by {grown} KiB");
        eprintln!("64 MiB + 8 byte message: peak RSS grew by {grown} KiB");
    })
    .await
}

#[tokio::test]
async fn a_pull_peer_that_sends_a_message_to_the_push_port_is_disconnected() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut raw = handshaken(&proxy.services[0].push, "PULL").await;
        let mut message = frame_header(false, 5);
        message.extend_from_slice(b"hello");
        raw.write_all(&message).await.unwrap();
        let got = read_until_closed(&mut raw, Duration::from_secs(2)).await;
        assert!(got.is_empty(), "the proxy sent {got:?}");
        let line = proxy
            .wait_for_log("sent PUSH a message, where this socket takes none; disconnected")
            .await;
        assert!(
            line.contains(&raw.local_addr().unwrap().to_string()),
            "{line}"
        );
        assert_eq!(proxy.metric(&disconnects("message_on_push")).await, 1.0);

        // Proper backends get events as ever.
        let mut backend = Backend::echo(&proxy);
        let (mut ws, id) = session(&proxy, &mut backend).await;
        ws::send(&mut ws, "after").await;
        assert_eq!(backend.expect_message(&id).await, "after");
        assert_eq!(ws::text(&mut ws).await, "after");
    })
    .await
}
