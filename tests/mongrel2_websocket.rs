//! Websockets under a `[[mongrel2]]` route, as Mongrel2 1.8+ carries them:
//! the handshake answered by the handler, every client frame one `WEBSOCKET`
//! request with `FLAGS`, the handler's own frames written to the client
//! (checked: a malformed one is refused and logged), pings from the handler
//! answered by the client and the pong delivered, one reply to many
//! connections, close from either side, and the disconnect message when a
//! client goes away.

mod common;

use std::time::{Duration, Instant};

use common::http::get;
use common::mongrel2::{M2, python_ready};
use common::raw_ws::RawWs;
use common::{IO_LIMIT, bounded, ws};

async fn disconnects(m2: &M2) -> Vec<u64> {
    let r = get(m2.proxy.http_port, "/m2/disconnects").await;
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test]
async fn websocket_messages_echo_through_the_handler() {
    if !python_ready("websocket_messages_echo_through_the_handler") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let mut c = ws::connect(m2.proxy.http_port, "/m2/ws").await;
        for text in ["hello", common::TRICKY, &"x".repeat(100_000)] {
            ws::send(&mut c, text).await;
            assert_eq!(ws::text(&mut c).await, text);
        }
    })
    .await;
}

#[tokio::test]
async fn the_tnetstring_protocol_carries_websockets_too() {
    if !python_ready("the_tnetstring_protocol_carries_websockets_too") {
        return;
    }
    bounded(async {
        let m2 = M2::start("tnetstring", "").await;
        let _h = m2.handler().await;
        let mut c = ws::connect(m2.proxy.http_port, "/m2/ws").await;
        ws::send(&mut c, "over tnetstrings").await;
        assert_eq!(ws::text(&mut c).await, "over tnetstrings");
    })
    .await;
}

#[tokio::test]
async fn a_ping_from_the_handler_reaches_the_client_and_the_pong_reaches_the_handler() {
    if !python_ready("a_ping_from_the_handler_reaches_the_client_and_the_pong_reaches_the_handler")
    {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let mut c = RawWs::connect(m2.proxy.http_port, "/m2/ws").await;
        c.send_frame(0x1, b"ping:are you there").await;
        assert_eq!(c.frame().await, (0x9, b"are you there".to_vec()));
        c.send_frame(0xA, b"are you there").await;
        assert_eq!(c.frame().await, (0x1, b"pong:are you there".to_vec()));
    })
    .await;
}

#[tokio::test]
async fn one_reply_reaches_many_connections() {
    if !python_ready("one_reply_reaches_many_connections") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let mut clients = Vec::new();
        for _ in 0..5 {
            let mut c = ws::connect(m2.proxy.http_port, "/m2/ws").await;
            // A round trip: the handler has the connection in its list.
            ws::send(&mut c, "here").await;
            assert_eq!(ws::text(&mut c).await, "here");
            clients.push(c);
        }
        ws::send(&mut clients[0], "all:to everyone").await;
        for c in &mut clients {
            assert_eq!(ws::text(c).await, "to everyone");
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_close_goes_to_the_handler_which_answers_it() {
    if !python_ready("a_client_close_goes_to_the_handler_which_answers_it") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let mut c = RawWs::connect(m2.proxy.http_port, "/m2/ws").await;
        c.send_frame(0x8, b"\x03\xe8client done").await;
        assert_eq!(c.frame().await, (0x8, b"\x03\xe8client done".to_vec()));
        assert_eq!(c.frame_or_end().await, None);
    })
    .await;
}

#[tokio::test]
async fn a_handler_close_ends_the_connection() {
    if !python_ready("a_handler_close_ends_the_connection") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let mut c = ws::connect(m2.proxy.http_port, "/m2/ws").await;
        ws::send(&mut c, "bye").await;
        assert_eq!(ws::close_frame(&mut c).await, (1000, "bye".to_string()));
    })
    .await;
}

#[tokio::test]
async fn the_handler_hears_the_disconnect_when_a_client_goes_away() {
    if !python_ready("the_handler_hears_the_disconnect_when_a_client_goes_away") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let before = disconnects(&m2).await;
        let mut c = RawWs::connect(m2.proxy.http_port, "/m2/ws").await;
        c.send_frame(0x1, b"hi").await;
        assert_eq!(c.frame().await, (0x1, b"hi".to_vec()));
        drop(c); // the TCP connection ends, no close frame
        let deadline = Instant::now() + IO_LIMIT;
        while disconnects(&m2).await.len() == before.len() {
            assert!(Instant::now() < deadline, "no disconnect message");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(disconnects(&m2).await.len(), before.len() + 1);
    })
    .await;
}

#[tokio::test]
async fn a_malformed_frame_from_the_handler_is_refused_and_logged() {
    if !python_ready("a_malformed_frame_from_the_handler_is_refused_and_logged") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let mut c = RawWs::connect(m2.proxy.http_port, "/m2/ws").await;
        c.send_frame(0x1, b"bad").await;
        // The masked frame never arrives; what follows it does.
        assert_eq!(c.frame().await, (0x1, b"after bad".to_vec()));
        m2.proxy
            .wait_for_logs("mongrel2 handler frames refused", 1)
            .await;
    })
    .await;
}

#[tokio::test]
async fn an_upgrade_with_no_handler_connected_gets_502() {
    bounded(async {
        let m2 = M2::start("json", "").await;
        let err = ws::refused(m2.proxy.http_port, "/m2/ws").await;
        assert!(err.to_string().contains("502"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn on_sigterm_route_websockets_close_with_1001_and_the_handler_hears_each_disconnect() {
    if !python_ready(
        "on_sigterm_route_websockets_close_with_1001_and_the_handler_hears_each_disconnect",
    ) {
        return;
    }
    bounded(async {
        let mut m2 = M2::start("json", "").await;
        let h = m2.handler().await;
        let mut clients = Vec::new();
        for i in 0..3 {
            let mut c = ws::connect(m2.proxy.http_port, "/m2/ws").await;
            let text = format!("client {i}");
            ws::send(&mut c, &text).await;
            assert_eq!(ws::text(&mut c).await, text);
            clients.push(c);
        }
        assert_eq!(h.wait_said("open ", 3).await.len(), 3);
        let asked = Instant::now();
        assert_eq!(m2.proxy.terminate().await, Some(0));
        // Within the default linger (2 s) and the 1 s margin, with room.
        assert!(
            asked.elapsed() < Duration::from_secs(4),
            "{:?}",
            asked.elapsed()
        );
        for c in &mut clients {
            assert_eq!(ws::close_frame(c).await.0, 1001);
        }
        common::mongrel2::every_open_websocket_disconnected(&h).await;
        assert!(m2.proxy.stderr_contains("closing 3 sessions"));
    })
    .await;
}
