//! A native ZMTP 3.1 transport for the two sockets a single proxy binds: the
//! PUSH that carries events to backends and the PULL that takes their commands,
//! over TCP or IPC, with the NULL mechanism (what libzmq uses by default).
//!
//! Why not libzmq here: libzmq moves every message through its own I/O thread.
//! With the proxy on one core, that is a context switch and two mailbox hops
//! per message each way, which profiles showed as most of the proxy's cost per
//! round trip. Here the sockets are plain tokio streams on the HTTP worker that
//! runs the sessions: an event goes from a session to the kernel with no thread
//! hop, and every event of a tick shares one `write`.
//!
//! Peers are ordinary 0MQ sockets (libzmq 4+, any language binding): backends
//! connect a PULL to our PUSH and a PUSH to our PULL. A service with a CURVE
//! key speaks CURVE (RFC 26) instead of NULL, as the server, on both sockets
//! (see [`curve`]). What this transport does not speak is refused at the
//! handshake with a logged reason: ZMTP 1/2 (libzmq 2 and 3), PLAIN, a
//! mechanism other than the socket's, a peer of the wrong socket type. Endpoints it does
//! not bind itself (`inproc://`, interface names, host names other than
//! `localhost`) stay with libzmq, as does scale-out mode (see
//! [`Listener::bind`] and `--zmq-engine`).

pub mod curve;
pub mod decoder;
mod handshake;
mod ledger;
pub mod link;
pub mod pull;
pub mod push;
pub mod wire;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A bound listening socket, made at start-up so that a taken port is a
/// start-up error, and turned into a tokio listener on the worker thread.
#[derive(Debug)]
pub enum Listener {
    Tcp(std::net::TcpListener),
    Ipc(std::os::unix::net::UnixListener, IpcFile),
}

/// The file of a bound IPC endpoint; removed when the socket closes, as
/// libzmq does.
#[derive(Debug)]
pub struct IpcFile(PathBuf);

impl Drop for IpcFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The file an `ipc://` endpoint this transport binds itself lives at; `None`
/// for other endpoints and for `*` (a random name) and `@name` (Linux's
/// abstract namespace), which are libzmq's.
pub fn native_ipc_path(endpoint: &str) -> Option<&str> {
    let path = endpoint.strip_prefix("ipc://")?;
    (!path.is_empty() && path != "*" && !path.starts_with('@')).then_some(path)
}

impl Listener {
    /// Binds `endpoint` natively, or `None` when it is a kind this transport
    /// leaves to libzmq. Endpoints were checked by `backend::endpoint::check`.
    pub fn bind(endpoint: &str) -> Option<io::Result<Listener>> {
        if let Some(rest) = endpoint.strip_prefix("tcp://") {
            let (host, port) = rest.rsplit_once(':')?;
            let port: u16 = port.parse().ok()?;
            let ip: IpAddr = match host {
                "*" => Ipv4Addr::UNSPECIFIED.into(),
                "localhost" => Ipv4Addr::LOCALHOST.into(),
                h => h
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .ok()?,
            };
            return Some(std::net::TcpListener::bind(SocketAddr::new(ip, port)).map(Listener::Tcp));
        }
        let path = native_ipc_path(endpoint)?;
        // A file left behind by an earlier run is removed first, as libzmq does.
        let _ = std::fs::remove_file(path);
        Some(
            std::os::unix::net::UnixListener::bind(path)
                .map(|l| Listener::Ipc(l, IpcFile(PathBuf::from(path)))),
        )
    }

