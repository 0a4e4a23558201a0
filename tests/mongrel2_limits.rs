//! The bounds of a `[[mongrel2]]` route, from the side of a hostile client:
//! - a client that does not read while its handler sends faster than any
//!   client reads: the replies held for it are bounded in bytes
//!   (`reply_queue_bytes`, 1 MiB by default); past the bound the connection
//!   is cut, counted and logged, the proxy's memory stays bounded, and the
//!   other clients of the route are served as before;
//! - a client that announces a request body and sends a few bytes of it:
//!   answered 408 after `body_timeout_ms`, and its connection closed.

mod common;

use std::time::{Duration, Instant};

use common::http::get;
use common::meter::{peak_rss_kib, rss_kib};
use common::mongrel2::{M2, python_ready};
use common::{IO_LIMIT, bounded, ws};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Clients that ask for a 64 MiB flood and read none of it.
const DEAF_CLIENTS: usize = 10;
/// What the proxy's resident memory may be above where it was, once the
/// deaf clients are cut while they are still connected: nothing is held
/// for them any more. Unbounded, the proxy would hold the 640 MiB the
/// handler sends them for as long as they stay.
const HELD_LIMIT_KIB: u64 = 32 * 1024;
/// What its peak may grow by meanwhile: each client's 1 MiB bound, the HTTP
/// writer's buffer, and the replies 0MQ has received and the link not yet
/// sorted (up to 1,000 messages in the SUB socket's queue, here 1 MiB each:
/// a transient backlog: 9 MiB of growth measured, 150 MiB seen on a loaded
/// machine when replies were still copied out of 0MQ's messages). Well
/// under the 640 MiB of an unbounded queue.
const PEAK_GROWTH_LIMIT_KIB: u64 = 384 * 1024;

const ROUTE_LABEL: &str = "route=\"/m2\"";

/// A connection that asks for `path` and then reads nothing; its receive
/// buffer is small, so that the kernel takes little of what is sent to it.
async fn deaf_client(port: u16, path: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn a_handler_flooding_clients_that_do_not_read_gets_them_cut_within_the_reply_queue_bound() {
    if !python_ready(
        "a_handler_flooding_clients_that_do_not_read_gets_them_cut_within_the_reply_queue_bound",
    ) {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "").await;
        let _h = m2.handler().await;
        let port = m2.proxy.http_port;
        let pid = m2.proxy.pid();
        // A websocket of the route, open through the flood.
        let mut bystander = ws::connect(port, "/m2/ws").await;
        ws::send(&mut bystander, "before").await;
        assert_eq!(ws::text(&mut bystander).await, "before");
        let before = rss_kib(pid);

        let mut deaf = Vec::new();
        for _ in 0..DEAF_CLIENTS {
            deaf.push(deaf_client(port, "/m2/flood").await);
        }
        let cut = format!("sockjsproxy_mongrel2_connections_cut_total{{{ROUTE_LABEL}}}");
        let deadline = Instant::now() + IO_LIMIT;
        while m2.proxy.metric(&cut).await < DEAF_CLIENTS as f64 {
            assert!(Instant::now() < deadline, "not every deaf client was cut");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Every reply that no one will take is counted as dropped: while
        // the cut connection lasts as a queue overflow, once it is gone
        // (the proxy ends it as soon as its response is polled again) as
        // a reply for an unknown connection. Nothing is held for them.
        let reason =
            |r: &str| format!("sockjsproxy_mongrel2_errors_total{{{ROUTE_LABEL},reason=\"{r}\"}}");
        let (dropped, unknown) = (reason("reply_queue_full"), reason("unknown_connection"));
        let queued = format!("sockjsproxy_mongrel2_reply_queue_bytes{{{ROUTE_LABEL}}}");
        let deadline = Instant::now() + IO_LIMIT;
        loop {
            // Each cut drops what its inbox held, the reply that did not
            // fit and every later one: all of each client's 64 MiB but
            // what the kernel and the HTTP writer took (a few MiB).
            let full = m2.proxy.metric(&dropped).await;
            let n = full + m2.proxy.metric(&unknown).await;
            let held = m2.proxy.metric(&queued).await;
            if full >= DEAF_CLIENTS as f64 && n >= (48 * DEAF_CLIENTS) as f64 && held == 0.0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{n} replies counted as dropped, {held} bytes still held"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        m2.proxy
            .wait_for_log("mongrel2 connections cut, reply queue full")
            .await;
        // The flood is over (every reply counted): what is resident now is
        // what the proxy keeps for the deaf clients, still connected.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (peak, now) = (peak_rss_kib(pid), rss_kib(pid));
        println!(
            "{DEAF_CLIENTS} deaf clients flooded with 64 MiB each: RSS {} MiB before, \
             peak {} MiB, {} MiB once they were cut",
            before / 1024,
            peak / 1024,
            now / 1024
        );
        assert!(
            now < before + HELD_LIMIT_KIB,
            "{} MiB resident after the cut, {} MiB before",
            now / 1024,
            before / 1024
        );
        assert!(
            peak < before + PEAK_GROWTH_LIMIT_KIB,
            "peak RSS {} MiB, {} MiB before",
            peak / 1024,
            before / 1024
        );

        // The other clients of the route did not notice.
        ws::send(&mut bystander, "after").await;
        assert_eq!(ws::text(&mut bystander).await, "after");
        let r = get(port, "/m2/echo").await;
        assert_eq!(r.status, 200);
        // Once the deaf clients leave, their handler hears it.
        drop(deaf);
        let open = format!("sockjsproxy_mongrel2_connections_open{{{ROUTE_LABEL}}}");
        let deadline = Instant::now() + IO_LIMIT;
        while m2.proxy.metric(&open).await > 1.0 {
            assert!(Instant::now() < deadline, "the cut connections stayed open");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_is_answered_408_after_the_body_timeout() {
    if !python_ready("a_request_body_that_stops_arriving_is_answered_408_after_the_body_timeout") {
        return;
    }
    bounded(async {
        let m2 = M2::start("json", "body_timeout_ms = 500").await;
        let _h = m2.handler().await;
        let port = m2.proxy.http_port;
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!(
            "POST /m2/body HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 100000\r\n\r\nabcd"
        );
        let sent = Instant::now();
        stream.write_all(head.as_bytes()).await.unwrap();
        // Everything the proxy says, up to its closing the connection.
        let mut answer = Vec::new();
        tokio::time::timeout(IO_LIMIT, stream.read_to_end(&mut answer))
            .await
            .expect("the connection was not closed")
            .unwrap();
        let waited = sent.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("not complete within 500ms"), "{answer}");
        assert!(
            waited >= Duration::from_millis(450) && waited < Duration::from_secs(5),
            "answered after {waited:?}"
        );
        m2.proxy.wait_for_log("request body not complete").await;
        // A body that arrives whole in time still goes through.
        let r = common::http::post(port, "/m2/body", b"in time").await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"in time"[..]));
    })
    .await;
}
