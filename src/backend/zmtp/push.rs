//! The bound PUSH socket: messages go round-robin to the connected PULL peers
//! (backends), each into that peer's output buffer, which the peer's task
//! writes in one `write` per wake-up, however many messages it holds.
//!
//! A peer whose buffer holds [`PEER_BUFFER`] bytes not yet taken by the kernel
//! is skipped (0MQ's high-water mark, in bytes); when every peer is skipped, or
//! none is connected, [`Push::try_send`] says no and the caller waits for
//! [`Push::room`], as a libzmq PUSH blocks. Whole messages a peer held when it
//! left go to another peer, or to the next one to connect. What can be lost
//! when a connection breaks is what had left this buffer: the batch being
//! written, the kernel's send queue and whatever the backend had received and
//! not read (some of it may have reached the backend, so none is resent), as
//! with libzmq; the first two are counted (see [`super::ledger`]).
//!
//! A PULL peer never sends a message, only commands (PING): one that does is
//! disconnected at the message's first frame header, and counted.
//!
//! Under CURVE the buffer holds frames in the clear (they may move to another
//! peer) and each batch is boxed for its peer as it is taken
//! ([`Link::seal`]). The ledger counts in bytes of the clear text: what the
//! kernel took and holds is scaled by the batch's ratio of clear to boxed
//! bytes, so what it reports is exact to within that batch's proportion.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::curve;
use super::decoder::{Decoder, Item, Limits};
use super::handshake::handshake;
use super::ledger::Ledger;
use super::link::Link;
use super::wire::{self, Command, SocketType, WireError};
use super::{Counters, Listener, Stream};

/// Bytes a peer may hold unwritten before new messages go to other peers.
pub const PEER_BUFFER: usize = 4 << 20;
/// What the ledger keeps if the kernel cannot say what it holds unacknowledged.
const FALLBACK_WINDOW: u64 = 64 << 20;
/// Largest command a PULL peer may send us (it never sends messages).
const MAX_PEER_COMMAND: u64 = 4096;

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
    /// Whole messages of a peer that left with no other peer to take them,
    /// and where each ends in that buffer.
    orphans: RefCell<(BytesMut, Vec<u64>)>,
    /// Bytes accepted by `try_send` and not yet written to a socket.
    unflushed: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    /// Our keys, when the socket speaks CURVE.
    curve: Option<Arc<curve::Keys>>,
}

struct Peer {
    address: String,
    /// Whole encoded messages waiting for this peer's task.
    out: RefCell<BytesMut>,
    /// Where the messages of `out` and those written end.
    ledger: RefCell<Ledger>,
    wake: Notify,
    /// Bytes of clear text per byte written, in the last batch (1 under
    /// NULL; less under CURVE, whose boxes add 33 bytes a frame).
    ratio: Cell<f64>,
}

