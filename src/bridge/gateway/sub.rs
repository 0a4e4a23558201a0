//! The SUB gateway: one SUB socket per backend PUB endpoint, subscribed to
//! everything, fanned out to the browser SUB virtual sockets whose prefix
//! matches the message's first frame.
//!
//! The original matched filters as *substrings* of each frame; 0MQ filters by
//! prefix, and so do we. Each frame of a multi-part message is delivered as a
//! frame of its own, as the original did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::{GatewayError, Gateways, lock};
use crate::bridge::outbox::Outbox;
use crate::bridge::wire;

/// One browser SUB virtual socket, as its gateway sees it.
pub struct Subscriber {
    pub identity: String,
    pub prefix: Vec<u8>,
    pub outbox: Outbox,
}

type Subscribers = Arc<Mutex<HashMap<u64, Subscriber>>>;

pub(super) struct SubGateway {
    subscribers: Subscribers,
    /// Dropping it ends the task, which drops the socket.
    _stop: oneshot::Sender<()>,
}

impl SubGateway {
    pub(super) fn open(zmq: &tmq::Context, endpoint: &str, hwm: i32) -> Result<Self, GatewayError> {
        let error = |source: tmq::TmqError| GatewayError::Connect {
            kind: "SUB",
            endpoint: endpoint.to_string(),
            reason: source.to_string(),
        };
        let socket = tmq::subscribe(zmq)
            .set_linger(0)
            .set_rcvhwm(hwm)
            .connect(endpoint)
            .map_err(error)?
            .subscribe(b"")
            .map_err(error)?;
        let (stop, stopped) = oneshot::channel();
        let subscribers = Subscribers::default();
        tokio::spawn(run(
            socket,
            stopped,
            subscribers.clone(),
            endpoint.to_string(),
        ));
        log::debug!("bridge: SUB connected to {endpoint}");
        Ok(SubGateway {
            subscribers,
            _stop: stop,
        })
    }

    pub(super) fn register(&self, socket: u64, subscriber: Subscriber) {
        lock(&self.subscribers).insert(socket, subscriber);
    }

    pub(super) fn deregister(&self, socket: u64) -> usize {
        let mut subscribers = lock(&self.subscribers);
        subscribers.remove(&socket);
        subscribers.len()
    }
}

/// A virtual socket's hold on a SUB gateway; dropping it deregisters.
pub struct SubLease {
    gateways: Arc<Gateways>,
    endpoint: String,
    socket: u64,
}

impl SubLease {
    pub(super) fn new(gateways: Arc<Gateways>, endpoint: &str, socket: u64) -> SubLease {
        SubLease {
            gateways,
            endpoint: endpoint.to_string(),
            socket,
        }
    }
}

impl Drop for SubLease {
    fn drop(&mut self) {
        self.gateways.release_sub(&self.endpoint, self.socket);
    }
}

async fn run(
    mut socket: tmq::subscribe::Subscribe,
    mut stopped: oneshot::Receiver<()>,
    subscribers: Subscribers,
    name: String,
) {
    loop {
        let message = tokio::select! {
            _ = &mut stopped => break,
            m = socket.next() => m,
        };
        let Some(Ok(message)) = message else {
            log::error!("bridge: SUB {name}: receive failed");
            break;
        };
        let Some(first) = message.iter().next() else {
            continue;
        };
        // Non-UTF-8 bytes become U+FFFD instead of silently losing the message.
        let texts: Vec<String> = message
            .iter()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect();
        for s in lock(&subscribers).values() {
            if first.starts_with(&s.prefix) {
                for text in &texts {
                    let _ = s.outbox.published(&wire::data(&s.identity, text));
                }
            }
        }
    }
    log::debug!("bridge: SUB {name} task ends");
}
