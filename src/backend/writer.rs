//! The task that owns the PUSH socket: it drains the event queue into 0MQ
//! (libzmq's or the native one) and is the only place that waits for backends.
//!
//! 0MQ holds a PUSH send while no backend is connected (or every backend's
//! queue is at its high-water mark). The writer never waits for that without
//! a bound: each wait is cut at [`STALL_REPORT`], logged with the number of
//! events waiting, and resumed with the same event, so that nothing accepted
//! is lost while a backend restarts, and a stall is never silent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt};
use tmq::AsZmqSocket;

use super::EventQueue;
use super::topology::ScaleOut;

/// How long the writer waits for 0MQ before it reports a stall.
const STALL_REPORT: Duration = Duration::from_secs(5);

pub async fn write_events(
    mut push: tmq::push::Push,
    mut queue: EventQueue,
    busy: Arc<AtomicBool>,
    name: String,
    scale: Option<Arc<ScaleOut>>,
) {
    // Scale-out: a heartbeat first, then whenever one is due (see `topology`).
    let mut next_heartbeat = tokio::time::Instant::now();
    loop {
        if let Some(scale) = &scale
            && tokio::time::Instant::now() >= next_heartbeat
        {
            send(&mut push, scale.heartbeat_frames(), &queue, &name).await;
            next_heartbeat = tokio::time::Instant::now() + scale.heartbeat;
        }
        let event = match scale {
            Some(_) => match tokio::time::timeout_at(next_heartbeat, queue.recv()).await {
                Ok(event) => event,
                Err(_) => continue,
            },
            None => queue.recv().await,
        };
        let Some(queued) = event else { break };
        busy.store(true, Ordering::Release);
        let frames = match &scale {
            Some(scale) => scale.event_frames(queued.event),
            None => queued.event.into_frames(),
        };
        send(&mut push, frames, &queue, &name).await;
        busy.store(false, Ordering::Release);
    }
}

/// The writer for the native PUSH: each event is encoded straight into a
/// backend's output buffer; the peers' tasks write the buffers out once this
/// task has taken every event queued so far.
pub async fn write_native(
    push: super::zmtp::push::Push,
    mut queue: EventQueue,
    busy: Arc<AtomicBool>,
    name: String,
) {
    while let Some(queued) = queue.recv().await {
        let event = &queued.event;
        busy.store(true, Ordering::Release);
        while !event.with_frames(|frames| push.try_send(&frames)) {
            let why = match push.peer_count() {
                0 => "no backend is connected",
                _ => "every backend is behind",
            };
            if tokio::time::timeout(STALL_REPORT, push.room())
                .await
                .is_err()
            {
                log::warn!(
                    "service {name}: {why} for {STALL_REPORT:?}; {} more events waiting",
                    queue.len()
                );
            }
        }
        busy.store(false, Ordering::Release);
    }
}

/// Hands one message to 0MQ.
async fn send(push: &mut tmq::push::Push, frames: [Bytes; 3], queue: &EventQueue, name: &str) {
    // Fast path: 0MQ takes the message at once, with no readiness check (each
    // check costs 0MQ a poll of its own mailbox).
    match push
        .get_socket()
        .send_multipart(frames.iter().map(|b| &b[..]), zmq::DONTWAIT)
    {
        Ok(()) => {}
        Err(zmq::Error::EAGAIN) => {
            // No backend can take it now: tmq holds it and waits for room.
            let parts: Vec<tmq::Message> =
                frames.iter().map(|b| tmq::Message::from(&b[..])).collect();
            match push.start_send_unpin(tmq::Multipart::from(parts)) {
                Ok(()) => flush(push, queue, name).await,
                Err(e) => log::error!("service {name}: PUSH send failed: {e}"),
            }
        }
        Err(e) => log::error!("service {name}: PUSH send failed: {e}"),
    }
}

/// Waits until 0MQ takes the message tmq holds, reporting every
/// [`STALL_REPORT`] while it does not.
async fn flush(push: &mut tmq::push::Push, queue: &EventQueue, name: &str) {
    loop {
        let done = std::future::poll_fn(|cx| {
            Sink::<tmq::Multipart>::poll_flush(std::pin::Pin::new(&mut *push), cx)
        });
        match tokio::time::timeout(STALL_REPORT, done).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => {
                log::error!("service {name}: PUSH send failed: {e}");
                return;
            }
            Err(_) => log::warn!(
                "service {name}: no backend has taken an event for {STALL_REPORT:?}; {} more waiting",
                queue.len()
            ),
        }
    }
}
