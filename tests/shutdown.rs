//! Stopping the proxy with SIGTERM or SIGINT: it exits 0 within its shutdown
//! timeout, even with sessions open and no backend connected, and, as
//! src/server.rs promises, the backend gets `disconnect` for every session
//! still open.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::http::{self, Frames, Wire};
use common::{Proxy, bounded, ws};

#[tokio::test]
async fn sigterm_exits_0_within_the_shutdown_timeout() {
    bounded(async {
        let mut proxy = Proxy::start().await;
        let _backend = Backend::connect(&proxy);
        // An open websocket and an open streaming response must not hold the
        // exit beyond the linger (2 s by default) and the 1 s margin.
        let mut ws = ws::connect(proxy.http_port, &Proxy::session_path("a", "websocket")).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let path = Proxy::session_path("b", "xhr_streaming");
        let mut stream = Frames::open(proxy.http_port, "POST", &path, Wire::Newline).await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");

        let start = Instant::now();
        assert_eq!(proxy.terminate().await, Some(0));
        let took = start.elapsed();
        assert!(took < Duration::from_millis(3500), "exit took {took:?}");
    })
    .await
}

#[tokio::test]
async fn sigterm_tells_the_backend_disconnect_for_every_open_session() {
    bounded(async {
        let mut proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let mut ws = ws::connect(proxy.http_port, &Proxy::session_path("a", "websocket")).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id_ws = backend.expect_connect().await;
        let xhr = Proxy::session_path("b", "xhr");
        assert_eq!(http::post(proxy.http_port, &xhr, b"").await.text(), "o\n");
        let id_xhr = backend.expect_connect().await;

        proxy.terminate().await;
        let mut disconnected = HashSet::new();
        for _ in 0..2 {
            let event = backend.next_within(Duration::from_secs(3)).await;
            let Some(event) = event else {
                panic!("after SIGTERM the backend was told only of {disconnected:?}");
            };
            assert_eq!(event.kind, "disconnect", "unexpected {event:?}");
            disconnected.insert(event.session);
        }
        let open: HashSet<String> = [id_ws, id_xhr].into();
        assert_eq!(disconnected, open, "sessions the backend was told of");
    })
    .await
}

#[tokio::test]
async fn sigint_exits_0_even_with_events_waiting_for_an_absent_backend() {
    bounded(async {
        let mut proxy = Proxy::start().await;
        // No backend: the `connect` and `message` events cannot be delivered.
        let mut ws = ws::connect(proxy.http_port, &Proxy::session_path("a", "websocket")).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        ws::send(&mut ws, r#"["nobody listens"]"#).await;

        let start = Instant::now();
        assert_eq!(proxy.signal("INT").await, Some(0));
        let took = start.elapsed();
        assert!(took < Duration::from_millis(3500), "exit took {took:?}");
    })
    .await
}