impl Push {
    /// Starts accepting backends on `listener` (on the current thread),
    /// with CURVE when `curve` has our keys, from the networks of `allow` if
    /// any. `unflushed` counts the bytes
    /// accepted but not yet written.
    pub fn start(
        listener: Listener,
        service: String,
        curve: Option<Arc<curve::Keys>>,
        allow: Arc<[ipnet::IpNet]>,
        unflushed: Arc<AtomicUsize>,
        counters: Arc<Counters>,
    ) -> io::Result<Push> {
        let refused = counters.clone();
        counters.push_peers.started();
        let shared = Rc::new(Shared {
            service: service.clone(),
            peers: RefCell::default(),
            next: Cell::new(0),
            room: Notify::new(),
            orphans: RefCell::default(),
            unflushed,
            counters,
            curve,
        });
        let accepting = shared.clone();
        listener.spawn_accept(service, "PUSH", allow, refused, move |stream, address| {
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
            let len = out.len() - before;
            peer.ledger.borrow_mut().queued(len, true);
            shared.unflushed.fetch_add(len, Ordering::Relaxed);
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
    let link = match handshake(
        &mut stream,
        SocketType::Push,
        shared.curve.as_ref(),
        &mut buf,
    )
    .await
    {
        Ok(None) => Link::Null,
        Ok(Some(done)) => {
            log::info!(
                "service {service}: backend {address} is CURVE client {}",
                done.client
            );
            Link::curve(done.session, Limits::commands_only(MAX_PEER_COMMAND))
        }
        Err(e) => {
            shared
                .counters
                .refuse_handshake(service, "PUSH", &address, &e);
            return;
        }
    };
    log::info!("service {service}: backend {address} connected to PUSH");
    let _connected = shared.counters.push_peers.join();
    let (orphans, ends) = std::mem::take(&mut *shared.orphans.borrow_mut());
    let peer = Rc::new(Peer {
        address,
        ledger: RefCell::new(Ledger::starting_with(orphans.len(), ends)),
        out: RefCell::new(orphans),
        wake: Notify::new(),
        ratio: Cell::new(1.0),
    });
    shared.peers.borrow_mut().push(peer.clone());
    shared.room.notify_one();

    let why = run(&mut stream, link, &peer, &shared, buf).await;

    shared.peers.borrow_mut().retain(|p| !Rc::ptr_eq(p, &peer));
    let rest = peer.out.borrow_mut().split();
    let ledger = peer.ledger.replace(Ledger::starting_with(0, Vec::new()));
    let held = rest.len();
    if held > 0 {
        // Not yet handed to the kernel, so nobody has seen them: pass them on.
        let ends = ledger.untaken_ends();
        let peers = shared.peers.borrow();
        match peers.first() {
            Some(other) => {
                let mut out = other.out.borrow_mut();
                let mut other_ledger = other.ledger.borrow_mut();
                let mut last = 0;
                for end in ends {
                    other_ledger.queued((end - last) as usize, true);
                    last = end;
                }
                other_ledger.queued(held - last as usize, false);
                out.unsplit(rest);
                other.wake.notify_one();
            }
            None => {
                let mut orphans = shared.orphans.borrow_mut();
                let base = orphans.0.len() as u64;
                orphans.1.extend(ends.into_iter().map(|end| base + end));
                orphans.0.unsplit(rest);
            }
        }
    }
    let unsent = stream.unsent().unwrap_or(0) as f64 * peer.ratio.get();
    let risk = ledger.at_risk(unsent as u64);
    let counters = &shared.counters;
    counters
        .unconfirmed_events
        .fetch_add(risk.events, Ordering::Relaxed);
    counters
        .unconfirmed_bytes
        .fetch_add(risk.bytes, Ordering::Relaxed);
    let address = &peer.address;
    if risk.events > 0 {
        // Once per connection: each took events to get here.
        log::warn!(
            "service {service}: backend {address} left PUSH ({why}); {} events ({} bytes) \
             it had not acknowledged may be lost; {held} bytes it held were passed on",
            risk.events,
            risk.bytes
        );
    } else {
        log::info!(
            "service {service}: backend {address} left PUSH ({why}); {held} bytes it held were passed on"
        );
    }
}

/// Writes the peer's buffer whenever it has bytes and answers its PINGs,
/// until the connection ends; returns why it ended.
async fn run(
    stream: &mut Stream,
    mut link: Link,
    peer: &Peer,
    shared: &Shared,
    mut buf: BytesMut,
) -> String {
    let mut decoder = Decoder::new(Limits::commands_only(MAX_PEER_COMMAND));
    loop {
        let chunk = peer.out.borrow_mut().split();
        if !chunk.is_empty() {
            let len = chunk.len();
            peer.ledger.borrow_mut().taken(len);
            let written = match link.seal(chunk) {
                Ok(bytes) => {
                    peer.ratio.set(len as f64 / bytes.len() as f64);
                    write_out(stream, &bytes, len, peer).await
                }
                Err(e) => Err(io::Error::other(e)),
            };
            // Whether or not all of it went, none of it is waiting any more.
            shared.unflushed.fetch_sub(len, Ordering::Relaxed);
            if let Err(e) = written {
                // Some of it may have reached the backend: it cannot be resent
                // without a risk of duplicates, so it is lost, as with libzmq.
                return format!("write failed with {len} bytes in flight: {e}");
            }
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
                    let error = match link.decode(&mut decoder, &mut buf) {
                        Ok(Some(Item::Command(body))) => {
                            if let Ok(Command::Ping { context }) = wire::parse_command(&body) {
                                let mut out = peer.out.borrow_mut();
                                let before = out.len();
                                wire::encode_command("PONG", context, &mut out);
                                let len = out.len() - before;
                                peer.ledger.borrow_mut().queued(len, false);
                                shared.unflushed.fetch_add(len, Ordering::Relaxed);
                            }
                            continue;
                        }
                        Ok(None) => break,
                        // The decoder refuses a message at its first header.
                        Ok(Some(Item::Message(_))) => WireError::NoMessages,
                        Err(e) => e,
                    };
                    shared.counters.refuse(&shared.service, "PUSH", &peer.address, &error);
                    return format!("bad frame: {error}");
                }
            }
        }
    }
}

/// Writes `bytes`, the wire form of `plain` bytes of clear text, noting in
/// the peer's ledger what the kernel took (in clear text bytes).
async fn write_out(stream: &mut Stream, bytes: &[u8], plain: usize, peer: &Peer) -> io::Result<()> {
    let ratio = peer.ratio.get();
    let clear = |wire: usize| -> usize {
        if wire == bytes.len() {
            plain
        } else {
            (wire as u128 * plain as u128 / bytes.len() as u128) as usize
        }
    };
    let mut done = 0;
    while done < bytes.len() {
        let n = stream.write(&bytes[done..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let taken = clear(done + n) - clear(done);
        done += n;
        if peer.ledger.borrow_mut().written(taken) {
            let unacked = stream.unsent().map(|u| (u as f64 * ratio) as u64);
            let mut ledger = peer.ledger.borrow_mut();
            // Without the kernel's word, keep what the largest send buffer holds.
            ledger.trim(unacked.unwrap_or(FALLBACK_WINDOW));
        }
    }
    Ok(())
}
