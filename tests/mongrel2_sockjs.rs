//! A `[[service]]` with `backend = "mongrel2"`: each SockJS session, over
//! any transport, is a websocket connection to an unmodified Mongrel2
//! websocket handler (the Python one of the other Mongrel2 tests).

mod common;

use std::time::{Duration, Instant};

use common::http::{Frames, Wire, post};
use common::mongrel2::{SENDER, python_ready};
use common::{IO_LIMIT, Proxy, bounded, ws};

const PREFIX: &str = "/chat";

/// The proxy with a Mongrel2-served SockJS service at [`PREFIX`], its
/// handler, and the endpoints.
async fn start() -> (Proxy, common::mongrel2::Handler) {
    start_with(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/common/m2_handler.py"
    ))
    .await
}

/// As [`start`], with the handler `script`.
async fn start_with(script: &str) -> (Proxy, common::mongrel2::Handler) {
    let ports = std::sync::Mutex::new(Vec::new());
    let proxy = Proxy::with_toml(3, |p| {
        *ports.lock().unwrap() = p.to_vec();
        format!(
            "http_address = \"127.0.0.1\"\nhttp_port = {}\nworkers = 1\n\n\
             [[service]]\nprefix = \"{PREFIX}\"\nbackend = \"mongrel2\"\n\
             send_spec = \"tcp://127.0.0.1:{}\"\nsend_ident = \"{SENDER}\"\n\
             recv_spec = \"tcp://127.0.0.1:{}\"\nheartbeat_delay_ms = 60000\n",
            p[0], p[1], p[2]
        )
    })
    .await;
    let p = ports.into_inner().unwrap();
    let child = std::process::Command::new("python3")
        .args([
            script,
            &format!("tcp://127.0.0.1:{}", p[1]),
            &format!("tcp://127.0.0.1:{}", p[2]),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let handler = common::mongrel2::Handler::from(child);
    // Ready when a session's message comes back (the chat room sends it
    // back too: to everyone, which is the one session).
    let deadline = Instant::now() + IO_LIMIT;
    let mut n = 0;
    loop {
        n += 1;
        let mut c = ws::connect(proxy.http_port, &format!("{PREFIX}/000/ready{n}/websocket")).await;
        assert_eq!(ws::text(&mut c).await, "o");
        ws::send(&mut c, "[\"ready\"]").await;
        match ws::next_within(&mut c, Duration::from_millis(500)).await {
            Some(tokio_tungstenite::tungstenite::Message::Text(t)) if t == "a[\"ready\"]" => break,
            _ => assert!(Instant::now() < deadline, "the handler never answered"),
        }
    }
    (proxy, handler)
}

#[tokio::test]
async fn a_mongrel2_websocket_handler_serves_sockjs_over_websocket() {
    if !python_ready("a_mongrel2_websocket_handler_serves_sockjs_over_websocket") {
        return;
    }
    bounded(async {
        let (proxy, _h) = start().await;
        let mut c = ws::connect(proxy.http_port, &format!("{PREFIX}/000/ws1/websocket")).await;
        assert_eq!(ws::text(&mut c).await, "o");
        ws::send(&mut c, "[\"hello\",\"world\"]").await;
        assert_eq!(ws::messages(&mut c, 2).await, ["hello", "world"]);
        // The log calls it what it is in the config: a service, not a route.
        assert!(proxy.stderr_contains(&format!("mongrel2 SockJS service {PREFIX}: PUSH bound")));
    })
    .await;
}

#[tokio::test]
async fn a_mongrel2_websocket_handler_serves_sockjs_over_xhr() {
    if !python_ready("a_mongrel2_websocket_handler_serves_sockjs_over_xhr") {
        return;
    }
    bounded(async {
        let (proxy, _h) = start().await;
        let port = proxy.http_port;
        let mut stream = Frames::open(
            port,
            "POST",
            &format!("{PREFIX}/000/x1/xhr_streaming"),
            Wire::Newline,
        )
        .await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");
        let sent = post(
            port,
            &format!("{PREFIX}/000/x1/xhr_send"),
            b"[\"over xhr\"]",
        )
        .await;
        assert_eq!(sent.status, 204);
        assert_eq!(stream.next().await, "a[\"over xhr\"]");
    })
    .await;
}

#[tokio::test]
async fn handler_pings_are_answered_for_the_sockjs_client() {
    if !python_ready("handler_pings_are_answered_for_the_sockjs_client") {
        return;
    }
    bounded(async {
        let (proxy, _h) = start().await;
        let mut c = ws::connect(proxy.http_port, &format!("{PREFIX}/000/p1/websocket")).await;
        assert_eq!(ws::text(&mut c).await, "o");
        ws::send(&mut c, "[\"ping:alive?\"]").await;
        assert_eq!(ws::messages(&mut c, 1).await, ["pong:alive?"]);
    })
    .await;
}

#[tokio::test]
async fn the_handler_closes_a_sockjs_session() {
    if !python_ready("the_handler_closes_a_sockjs_session") {
        return;
    }
    bounded(async {
        let (proxy, _h) = start().await;
        let mut c = ws::connect(proxy.http_port, &format!("{PREFIX}/000/c1/websocket")).await;
        assert_eq!(ws::text(&mut c).await, "o");
        ws::send(&mut c, "[\"bye\"]").await;
        assert_eq!(ws::text(&mut c).await, "c[3000,\"Go away!\"]");
    })
    .await;
}

#[tokio::test]
async fn one_reply_reaches_every_sockjs_session() {
    if !python_ready("one_reply_reaches_every_sockjs_session") {
        return;
    }
    bounded(async {
        let (proxy, _h) = start().await;
        let mut clients = Vec::new();
        for i in 0..4 {
            let path = format!("{PREFIX}/000/all{i}/websocket");
            let mut c = ws::connect(proxy.http_port, &path).await;
            assert_eq!(ws::text(&mut c).await, "o");
            ws::send(&mut c, "[\"here\"]").await;
            assert_eq!(ws::messages(&mut c, 1).await, ["here"]);
            clients.push(c);
        }
        ws::send(&mut clients[0], "[\"all:everyone\"]").await;
        for c in &mut clients {
            assert_eq!(ws::messages(c, 1).await, ["everyone"]);
        }
    })
    .await;
}

#[tokio::test]
async fn the_chat_sample_delivers_each_message_to_every_session() {
    if !python_ready("the_chat_sample_delivers_each_message_to_every_session") {
        return;
    }
    bounded(async {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/m2_chat.py");
        let (proxy, _h) = start_with(script).await;
        let port = proxy.http_port;
        let mut a = ws::connect(port, &format!("{PREFIX}/000/chat-a/websocket")).await;
        assert_eq!(ws::text(&mut a).await, "o");
        let mut b = ws::connect(port, &format!("{PREFIX}/000/chat-b/websocket")).await;
        assert_eq!(ws::text(&mut b).await, "o");
        // xhr-streaming is a room member like the others.
        let mut x = Frames::open(
            port,
            "POST",
            &format!("{PREFIX}/000/chat-x/xhr_streaming"),
            Wire::Newline,
        )
        .await;
        x.prelude(2049).await;
        assert_eq!(x.next().await, "o");
        // Each session's handshake went to the handler when it opened,
        // before anything below: all three are in the room.
        ws::send(&mut a, "[\"anyone?\"]").await;
        assert_eq!(ws::messages(&mut a, 1).await, ["anyone?"]);
        assert_eq!(ws::messages(&mut b, 1).await, ["anyone?"]);
        assert_eq!(x.next().await, "a[\"anyone?\"]");
        let sent = post(
            port,
            &format!("{PREFIX}/000/chat-x/xhr_send"),
            b"[\"hello room\"]",
        )
        .await;
        assert_eq!(sent.status, 204);
        assert_eq!(x.next().await, "a[\"hello room\"]");
        assert_eq!(ws::messages(&mut a, 1).await, ["hello room"]);
        assert_eq!(ws::messages(&mut b, 1).await, ["hello room"]);
    })
    .await;
}

#[tokio::test]
async fn on_sigterm_sessions_close_with_1001_and_the_handler_hears_each_disconnect() {
    if !python_ready("on_sigterm_sessions_close_with_1001_and_the_handler_hears_each_disconnect") {
        return;
    }
    bounded(async {
        let (mut proxy, h) = start().await;
        let port = proxy.http_port;
        let mut c = ws::connect(port, &format!("{PREFIX}/000/t1/websocket")).await;
        assert_eq!(ws::text(&mut c).await, "o");
        let mut stream = Frames::open(
            port,
            "POST",
            &format!("{PREFIX}/000/t2/xhr_streaming"),
            Wire::Newline,
        )
        .await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");
        let asked = Instant::now();
        assert_eq!(proxy.terminate().await, Some(0));
        assert!(
            asked.elapsed() < Duration::from_secs(4),
            "{:?}",
            asked.elapsed()
        );
        let goodbye = "c[1001,\"Server shutting down\"]";
        assert_eq!(ws::text(&mut c).await, goodbye);
        assert_eq!(stream.next().await, goodbye);
        common::mongrel2::every_open_websocket_disconnected(&h).await;
    })
    .await;
}

#[tokio::test]
async fn a_mongrel2_service_counts_its_sessions_and_messages_like_any_service() {
    if !python_ready("a_mongrel2_service_counts_its_sessions_and_messages_like_any_service") {
        return;
    }
    bounded(async {
        let (proxy, _h) = start().await;
        let port = proxy.http_port;
        let metric = |name: &str, labels: &str| {
            format!("sockjsproxy_{name}{{service=\"{PREFIX}\"{labels}}}")
        };
        // What the readiness check (websocket sessions) left behind.
        let ws_opened = metric("sessions_opened_total", ",transport=\"websocket\"");
        let xhr_opened = metric("sessions_opened_total", ",transport=\"xhr_streaming\"");
        let xhr_open = metric("sessions_open", ",transport=\"xhr_streaming\"");
        let messages_in = metric("messages_total", ",direction=\"in\"");
        let messages_out = metric("messages_total", ",direction=\"out\"");
        let bytes_in = metric("bytes_total", ",direction=\"in\"");
        let before_in = proxy.metric(&messages_in).await;
        let before_out = proxy.metric(&messages_out).await;
        let before_bytes = proxy.metric(&bytes_in).await;
        assert!(proxy.metric(&ws_opened).await >= 1.0);
        assert_eq!(proxy.metric(&xhr_opened).await, 0.0);

        let mut stream = Frames::open(
            port,
            "POST",
            &format!("{PREFIX}/000/m1/xhr_streaming"),
            Wire::Newline,
        )
        .await;
        stream.prelude(2049).await;
        assert_eq!(stream.next().await, "o");
        let send = format!("{PREFIX}/000/m1/xhr_send");
        assert_eq!(post(port, &send, b"[\"one\",\"two\"]").await.status, 204);
        let mut got = Vec::new();
        while got.len() < 2 {
            got.extend(common::messages(&stream.next().await));
        }
        assert_eq!(got, ["one", "two"]);
        assert_eq!(proxy.metric(&xhr_opened).await, 1.0);
        assert_eq!(proxy.metric(&xhr_open).await, 1.0);
        assert_eq!(proxy.metric(&messages_in).await - before_in, 2.0);
        assert_eq!(proxy.metric(&messages_out).await - before_out, 2.0);
        assert_eq!(proxy.metric(&bytes_in).await - before_bytes, 6.0);
        // The zmq backend's families say nothing of it.
        let text = common::http::get(port, "/metrics").await.text();
        let queue = format!("sockjsproxy_backend_queue_depth{{service=\"{PREFIX}\"}}");
        assert!(!text.contains(&queue), "{text}");
    })
    .await;
}
