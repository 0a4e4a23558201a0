//! The outgoing half of one bridge websocket: the websocket's one outbound
//! queue ([`crate::websocket::queue`]) with bridge mode's policy on top.
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
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use actix_http::ws::{CloseCode, OpCode, Parser};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use super::stats::STATS;
use crate::ratelog::Throttle;
use crate::websocket::queue::{self, Queue, Refused, Sender};

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

impl From<Refused> for OutboxError {
    fn from(r: Refused) -> OutboxError {
        match r {
            Refused::Full => OutboxError::Full,
            Refused::Closed => OutboxError::Closed,
        }
    }
}

/// A cloneable writer of frames to one websocket.
#[derive(Clone)]
pub struct Outbox {
    frames: Sender,
    max_bytes: usize,
}

/// The response body: the queue's frames, with bridge mode's gauge of bytes
/// waiting kept up to date (frames left when it is dropped included).
pub struct OutboxBody(Queue);

impl Stream for OutboxBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|frame| {
            frame.map(|f| {
                unqueued(f.len());
                Ok(f)
            })
        })
    }
}

impl Drop for OutboxBody {
    fn drop(&mut self) {
        unqueued(self.0.queued_bytes());
    }
}

/// Takes bytes off the gauge. Saturating: the reader's pongs and pings (a
/// few bytes each) go through the queue uncounted.
fn unqueued(n: usize) {
    let _ = STATS
        .outbox_bytes
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n))
        });
}

impl Outbox {
    /// The writer and the body stream for the upgrade response; at most
    /// `max_bytes` of frames wait (see the module docs).
    pub fn new(max_bytes: usize) -> (Outbox, OutboxBody) {
        let (frames, body) = queue::bounded(OUTBOX_FRAMES, max_bytes);
        (Outbox { frames, max_bytes }, OutboxBody(body))
    }

    /// The queue's writer, for the websocket reader's control frames.
    pub fn control(&self) -> &Sender {
        &self.frames
    }

    /// Bytes queued now (for tests).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.frames.queued_bytes()
    }

    /// Queues one text message.
    pub fn text(&self, text: &str) -> Result<(), OutboxError> {
        let queued = self.frames.send_with(|| {
            let mut out = BytesMut::with_capacity(text.len() + 10);
            Parser::write_message(&mut out, text.as_bytes(), OpCode::Text, true, false);
            out.freeze()
        })?;
        STATS.outbox_bytes.fetch_add(queued, Ordering::Relaxed);
        super::stats::bump(&STATS.frames_out);
        Ok(())
    }

    /// Queues a published message: dropped and counted when the queue is full,
    /// because a slow reader must not hold the SUB stream up for everyone.
    pub fn published(&self, text: &str) -> Result<(), OutboxError> {
        match self.text(text) {
            Err(OutboxError::Full) => {
                STATS.published_dropped.fetch_add(1, Ordering::Relaxed);
                DROPPED.warn(format_args!(
                    "{} bytes of {} waiting",
                    self.frames.queued_bytes(),
                    self.max_bytes
                ));
                Ok(())
            }
            other => other,
        }
    }

    /// Queues the close frame, once: a second close (the browser's crossing
    /// the session's) is not answered. It goes in even when the budget is
    /// spent, since it ends the connection.
    pub fn close(&self, code: CloseCode) {
        let queued = crate::websocket::close(&self.frames, code);
        STATS.outbox_bytes.fetch_add(queued, Ordering::Relaxed);
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
        assert_eq!(outbox.queued(), 12);
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
