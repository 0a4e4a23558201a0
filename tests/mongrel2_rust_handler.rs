//! The Rust handler of `examples/m2_echo.rs` behind a `[[mongrel2]]` route:
//! HTTP GET and POST, and a websocket echo, with nothing but the crate's
//! Mongrel2 codecs on the handler's side.

mod common;

use std::time::{Duration, Instant};

use common::http::{get, post};
use common::mongrel2::M2;
use common::procs::{example, spawn};
use common::{IO_LIMIT, bounded, ws};

#[tokio::test]
async fn the_rust_example_handler_serves_http_and_websockets() {
    bounded(async {
        let m2 = M2::start("json", "").await;
        let handler = spawn(
            &example("m2_echo"),
            &[m2.send_spec.clone(), m2.recv_spec.clone()],
            "info",
        );
        handler.wait_for("m2_echo: requests from").await;
        let port = m2.proxy.http_port;
        let deadline = Instant::now() + IO_LIMIT;
        let r = loop {
            let r = get(port, "/m2/hello?q=1").await;
            if r.status == 200 {
                break r;
            }
            assert!(Instant::now() < deadline, "no answer: {}", r.status);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(r.text(), "GET /m2/hello?q=1\n");
        let body = vec![b'z'; 300_000];
        let r = post(port, "/m2/upload", &body).await;
        assert_eq!(r.status, 200);
        assert!(r.body.starts_with(b"POST /m2/upload\n"));
        assert_eq!(r.body.len(), "POST /m2/upload\n".len() + body.len());
        let mut c = ws::connect(port, "/m2/ws").await;
        for text in ["one", common::TRICKY, &"long ".repeat(20_000)] {
            ws::send(&mut c, text).await;
            assert_eq!(ws::text(&mut c).await, text);
        }
        drop(c);
        handler.wait_for("is gone").await;
    })
    .await;
}