    /// Accepts peers for ever on the current thread, calling `on_peer` with
    /// each. With an `allow` list, a TCP peer whose address is in none of
    /// its networks is closed at once, before any byte, logged and counted.
    pub(crate) fn spawn_accept(
        self,
        service: String,
        kind: &'static str,
        allow: Arc<[ipnet::IpNet]>,
        counters: Arc<Counters>,
        on_peer: impl Fn(Stream, String) + 'static,
    ) -> io::Result<()> {
        enum Tokio {
            Tcp(tokio::net::TcpListener),
            Ipc(tokio::net::UnixListener, IpcFile),
        }
        let listener = match self {
            Listener::Tcp(l) => {
                l.set_nonblocking(true)?;
                Tokio::Tcp(tokio::net::TcpListener::from_std(l)?)
            }
            Listener::Ipc(l, file) => {
                l.set_nonblocking(true)?;
                Tokio::Ipc(tokio::net::UnixListener::from_std(l)?, file)
            }
        };
        actix_web::rt::spawn(async move {
            loop {
                let accepted = match &listener {
                    Tokio::Tcp(l) => match l.accept().await {
                        Ok((_, addr)) if !allowed(&allow, addr.ip()) => {
                            counters.address_refused.fetch_add(1, Ordering::Relaxed);
                            static REFUSED: crate::ratelog::Throttle =
                                crate::ratelog::Throttle::new(
                                    "backends refused: address not in backend_allow",
                                );
                            REFUSED.warn(format_args!(
                                "service {service}: backend {addr} refused on {kind}"
                            ));
                            // Dropped: closed before our greeting.
                            continue;
                        }
                        accepted => accepted.map(|(s, addr)| {
                            // As libzmq does: small messages go out at once.
                            let _ = s.set_nodelay(true);
                            (Stream::Tcp(s), addr.to_string())
                        }),
                    },
                    Tokio::Ipc(l, file) => l
                        .accept()
                        .await
                        .map(|(s, _)| (Stream::Ipc(s), file.0.display().to_string())),
                };
                match accepted {
                    Ok((stream, peer)) => on_peer(stream, peer),
                    Err(e) => {
                        // Out of file descriptors, most likely: wait, do not spin.
                        log::error!("service {service}: {kind} cannot accept a backend: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(())
    }
}

/// Whether `ip` may connect: any address without a list (an IPv4 peer of a
/// socket bound to `[::]` is seen as IPv4).
fn allowed(allow: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    allow.is_empty() || allow.iter().any(|net| net.contains(&ip))
}

/// What the native sockets of one service count, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Backends disconnected for a message of too many frames...
    pub too_many_frames: AtomicU64,
    /// ...of too many bytes...
    pub too_large: AtomicU64,
    /// ...for sending a message to our PUSH...
    pub message_on_push: AtomicU64,
    /// ...or for bytes that are not ZMTP after the handshake...
    pub bad_frames: AtomicU64,
    /// ...or for a CURVE box that does not open or comes replayed or out
    /// of order.
    pub bad_boxes: AtomicU64,
    /// Backends refused at the handshake by the security mechanism: a NULL
    /// peer of a CURVE socket, the wrong server key, a client key not in
    /// `curve_clients`, a forged box.
    pub security_refused: AtomicU64,
    /// Backends refused at accept: their address is not in `backend_allow`.
    pub address_refused: AtomicU64,
    /// Events written to a backend connection that broke before the
    /// backend's host acknowledged them (see `ledger`).
    pub unconfirmed_events: AtomicU64,
    /// The bytes of those events (and of commands among them).
    pub unconfirmed_bytes: AtomicU64,
    /// Backends connected to the PUSH socket now (past the handshake)...
    pub push_peers: Peers,
    /// ...and to the PULL socket.
    pub pull_peers: Peers,
}

/// How many backends one native socket has now; unknown (`None`) for a
/// socket that libzmq carries.
#[derive(Debug, Default)]
pub struct Peers {
    native: AtomicBool,
    count: AtomicUsize,
}

impl Peers {
    /// The socket runs natively: its peers are counted from now on.
    pub(crate) fn started(&self) {
        self.native.store(true, Ordering::Relaxed);
    }

    /// Counts a peer in until the guard drops (its task ends or is dropped).
    pub(crate) fn join(&self) -> Joined<'_> {
        self.count.fetch_add(1, Ordering::Relaxed);
        Joined(&self.count)
    }

    /// Peers connected now, if the socket is native.
    pub fn get(&self) -> Option<usize> {
        self.native
            .load(Ordering::Relaxed)
            .then(|| self.count.load(Ordering::Relaxed))
    }
}

/// One connected peer, counted in [`Peers`] while it lives.
pub(crate) struct Joined<'a>(&'a AtomicUsize);

impl Drop for Joined<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Counters {
    /// Counts a peer dropped for `error` in what it sent, and logs it (a peer
    /// that reconnects and does it again gets one line a second in all).
    pub(crate) fn refuse(&self, service: &str, socket: &str, peer: &str, error: &wire::WireError) {
        use wire::WireError::*;
        let counter = match error {
            TooManyFrames(_) => &self.too_many_frames,
            TooLarge { .. } => &self.too_large,
            NoMessages => &self.message_on_push,
            Curve(_) => &self.bad_boxes,
            _ => &self.bad_frames,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        static REFUSED: crate::ratelog::Throttle =
            crate::ratelog::Throttle::new("backends disconnected for what they sent");
        REFUSED.warn(format_args!(
            "service {service}: backend {peer} sent {socket} {error}; disconnected"
        ));
    }
}

impl Counters {
    /// Logs a peer refused at the handshake; one the security mechanism
    /// refused is counted too, and its lines are throttled (a peer that
    /// retries with the wrong key gets one line a second in all).
    pub(crate) fn refuse_handshake(
        &self,
        service: &str,
        socket: &str,
        peer: &str,
        error: &handshake::HandshakeError,
    ) {
        if !error.is_security() {
            log::warn!("service {service}: backend {peer} refused on {socket}: {error}");
            return;
        }
        self.security_refused.fetch_add(1, Ordering::Relaxed);
        // One throttle per kind of refusal, so that a backend retrying with
        // the wrong key many times a second hides no other kind.
        use crate::ratelog::Throttle;
        use curve::CurveError::*;
        static WRONG_KEY: Throttle = Throttle::new("backends refused: wrong server key");
        static UNKNOWN: Throttle = Throttle::new("backends refused: client key not allowed");
        static MECHANISM: Throttle = Throttle::new("backends refused: not CURVE");
        static OTHER: Throttle = Throttle::new("backends refused by CURVE");
        let throttle = match error {
            handshake::HandshakeError::Wire(wire::WireError::Curve(WrongServerKey)) => &WRONG_KEY,
            handshake::HandshakeError::Wire(wire::WireError::Curve(UnknownClient(_))) => &UNKNOWN,
            handshake::HandshakeError::Wire(wire::WireError::Curve(_)) => &OTHER,
            _ => &MECHANISM,
        };
        throttle.warn(format_args!(
            "service {service}: backend {peer} refused on {socket}: {error}"
        ));
    }
}

/// One connection to a backend socket.
#[derive(Debug)]
pub enum Stream {
    Tcp(tokio::net::TcpStream),
    Ipc(tokio::net::UnixStream),
}

impl Stream {
    /// Bytes in the kernel's send queue (`SIOCOUTQ`): for TCP, written and
    /// not yet acknowledged by the peer's host, also after a reset; for a
    /// Unix socket, what the peer has not read, while it lives (counted with
    /// the kernel's overhead, so more than the bytes). `None` if the kernel
    /// does not say.
    pub(crate) fn unsent(&self) -> Option<u64> {
        use std::os::fd::AsRawFd;
        let fd = match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Ipc(s) => s.as_raw_fd(),
        };
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer, to a
        // local that outlives the call; `fd` is open while `self` is.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
        (rc == 0 && n >= 0).then_some(n as u64)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Ipc(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Ipc(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Ipc(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Ipc(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
