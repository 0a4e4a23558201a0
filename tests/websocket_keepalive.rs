//! Websocket keepalive beside SockJS heartbeats, with `websocket_ping_ms =
//! 200`: a client that answers the proxy's pings stays open well past the
//! interval; a client that never answers (a raw TCP websocket client written
//! here, since tungstenite answers pings by itself) gets pings, then a close
//! frame 1001 within about two intervals, and the backend gets `disconnect`.

mod common;

use std::time::{Duration, Instant};

use common::backend::Backend;
use common::raw_ws::RawWs;
use common::{Proxy, bounded, ws};
use tokio_tungstenite::tungstenite::Message;

const PING_MS: u64 = 200;

async fn keepalive_proxy() -> Proxy {
    // Heartbeats far off, so that only pings keep anything alive.
    Proxy::with(&format!(
        "websocket_ping_ms = {PING_MS}\nheartbeat_delay_ms = 60000"
    ))
    .await
}

#[tokio::test]
async fn client_answering_pings_stays_open_past_several_intervals() {
    bounded(async {
        let proxy = keepalive_proxy().await;
        let mut backend = Backend::echo(&proxy);
        let mut ws = ws::connect(proxy.http_port, &Proxy::session_path("k", "websocket")).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;
        // Reading lets tungstenite answer each ping; count them on the way.
        let until = Instant::now() + Duration::from_millis(6 * PING_MS);
        let mut pings = 0;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match tokio::time::timeout(left, futures_util::StreamExt::next(&mut ws)).await {
                Err(_) => break,
                Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
                other => panic!("unexpected {other:?} while idle"),
            }
        }
        assert!(pings >= 3, "only {pings} pings in {}ms", 6 * PING_MS);
        ws::send(&mut ws, r#"["still here"]"#).await;
        assert_eq!(ws::messages(&mut ws, 1).await, ["still here"]);
        assert_eq!(backend.expect_message(&id).await, "still here");
    })
    .await
}

#[tokio::test]
async fn client_that_never_answers_pings_is_closed_and_the_backend_told() {
    bounded(async {
        let proxy = keepalive_proxy().await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("deaf", "websocket");
        let mut deaf = RawWs::connect(proxy.http_port, &path).await;
        let start = Instant::now();
        assert_eq!(deaf.frame().await, (0x1, b"o".to_vec()));
        let id = backend.expect_connect().await;
        let mut pings = 0;
        let (code, reason) = loop {
            match deaf.frame().await {
                (0x9, _) => pings += 1,
                (0x8, payload) => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    break (code, payload[2..].to_vec());
                }
                other => panic!("unexpected frame {other:?}"),
            }
        };
        let took = start.elapsed();
        assert_eq!(pings, 1, "pings before the close");
        assert_eq!(
            code,
            1001,
            "close reason {:?}",
            String::from_utf8_lossy(&reason)
        );
        // First ping at one interval, close at the next: allow one more for a
        // loaded machine.
        assert!(
            took >= Duration::from_millis(2 * PING_MS - 50)
                && took < Duration::from_millis(3 * PING_MS + 200),
            "closed after {took:?}"
        );
        backend.expect_disconnect(&id).await;
        proxy.wait_for_log("no pong").await;
    })
    .await
}
