//! The bound PULL socket: each connected PUSH peer (a backend) gets a task
//! that reads its stream, splits it into messages and hands each to the
//! [`Inbox`] at once, on the worker thread that runs the sessions. Peers are
//! served fairly by the runtime's task scheduling, as 0MQ fair-queues.
//!
//! Each message is bounded in frames and bytes ([`Limits`], set by the backend
//! module: 8 frames, 64 MiB). The protocol has exactly three frames; up to 8,
//! a message of the wrong shape is whole and small, so it is dropped and
//! reported like any other malformed command and the backend keeps its
//! connection (as under `--zmq-engine libzmq`: a backend's mistake is told,
//! not punished). Beyond that the peer is not speaking this protocol at all:
//! a frame costs the proxy a 32-byte handle even when empty, so a frame
//! bound, not only a byte bound, is what keeps an endless run of empty MORE
//! frames from filling memory. A peer over either bound is disconnected at
//! that frame's header, with nothing of it buffered, logged with its address
//! and counted; what it sent before that message was delivered.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::curve;
use super::decoder::{Decoder, Item, Limits};
use super::handshake::handshake;
use super::link::Link;
use super::wire::{self, Command, SocketType, WireError};
use super::{Counters, Listener, Stream};

/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

/// Where messages from backends go.
pub trait Inbox {
    /// One whole message, its parts in order.
    fn message(&self, parts: &[Bytes]);
    /// A message dropped unread: it broke the limits, and its peer is
    /// disconnected.
    fn cut_off(&self);
}

/// Starts accepting backends on `listener` (on the current thread), with
/// CURVE when `curve` has our keys, from the networks of `allow` if any. A peer whose message breaks `limits`
/// is disconnected and counted in `counters`.
pub fn start(
    listener: Listener,
    service: String,
    curve: Option<Arc<curve::Keys>>,
    allow: Arc<[ipnet::IpNet]>,
    limits: Limits,
    inbox: Arc<dyn Inbox>,
    counters: Arc<Counters>,
) -> io::Result<()> {
    let name = service.clone();
    counters.pull_peers.started();
    let refused = counters.clone();
    listener.spawn_accept(name, "PULL", allow, refused, move |stream, address| {
        actix_web::rt::spawn(serve_peer(
            stream,
            address,
            service.clone(),
            curve.clone(),
            limits,
            inbox.clone(),
            counters.clone(),
        ));
    })
}

async fn serve_peer(
    mut stream: Stream,
    address: String,
    service: String,
    curve: Option<Arc<curve::Keys>>,
    limits: Limits,
    inbox: Arc<dyn Inbox>,
    counters: Arc<Counters>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let link = match handshake(&mut stream, SocketType::Pull, curve.as_ref(), &mut buf).await {
        Ok(None) => Link::Null,
        Ok(Some(done)) => {
            log::info!(
                "service {service}: backend {address} is CURVE client {}",
                done.client
            );
            Link::curve(done.session, limits)
        }
        Err(e) => {
            counters.refuse_handshake(&service, "PULL", &address, &e);
            return;
        }
    };
    log::info!("service {service}: backend {address} connected to PULL");
    let _connected = counters.pull_peers.join();
    let why = match read(&mut stream, link, &mut buf, limits, &*inbox).await {
        Ok(why) => why,
        Err(error) => {
            if matches!(
                error,
                WireError::TooManyFrames(_) | WireError::TooLarge { .. }
            ) {
                inbox.cut_off();
            }
            counters.refuse(&service, "PULL", &address, &error);
            format!("bad frame: {error}")
        }
    };
    log::info!("service {service}: backend {address} left PULL ({why})");
}

/// Delivers the peer's messages until the connection ends; returns why it
/// ended, or the error in what the peer sent.
async fn read(
    stream: &mut Stream,
    mut link: Link,
    buf: &mut BytesMut,
    limits: Limits,
    inbox: &dyn Inbox,
) -> Result<String, WireError> {
    let mut decoder = Decoder::new(limits);
    loop {
        loop {
            match link.decode(&mut decoder, buf)? {
                Some(Item::Message(parts)) => inbox.message(&parts),
                Some(Item::Command(body)) => {
                    if let Ok(Command::Ping { context }) = wire::parse_command(&body) {
                        let mut pong = BytesMut::new();
                        wire::encode_command("PONG", context, &mut pong);
                        if let Err(e) = stream.write_all(&link.seal(pong)?).await {
                            return Ok(format!("write failed: {e}"));
                        }
                    }
                }
                None => break,
            }
        }
        buf.reserve(READ_CHUNK);
        match stream.read_buf(buf).await {
            Ok(0) => return Ok("closed by the backend".into()),
            Ok(_) => {}
            Err(e) => return Ok(format!("read failed: {e}")),
        }
    }
}
