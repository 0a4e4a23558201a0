//! The outgoing half of one bridge websocket: a bounded queue of encoded
//! websocket frames that the HTTP response body drains.
//!
//! Gateways write published messages straight into it, without passing
//! through the session actor, so a busy SUB stream costs one JSON encoding
//! and a `try_send` per subscriber. The queue is bounded so that a browser
//! that stops reading cannot make the proxy buffer without limit: SUB frames
//! that do not fit are dropped (and counted), and the session closes the
//! websocket when a reply or an error does not fit.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_http::ws::{CloseCode, CloseReason, OpCode, Parser};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::mpsc;

/// Frames queued towards one browser.
pub const OUTBOX_FRAMES: usize = 1024;

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
    dropped: Arc<AtomicU64>,
}

impl Outbox {
    /// The writer and the body stream for the upgrade response.
    pub fn new() -> (
        Outbox,
        impl Stream<Item = Result<Bytes, Infallible>> + 'static,
    ) {
        let (frames, rx) = mpsc::channel(OUTBOX_FRAMES);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (Ok(frame), rx))
        });
        let outbox = Outbox {
            frames,
            dropped: Arc::default(),
        };
        (outbox, body)
    }

    /// Queues one text message.
    pub fn text(&self, text: &str) -> Result<(), OutboxError> {
        let mut out = BytesMut::with_capacity(text.len() + 10);
        Parser::write_message(&mut out, text.as_bytes(), OpCode::Text, true, false);
        self.raw(out.freeze())
    }

    /// Queues a published message: dropped and counted when the queue is full,
    /// because a slow reader must not hold the SUB stream up for everyone.
    pub fn published(&self, text: &str) -> Result<(), OutboxError> {
        match self.text(text) {
            Err(OutboxError::Full) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    log::warn!("bridge: slow browser, {n} published messages dropped");
                }
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

    pub fn close(&self, code: CloseCode) {
        let mut out = BytesMut::new();
        let reason = CloseReason {
            code,
            description: None,
        };
        Parser::write_close(&mut out, Some(reason), false);
        let _ = self.raw(out.freeze());
    }

    fn raw(&self, frame: Bytes) -> Result<(), OutboxError> {
        self.frames.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => OutboxError::Full,
            mpsc::error::TrySendError::Closed(_) => OutboxError::Closed,
        })
    }
}
