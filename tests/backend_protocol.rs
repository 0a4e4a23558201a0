//! The backend side of the wire protocol, with a real 0MQ peer: `disconnect`
//! closes one session with 3000 "Go away!" (a real close code 3000 on the raw
//! websocket), `disconnectall` closes them all, each kind of malformed backend
//! message is dropped with a warning while the proxy runs on, and a restarted
//! backend takes over the open sessions.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::backend::Backend;
use common::http::{self, Frames, Wire};
use common::{Proxy, bounded, ws};

const GO_AWAY: &str = r#"c[3000,"Go away!"]"#;

#[tokio::test]
async fn backend_disconnect_closes_websocket_session_with_3000() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;

        backend.disconnect(&id);
        assert_eq!(ws::text(&mut ws).await, GO_AWAY);
        // Then the websocket itself ends with a normal closure, as sockjs-node does.
        assert_eq!(ws::close_frame(&mut ws).await.0, 1000);
        backend.expect_disconnect(&id).await;
    })
    .await
}

#[tokio::test]
async fn backend_disconnect_closes_raw_websocket_with_close_code_3000() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let mut ws = ws::connect(proxy.http_port, "/echo/websocket").await;
        let id = backend.expect_connect().await;

        backend.disconnect(&id);
        assert_eq!(
            ws::close_frame(&mut ws).await,
            (3000, "Go away!".to_string())
        );
        backend.expect_disconnect(&id).await;
    })
    .await
}

#[tokio::test]
async fn backend_disconnect_closes_polling_session_with_3000_for_every_later_poll() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let xhr = Proxy::session_path("s1", "xhr");
        assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
        let id = backend.expect_connect().await;

        backend.disconnect(&id);
        // The backend hears of the close at once, not when the session expires.
        backend.expect_disconnect(&id).await;
        for _ in 0..2 {
            let poll = http::post(port, &xhr, b"").await;
            assert_eq!((poll.status, poll.text()), (200, format!("{GO_AWAY}\n")));
        }
        // The closed session answered those polls: no new session was made.
        assert_eq!(backend.next_within(Duration::from_millis(200)).await, None);
    })
    .await
}

#[tokio::test]
async fn disconnectall_closes_every_session_of_every_transport() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;

        let mut sockjs_ws = ws::connect(port, &Proxy::session_path("a", "websocket")).await;
        assert_eq!(ws::text(&mut sockjs_ws).await, "o");
        let id_ws = backend.expect_connect().await;

        let mut raw_ws = ws::connect(port, "/echo/websocket").await;
        let id_raw = backend.expect_connect().await;

        let streaming = Proxy::session_path("b", "xhr_streaming");
        let mut stream = Frames::open(port, "POST", &streaming, Wire::Newline).await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");
        let id_stream = backend.expect_connect().await;

        let xhr = Proxy::session_path("c", "xhr");
        assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
        let id_xhr = backend.expect_connect().await;

        backend.disconnect_all();

        assert_eq!(ws::text(&mut sockjs_ws).await, GO_AWAY);
        assert_eq!(
            ws::close_frame(&mut raw_ws).await,
            (3000, "Go away!".to_string())
        );
        assert_eq!(stream.next().await, GO_AWAY);
        assert!(
            stream.http.ends_within(Duration::from_secs(5)).await,
            "the streaming response goes on after its close frame"
        );
        assert_eq!(
            http::post(port, &xhr, b"").await.text(),
            format!("{GO_AWAY}\n")
        );

        let mut disconnected = HashSet::new();
        for _ in 0..4 {
            disconnected.insert(backend.expect("disconnect").await);
        }
        let all: HashSet<String> = [id_ws, id_raw, id_stream, id_xhr].into();
        assert_eq!(disconnected, all);
    })
    .await
}

