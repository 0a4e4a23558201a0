//! The one outbound queue: ready-to-write frames between their writers (a
//! SockJS session and its websocket reader's control frames, or a bridge
//! session and its gateways) and the response body that writes them.
//!
//! Bounded in frames and, when asked, in bytes (one frame always fits an
//! empty queue, however large). A websocket close frame is queued at most
//! once, whoever starts the closing handshake, and nothing after it.
//!
//! A websocket session keeps its queue for as long as it is open, and it is
//! almost always empty. tokio's bounded channel allocates a 32-slot block and a
//! cache-padded header up front, about 1.5 KiB per session, which is a fifth
//! of what an idle websocket costs; this queue is one small allocation and
//! holds no slot storage while empty.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds its capacity: try again once [`Sender::room`] resolves.
    Full,
    /// The body is gone: the client went away.
    Closed,
}

struct State {
    frames: VecDeque<Bytes>,
    capacity: usize,
    /// Bytes beyond which a frame is refused (unless the queue is empty).
    max_bytes: usize,
    /// Bytes in `frames`, for the session's byte budget.
    bytes: usize,
    /// A websocket close frame is queued: RFC 6455 allows one per side, and
    /// nothing after it.
    finished: bool,
    senders: usize,
    body_alive: bool,
    /// The body, waiting for a frame.
    body: Option<Waker>,
    /// Senders waiting for room.
    room: Vec<Waker>,
}

/// The writing end; clones share the queue.
pub struct Sender(Arc<Mutex<State>>);

/// The reading end, held by the response body.
pub struct Queue(Arc<Mutex<State>>);

/// A queue holding at most `capacity` frames.
pub fn queue(capacity: usize) -> (Sender, Queue) {
    bounded(capacity, usize::MAX)
}

/// A queue holding at most `capacity` frames and `max_bytes` bytes (or one
/// frame of any size).
pub fn bounded(capacity: usize, max_bytes: usize) -> (Sender, Queue) {
    let state = Arc::new(Mutex::new(State {
        frames: VecDeque::new(),
        capacity,
        max_bytes,
        bytes: 0,
        finished: false,
        senders: 1,
        body_alive: true,
        body: None,
        room: Vec::new(),
    }));
    (Sender(state.clone()), Queue(state))
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Nothing panics while holding the lock; never poisoned in practice, and
    // the state stays consistent if it were.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sender {
    /// Queues what `encode` makes, if there is room: encoding happens only
    /// then, and under the lock, so that no other sender can take the slot in
    /// between. An empty frame is not queued. Returns the bytes queued.
    pub fn send_with(&self, encode: impl FnOnce() -> Bytes) -> Result<usize, Refused> {
        self.send(encode, false)
    }

    /// Queues the frame that ends the connection (a websocket close), unless
    /// one already is: whoever starts the closing handshake, one close frame
    /// goes out. Returns 0 when one was queued before.
    pub fn send_last_with(&self, encode: impl FnOnce() -> Bytes) -> Result<usize, Refused> {
        self.send(encode, true)
    }

    fn send(&self, encode: impl FnOnce() -> Bytes, last: bool) -> Result<usize, Refused> {
        let waker = {
            let mut s = lock(&self.0);
            if !s.body_alive {
                return Err(Refused::Closed);
            }
            if s.finished {
                return if last { Ok(0) } else { Err(Refused::Closed) };
            }
            if last {
                // A close is never refused for room: it is the last frame,
                // and the body ends after it.
                let bytes = encode();
                let len = bytes.len();
                s.finished = true;
                s.bytes += len;
                s.frames.push_back(bytes);
                drop(s);
                return self.wake_body(len);
            }
            if s.frames.len() >= s.capacity {
                return Err(Refused::Full);
            }
            let bytes = encode();
            let len = bytes.len();
            if len == 0 {
                return Ok(0);
            }
            if s.bytes > 0 && s.bytes + len > s.max_bytes {
                return Err(Refused::Full);
            }
            s.bytes += len;
            s.frames.push_back(bytes);
            len
        };
        self.wake_body(waker)
    }

    fn wake_body(&self, len: usize) -> Result<usize, Refused> {
        let body = lock(&self.0).body.take();
        if let Some(w) = body {
            w.wake();
        }
        Ok(len)
    }

    /// Drops every frame not yet taken by the body (for a client that stopped
    /// reading: what it would never read is not held for it); returns the
    /// bytes dropped.
    pub fn discard(&self) -> usize {
        let (bytes, room) = {
            let mut s = lock(&self.0);
            s.frames = VecDeque::new();
            (std::mem::take(&mut s.bytes), std::mem::take(&mut s.room))
        };
        room.into_iter().for_each(Waker::wake);
        bytes
    }

    /// Bytes queued and not yet taken by the body.
    pub fn queued_bytes(&self) -> usize {
        lock(&self.0).bytes
    }

    pub fn try_send(&self, bytes: Bytes) -> Result<(), Refused> {
        self.send_with(|| bytes).map(drop)
    }

    /// Whether a close frame is queued: nothing more goes out, and what
    /// the client still sends is of no use.
    pub fn is_finished(&self) -> bool {
        lock(&self.0).finished
    }

    /// Whether the body is gone.
    pub fn is_closed(&self) -> bool {
        !lock(&self.0).body_alive
    }

    /// Resolves once a frame fits, or the body is gone.
    pub fn room(&self) -> impl Future<Output = ()> + 'static {
        self.until(|s| s.frames.len() < s.capacity && (s.bytes == 0 || s.bytes < s.max_bytes))
    }

    /// Resolves once `ready` holds of the queue, or the body is gone; the
    /// body wakes the waiters whenever it takes a frame.
    fn until(
        &self,
        ready: impl Fn(&State) -> bool + 'static,
    ) -> impl Future<Output = ()> + 'static {
        let state = self.0.clone();
        poll_fn(move |cx: &mut Context<'_>| {
            let mut s = lock(&state);
            if !s.body_alive || ready(&s) {
                return Poll::Ready(());
            }
            if !s.room.iter().any(|w| w.will_wake(cx.waker())) {
                s.room.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    /// Resolves once fewer than `limit` bytes wait (and a frame fits), or
    /// the body is gone. A reader awaits it before taking the client's next
    /// message: a client that does not read what it is sent is not read
    /// either, so that what it sends cannot keep the application producing
    /// replies that pile up here.
    pub fn backlog_below(&self, limit: usize) -> impl Future<Output = ()> + 'static {
        self.until(move |s| s.frames.len() < s.capacity && s.bytes < limit)
    }
}

