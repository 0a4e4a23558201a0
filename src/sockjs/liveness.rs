//! Noticing that an HTTP client hung up while its response is still open.
//!
//! The server runs with half-closed connections refused, so actix drops a
//! response soon after its client hangs up, and the session hears of it. But
//! "soon" is a race with the client's next request: a new request for the
//! session must get `c[1002,"Connection interrupted"]`, not
//! `c[2010,"Another connection still open"]`, when the old one was aborted a
//! moment before. So each connection's socket is remembered when it is
//! accepted, and when a second receiver arrives the first one's connection is
//! asked directly whether the peer has closed it.

use std::any::Any;
use std::os::fd::{AsRawFd, RawFd};

use actix_web::HttpRequest;
use actix_web::dev::Extensions;

/// The socket of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Peer(RawFd);

/// The server's per-connection hook (see `crate::listen`): remembers the
/// socket of each TCP connection.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        data.insert(Peer(tcp.as_raw_fd()));
    }
}

impl Peer {
    /// The connection of `req`, when the server remembered it.
    pub fn of(req: &HttpRequest) -> Option<Peer> {
        req.conn_data::<Peer>().copied()
    }

    /// Whether the client closed its end: a peek reads end-of-file or fails
    /// with anything but "would block". The socket is still open on our side
    /// while the response that holds this `Peer` is alive, so the descriptor
    /// cannot have been reused.
    pub fn has_hung_up(&self) -> bool {
        let mut byte = [0u8; 1];
        // SAFETY: recv on a descriptor with a valid 1-byte buffer; MSG_PEEK
        // leaves any data in place for actix, MSG_DONTWAIT never blocks.
        let n = unsafe {
            libc::recv(
                self.0,
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
