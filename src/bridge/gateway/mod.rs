//! Gateways: the proxy's 0MQ sockets towards backends, shared by every
//! browser (the original's `ZmqGatewayFactory`).
//!
//! There is one DEALER per backend REP endpoint and one SUB per backend PUB
//! endpoint. A virtual socket holds a *lease* on its gateway; the gateway is
//! made by the first lease and closed (its task ends, its socket is dropped
//! with linger 0) when the last lease is dropped, which the original never did.
//!
//! Lock order: the registry's map, then a gateway's table. Gateway tasks take
//! only their own table, so they never wait on the registry.

mod req;
mod sub;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use req::{QUEUE_BYTES, ReqLease, ReqReply};
pub use sub::{SubLease, Subscriber};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot connect {kind} to {endpoint}: {reason}")]
    Connect {
        kind: &'static str,
        endpoint: String,
        reason: String,
    },
}

/// The registry of open gateways.
pub struct Gateways {
    zmq: tmq::Context,
    hwm: i32,
    /// Bytes of requests each DEALER's queue may hold.
    queue_bytes: usize,
    /// Each request's deadline.
    timeout: Duration,
    req: Mutex<HashMap<String, Arc<req::ReqGateway>>>,
    sub: Mutex<HashMap<String, sub::SubGateway>>,
}

impl Gateways {
    pub fn new(
        zmq: tmq::Context,
        hwm: i32,
        queue_bytes: usize,
        timeout: Duration,
    ) -> Arc<Gateways> {
        Arc::new(Gateways {
            zmq,
            hwm,
            queue_bytes,
            timeout,
            req: Mutex::default(),
            sub: Mutex::default(),
        })
    }

    /// Gateways open now: (DEALERs, SUBs).
    pub fn open(&self) -> (usize, usize) {
        (lock(&self.req).len(), lock(&self.sub).len())
    }

    /// Registers virtual socket `socket` with the DEALER of `endpoint`, making
    /// it if needed. Must run inside a tokio runtime.
    pub fn req(
        self: &Arc<Self>,
        endpoint: &str,
        socket: u64,
        replies: actix::Recipient<ReqReply>,
    ) -> Result<ReqLease, GatewayError> {
        let mut map = lock(&self.req);
        let gateway = match map.get(endpoint) {
            Some(g) => g.clone(),
            None => {
                let g = Arc::new(req::ReqGateway::open(
                    &self.zmq,
                    endpoint,
                    self.hwm,
                    self.queue_bytes,
                    self.timeout,
                )?);
                map.insert(endpoint.to_string(), g.clone());
                g
            }
        };
        gateway.register(socket, replies);
        Ok(ReqLease::new(self.clone(), gateway, socket))
    }

    /// Registers a subscriber with the SUB of `endpoint`, making it if needed.
    pub fn sub(
        self: &Arc<Self>,
        endpoint: &str,
        socket: u64,
        subscriber: Subscriber,
    ) -> Result<SubLease, GatewayError> {
        let mut map = lock(&self.sub);
        if !map.contains_key(endpoint) {
            let g = sub::SubGateway::open(&self.zmq, endpoint, self.hwm)?;
            map.insert(endpoint.to_string(), g);
        }
        map[endpoint].register(socket, subscriber);
        Ok(SubLease::new(self.clone(), endpoint, socket))
    }

    fn release_req(&self, endpoint: &str, socket: u64) {
        let mut map = lock(&self.req);
        if let Some(g) = map.get(endpoint)
            && g.deregister(socket) == 0
        {
            map.remove(endpoint);
            log::debug!("bridge: DEALER to {endpoint} closed, no user left");
        }
    }

    fn release_sub(&self, endpoint: &str, socket: u64) {
        let mut map = lock(&self.sub);
        if let Some(g) = map.get(endpoint)
            && g.deregister(socket) == 0
        {
            map.remove(endpoint);
            log::debug!("bridge: SUB to {endpoint} closed, no user left");
        }
    }
}

/// A poisoned lock only means a panic elsewhere; the maps stay consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::outbox::Outbox;

    #[tokio::test]
    async fn a_gateway_closes_with_its_last_lease() {
        let gateways = Gateways::new(tmq::Context::new(), 10, QUEUE_BYTES, Duration::from_secs(1));
        let (outbox, _body) = Outbox::new(1024);
        let sub = |id| Subscriber {
            identity: format!("s{id}"),
            prefix: Vec::new(),
            outbox: outbox.clone(),
        };
        let a = gateways.sub("tcp://127.0.0.1:1", 1, sub(1)).unwrap();
        let b = gateways.sub("tcp://127.0.0.1:1", 2, sub(2)).unwrap();
        let c = gateways.sub("tcp://127.0.0.1:2", 3, sub(3)).unwrap();
        assert_eq!(gateways.open(), (0, 2));
        drop(a);
        assert_eq!(gateways.open(), (0, 2));
        drop(b);
        assert_eq!(gateways.open(), (0, 1));
        drop(c);
        assert_eq!(gateways.open(), (0, 0));
        assert!(gateways.sub("tcp://", 4, sub(4)).is_err());
    }
}
