//! The bound PULL socket: each connected PUSH peer (a backend) gets a task
//! that reads its stream, splits it into messages and hands each to the
//! [`Inbox`] at once, on the worker thread that runs the sessions. Peers are
//! served fairly by the runtime's task scheduling, as 0MQ fair-queues.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::handshake::handshake;
use super::wire::{self, Command, Decoder, Item, SocketType};
use super::{Listener, Stream};

/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

/// Where messages from backends go.
pub trait Inbox {
    /// One whole message, its parts in order.
    fn message(&self, parts: &[Bytes]);
    /// A message dropped unread because a frame of it was `size` bytes, over
    /// the limit.
    fn oversize(&self, size: u64);
}

/// Starts accepting backends on `listener` (on the current thread). Frames
/// over `max_frame` bytes are skipped with their message.
pub fn start(
    listener: Listener,
    service: String,
    max_frame: usize,
    inbox: Arc<dyn Inbox>,
) -> io::Result<()> {
    let name = service.clone();
    listener.spawn_accept(name, "PULL", move |stream, address| {
        actix_web::rt::spawn(serve_peer(
            stream,
            address,
            service.clone(),
            max_frame,
            inbox.clone(),
        ));
    })
}

async fn serve_peer(
    mut stream: Stream,
    address: String,
    service: String,
    max_frame: usize,
    inbox: Arc<dyn Inbox>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    if let Err(e) = handshake(&mut stream, SocketType::Pull, &mut buf).await {
        log::warn!("service {service}: backend {address} refused on PULL: {e}");
        return;
    }
    log::info!("service {service}: backend {address} connected to PULL");
    let why = read(&mut stream, &mut buf, max_frame, &*inbox).await;
    log::info!("service {service}: backend {address} left PULL ({why})");
}

/// Delivers the peer's messages until the connection ends; returns why it ended.
async fn read(
    stream: &mut Stream,
    buf: &mut BytesMut,
    max_frame: usize,
    inbox: &dyn Inbox,
) -> String {
    let mut decoder = Decoder::new(max_frame);
    loop {
        loop {
            match decoder.decode(buf) {
                Ok(Some(Item::Message(parts))) => inbox.message(&parts),
                Ok(Some(Item::Oversize(size))) => inbox.oversize(size),
                Ok(Some(Item::Command(body))) => {
                    if let Ok(Command::Ping { context }) = wire::parse_command(&body) {
                        let mut pong = BytesMut::new();
                        wire::encode_command("PONG", context, &mut pong);
                        if let Err(e) = stream.write_all(&pong).await {
                            return format!("write failed: {e}");
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => return format!("bad frame: {e}"),
            }
        }
        buf.reserve(READ_CHUNK);
        match stream.read_buf(buf).await {
            Ok(0) => return "closed by the backend".into(),
            Ok(_) => {}
            Err(e) => return format!("read failed: {e}"),
        }
    }
}
