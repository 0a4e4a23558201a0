//! Noticing that an HTTP client hung up while its response is still open.
//!
//! The server runs with half-closed connections refused, so actix drops a
//! response soon after its client hangs up, and the session hears of it. But
//! "soon" is a race with the client's next request: a new request for the
//! session must get `c[1002,"Connection interrupted"]`, not
//! `c[2010,"Another connection still open"]`, when the old one was aborted a
//! moment before. So each connection's socket is remembered when it is
//! accepted (plain TCP and TLS alike), and when a second receiver arrives the
//! first one's connection is asked directly whether the peer has closed it.
//!
//! Why the raw descriptor is safe to keep: the two system calls below are
//! memory-safe on any descriptor number (valid buffers, no ownership taken);
//! the only hazard is *meaning*, when actix has closed the connection and the
//! number was reused by another one before the session heard of it. So the
//! peer's address is remembered with the descriptor and checked first: a
//! reused number names another peer (or none) and counts as hung up. The
//! test `a_reused_descriptor_counts_as_hung_up` makes that happen.

use std::any::Any;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use actix_web::HttpRequest;
use actix_web::dev::Extensions;

/// The socket of the connection a request came on, and who was at its
/// other end when it was accepted.
#[derive(Debug, Clone, Copy)]
pub struct ClientSocket {
    fd: RawFd,
    addr: SocketAddr,
}

type Tcp = actix_web::rt::net::TcpStream;
type Tls = actix_tls::accept::rustls_0_23::TlsStream<Tcp>;

/// The server's per-connection hook (see `crate::listen`): remembers the
/// socket of each TCP or TLS connection.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    let tcp = match connection.downcast_ref::<Tcp>() {
        Some(tcp) => tcp,
        None => match connection.downcast_ref::<Tls>() {
            Some(tls) => tls.get_ref().0,
            None => return,
        },
    };
    if let Ok(addr) = tcp.peer_addr() {
        data.insert(ClientSocket {
            fd: tcp.as_raw_fd(),
            addr,
        });
    }
}

impl ClientSocket {
    /// The connection of `req`, when the server remembered it.
    pub fn of(req: &HttpRequest) -> Option<ClientSocket> {
        req.conn_data::<ClientSocket>().copied()
    }

    /// Whether the client closed its end: the descriptor no longer names
    /// this peer, or a peek reads end-of-file or fails with anything but
    /// "would block".
    pub fn has_hung_up(&self) -> bool {
        if peer_of(self.fd) != Some(self.addr) {
            return true;
        }
        let mut byte = [0u8; 1];
        // SAFETY: recv on a descriptor number with a valid 1-byte buffer;
        // MSG_PEEK leaves any data in place for actix, MSG_DONTWAIT never
        // blocks. On a closed or foreign descriptor it fails or answers for
        // that socket; the address check above caught the foreign case.
        let n = unsafe {
            libc::recv(
                self.fd,
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return true;
        }
        if n < 0 {
            let err = std::io::Error::last_os_error();
            return !matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            );
        }
        false
    }
}

/// The peer address of the socket `fd` names now, if any.
fn peer_of(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: getpeername writes at most `len` bytes into the storage
    // socket2 gives it, which is that large; any descriptor number is
    // memory-safe to pass.
    let named = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            match libc::getpeername(fd, storage.cast(), len) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        })
    };
    named.ok()?.1.as_socket()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn peer(stream: &TcpStream) -> ClientSocket {
        ClientSocket {
            fd: stream.as_raw_fd(),
            addr: stream.peer_addr().unwrap(),
        }
    }

    #[test]
    fn a_live_connection_has_not_hung_up_and_a_closed_one_has() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let p = peer(&server);
        assert!(!p.has_hung_up());
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(p.has_hung_up());
    }

    #[test]
    fn a_reused_descriptor_counts_as_hung_up() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let first_client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (first, _) = listener.accept().unwrap();
        let p = peer(&first);
        let fd = first.as_raw_fd();
        // The next client is already waiting in the backlog when actix
        // closes the first connection (the session has not heard yet); its
        // accept takes the lowest free number: the same one.
        let _second_client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        drop(first);
        let (second, _) = listener.accept().unwrap();
        assert_eq!(second.as_raw_fd(), fd, "the descriptor was not reused");
        // The second connection is alive and has nothing to read, which is
        // what a peek alone would see; the address says it is another peer.
        assert!(p.has_hung_up());
        drop(first_client);
    }
}