impl Clone for Sender {
    fn clone(&self) -> Sender {
        lock(&self.0).senders += 1;
        Sender(self.0.clone())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut s = lock(&self.0);
            s.senders -= 1;
            if s.senders > 0 {
                return;
            }
            s.body.take()
        };
        // The last sender is gone: the body ends once it has written the rest.
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Queue {
    /// Bytes queued and not yet taken.
    pub fn queued_bytes(&self) -> usize {
        lock(&self.0).bytes
    }

    /// The next frame; `None` once every sender is gone and the queue is empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let (frame, waiting_for_room) = {
            let mut s = lock(&self.0);
            match s.frames.pop_front() {
                Some(frame) => {
                    s.bytes -= frame.len();
                    if s.frames.is_empty() {
                        // Idle sessions keep no slot storage.
                        s.frames = VecDeque::new();
                    }
                    (frame, std::mem::take(&mut s.room))
                }
                None if s.senders == 0 => return Poll::Ready(None),
                None => {
                    s.body = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        };
        waiting_for_room.into_iter().for_each(Waker::wake);
        Poll::Ready(Some(frame))
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        let room = {
            let mut s = lock(&self.0);
            s.body_alive = false;
            s.frames = VecDeque::new();
            s.bytes = 0;
            std::mem::take(&mut s.room)
        };
        room.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn recv(q: &mut Queue) -> Poll<Option<Bytes>> {
        q.poll_recv(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn holds_at_most_its_capacity_in_order() {
        let (tx, mut rx) = queue(2);
        assert_eq!(tx.try_send(Bytes::from("a")), Ok(()));
        assert_eq!(tx.send_with(|| Bytes::from("bc")), Ok(2));
        assert_eq!(tx.try_send(Bytes::from("d")), Err(Refused::Full));
        assert_eq!(recv(&mut rx), Poll::Ready(Some(Bytes::from("a"))));
        assert_eq!(tx.try_send(Bytes::from("d")), Ok(()));
        assert_eq!(recv(&mut rx), Poll::Ready(Some(Bytes::from("bc"))));
        assert_eq!(recv(&mut rx), Poll::Ready(Some(Bytes::from("d"))));
        assert_eq!(recv(&mut rx), Poll::Pending);
    }

    #[test]
    fn a_byte_bound_refuses_frames_beyond_it_but_one_always_fits() {
        let (tx, mut rx) = bounded(10, 5);
        assert_eq!(tx.try_send(Bytes::from_static(b"123456")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"a")), Err(Refused::Full));
        assert_eq!(
            recv(&mut rx),
            Poll::Ready(Some(Bytes::from_static(b"123456")))
        );
        assert_eq!(tx.try_send(Bytes::from_static(b"abc")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"de")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"f")), Err(Refused::Full));
        assert_eq!(tx.queued_bytes(), 5);
    }

    #[test]
    fn empty_frames_are_not_queued() {
        let (tx, mut rx) = queue(1);
        assert_eq!(tx.send_with(Bytes::new), Ok(0));
        assert_eq!(recv(&mut rx), Poll::Pending);
    }

    #[test]
    fn ends_after_the_last_sender_and_refuses_after_the_body() {
        let (tx, mut rx) = queue(4);
        let control = tx.clone();
        tx.try_send(Bytes::from("x")).unwrap();
        drop(tx);
        assert_eq!(recv(&mut rx), Poll::Ready(Some(Bytes::from("x"))));
        assert_eq!(recv(&mut rx), Poll::Pending);
        drop(control);
        assert_eq!(recv(&mut rx), Poll::Ready(None));

        let (tx, rx) = queue(4);
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.try_send(Bytes::from("x")), Err(Refused::Closed));
    }

