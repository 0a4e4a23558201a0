//! HTTP requests under a `[[mongrel2]]` route reach a Mongrel2 handler (in
//! Python, to the formats of Mongrel2's own library) and its raw HTTP replies
//! reach the client: headers as Mongrel2 gives them, bodies both ways,
//! Content-Length, chunked, several messages and close-delimited responses,
//! keep-alive, and the faults: no handler (502), a silent one (504), a reply
//! that is not HTTP (502), a body over the limit (413), replies for unknown
//! connections (counted, dropped).

mod common;

use common::http::{Http, get, post, request};
use common::mongrel2::{M2, SENDER, python_ready};
use common::{IO_LIMIT, bounded};
use serde_json::Value;

async fn echo_headers(m2: &M2, path: &str) -> Value {
    let r = get(m2.proxy.http_port, path).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_slice::<Value>(&r.body).unwrap()["headers"].clone()
}

fn assert_mongrel2_headers(h: &Value, port: u16) {
    assert_eq!(h["METHOD"], "GET");
    assert_eq!(h["PATH"], "/m2/echo");
    assert_eq!(h["URI"], "/m2/echo?x=1&y=2");
    assert_eq!(h["QUERY"], "x=1&y=2");
    assert_eq!(h["PATTERN"], "/m2");
    assert_eq!(h["VERSION"], "HTTP/1.1");
    assert_eq!(h["URL_SCHEME"], "http");
    assert_eq!(h["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(h["host"], format!("127.0.0.1:{port}"));
}

#[tokio::test]
async fn get_reaches_the_handler_with_mongrel2_headers() {
    if !python_ready("get_reaches_the_handler_with_mongrel2_headers") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let h = echo_headers(&m2, "/m2/echo?x=1&y=2").await;
        assert_mongrel2_headers(&h, m2.proxy.http_port);
    })
    .await;
}

#[tokio::test]
async fn tnetstring_protocol_gives_the_same_headers() {
    if !python_ready("tnetstring_protocol_gives_the_same_headers") {
        return;
    }
    bounded(async {
        let m2 = M2::start("tnetstring", "").await;
        let _h = m2.handler().await;
        let h = echo_headers(&m2, "/m2/echo?x=1&y=2").await;
        assert_mongrel2_headers(&h, m2.proxy.http_port);
    })
    .await;
}

#[tokio::test]
async fn post_bodies_up_to_one_mebibyte_round_trip() {
    if !python_ready("post_bodies_up_to_one_mebibyte_round_trip") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        for size in [0usize, 1, 1000, 1 << 20] {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let r = post(m2.proxy.http_port, "/m2/body", &body).await;
            assert_eq!(r.status, 200, "{size} bytes");
            assert_eq!(r.header("x-handler"), Some("m2"));
            assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
            assert!(r.body == body, "{size} bytes came back changed");
        }
    })
    .await;
}

#[tokio::test]
async fn a_body_over_max_message_bytes_is_refused_with_413() {
    if !python_ready("a_body_over_max_message_bytes_is_refused_with_413") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "max_message_bytes = 1000").await;
        let _h = m2.handler().await;
        let r = post(m2.proxy.http_port, "/m2/body", &[b'x'; 1001]).await;
        assert_eq!(r.status, 413);
        let r = post(m2.proxy.http_port, "/m2/body", &[b'x'; 1000]).await;
        assert_eq!((r.status, r.body.len()), (200, 1000));
    })
    .await;
}

#[tokio::test]
async fn a_chunked_reply_in_several_messages_streams_to_the_client() {
    if !python_ready("a_chunked_reply_in_several_messages_streams_to_the_client") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let r = get(m2.proxy.http_port, "/m2/chunked").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "first second third");
    })
    .await;
}

#[tokio::test]
async fn a_content_length_reply_cut_into_three_messages() {
    if !python_ready("a_content_length_reply_cut_into_three_messages") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let r = get(m2.proxy.http_port, "/m2/parts").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "0123456789".repeat(10));
    })
    .await;
}

