//! Every SockJS transport end to end, with the real proxy and a real 0MQ echo
//! backend: the session opens (`o`, and `connect` at the backend), a message
//! with non-ASCII text and U+2028 goes client → backend → client byte for byte,
//! and when the session ends the backend gets `disconnect`.

mod common;

use common::backend::Backend;
use common::http::{self, Frames, Wire};
use common::{Proxy, TRICKY, TRICKY_QUOTED, bounded, message_frame, payload, ws};

/// Short enough that idle polling sessions end quickly, long enough for a
/// client to come back between two polls on a loaded machine.
const POLLING: &str = "disconnect_delay_ms = 1000";
/// Streaming receivers: a client that hangs up ends its session at once; the
/// default heartbeat (25 s) is far beyond the test's time bounds, so no write
/// is needed to notice it.
const STREAMING: &str = "disconnect_delay_ms = 500";

#[tokio::test]
async fn websocket_echoes_a_message_and_client_close_disconnects() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::echo(&proxy);
        let path = Proxy::session_path("s1", "websocket");
        let mut ws = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;

        ws::send(&mut ws, &payload(&[TRICKY])).await;
        assert_eq!(backend.expect_message(&id).await, TRICKY);
        assert_eq!(ws::text(&mut ws).await, message_frame(TRICKY_QUOTED));

        // Two messages in one payload arrive as two backend messages, in order.
        ws::send(&mut ws, &payload(&["one", "two"])).await;
        assert_eq!(backend.expect_message(&id).await, "one");
        assert_eq!(backend.expect_message(&id).await, "two");
        assert_eq!(ws::messages(&mut ws, 2).await, ["one", "two"]);

        ws.close(None).await.expect("close");
        backend.expect_disconnect(&id).await;
    })
    .await
}

#[tokio::test]
async fn raw_websocket_echoes_text_verbatim_and_client_close_disconnects() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::echo(&proxy);
        let mut ws = ws::connect(proxy.http_port, "/echo/websocket").await;
        let id = backend.expect_connect().await;

        ws::send(&mut ws, TRICKY).await;
        assert_eq!(backend.expect_message(&id).await, TRICKY);
        // No SockJS framing: the message itself, with no `o` before it.
        assert_eq!(ws::text(&mut ws).await, TRICKY);

        // Text that looks like a SockJS payload is not decoded either.
        ws::send(&mut ws, r#"["not","decoded"]"#).await;
        assert_eq!(backend.expect_message(&id).await, r#"["not","decoded"]"#);
        assert_eq!(ws::text(&mut ws).await, r#"["not","decoded"]"#);

        ws.close(None).await.expect("close");
        backend.expect_disconnect(&id).await;
    })
    .await
}

#[tokio::test]
async fn xhr_polling_echoes_a_message_and_the_idle_session_times_out() {
    bounded(async {
        let proxy = Proxy::with(POLLING).await;
        let mut backend = Backend::echo(&proxy);
        let port = proxy.http_port;
        let xhr = Proxy::session_path("s1", "xhr");

        let open = http::post(port, &xhr, b"").await;
        assert_eq!((open.status, open.text().as_str()), (200, "o\n"));
        assert_eq!(
            open.header("content-type"),
            Some("application/javascript; charset=UTF-8")
        );
        let id = backend.expect_connect().await;

        let poll = tokio::spawn({
            let xhr = xhr.clone();
            async move { http::post(port, &xhr, b"").await }
        });
        let send = http::post(
            port,
            &Proxy::session_path("s1", "xhr_send"),
            payload(&[TRICKY]).as_bytes(),
        )
        .await;
        assert_eq!(send.status, 204);
        assert_eq!(backend.expect_message(&id).await, TRICKY);
        let answer = poll.await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), format!("{}\n", message_frame(TRICKY_QUOTED)));

        // No receiver comes back: the session times out.
        backend.expect_disconnect(&id).await;
    })
    .await
}

#[tokio::test]
async fn xhr_streaming_echoes_a_message_and_client_abort_disconnects() {
    bounded(async {
        let proxy = Proxy::with(STREAMING).await;
        let mut backend = Backend::echo(&proxy);
        let port = proxy.http_port;
        let path = Proxy::session_path("s1", "xhr_streaming");
        let mut stream = Frames::open(port, "POST", &path, Wire::Newline).await;
        assert_eq!(
            stream.http.header("content-type"),
            Some("application/javascript; charset=UTF-8")
        );
        let mut prelude = vec![b'h'; 2048];
        prelude.push(b'\n');
        assert_eq!(stream.prelude(2049).await, prelude);
        assert_eq!(stream.next().await, "o");
        echo_tricky_then_hang_up(port, stream, &mut backend).await;
    })
    .await
}

#[tokio::test]
async fn eventsource_echoes_a_message_and_client_abort_disconnects() {
    bounded(async {
        let proxy = Proxy::with(STREAMING).await;
        let mut backend = Backend::echo(&proxy);
        let port = proxy.http_port;
        let path = Proxy::session_path("s1", "eventsource");
        let mut stream = Frames::open(port, "GET", &path, Wire::EventSource).await;
        assert_eq!(
            stream.http.header("content-type"),
            Some("text/event-stream")
        );
        assert_eq!(stream.prelude(2).await, b"\r\n");
        assert_eq!(stream.next().await, "o");
        echo_tricky_then_hang_up(port, stream, &mut backend).await;
    })
    .await
}

