//! The request body of an upgraded connection: everything the client sends
//! after the request head, handed to the handler as its `web::Payload`.
//!
//! actix-http's own payload type cannot be driven from outside the crate (its
//! back-pressure status is not nameable), so this is a small equivalent: a
//! queue of chunks shared between the connection's pump ([`Feed`]) and the
//! handler ([`FeedStream`]), on one thread. It holds no allocation while empty,
//! which is what an idle websocket is.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix_http::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;

/// Bytes held for a handler that is not reading before the pump stops reading
/// the socket; the same limit as actix-http's own payload.
const MAX_BUFFERED: usize = 32 * 1024;

#[derive(Default)]
struct Shared {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    /// The client's side ended: `Some(None)` at a clean end, with the error else.
    end: Option<Option<PayloadError>>,
    /// The handler, waiting for bytes.
    reader: Option<Waker>,
    /// The pump, waiting for room.
    writer: Option<Waker>,
}

/// The pump's end: feeds what the socket reads.
pub struct Feed(Rc<RefCell<Shared>>);

/// The handler's end, a stream of chunks.
pub struct FeedStream(Rc<RefCell<Shared>>);

/// A connected pair.
pub fn feed() -> (Feed, FeedStream) {
    let shared = Rc::new(RefCell::new(Shared::default()));
    (Feed(shared.clone()), FeedStream(shared))
}

impl Feed {
    /// Whether the pump should read more now. When the handler is behind, the
    /// pump is woken once it has caught up; when the handler dropped its end,
    /// reading goes on and the bytes are discarded, so that the response can
    /// still be written and the close seen.
    pub fn wants_more(&self, cx: &Context<'_>) -> bool {
        let mut s = self.0.borrow_mut();
        if Rc::strong_count(&self.0) == 1 || s.buffered < MAX_BUFFERED {
            return true;
        }
        s.writer = Some(cx.waker().clone());
        false
    }

    pub fn push(&self, chunk: Bytes) {
        if chunk.is_empty() || Rc::strong_count(&self.0) == 1 {
            return;
        }
        let mut s = self.0.borrow_mut();
        s.buffered += chunk.len();
        s.chunks.push_back(chunk);
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }

    /// The client's side ended (`None`) or broke.
    pub fn end(&self, error: Option<PayloadError>) {
        let mut s = self.0.borrow_mut();
        s.end.get_or_insert(error);
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        // A pump that stops without saying why lost the connection.
        if self.0.borrow().end.is_none() {
            self.end(Some(PayloadError::Incomplete(None)));
        }
    }
}

impl Stream for FeedStream {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut s = self.0.borrow_mut();
        if let Some(chunk) = s.chunks.pop_front() {
            s.buffered -= chunk.len();
            if s.chunks.is_empty() {
                // Idle connections keep no queue storage.
                s.chunks = VecDeque::new();
            }
            if let Some(w) = s.writer.take() {
                w.wake();
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        match &mut s.end {
            Some(end) => Poll::Ready(end.take().map(Err)),
            None => {
                s.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for FeedStream {
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        s.chunks.clear();
        s.buffered = 0;
        if let Some(w) = s.writer.take() {
            w.wake();
        }
    }
}