/// Opens a websocket session, has the backend send `bad` (built from the
/// session id) and then a good message: the good message must be the next
/// thing the client gets, the proxy must log `warning` (built from the session
/// id) at WARN, and still be running.
async fn bad_frame_is_dropped_and_the_proxy_runs_on(
    bad: impl Fn(&str) -> Vec<Vec<u8>>,
    warning: impl Fn(&str) -> String,
) {
    let mut proxy = Proxy::start().await;
    let mut backend = Backend::connect(&proxy);
    let path = Proxy::session_path("s1", "websocket");
    let mut ws = ws::connect(proxy.http_port, &path).await;
    assert_eq!(ws::text(&mut ws).await, "o");
    let id = backend.expect_connect().await;

    let parts = bad(&id);
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    backend.send(&parts);
    backend.send_message(&id, "after");

    assert_eq!(ws::text(&mut ws).await, r#"a["after"]"#);
    let line = proxy.wait_for_log(&warning(&id)).await;
    assert!(line.contains("WARN"), "not logged at warn: {line}");
    assert!(proxy.is_running(), "the proxy exited");
    // The session is unharmed: it still carries messages both ways.
    ws::send(&mut ws, r#"["still here"]"#).await;
    assert_eq!(backend.expect_message(&id).await, "still here");
}

fn parts(list: &[&[u8]]) -> Vec<Vec<u8>> {
    list.iter().map(|p| p.to_vec()).collect()
}

#[tokio::test]
async fn backend_message_with_two_parts_is_dropped_with_a_warning() {
    bounded(bad_frame_is_dropped_and_the_proxy_runs_on(
        |id| parts(&[b"message", id.as_bytes()]),
        |_| "backend message dropped: expected 3 frames, got 2".into(),
    ))
    .await
}

#[tokio::test]
async fn backend_message_with_four_parts_is_dropped_with_a_warning() {
    bounded(bad_frame_is_dropped_and_the_proxy_runs_on(
        |id| parts(&[b"message", id.as_bytes(), b"bad", b"extra"]),
        |_| "backend message dropped: expected 3 frames, got 4".into(),
    ))
    .await
}

#[tokio::test]
async fn backend_message_of_unknown_type_is_dropped_with_a_warning() {
    bounded(bad_frame_is_dropped_and_the_proxy_runs_on(
        |id| parts(&[b"shout", id.as_bytes(), b"bad"]),
        |_| r#"backend message dropped: unknown message type "shout""#.into(),
    ))
    .await
}

#[tokio::test]
async fn backend_message_with_invalid_utf8_data_is_dropped_with_a_warning() {
    bounded(bad_frame_is_dropped_and_the_proxy_runs_on(
        |id| parts(&[b"message", id.as_bytes(), b"bad \xff\xfe"]),
        |id| {
            format!("backend message dropped: data of message for session {id} is not valid UTF-8")
        },
    ))
    .await
}

#[tokio::test]
async fn backend_message_for_unknown_session_is_dropped_with_a_warning() {
    bounded(bad_frame_is_dropped_and_the_proxy_runs_on(
        |_| parts(&[b"message", b"987654321", b"bad"]),
        |_| "message for unknown session 987654321 dropped".into(),
    ))
    .await
}

#[tokio::test]
async fn backend_disconnect_for_unknown_session_is_dropped_with_a_warning() {
    bounded(bad_frame_is_dropped_and_the_proxy_runs_on(
        |_| parts(&[b"disconnect", b"987654321", b""]),
        |_| "disconnect for unknown session 987654321 dropped".into(),
    ))
    .await
}

#[tokio::test]
async fn backend_message_with_non_numeric_session_id_is_dropped_with_a_warning() {
    bounded(bad_frame_is_dropped_and_the_proxy_runs_on(
        |_| parts(&[b"message", b"abc", b"bad"]),
        |_| r#"backend message dropped: session id "abc" is not one this proxy made"#.into(),
    ))
    .await
}

#[tokio::test]
async fn restarted_backend_takes_over_the_open_sessions() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut first = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = first.expect_connect().await;

        drop(first);
        // Give 0MQ a moment to see the old peer go, then send while no
        // backend is there: the event waits for the next one.
        tokio::time::sleep(Duration::from_millis(300)).await;
        ws::send(&mut ws, r#"["while down"]"#).await;
        let mut second = Backend::connect(&proxy);
        assert_eq!(second.expect_message(&id).await, "while down");
        second.send_message(&id, "back");
        assert_eq!(ws::text(&mut ws).await, r#"a["back"]"#);
    })
    .await
}
