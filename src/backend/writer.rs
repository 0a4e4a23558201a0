//! The task that owns the PUSH socket: it drains the event queue into 0MQ,
//! a batch at a time, and is the only place that waits for backends.
//!
//! 0MQ holds a PUSH send while no backend is connected (or every backend's
//! queue is at its high-water mark). The writer never waits for that without
//! a bound: each wait is cut at [`STALL_REPORT`], logged with the number of
//! events waiting, and resumed with the same event, so that nothing accepted
//! is lost while a backend restarts, and a stall is never silent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use tokio::sync::mpsc;

use super::frame::Event;

/// Events sent per flush; bounds the time between checks of the queue.
const BATCH: usize = 256;
/// How long the writer waits for 0MQ before it reports a stall.
const STALL_REPORT: Duration = Duration::from_secs(5);

pub async fn write_events(
    mut push: tmq::push::Push,
    mut queue: mpsc::Receiver<Event>,
    busy: Arc<AtomicBool>,
    name: String,
) {
    while let Some(first) = queue.recv().await {
        busy.store(true, Ordering::Release);
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        for event in batch {
            let parts: Vec<tmq::Message> = event
                .into_frames()
                .iter()
                .map(|b| tmq::Message::from(&b[..]))
                .collect();
            if !wait(&mut push, &queue, &name, ready).await {
                continue;
            }
            if let Err(e) = push.start_send_unpin(tmq::Multipart::from(parts)) {
                log::error!("service {name}: PUSH send failed: {e}");
            }
        }
        wait(&mut push, &queue, &name, flushed).await;
        busy.store(false, Ordering::Release);
    }
}

type Poll = std::task::Poll<Result<(), tmq::TmqError>>;

fn ready(push: &mut tmq::push::Push, cx: &mut std::task::Context<'_>) -> Poll {
    Sink::<tmq::Multipart>::poll_ready(std::pin::Pin::new(push), cx)
}

fn flushed(push: &mut tmq::push::Push, cx: &mut std::task::Context<'_>) -> Poll {
    Sink::<tmq::Multipart>::poll_flush(std::pin::Pin::new(push), cx)
}

/// Waits until 0MQ takes the socket's pending message, reporting every
/// [`STALL_REPORT`] while it does not. False when the socket failed.
async fn wait(
    push: &mut tmq::push::Push,
    queue: &mpsc::Receiver<Event>,
    name: &str,
    what: fn(&mut tmq::push::Push, &mut std::task::Context<'_>) -> Poll,
) -> bool {
    loop {
        let done = std::future::poll_fn(|cx| what(push, cx));
        match tokio::time::timeout(STALL_REPORT, done).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => {
                log::error!("service {name}: PUSH send failed: {e}");
                return false;
            }
            Err(_) => log::warn!(
                "service {name}: no backend has taken an event for {STALL_REPORT:?}; {} more waiting",
                queue.len()
            ),
        }
    }
}
