//! The REQ gateway: one DEALER per backend REP endpoint, shared by every
//! browser REQ virtual socket that talks to it.
//!
//! Each request goes out as `[route, "", content]`, so a plain REP backend
//! sees only `content` and echoes `route` back with its reply. The route is
//! made by the proxy from the virtual socket's key (unique in the process) and
//! the request's sequence number: whatever identity a browser claims, it can
//! only ever receive replies to its own requests, and a late reply to a
//! request that already timed out is recognised and dropped rather than taken
//! for the answer to the next one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::{GatewayError, Gateways, lock};
use crate::bridge::stats::STATS;
use crate::ratelog::Throttle;

/// Requests waiting for the DEALER, all browsers together.
const QUEUE: usize = 4096;
/// Default bytes of requests waiting for one DEALER (`--bridge-queue-bytes`):
/// with [`QUEUE`] alone, browsers could park 4096 requests of 1 MiB each.
pub const QUEUE_BYTES: usize = 16 * 1024 * 1024;

static REFUSED: Throttle = Throttle::new("bridge: requests refused, backend queue full");
/// How long a request may wait for 0MQ to take it (only when the HWM is hit).
const SEND_BOUND: Duration = Duration::from_secs(1);

/// A reply (or a failure) for request `seq` of virtual socket `socket`.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct ReqReply {
    pub socket: u64,
    pub seq: u64,
    pub body: Result<Vec<u8>, String>,
}

struct Outgoing {
    socket: u64,
    seq: u64,
    content: String,
}

type Routes = Arc<Mutex<HashMap<u64, actix::Recipient<ReqReply>>>>;

pub(super) struct ReqGateway {
    endpoint: String,
    outgoing: mpsc::Sender<Outgoing>,
    routes: Routes,
    /// Bytes of content in `outgoing` now, and the most it may hold.
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// Gives back the bytes of a request that left the queue.
fn dequeued(queued: &AtomicUsize, out: &Outgoing) {
    queued.fetch_sub(out.content.len(), Ordering::AcqRel);
    STATS
        .backend_queue_bytes
        .fetch_sub(out.content.len(), Ordering::Relaxed);
}

impl ReqGateway {
    pub(super) fn open(
        zmq: &tmq::Context,
        endpoint: &str,
        hwm: i32,
        max_bytes: usize,
    ) -> Result<Self, GatewayError> {
        let dealer = tmq::dealer(zmq)
            .set_linger(0)
            .set_sndhwm(hwm)
            .set_rcvhwm(hwm)
            .connect(endpoint)
            .map_err(|source| GatewayError::Connect {
                kind: "DEALER",
                endpoint: endpoint.to_string(),
                source,
            })?;
        let (outgoing, queue) = mpsc::channel(QUEUE);
        let routes = Routes::default();
        let queued = Arc::new(AtomicUsize::new(0));
        let task = Task {
            dealer,
            queue,
            routes: routes.clone(),
            queued: queued.clone(),
            name: endpoint.to_string(),
        };
        tokio::spawn(task.run());
        log::debug!("bridge: DEALER connected to {endpoint}");
        Ok(ReqGateway {
            endpoint: endpoint.to_string(),
            outgoing,
            routes,
            queued,
            max_bytes,
        })
    }

    /// Reserves `n` bytes of the queue if they fit (or if it is empty).
    fn take(&self, n: usize) -> bool {
        let taken = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q == 0 || q + n <= self.max_bytes).then_some(q + n)
            })
            .is_ok();
        if taken {
            STATS.backend_queue_bytes.fetch_add(n, Ordering::Relaxed);
        }
        taken
    }

    pub(super) fn register(&self, socket: u64, replies: actix::Recipient<ReqReply>) {
        lock(&self.routes).insert(socket, replies);
    }

    /// Returns how many virtual sockets are left.
    pub(super) fn deregister(&self, socket: u64) -> usize {
        let mut routes = lock(&self.routes);
        routes.remove(&socket);
        routes.len()
    }
}

/// A virtual socket's hold on a DEALER; dropping it deregisters.
pub struct ReqLease {
    gateways: Arc<Gateways>,
    gateway: Arc<ReqGateway>,
    socket: u64,
}

impl ReqLease {
    pub(super) fn new(gateways: Arc<Gateways>, gateway: Arc<ReqGateway>, socket: u64) -> ReqLease {
        ReqLease {
            gateways,
            gateway,
            socket,
        }
    }

