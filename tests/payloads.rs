//! What clients send, beyond the simple case: large messages both ways, many
//! concurrent sessions each getting only their own messages, fragmented
//! websocket messages and pings, and client input the proxy must refuse
//! (broken JSON on the SockJS websocket, invalid UTF-8 on the raw one, a
//! fragmented message over the size limit), which ends the session and tells
//! the backend.

mod common;

use common::backend::Backend;
use common::http::{Frames, Wire};
use common::{Proxy, TRICKY, bounded, payload, ws};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Sends `parts` as one fragmented text message: a text frame, then
/// continuation frames, the last one final.
async fn send_fragmented(ws: &mut ws::Ws, parts: &[&[u8]]) {
    for (i, part) in parts.iter().enumerate() {
        let opcode = OpCode::Data(if i == 0 { Data::Text } else { Data::Continue });
        let last = i + 1 == parts.len();
        let frame = Frame::message(part.to_vec(), opcode, last);
        ws.send(Message::Frame(frame)).await.expect("send frame");
    }
}

/// About `n` bytes of text mixing ASCII and multi-byte characters.
fn large_text(n: usize) -> String {
    TRICKY.repeat(n / TRICKY.len() + 1)
}

#[tokio::test]
async fn half_megabyte_messages_cross_the_websocket_both_ways() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::echo(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;

        let big = large_text(512 * 1024);
        ws::send(&mut ws, &payload(&[&big])).await;
        assert_eq!(backend.expect_message(&id).await, big);
        assert_eq!(ws::messages(&mut ws, 1).await, [big]);
    })
    .await
}

#[tokio::test]
async fn message_larger_than_response_limit_still_crosses_xhr_streaming() {
    bounded(async {
        let proxy = Proxy::with("response_limit = 4096").await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "xhr_streaming");
        let mut stream = Frames::open(proxy.http_port, "POST", &path, Wire::Newline).await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");
        let id = backend.expect_connect().await;

        let big = large_text(100 * 1024);
        backend.send_message(&id, &big);
        assert_eq!(stream.messages(1).await, [big]);
        // The limit is passed: the response ends.
        assert_eq!(stream.next_or_end().await, None);
    })
    .await
}

#[tokio::test]
async fn fifty_concurrent_sessions_each_get_only_their_own_messages() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::echo(&proxy);
        let port = proxy.http_port;
        let mut clients = Vec::new();
        for i in 0..50 {
            let path = Proxy::session_path(&format!("s{i}"), "websocket");
            let mut ws = ws::connect(port, &path).await;
            assert_eq!(ws::text(&mut ws).await, "o");
            clients.push(ws);
        }
        let mut tasks = Vec::new();
        for (i, mut ws) in clients.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let mine: Vec<String> = (0..20).map(|n| format!("client {i} #{n}")).collect();
                for m in &mine {
                    ws::send(&mut ws, &payload(&[m])).await;
                }
                assert_eq!(ws::messages(&mut ws, mine.len()).await, mine);
                ws
            }));
        }
        // Keep the clients connected until the backend is checked: a client
        // that left would add its `disconnect` among the others' messages.
        let mut open = Vec::new();
        for task in tasks {
            open.push(task.await.expect("a client failed"));
        }
        let mut connects = 0;
        let mut messages = 0;
        while connects < 50 || messages < 1000 {
            match backend.next().await.kind.as_str() {
                "connect" => connects += 1,
                "message" => messages += 1,
                other => panic!("unexpected {other}"),
            }
        }
        drop(open);
    })
    .await
}

#[tokio::test]
async fn broken_json_on_the_websocket_ends_the_session() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;

        ws::send(&mut ws, r#"["unterminated"#).await;
        // Nothing reaches the backend but the end of the session.
        backend.expect_disconnect(&id).await;
    })
    .await
}

#[tokio::test]
async fn invalid_utf8_on_the_raw_websocket_closes_with_1007() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let mut ws = ws::connect(proxy.http_port, "/echo/websocket").await;
        let id = backend.expect_connect().await;

        // A binary message carrying UTF-8 is taken as text.
        ws.send(Message::Binary("bin é".as_bytes().to_vec()))
            .await
            .unwrap();
        assert_eq!(backend.expect_message(&id).await, "bin é");

        ws.send(Message::Binary(vec![b'a', 0xff, 0xfe]))
            .await
            .unwrap();
        assert_eq!(ws::close_frame(&mut ws).await.0, 1007);
        backend.expect_disconnect(&id).await;
    })
    .await
}

#[tokio::test]
async fn fragmented_websocket_message_arrives_as_one_message() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::echo(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;

        // The JSON payload itself is cut across frames, one cut inside `é`.
        let whole = payload(&["frag", "mented é"]);
        let cut = whole.find('\u{e9}').unwrap() + 1;
        let (head, tail) = whole.as_bytes().split_at(cut);
        send_fragmented(&mut ws, &[head, tail]).await;
        assert_eq!(backend.expect_message(&id).await, "frag");
        assert_eq!(backend.expect_message(&id).await, "mented é");

        send_fragmented(&mut ws, &[br#"["a"#, b"b", b"c", br#"d"]"#]).await;
        assert_eq!(backend.expect_message(&id).await, "abcd");
        assert_eq!(ws::messages(&mut ws, 3).await, ["frag", "mented é", "abcd"]);
    })
    .await
}

#[tokio::test]
async fn websocket_ping_gets_a_pong_with_the_same_data() {
    bounded(async {
        let proxy = Proxy::start().await;
        let _backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        ws.send(Message::Ping(b"are you there".to_vec()))
            .await
            .unwrap();
        let reply = tokio::time::timeout(common::IO_LIMIT, futures_util::StreamExt::next(&mut ws))
            .await
            .expect("no pong");
        match reply {
            Some(Ok(Message::Pong(data))) => assert_eq!(data, b"are you there"),
            other => panic!("expected a pong, got {other:?}"),
        }
    })
    .await
}

#[tokio::test]
async fn fragmented_message_over_max_message_bytes_closes_with_1009() {
    bounded(async {
        let proxy = Proxy::with("max_message_bytes = 64").await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;

        // Each fragment is within the limit; together they are not.
        let part = "x".repeat(30);
        let part = part.as_bytes();
        send_fragmented(&mut ws, &[b"[\"", part, part, part, b"\"]"]).await;
        assert_eq!(ws::close_frame(&mut ws).await.0, 1009);
        backend.expect_disconnect(&id).await;
    })
    .await
}