    #[test]
    fn one_close_frame_and_nothing_after_it() {
        let (tx, mut rx) = queue(1);
        tx.try_send(Bytes::from("a")).unwrap();
        assert_eq!(tx.queued_bytes(), 1);
        // A close goes in even when the queue is full...
        assert_eq!(tx.send_last_with(|| Bytes::from("close1")), Ok(6));
        // ...once: a second close (the reader answering the client's) is
        // not queued, and data after a close is refused.
        assert_eq!(tx.send_last_with(|| Bytes::from("close2")), Ok(0));
        assert_eq!(tx.try_send(Bytes::from("b")), Err(Refused::Closed));
        assert_eq!(tx.queued_bytes(), 7);
        assert_eq!(recv(&mut rx), Poll::Ready(Some(Bytes::from("a"))));
        assert_eq!(recv(&mut rx), Poll::Ready(Some(Bytes::from("close1"))));
        assert_eq!(recv(&mut rx), Poll::Pending);
        assert_eq!(tx.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn discarding_frees_the_bytes_and_makes_room() {
        let (tx, mut rx) = queue(1);
        tx.try_send(Bytes::from("abc")).unwrap();
        let room = tokio::spawn(tx.room());
        tokio::task::yield_now().await;
        assert_eq!(tx.discard(), 3);
        room.await.unwrap();
        assert_eq!(tx.queued_bytes(), 0);
        assert_eq!(recv(&mut rx), Poll::Pending);
    }

    #[tokio::test]
    async fn room_resolves_when_the_body_takes_a_frame() {
        let (tx, mut rx) = queue(1);
        tx.try_send(Bytes::from("x")).unwrap();
        let room = tokio::spawn(tx.room());
        tokio::task::yield_now().await;
        assert!(!room.is_finished());
        assert!(poll_fn(|cx| rx.poll_recv(cx)).await.is_some());
        room.await.unwrap();
    }

    #[test]
    fn a_backlog_wait_ends_when_the_body_takes_enough_or_goes() {
        let (tx, mut rx) = queue(10);
        let mut wait = Box::pin(tx.backlog_below(4));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(()));
        tx.try_send(Bytes::from_static(b"abc")).unwrap();
        tx.try_send(Bytes::from_static(b"de")).unwrap();
        let mut wait = Box::pin(tx.backlog_below(4));
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Pending);
        assert!(recv(&mut rx).is_ready());
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(()));
        tx.try_send(Bytes::from_static(b"fghij")).unwrap();
        let mut wait = Box::pin(tx.backlog_below(4));
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Pending);
        drop(rx);
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(()));
    }
}