#[tokio::test]
async fn a_close_delimited_reply_ends_with_the_handlers_empty_message() {
    if !python_ready("a_close_delimited_reply_ends_with_the_handlers_empty_message") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let mut http = Http::connect(m2.proxy.http_port).await;
        http.request("GET", "/m2/close", &[], b"").await;
        assert_eq!(http.status, 200);
        assert_eq!(http.body().await, b"until the end");
    })
    .await;
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    if !python_ready("keep_alive_serves_several_requests_on_one_connection") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let mut http = Http::connect(m2.proxy.http_port).await;
        for (path, body) in [
            ("/m2/body", &b"one"[..]),
            ("/m2/chunked", b""),
            ("/m2/parts", b""),
            ("/m2/body", b"four"),
        ] {
            http.request("POST", path, &[], body).await;
            assert_eq!(http.status, 200, "{path}");
            let got = http.body().await;
            if !body.is_empty() {
                assert_eq!(got, body);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn no_handler_connected_gives_502() {
    bounded(async {
        let m2 = M2::start("json", "").await;
        let r = get(m2.proxy.http_port, "/m2/echo").await;
        assert_eq!(r.status, 502);
        m2.proxy.wait_for_logs("no handler connected", 1).await;
        let key = "sockjsproxy_mongrel2_errors_total{route=\"/m2\",reason=\"no_handler\"}";
        assert_eq!(m2.proxy.metric(key).await, 1.0);
    })
    .await;
}

#[tokio::test]
async fn a_handler_that_does_not_answer_gives_504_and_hears_the_disconnect() {
    if !python_ready("a_handler_that_does_not_answer_gives_504_and_hears_the_disconnect") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "handler_timeout_ms = 500").await;
        let _h = m2.handler().await;
        // Counted from here: a readiness probe that raced the handler's
        // subscription may have timed out already.
        let key = "sockjsproxy_mongrel2_errors_total{route=\"/m2\",reason=\"timeout\"}";
        let timeouts = m2.proxy.count(key).await;
        let logged = m2.proxy.stderr_count("no answer within");
        let before = get(m2.proxy.http_port, "/m2/disconnects").await;
        let before: Vec<u64> = serde_json::from_slice(&before.body).unwrap();
        let start = std::time::Instant::now();
        let r = get(m2.proxy.http_port, "/m2/silent").await;
        assert_eq!(r.status, 504);
        assert!(start.elapsed() >= std::time::Duration::from_millis(450));
        m2.proxy.wait_for_logs("no answer within", logged + 1).await;
        assert_eq!(m2.proxy.count(key).await, timeouts + 1.0);
        let after = get(m2.proxy.http_port, "/m2/disconnects").await;
        let after: Vec<u64> = serde_json::from_slice(&after.body).unwrap();
        assert_eq!(after.len(), before.len() + 1, "{before:?} {after:?}");
    })
    .await;
}

#[tokio::test]
async fn a_reply_that_is_not_http_gives_502_and_a_log_line() {
    if !python_ready("a_reply_that_is_not_http_gives_502_and_a_log_line") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let r = get(m2.proxy.http_port, "/m2/garbage").await;
        assert_eq!(r.status, 502);
        assert!(r.text().contains("bad handler response"), "{}", r.text());
        m2.proxy
            .wait_for_logs("mongrel2 handler responses refused", 1)
            .await;
        // The route goes on serving.
        assert_eq!(get(m2.proxy.http_port, "/m2/echo").await.status, 200);
    })
    .await;
}

#[tokio::test]
async fn replies_for_unknown_connections_and_malformed_replies_are_dropped_and_logged() {
    if !python_ready("replies_for_unknown_connections_and_malformed_replies_are_dropped_and_logged")
    {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        // A second publisher: a handler that got its ids wrong.
        let ctx = zmq::Context::new();
        let publisher = ctx.socket(zmq::PUB).unwrap();
        publisher.connect(&m2.recv_spec).unwrap();
        let deadline = std::time::Instant::now() + IO_LIMIT;
        while !m2.proxy.stderr_contains("unknown connections")
            || !m2.proxy.stderr_contains("dropped as malformed")
        {
            assert!(std::time::Instant::now() < deadline, "never logged");
            let unknown = format!("{SENDER} 6:987654, HTTP/1.1 200 OK\r\n\r\n");
            publisher.send(unknown.as_bytes(), 0).unwrap();
            publisher
                .send(format!("{SENDER} 1:x, nonsense").as_bytes(), 0)
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Nothing of it reached anyone; the route still serves.
        let r = request(m2.proxy.http_port, "GET", "/m2/echo", &[], b"").await;
        assert_eq!(r.status, 200);
        for reason in ["unknown_connection", "bad_reply"] {
            let key =
                format!("sockjsproxy_mongrel2_errors_total{{route=\"/m2\",reason=\"{reason}\"}}");
            assert!(m2.proxy.metric(&key).await >= 1.0, "{reason}");
        }
        let requests = "sockjsproxy_mongrel2_requests_total{route=\"/m2\"}";
        assert!(m2.proxy.metric(requests).await >= 2.0);
    })
    .await;
}