    /// Queues request `seq` without waiting; the reply comes as a [`ReqReply`].
    /// A full queue (in requests or bytes) refuses it, counted and logged.
    pub fn send(&self, seq: u64, content: String) -> Result<(), String> {
        let gateway = &self.gateway;
        let full = || {
            STATS.requests_refused.fetch_add(1, Ordering::Relaxed);
            REFUSED.warn(format_args!(
                "{} bytes wait for {}",
                gateway.queued.load(Ordering::Relaxed),
                gateway.endpoint
            ));
            "the backend queue is full".to_string()
        };
        if !gateway.take(content.len()) {
            return Err(full());
        }
        let outgoing = Outgoing {
            socket: self.socket,
            seq,
            content,
        };
        gateway.outgoing.try_send(outgoing).map_err(|e| {
            let closed = matches!(e, mpsc::error::TrySendError::Closed(_));
            dequeued(&gateway.queued, &e.into_inner());
            if closed {
                format!("the gateway to {} has failed", gateway.endpoint)
            } else {
                full()
            }
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.gateway.endpoint
    }
}

impl Drop for ReqLease {
    fn drop(&mut self) {
        self.gateways
            .release_req(&self.gateway.endpoint, self.socket);
    }
}

fn route(socket: u64, seq: u64) -> String {
    format!("{socket:x}.{seq:x}")
}

fn parse_route(route: &[u8]) -> Option<(u64, u64)> {
    let (socket, seq) = std::str::from_utf8(route).ok()?.split_once('.')?;
    Some((
        u64::from_str_radix(socket, 16).ok()?,
        u64::from_str_radix(seq, 16).ok()?,
    ))
}

/// The gateway's task: owns the DEALER until every lease is gone (the queue
/// closes) or the socket fails.
struct Task {
    dealer: tmq::dealer::Dealer,
    queue: mpsc::Receiver<Outgoing>,
    routes: Routes,
    queued: Arc<AtomicUsize>,
    name: String,
}

impl Drop for Task {
    /// Requests still queued give their bytes back.
    fn drop(&mut self) {
        self.queue.close();
        while let Ok(out) = self.queue.try_recv() {
            dequeued(&self.queued, &out);
        }
    }
}

impl Task {
    fn reply_to(&self, socket: u64, seq: u64, body: Result<Vec<u8>, String>) {
        let recipient = lock(&self.routes).get(&socket).cloned();
        match recipient {
            Some(r) => r.do_send(ReqReply { socket, seq, body }),
            None => log::debug!("bridge: reply for closed socket {socket:x} dropped"),
        }
    }

    async fn run(mut self) {
        let name = self.name.clone();
        loop {
            tokio::select! {
                out = self.queue.recv() => {
                    let Some(out) = out else { break };
                    dequeued(&self.queued, &out);
                    let parts = vec![
                        tmq::Message::from(route(out.socket, out.seq).as_bytes()),
                        tmq::Message::new(),
                        tmq::Message::from(out.content.as_bytes()),
                    ];
                    let sent = tokio::time::timeout(
                        SEND_BOUND,
                        self.dealer.send(tmq::Multipart::from(parts)),
                    )
                    .await;
                    if !matches!(sent, Ok(Ok(()))) {
                        log::warn!("bridge: DEALER {name}: request not sent");
                        let error = format!("cannot send to {name}: queue full");
                        self.reply_to(out.socket, out.seq, Err(error));
                    }
                }
                reply = self.dealer.next() => {
                    let Some(Ok(reply)) = reply else {
                        log::error!("bridge: DEALER {name}: receive failed");
                        break;
                    };
                    let parts: Vec<&[u8]> = reply.iter().map(|m| &m[..]).collect();
                    // [route, "", body]; like the original, the body is the last frame.
                    match (parts.first().and_then(|r| parse_route(r)), parts.last()) {
                        (Some((socket, seq)), Some(body)) if parts.len() >= 3 => {
                            self.reply_to(socket, seq, Ok(body.to_vec()));
                        }
                        _ => log::warn!("bridge: DEALER {name}: reply without a proxy route dropped"),
                    }
                }
            }
        }
        log::debug!("bridge: DEALER {name} task ends");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(parse_route(route(7, 300).as_bytes()), Some((7, 300)));
        assert_eq!(parse_route(b"ABCDEF"), None);
        assert_eq!(parse_route(b"x.1"), None);
    }
}
