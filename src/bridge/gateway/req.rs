//! The REQ gateway: one DEALER per backend REP endpoint, shared by every
//! browser REQ virtual socket that talks to it.
//!
//! The DEALER is [`crate::reqrep`]'s client: each request goes out as
//! `[id, "", content]`, so a plain REP backend sees only `content` and
//! echoes `id` back with its reply. The id is made by the proxy, never by a
//! browser: whatever identity a browser claims, it can only ever receive
//! replies to its own requests, and a late reply to a request that already
//! timed out is recognised and dropped rather than taken for the answer to
//! the next one. Bounds (requests in flight, bytes queued), deadlines and
//! counted drops are the client's; this file only routes replies back to
//! the virtual socket that asked.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{GatewayError, Gateways, lock};
use crate::bridge::stats::STATS;
use crate::ratelog::Throttle;
use crate::reqrep::{self, ReqRepError};

/// Requests in flight to one DEALER, all browsers together.
const IN_FLIGHT: usize = 4096;
/// Default bytes of requests waiting for one DEALER (`--bridge-queue-bytes`):
/// with [`IN_FLIGHT`] alone, browsers could park 4096 requests of 1 MiB each.
pub const QUEUE_BYTES: usize = 16 * 1024 * 1024;

static REFUSED: Throttle = Throttle::new("bridge: requests refused, backend queue full");

/// A reply (or a failure) for request `seq` of virtual socket `socket`.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct ReqReply {
    pub socket: u64,
    pub seq: u64,
    pub body: Result<Vec<u8>, String>,
}

type Routes = Arc<Mutex<HashMap<u64, actix::Recipient<ReqReply>>>>;

pub(super) struct ReqGateway {
    client: reqrep::Client,
    routes: Routes,
    /// Each request's deadline (the bridge's request timeout).
    timeout: Duration,
}

impl ReqGateway {
    pub(super) fn open(
        zmq: &tmq::Context,
        endpoint: &str,
        hwm: i32,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Self, GatewayError> {
        let limits = reqrep::Limits {
            max_in_flight: IN_FLIGHT,
            max_queue_bytes: max_bytes,
            hwm,
            ..reqrep::Limits::default()
        };
        let client = reqrep::Client::open(zmq, endpoint, limits, Some(&STATS.backend_queue_bytes))
            .map_err(|e| GatewayError::Connect {
                kind: "DEALER",
                endpoint: endpoint.to_string(),
                reason: e.to_string(),
            })?;
        Ok(ReqGateway {
            client,
            routes: Routes::default(),
            timeout,
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

    fn endpoint(&self) -> &str {
        self.client.endpoint()
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
    /// Must run inside a tokio runtime.
    pub fn send(&self, seq: u64, content: String) -> Result<(), String> {
        let gateway = &self.gateway;
        let reply = match gateway
            .client
            .request(content.into_bytes(), gateway.timeout)
        {
            Ok(reply) => reply,
            Err(ReqRepError::Busy(_)) => {
                STATS.requests_refused.fetch_add(1, Ordering::Relaxed);
                REFUSED.warn(format_args!(
                    "{} bytes wait for {}",
                    gateway.client.queued_bytes(),
                    gateway.endpoint()
                ));
                return Err("the backend queue is full".to_string());
            }
            Err(_) => return Err(format!("the gateway to {} has failed", gateway.endpoint())),
        };
        let (socket, routes) = (self.socket, gateway.routes.clone());
        tokio::spawn(async move {
            let body = reply.await.map_err(|e| match e {
                ReqRepError::NotSent(name) => format!("cannot send to {name}: queue full"),
                other => other.to_string(),
            });
            let recipient = lock(&routes).get(&socket).cloned();
            match recipient {
                Some(r) => r.do_send(ReqReply { socket, seq, body }),
                None => log::debug!("bridge: reply for closed socket {socket:x} dropped"),
            }
        });
        Ok(())
    }

    pub fn endpoint(&self) -> &str {
        self.gateway.endpoint()
    }
}

impl Drop for ReqLease {
    fn drop(&mut self) {
        self.gateways
            .release_req(self.gateway.endpoint(), self.socket);
    }
}
