//! Several HTTP workers (the default in production is one per core): the
//! requests of one session land on different worker threads, and the session
//! still works for every transport.

mod common;

use common::backend::Backend;
use common::http::{self, Frames, Wire};
use common::{PREFIX, Proxy, bounded, payload, ws};

const WORKERS: usize = 4;

#[tokio::test]
async fn polling_session_works_across_workers() {
    bounded(async {
        let proxy = Proxy::with_workers(WORKERS, &[(PREFIX, "")]).await;
        let mut backend = Backend::echo(&proxy);
        let port = proxy.http_port;
        let xhr = Proxy::session_path("s1", "xhr");
        let xhr_send = Proxy::session_path("s1", "xhr_send");
        assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
        let id = backend.expect_connect().await;

        // Every request on a new connection, so workers take turns.
        for round in 0..12 {
            let text = format!("round {round}");
            let sent = http::post(port, &xhr_send, payload(&[&text]).as_bytes()).await;
            assert_eq!(sent.status, 204);
            assert_eq!(backend.expect_message(&id).await, text);
            let poll = http::post(port, &xhr, b"").await;
            assert_eq!(poll.text(), format!("a[\"{text}\"]\n"));
        }
    })
    .await
}

#[tokio::test]
async fn streaming_and_websocket_sessions_work_across_workers() {
    bounded(async {
        let proxy = Proxy::with_workers(WORKERS, &[(PREFIX, "")]).await;
        let mut backend = Backend::echo(&proxy);
        let port = proxy.http_port;
        // Clients stay connected: one that left would add a `disconnect`.
        let mut clients = Vec::new();
        for i in 0..WORKERS {
            let session = format!("s{i}");
            let path = Proxy::session_path(&session, "xhr_streaming");
            let mut stream = Frames::open(port, "POST", &path, Wire::Newline).await;
            stream.prelude(2049).await;
            assert_eq!(stream.next().await, "o");
            let id = backend.expect_connect().await;
            let send = Proxy::session_path(&session, "xhr_send");
            for n in 0..3 {
                let text = format!("{session} #{n}");
                let body = payload(&[&text]);
                assert_eq!(http::post(port, &send, body.as_bytes()).await.status, 204);
                assert_eq!(backend.expect_message(&id).await, text);
                assert_eq!(stream.messages(1).await, [text]);
            }

            let path = Proxy::session_path(&session, "websocket");
            let mut ws = ws::connect(port, &path).await;
            assert_eq!(ws::text(&mut ws).await, "o");
            let ws_id = backend.expect_connect().await;
            ws::send(&mut ws, &payload(&[&session])).await;
            assert_eq!(backend.expect_message(&ws_id).await, session);
            assert_eq!(ws::messages(&mut ws, 1).await, [session]);
            clients.push((stream, ws));
        }
    })
    .await
}
