//! The outgoing half of one bridge websocket: a bounded queue of encoded
//! websocket frames that the HTTP response body drains.
//!
//! Gateways write published messages straight into it, without passing
//! through the session actor, so a busy SUB stream costs one JSON encoding
//! and a `try_send` per subscriber. The queue is bounded so that a browser
//! that stops reading cannot make the proxy buffer without limit: SUB frames
//! that do not fit are dropped (counted in `/metrics` and logged, summarised
//! by [`crate::ratelog`]), and the session closes the websocket when a reply
//! or an error does not fit.
//!
//! The bound is in frames ([`OUTBOX_FRAMES`]) *and* in bytes
//! (`--bridge-outbox-bytes`, [`OUTBOX_BYTES`]): with frames alone, a PUB
//! sending 1 MiB messages let each non-reading browser hold 1 GiB. A frame
//! larger than the whole byte budget is still taken when the queue is empty,
//! so a large reply reaches a browser that reads; a browser that does not
//! read holds at most the budget or one frame, whichever is larger. The
//! upgrade pump ([`crate::upgrade`]) takes the next frame only once the last
//! is written, so nothing else piles up behind the queue.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_http::ws::{CloseCode, CloseReason, OpCode, Parser};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::mpsc;

use super::stats::STATS;
use crate::ratelog::Throttle;

/// Frames queued towards one browser.
pub const OUTBOX_FRAMES: usize = 1024;
/// Default bytes queued towards one browser (`--bridge-outbox-bytes`): 100
/// browsers that stop reading hold 100 MiB of frames at most.
pub const OUTBOX_BYTES: usize = 1024 * 1024;

static DROPPED: Throttle = Throttle::new("bridge: published messages dropped, browser not reading");

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    #[error("the browser is not reading fast enough")]
    Full,
    #[error("the websocket is closed")]
    Closed,
}

/// A cloneable writer of frames to one websocket.
#[derive(Clone)]
pub struct Outbox {
    frames: mpsc::Sender<Bytes>,
    budget: Arc<Budget>,
}

/// The bytes one outbox holds, shared by its writers and its reader.
struct Budget {
    queued: AtomicUsize,
    max: usize,
    /// A close frame is queued: RFC 6455 allows one per side, and nothing
    /// after it, whoever (the session or the browser) starts the closing.
    finished: std::sync::atomic::AtomicBool,
}

impl Budget {
    /// Reserves `n` bytes if they fit (or if nothing is queued).
    fn take(&self, n: usize) -> bool {
        let taken = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q == 0 || q + n <= self.max).then_some(q + n)
            })
            .is_ok();
        if taken {
            STATS.outbox_bytes.fetch_add(n, Ordering::Relaxed);
        }
        taken
    }

    fn give(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
        STATS.outbox_bytes.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The reading end; frames still queued when it is dropped give their bytes back.
struct Drain {
    rx: mpsc::Receiver<Bytes>,
    budget: Arc<Budget>,
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.rx.close();
        while let Ok(frame) = self.rx.try_recv() {
            self.budget.give(frame.len());
        }
    }
}

impl Outbox {
    /// The writer and the body stream for the upgrade response; at most
    /// `max_bytes` of frames wait (see the module docs).
    pub fn new(
        max_bytes: usize,
    ) -> (
        Outbox,
        impl Stream<Item = Result<Bytes, Infallible>> + 'static,
    ) {
        let (frames, rx) = mpsc::channel(OUTBOX_FRAMES);
        let budget = Arc::new(Budget {
            queued: AtomicUsize::new(0),
            max: max_bytes,
            finished: Default::default(),
        });
        let drain = Drain {
            rx,
            budget: budget.clone(),
        };
        let body = futures_util::stream::unfold(drain, |mut drain| async move {
            let frame = drain.rx.recv().await?;
            drain.budget.give(frame.len());
            Some((Ok(frame), drain))
        });
        (Outbox { frames, budget }, body)
    }

