//! Address allowlists (issue #12): `backend_allow` lets backends connect
//! from its networks only; a peer from elsewhere (127.0.0.2 here) is closed
//! at accept, before our greeting, logged with its address and counted,
//! while a backend from inside is served. A bad entry, or an allowlist where
//! libzmq would carry the sockets, is a start-up error.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::backend::Backend;
use common::{IO_LIMIT, Proxy, bounded, ws};
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

const NOT_ALLOWED: &str =
    "sockjsproxy_backend_disconnects_total{service=\"/echo\",reason=\"address_not_allowed\"}";

/// Connects from `from` to a proxy endpoint (`tcp://host:port`) and reads
/// what the proxy sends first: its greeting's first byte, or `None` if it
/// closed the connection without a byte.
async fn first_byte_from(from: &str, endpoint: &str) -> Option<u8> {
    let to: SocketAddr = endpoint.strip_prefix("tcp://").unwrap().parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(to).await.expect("connect");
    let mut byte = [0u8; 1];
    match tokio::time::timeout(IO_LIMIT, stream.read(&mut byte)).await {
        Ok(Ok(1)) => Some(byte[0]),
        Ok(Ok(_)) | Ok(Err(_)) => None,
        Err(_) => panic!("the proxy neither greeted nor closed"),
    }
}

#[tokio::test]
async fn a_backend_outside_backend_allow_is_refused_at_accept_and_one_inside_is_served() {
    bounded(async {
        let proxy = Proxy::with("backend_allow = [\"127.0.0.1\"]").await;
        let s = proxy.services[0].clone();
        for endpoint in [&s.push, &s.pull] {
            assert_eq!(first_byte_from("127.0.0.2", endpoint).await, None);
        }
        let line = proxy.wait_for_log("not in backend_allow").await;
        assert!(line.contains("backend 127.0.0.2:"), "{line}");
        assert_eq!(proxy.metric(NOT_ALLOWED).await, 2.0);
        assert_eq!(first_byte_from("127.0.0.1", &s.pull).await, Some(0xFF));

        let _backend = Backend::echo(&proxy);
        let mut ws = ws::connect(proxy.http_port, &Proxy::session_path("a", "websocket")).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        // The backend may still be connecting: the message waits for it.
        ws::send(&mut ws, "[\"inside\"]").await;
        assert_eq!(ws::text(&mut ws).await, "a[\"inside\"]");
        assert_eq!(proxy.metric(NOT_ALLOWED).await, 2.0);
    })
    .await
}

#[tokio::test]
async fn backend_allow_takes_networks() {
    bounded(async {
        let proxy = Proxy::with("backend_allow = [\"10.0.0.0/8\", \"127.0.0.0/30\"]").await;
        let s = proxy.services[0].clone();
        assert_eq!(first_byte_from("127.0.0.2", &s.push).await, Some(0xFF));
        assert_eq!(first_byte_from("127.0.0.5", &s.push).await, None);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(proxy.metric(NOT_ALLOWED).await, 1.0);
    })
    .await
}

#[test]
fn a_bad_backend_allow_or_one_libzmq_would_carry_is_a_startup_error() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--backend-allow", "10.0.0.0/33"],
            "backend_allow \"10.0.0.0/33\" is neither a network",
        ),
        (
            &["--backend-allow", "127.0.0.1", "--zmq-engine", "libzmq"],
            "need the native ZMTP engine; with --zmq-engine libzmq",
        ),
        (
            &["--backend-allow", "127.0.0.1", "--connect"],
            "with --connect (scale-out mode)",
        ),
    ];
    for (args, expected) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sockjsproxy"))
            .args(["-p", "1", "-i", "1", "-o", "2", "-a", "127.0.0.1"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