#[tokio::test]
async fn htmlfile_echoes_a_message_and_client_abort_disconnects() {
    bounded(async {
        let proxy = Proxy::with(STREAMING).await;
        let mut backend = Backend::echo(&proxy);
        let port = proxy.http_port;
        let path = format!("{}?c=cb", Proxy::session_path("s1", "htmlfile"));
        let mut stream = Frames::open(port, "GET", &path, Wire::HtmlFile).await;
        assert_eq!(
            stream.http.header("content-type"),
            Some("text/html; charset=UTF-8")
        );
        let page = String::from_utf8(stream.until(b"\r\n\r\n").await).unwrap();
        assert!(page.starts_with("<!doctype html>"), "{page:?}");
        assert!(page.contains("var c = parent.cb;"), "{page:?}");
        assert!(page.len() > 1024, "page head is not padded past 1 KiB");
        assert_eq!(stream.next().await, "o");
        echo_tricky_then_hang_up(port, stream, &mut backend).await;
    })
    .await
}

#[tokio::test]
async fn jsonp_echoes_form_and_plain_messages_and_the_idle_session_times_out() {
    bounded(async {
        let proxy = Proxy::with(POLLING).await;
        let mut backend = Backend::echo(&proxy);
        let port = proxy.http_port;
        let jsonp = format!("{}?c=cb", Proxy::session_path("s1", "jsonp"));
        let jsonp_send = Proxy::session_path("s1", "jsonp_send");

        let open = http::get(port, &jsonp).await;
        assert_eq!(open.status, 200);
        assert_eq!(open.text(), "/**/cb(\"o\");\r\n");
        assert_eq!(
            open.header("content-type"),
            Some("application/javascript; charset=UTF-8")
        );
        let id = backend.expect_connect().await;

        // As a form field `d`, the way sockjs-client posts it.
        let poll = tokio::spawn({
            let jsonp = jsonp.clone();
            async move { http::get(port, &jsonp).await }
        });
        let form = format!("d={}", http::form_encode(&payload(&[TRICKY])));
        let form_type = [("Content-Type", "application/x-www-form-urlencoded")];
        let sent = http::request(port, "POST", &jsonp_send, &form_type, form.as_bytes()).await;
        assert_eq!((sent.status, sent.text().as_str()), (200, "ok"));
        assert_eq!(backend.expect_message(&id).await, TRICKY);
        let answer = poll.await.unwrap();
        assert_eq!(
            http::jsonp_frame(&answer.text(), "cb"),
            message_frame(TRICKY_QUOTED)
        );

        // As a plain body.
        let poll = tokio::spawn({
            let jsonp = jsonp.clone();
            async move { http::get(port, &jsonp).await }
        });
        let sent = http::post(port, &jsonp_send, payload(&["plain"]).as_bytes()).await;
        assert_eq!((sent.status, sent.text().as_str()), (200, "ok"));
        assert_eq!(backend.expect_message(&id).await, "plain");
        let answer = poll.await.unwrap();
        assert_eq!(http::jsonp_frame(&answer.text(), "cb"), r#"a["plain"]"#);

        backend.expect_disconnect(&id).await;
    })
    .await
}

/// The rest of every streaming transport's test, once `o` has arrived: the
/// backend hears `connect`; a message sent with xhr_send reaches it and comes
/// back on the stream byte for byte; then the client hangs up and the backend
/// hears `disconnect`.
async fn echo_tricky_then_hang_up(port: u16, mut stream: Frames, backend: &mut Backend) {
    let id = backend.expect_connect().await;
    let send = http::post(
        port,
        &Proxy::session_path("s1", "xhr_send"),
        payload(&[TRICKY]).as_bytes(),
    )
    .await;
    assert_eq!(send.status, 204);
    assert_eq!(backend.expect_message(&id).await, TRICKY);
    // Heartbeats may come first on a slow machine.
    assert_eq!(
        stream.next_skipping_heartbeats().await,
        message_frame(TRICKY_QUOTED)
    );

    drop(stream);
    backend.expect_disconnect(&id).await;
}

#[tokio::test]
async fn eventsource_percent_escapes_its_data_as_sockjs_client_decodes_it() {
    bounded(async {
        let proxy = Proxy::with(STREAMING).await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("pct", "eventsource");
        let mut stream = Frames::open(proxy.http_port, "GET", &path, Wire::EventSource).await;
        assert_eq!(stream.prelude(2).await, b"\r\n");
        assert_eq!(stream.next().await, "o");
        let id = backend.expect_connect().await;
        // sockjs-client runs decodeURI on each event's data: a raw `%` threw
        // "URI malformed" and stalled the session.
        backend.send_message(&id, "100% of %41 and %");
        assert_eq!(stream.next().await, r#"a["100%25 of %2541 and %25"]"#);
    })
    .await
}