    /// Bytes queued now (for tests).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.budget.queued.load(Ordering::Acquire)
    }

    /// Queues one text message.
    pub fn text(&self, text: &str) -> Result<(), OutboxError> {
        let mut out = BytesMut::with_capacity(text.len() + 10);
        Parser::write_message(&mut out, text.as_bytes(), OpCode::Text, true, false);
        let queued = self.raw(out.freeze());
        if queued.is_ok() {
            super::stats::bump(&STATS.frames_out);
        }
        queued
    }

    /// Queues a published message: dropped and counted when the queue is full,
    /// because a slow reader must not hold the SUB stream up for everyone.
    pub fn published(&self, text: &str) -> Result<(), OutboxError> {
        match self.text(text) {
            Err(OutboxError::Full) => {
                STATS.published_dropped.fetch_add(1, Ordering::Relaxed);
                DROPPED.warn(format_args!(
                    "{} bytes of {} waiting",
                    self.budget.queued.load(Ordering::Relaxed),
                    self.budget.max
                ));
                Ok(())
            }
            other => other,
        }
    }

    pub fn pong(&self, payload: Bytes) {
        let mut out = BytesMut::new();
        Parser::write_message(&mut out, payload, OpCode::Pong, true, false);
        let _ = self.raw(out.freeze());
    }

    /// Queues the close frame, once: a second close (the browser's crossing
    /// the session's) is not answered. It goes in even when the budget is
    /// spent, since it ends the connection.
    pub fn close(&self, code: CloseCode) {
        if self.budget.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut out = BytesMut::new();
        let reason = CloseReason {
            code,
            description: None,
        };
        Parser::write_close(&mut out, Some(reason), false);
        let _ = self.push(out.freeze(), true);
    }

    fn raw(&self, frame: Bytes) -> Result<(), OutboxError> {
        if self.budget.finished.load(Ordering::Acquire) {
            return Err(OutboxError::Closed);
        }
        self.push(frame, false)
    }

    fn push(&self, frame: Bytes, always: bool) -> Result<(), OutboxError> {
        let len = frame.len();
        if self.frames.is_closed() {
            return Err(OutboxError::Closed);
        }
        if always {
            self.budget.queued.fetch_add(len, Ordering::AcqRel);
            STATS.outbox_bytes.fetch_add(len, Ordering::Relaxed);
        } else if !self.budget.take(len) {
            return Err(OutboxError::Full);
        }
        self.frames.try_send(frame).map_err(|e| {
            self.budget.give(len);
            match e {
                mpsc::error::TrySendError::Full(_) => OutboxError::Full,
                mpsc::error::TrySendError::Closed(_) => OutboxError::Closed,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn one_close_frame_goes_out_even_when_full_and_nothing_after_it() {
        let (outbox, body) = Outbox::new(10);
        let mut body = Box::pin(body);
        outbox.text("0123456789").unwrap();
        assert_eq!(outbox.text("x"), Err(OutboxError::Full));
        outbox.close(CloseCode::Policy);
        outbox.close(CloseCode::Normal);
        assert_eq!(outbox.text("x"), Err(OutboxError::Closed));
        let _text = body.next().await.unwrap().unwrap();
        let close = body.next().await.unwrap().unwrap();
        assert_eq!(&close[..], &[0x88, 0x02, 0x03, 0xf0]); // 1008, once
        drop(outbox);
        assert!(body.next().await.is_none());
        drop(body);
    }

    #[tokio::test]
    async fn the_byte_budget_bounds_what_waits_and_reading_frees_it() {
        let (outbox, body) = Outbox::new(1000);
        let mut body = Box::pin(body);
        let text = "x".repeat(300);
        for _ in 0..3 {
            outbox.text(&text).unwrap();
        }
        // A fourth would pass 1000 bytes: dropped (published) or refused.
        assert_eq!(outbox.text(&text), Err(OutboxError::Full));
        outbox.published(&text).unwrap();
        assert!(outbox.queued() <= 1000, "{}", outbox.queued());
        body.next().await.unwrap().unwrap();
        outbox.text(&text).unwrap();
        assert_eq!(outbox.queued(), 3 * (300 + 4));
    }

    #[tokio::test]
    async fn a_frame_over_the_budget_passes_only_an_empty_queue() {
        let (outbox, body) = Outbox::new(100);
        let mut body = Box::pin(body);
        let big = "y".repeat(500);
        outbox.text(&big).unwrap();
        assert_eq!(outbox.text("small"), Err(OutboxError::Full));
        assert_eq!(body.next().await.unwrap().unwrap().len(), 504);
        outbox.text("small").unwrap();
    }

    #[tokio::test]
    async fn frames_left_when_the_websocket_goes_give_their_bytes_back() {
        let (outbox, body) = Outbox::new(10_000);
        outbox.text("hello").unwrap();
        assert_eq!(outbox.queued(), 7);
        drop(body);
        assert_eq!(outbox.text("again"), Err(OutboxError::Closed));
        assert_eq!(outbox.queued(), 0);
    }
}
