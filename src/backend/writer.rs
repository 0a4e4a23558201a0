//! The task that owns the PUSH socket: it drains the event queue into 0MQ,
//! a batch at a time, and is the only place that waits for backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::SinkExt;
use tokio::sync::mpsc;

use super::frame::Event;
use super::topology::ScaleOut;

/// Events sent per flush; bounds the time between checks of the queue.
const BATCH: usize = 256;

pub async fn write_events(
    mut push: tmq::push::Push,
    mut queue: mpsc::Receiver<Event>,
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
            send(&mut push, scale.heartbeat_frames(), &name).await;
            if let Err(e) = SinkExt::<tmq::Multipart>::flush(&mut push).await {
                log::error!("service {name}: PUSH flush failed: {e}");
            }
            next_heartbeat = tokio::time::Instant::now() + scale.heartbeat;
        }
        let first = match scale {
            Some(_) => match tokio::time::timeout_at(next_heartbeat, queue.recv()).await {
                Ok(first) => first,
                Err(_) => continue,
            },
            None => queue.recv().await,
        };
        let Some(first) = first else { break };
        busy.store(true, Ordering::Release);
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        for event in batch {
            let frames = match &scale {
                Some(scale) => scale.event_frames(event),
                None => event.into_frames(),
            };
            send(&mut push, frames, &name).await;
        }
        if let Err(e) = SinkExt::<tmq::Multipart>::flush(&mut push).await {
            log::error!("service {name}: PUSH flush failed: {e}");
        }
        busy.store(false, Ordering::Release);
    }
}

async fn send(push: &mut tmq::push::Push, frames: [bytes::Bytes; 3], name: &str) {
    let parts: Vec<tmq::Message> = frames.iter().map(|b| tmq::Message::from(&b[..])).collect();
    if let Err(e) = push.feed(tmq::Multipart::from(parts)).await {
        log::error!("service {name}: PUSH send failed: {e}");
    }
}
