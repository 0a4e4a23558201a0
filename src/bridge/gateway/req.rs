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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::{GatewayError, Gateways, lock};

/// Requests waiting for the DEALER, all browsers together.
const QUEUE: usize = 4096;
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
}

impl ReqGateway {
    pub(super) fn open(zmq: &tmq::Context, endpoint: &str, hwm: i32) -> Result<Self, GatewayError> {
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
        tokio::spawn(run(dealer, queue, routes.clone(), endpoint.to_string()));
        log::debug!("bridge: DEALER connected to {endpoint}");
        Ok(ReqGateway {
            endpoint: endpoint.to_string(),
            outgoing,
            routes,
        })
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
    pub fn send(&self, seq: u64, content: String) -> Result<(), String> {
        let outgoing = Outgoing {
            socket: self.socket,
            seq,
            content,
        };
        self.gateway
            .outgoing
            .try_send(outgoing)
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => "the backend queue is full".to_string(),
                mpsc::error::TrySendError::Closed(_) => {
                    format!("the gateway to {} has failed", self.gateway.endpoint)
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

/// Owns the DEALER until every lease is gone (the queue closes).
async fn run(
    mut dealer: tmq::dealer::Dealer,
    mut queue: mpsc::Receiver<Outgoing>,
    routes: Routes,
    name: String,
) {
    let reply_to = |socket: u64, seq: u64, body: Result<Vec<u8>, String>| {
        let recipient = lock(&routes).get(&socket).cloned();
        match recipient {
            Some(r) => r.do_send(ReqReply { socket, seq, body }),
            None => log::debug!("bridge: reply for closed socket {socket:x} dropped"),
        }
    };
    loop {
        tokio::select! {
            out = queue.recv() => {
                let Some(out) = out else { break };
                let parts = vec![
                    tmq::Message::from(route(out.socket, out.seq).as_bytes()),
                    tmq::Message::new(),
                    tmq::Message::from(out.content.as_bytes()),
                ];
                let sent = tokio::time::timeout(SEND_BOUND, dealer.send(tmq::Multipart::from(parts))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    log::warn!("bridge: DEALER {name}: request not sent");
                    reply_to(out.socket, out.seq, Err(format!("cannot send to {name}: queue full")));
                }
            }
            reply = dealer.next() => {
                let Some(Ok(reply)) = reply else {
                    log::error!("bridge: DEALER {name}: receive failed");
                    break;
                };
                let parts: Vec<&[u8]> = reply.iter().map(|m| &m[..]).collect();
                // [route, "", body]; like the original, the body is the last frame.
                match (parts.first().and_then(|r| parse_route(r)), parts.last()) {
                    (Some((socket, seq)), Some(body)) if parts.len() >= 3 => {
                        reply_to(socket, seq, Ok(body.to_vec()));
                    }
                    _ => log::warn!("bridge: DEALER {name}: reply without a proxy route dropped"),
                }
            }
        }
    }
    log::debug!("bridge: DEALER {name} task ends");
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
