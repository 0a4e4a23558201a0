//! Plain libzmq sockets (the `zmq` crate, blocking calls, each bounded by a
//! receive timeout) for tests that need options tmq does not expose, such as
//! heartbeats, with the socket's event monitor: what libzmq itself saw of the
//! connection (handshakes, disconnects).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use zmq::SocketEvent;

use super::IO_LIMIT;

/// A connected libzmq socket and a PAIR socket reading its monitor events.
pub struct Watched {
    pub socket: zmq::Socket,
    monitor: zmq::Socket,
}

impl Watched {
    /// A socket of `kind`, given its options by `setup`, monitored, then
    /// connected to `endpoint`.
    pub fn connect(
        ctx: &zmq::Context,
        kind: zmq::SocketType,
        endpoint: &str,
        setup: impl FnOnce(&zmq::Socket),
    ) -> Watched {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = ctx.socket(kind).expect("zmq socket");
        socket.set_linger(0).unwrap();
        setup(&socket);
        let address = format!("inproc://monitor-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        socket
            .monitor(&address, SocketEvent::ALL as i32)
            .expect("zmq monitor");
        let monitor = ctx.socket(zmq::PAIR).expect("zmq PAIR");
        monitor.connect(&address).expect("connect the monitor");
        socket.connect(endpoint).expect("zmq connect");
        Watched { socket, monitor }
    }

    /// The next monitor event if one comes within `wait`.
    pub fn event_within(&self, wait: Duration) -> Option<SocketEvent> {
        self.monitor
            .set_rcvtimeo(wait.as_millis().max(1) as i32)
            .unwrap();
        let head = match self.monitor.recv_bytes(0) {
            Ok(head) => head,
            Err(zmq::Error::EAGAIN) => return None,
            Err(e) => panic!("monitor receive failed: {e}"),
        };
        // The second frame names the endpoint.
        self.monitor.recv_bytes(0).expect("monitor endpoint frame");
        Some(SocketEvent::from_raw(u16::from_ne_bytes([
            head[0], head[1],
        ])))
    }

    /// Every monitor event of the next `span`.
    pub fn events_for(&self, span: Duration) -> Vec<SocketEvent> {
        let end = Instant::now() + span;
        let mut events = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            events.extend(self.event_within(left));
        }
        events
    }

    /// Waits for the event `wanted`; panics after [`IO_LIMIT`].
    pub fn wait_for(&self, wanted: SocketEvent) {
        let end = Instant::now() + IO_LIMIT;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.event_within(left) {
                Some(event) if event == wanted => return,
                Some(event) => seen.push(event),
                None => break,
            }
        }
        panic!("no {wanted:?} in {IO_LIMIT:?}; saw {seen:?}");
    }

    /// The next message if one comes within `wait`.
    pub fn recv_within(&self, wait: Duration) -> Option<Vec<Vec<u8>>> {
        self.socket
            .set_rcvtimeo(wait.as_millis().max(1) as i32)
            .unwrap();
        match self.socket.recv_multipart(0) {
            Ok(parts) => Some(parts),
            Err(zmq::Error::EAGAIN) => None,
            Err(e) => panic!("zmq receive failed: {e}"),
        }
    }

    /// The next message; panics if none comes within [`IO_LIMIT`].
    pub fn recv(&self) -> Vec<Vec<u8>> {
        self.recv_within(IO_LIMIT)
            .unwrap_or_else(|| panic!("no zmq message in {IO_LIMIT:?}"))
    }

    /// Sends one multipart message, waiting at most [`IO_LIMIT`].
    pub fn send(&self, parts: &[&[u8]]) {
        self.socket
            .set_sndtimeo(IO_LIMIT.as_millis() as i32)
            .unwrap();
        self.socket
            .send_multipart(parts.iter(), 0)
            .expect("zmq send");
    }
}
