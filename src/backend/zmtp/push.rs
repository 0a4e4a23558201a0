//! The bound PUSH socket: messages go round-robin to the connected PULL peers
//! (backends), each into that peer's output buffer, which the peer's task
//! writes in one `write` per wake-up, however many messages it holds.
//!
//! A peer whose buffer holds [`PEER_BUFFER`] bytes not yet taken by the kernel
//! is skipped (0MQ's high-water mark, in bytes); when every peer is skipped, or
//! none is connected, [`Push::try_send`] says no and the caller waits for
//! [`Push::room`], as a libzmq PUSH blocks. Whole messages a peer held when it
//! left go to another peer, or to the next one to connect. What can be lost
//! is the one batch being written when a connection breaks (some of it may
//! have reached the backend, so it is not resent), as with libzmq.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::handshake::handshake;
use super::wire::{self, Command, Decoder, Item, SocketType};
use super::{Listener, Stream};

/// Bytes a peer may hold unwritten before new messages go to other peers.
pub const PEER_BUFFER: usize = 4 << 20;
/// Largest frame a PULL peer may send us (it only ever sends commands).
const MAX_PEER_FRAME: usize = 4096;

/// The sending side, owned by the backend's writer task.
pub struct Push {
    shared: Rc<Shared>,
}

struct Shared {
    service: String,
    peers: RefCell<Vec<Rc<Peer>>>,
    /// Where round-robin starts next.
    next: Cell<usize>,
    /// Woken when a peer connects or writes out its buffer.
    room: Notify,
    /// Whole messages of a peer that left with no other peer to take them.
    orphans: RefCell<BytesMut>,
    /// Bytes accepted by `try_send` and not yet written to a socket.
    unflushed: Arc<AtomicUsize>,
}

struct Peer {
    address: String,
    /// Whole encoded messages waiting for this peer's task.
    out: RefCell<BytesMut>,
    wake: Notify,
}

impl Push {
    /// Starts accepting backends on `listener` (on the current thread).
    /// `unflushed` counts the bytes accepted but not yet written.
    pub fn start(
        listener: Listener,
        service: String,
        unflushed: Arc<AtomicUsize>,
    ) -> io::Result<Push> {
        let shared = Rc::new(Shared {
            service: service.clone(),
            peers: RefCell::default(),
            next: Cell::new(0),
            room: Notify::new(),
            orphans: RefCell::default(),
            unflushed,
        });
        let accepting = shared.clone();
        listener.spawn_accept(service, "PUSH", move |stream, address| {
            actix_web::rt::spawn(serve_peer(stream, address, accepting.clone()));
        })?;
        Ok(Push { shared })
    }

    /// Queues one message for the next peer with room; `false` when no peer
    /// can take it now (then wait for [`Push::room`] and try again).
    pub fn try_send(&self, parts: &[&[u8]]) -> bool {
        let shared = &self.shared;
        let peers = shared.peers.borrow();
        let count = peers.len();
        for i in 0..count {
            let index = (shared.next.get() + i) % count;
            let peer = &peers[index];
            let mut out = peer.out.borrow_mut();
            if out.len() >= PEER_BUFFER {
                continue;
            }
            let before = out.len();
            wire::encode_message(parts, &mut out);
            shared
                .unflushed
                .fetch_add(out.len() - before, Ordering::Relaxed);
            if before == 0 {
                peer.wake.notify_one();
            }
            shared.next.set(index + 1);
            return true;
        }
        false
    }

    /// Waits until a peer connects or makes room.
    pub async fn room(&self) {
        self.shared.room.notified().await
    }

    /// Backends connected now.
    pub fn peer_count(&self) -> usize {
        self.shared.peers.borrow().len()
    }
}

async fn serve_peer(mut stream: Stream, address: String, shared: Rc<Shared>) {
    let service = &shared.service;
    let mut buf = BytesMut::with_capacity(128);
    if let Err(e) = handshake(&mut stream, SocketType::Push, &mut buf).await {
        log::warn!("service {service}: backend {address} refused on PUSH: {e}");
        return;
    }
    log::info!("service {service}: backend {address} connected to PUSH");
    let orphans = shared.orphans.borrow_mut().split();
    let peer = Rc::new(Peer {
        address,
        out: RefCell::new(orphans),
        wake: Notify::new(),
    });
    shared.peers.borrow_mut().push(peer.clone());
    shared.room.notify_one();

    let why = run(&mut stream, &peer, &shared, buf).await;

    shared.peers.borrow_mut().retain(|p| !Rc::ptr_eq(p, &peer));
    let rest = peer.out.borrow_mut().split();
    let held = rest.len();
    if held > 0 {
        // Not yet handed to the kernel, so nobody has seen them: pass them on.
        let peers = shared.peers.borrow();
        match peers.first() {
            Some(other) => {
                other.out.borrow_mut().unsplit(rest);
                other.wake.notify_one();
            }
            None => shared.orphans.borrow_mut().unsplit(rest),
        }
    }
    log::info!(
        "service {service}: backend {} left PUSH ({why}); {held} bytes it held were passed on",
        peer.address
    );
}

/// Writes the peer's buffer whenever it has bytes and answers its PINGs,
/// until the connection ends; returns why it ended.
async fn run(stream: &mut Stream, peer: &Peer, shared: &Shared, mut buf: BytesMut) -> String {
    let mut decoder = Decoder::new(MAX_PEER_FRAME);
    loop {
        let chunk = peer.out.borrow_mut().split();
        if !chunk.is_empty() {
            if let Err(e) = stream.write_all(&chunk).await {
                // Some of it may have reached the backend: it cannot be resent
                // without a risk of duplicates, so it is lost, as with libzmq.
                shared.unflushed.fetch_sub(chunk.len(), Ordering::Relaxed);
                return format!("write failed with {} bytes in flight: {e}", chunk.len());
            }
            shared.unflushed.fetch_sub(chunk.len(), Ordering::Relaxed);
            shared.room.notify_one();
            continue;
        }
        tokio::select! {
            biased;
            _ = peer.wake.notified() => {}
            read = stream.read_buf(&mut buf) => {
                match read {
                    Ok(0) => return "closed by the backend".into(),
                    Ok(_) => {}
                    Err(e) => return format!("read failed: {e}"),
                }
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(Item::Command(body))) => {
                            if let Ok(Command::Ping { context }) = wire::parse_command(&body) {
                                let mut out = peer.out.borrow_mut();
                                let before = out.len();
                                wire::encode_command("PONG", context, &mut out);
                                shared.unflushed.fetch_add(out.len() - before, Ordering::Relaxed);
                            }
                        }
                        Ok(Some(Item::Message(_) | Item::Oversize(_))) => log::warn!(
                            "service {}: backend {} sent a message to PUSH; dropped",
                            shared.service, peer.address
                        ),
                        Ok(None) => break,
                        Err(e) => return format!("bad frame: {e}"),
                    }
                }
            }
        }
    }
}
