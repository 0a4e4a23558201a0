//! RFC 6455 allows each side one close frame. When a session ends on a
//! websocket (the SockJS `c[...]` frame, then a close frame) and the client's
//! own close frame crosses ours, the proxy must not answer it with a second
//! one: Chromium fails the connection with "Close received after close".
//! Checked with a client by hand that sends its close before reading ours,
//! for SockJS and raw websockets, and for a close the client starts.

mod common;

use common::backend::Backend;
use common::raw_ws::RawWs;
use common::{PREFIX, Proxy, bounded};

const CLOSE: u8 = 0x8;

/// Every frame the server sends until it closes the connection.
async fn frames_until_end(ws: &mut RawWs) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while let Some(frame) = ws.frame_or_end().await {
        frames.push(frame);
    }
    frames
}

fn close_frames(frames: &[(u8, Vec<u8>)]) -> usize {
    frames.iter().filter(|(op, _)| *op == CLOSE).count()
}

/// The backend ends the session; the client's close frame crosses the
/// proxy's. Returns what came back after the client's close.
async fn cross_closes(path: &str, open_frames: usize) -> Vec<(u8, Vec<u8>)> {
    let proxy = Proxy::with("websocket_ping_ms = 0").await;
    let mut backend = Backend::connect(&proxy);
    let mut ws = RawWs::connect(proxy.http_port, path).await;
    for _ in 0..open_frames {
        ws.frame().await; // the SockJS `o`
    }
    let id = backend.expect_connect().await;
    backend.disconnect(&id);
    // Let the proxy queue its close, then cross it without reading it.
    backend.expect_disconnect(&id).await;
    ws.send_frame(CLOSE, &1000u16.to_be_bytes()).await;
    frames_until_end(&mut ws).await
}

#[tokio::test]
async fn a_sockjs_websocket_sends_one_close_frame_when_the_closes_cross() {
    bounded(async {
        let frames = cross_closes(&Proxy::session_path("x", "websocket"), 1).await;
        assert_eq!(
            frames[0],
            (0x1, br#"c[3000,"Go away!"]"#.to_vec()),
            "{frames:?}"
        );
        assert_eq!(close_frames(&frames), 1, "{frames:?}");
    })
    .await
}

#[tokio::test]
async fn a_raw_websocket_sends_one_close_frame_when_the_closes_cross() {
    bounded(async {
        let frames = cross_closes(&format!("{PREFIX}/websocket"), 0).await;
        assert_eq!(close_frames(&frames), 1, "{frames:?}");
        let (_, payload) = frames.iter().find(|(op, _)| *op == CLOSE).unwrap();
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 3000);
    })
    .await
}

#[tokio::test]
async fn a_close_the_client_starts_is_answered_once() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let mut ws = RawWs::connect(proxy.http_port, &Proxy::session_path("y", "websocket")).await;
        assert_eq!(ws.frame().await, (0x1, b"o".to_vec()));
        let id = backend.expect_connect().await;
        ws.send_frame(CLOSE, &1000u16.to_be_bytes()).await;
        let frames = frames_until_end(&mut ws).await;
        assert_eq!(close_frames(&frames), 1, "{frames:?}");
        backend.expect_disconnect(&id).await;
    })
    .await
}
