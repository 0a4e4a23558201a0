//! Shared parts of the integration tests: the real `sockjsproxy` binary started
//! with a temporary TOML config on free ports (and killed on drop), a time bound
//! for every test, and the clients of the other modules: a raw HTTP/1.1 client
//! ([`http`]), a real 0MQ backend peer ([`backend`]), libzmq sockets with
//! their event monitor ([`zmq_peer`]), raw ZMTP peers that send what libzmq
//! would not ([`zmtp_raw`]), websocket helpers ([`ws`]), a websocket client
//! by hand ([`raw_ws`]), hostile clients ([`attack`]), the well-behaved
//! clients and backends beside them ([`bystanders`]) and what the attacks
//! cost the proxy ([`meter`]), an auth service and a client of every
//! transport for the "who is connected" tests ([`who`]), CURVE keys, a pyzmq
//! CURVE backend and a tampering relay ([`curve`]), and Mongrel2 handlers in
//! Python ([`mongrel2`]).
//!
//! Every test binary uses only part of this, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod attack;
pub mod backend;
pub mod bridge;
pub mod bystanders;
pub mod client;
pub mod curve;
pub mod http;
pub mod meter;
pub mod mongrel2;
pub mod procs;
mod proxy;
pub mod raw_ws;
pub mod who;
pub mod ws;
pub mod zmq_peer;
pub mod zmtp_raw;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The longest any one test may take.
pub const TEST_LIMIT: Duration = Duration::from_secs(30);
/// The longest any single wait for the proxy or the backend may take.
pub const IO_LIMIT: Duration = Duration::from_secs(10);
/// The service prefix every test proxy serves.
pub const PREFIX: &str = "/echo";
/// A message that exercises UTF-8 and the characters SockJS must escape.
pub const TRICKY: &str = "h\u{e9}llo \u{2028} \u{4e2d}\u{6587} \u{1f600} \"q\" \\ end";
/// [`TRICKY`] as the proxy writes it inside a frame: JSON-quoted, with U+2028
/// escaped in lowercase hex and everything else non-ASCII left raw.
pub const TRICKY_QUOTED: &str =
    "\"h\u{e9}llo \\u2028 \u{4e2d}\u{6587} \u{1f600} \\\"q\\\" \\\\ end\"";

/// Runs a test body, failing it if it takes longer than [`TEST_LIMIT`].
pub async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("test exceeded its time limit")
}

/// A port that was free a moment ago (the OS picked it for a listener we closed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `n` distinct ports that were free a moment ago.
pub fn free_ports(n: usize) -> Vec<u16> {
    // Hold all listeners at once so that the OS cannot hand out one port twice.
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A file in the temp directory, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(contents: &[u8]) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sockjsproxy-itest-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A config with one service at [`PREFIX`]; `extra` is TOML lines for the
/// service table (`"max_queue = 3"`).
pub fn config_toml(http: u16, push: u16, pull: u16, extra: &str) -> String {
    format!(
        "http_address = \"127.0.0.1\"\nhttp_port = {http}\nworkers = 1\n\n{}",
        service_toml(PREFIX, push, pull, extra)
    )
}

/// One `[[service]]` table.
pub fn service_toml(prefix: &str, push: u16, pull: u16, extra: &str) -> String {
    format!(
        "[[service]]\nprefix = \"{prefix}\"\npush = \"tcp://127.0.0.1:{push}\"\n\
         pull = \"tcp://127.0.0.1:{pull}\"\n{extra}\n"
    )
}

pub use proxy::{Endpoints, Proxy};

/// The messages of an `a[...]` frame; panics on any other frame.
pub fn messages(frame: &str) -> Vec<String> {
    let array = frame
        .strip_prefix('a')
        .unwrap_or_else(|| panic!("expected a message frame, got {frame:?}"));
    serde_json::from_str(array).unwrap_or_else(|e| panic!("bad frame {frame:?}: {e}"))
}

/// The frame carrying one message, as the proxy writes it.
pub fn message_frame(quoted: &str) -> String {
    format!("a[{quoted}]")
}

/// A SockJS client payload (`["a","b"]`) for messages.
pub fn payload(messages: &[&str]) -> String {
    serde_json::to_string(messages).unwrap()
}
