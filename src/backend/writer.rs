//! The task that owns the PUSH socket: it drains the event queue into 0MQ,
//! a batch at a time, and is the only place that waits for backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::SinkExt;
use tokio::sync::mpsc;

use super::frame::Event;

/// Events sent per flush; bounds the time between checks of the queue.
const BATCH: usize = 256;

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
            if let Err(e) = push.feed(tmq::Multipart::from(parts)).await {
                log::error!("service {name}: PUSH send failed: {e}");
            }
        }
        if let Err(e) = SinkExt::<tmq::Multipart>::flush(&mut push).await {
            log::error!("service {name}: PUSH flush failed: {e}");
        }
        busy.store(false, Ordering::Release);
    }
}
