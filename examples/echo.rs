//! An echo backend for every service of a sockjsproxy config file: it echoes
//! each message back to its session, and on the `/close` service it answers
//! every `connect` with `disconnect`. With the proxy, it serves what the SockJS
//! protocol suite expects:
//!
//! ```text
//! sockjsproxy --config tests/sockjs-protocol/services.toml &
//! cargo run --release --example echo -- --config tests/sockjs-protocol/services.toml
//! ```
//!
//! Without `--config` it serves the single service of the default flags
//! (PUSH on 9241, PULL on 9242).
//!
//! It is also a scale-out worker as it is (session ids are opaque to it): point
//! `--in-port`/`--out-port` at the broker's worker side, e.g. `--in-port 9243
//! --out-port 9244` (see `examples/broker.rs`). `RUST_LOG=echo=debug` logs each
//! event, which the scale-out test reads.

use futures_util::{SinkExt, StreamExt};
use sockjsproxy::backend::peer::connect_services;
use tmq::AsZmqSocket;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // The same flags as the proxy, so that one command line describes both.
    let endpoints = sockjsproxy::config::peer_endpoints("echo");
    let (_zmq, services) = connect_services("echo", endpoints, 0);
    let mut tasks = Vec::new();
    for service in services {
        let close_on_connect = service.name == "/close";
        tasks.push(tokio::spawn(serve(
            service.events,
            service.commands,
            close_on_connect,
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn serve(events: tmq::pull::Pull, mut commands: tmq::push::Push, close_on_connect: bool) {
    // Read in batches, and send a `message` event back as it came: it already
    // is the `[message, session, data]` command that echoes it.
    let mut events = events.buffered(256);
    while let Some(Ok(event)) = events.next().await {
        if event.len() != 3 {
            log::warn!("event with {} parts ignored", event.len());
            continue;
        }
        log::debug!(
            "event {} {}",
            String::from_utf8_lossy(&event[0]),
            String::from_utf8_lossy(&event[1])
        );
        let reply = match &event[0][..] {
            b"message" => event,
            b"connect" if close_on_connect => {
                let session = event[1].to_vec();
                tmq::Multipart::from(vec![b"disconnect".to_vec(), session, Vec::new()])
            }
            _ => continue,
        };
        // Fast path, as the proxy's own writer does: hand the reply to 0MQ at
        // once (each readiness check of the sink costs 0MQ a mailbox poll), and
        // wait through the sink only when 0MQ has no room.
        let parts = reply.iter().map(|m| &m[..]);
        match commands.get_socket().send_multipart(parts, zmq::DONTWAIT) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => {
                if commands.send(reply).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                log::error!("echo: send failed: {e}");
                break;
            }
        }
    }
}
