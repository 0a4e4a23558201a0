//! The bridge session: one actor per browser websocket, owning the virtual
//! sockets that the browser multiplexes over it.
//!
//! A virtual socket is known to the browser by its identity string, and to
//! the proxy by a key the proxy makes; identities are looked up only inside
//! this actor, so two websockets that use the same identity never meet.
//!
//! REQ sockets keep 0MQ's REQ discipline on the proxy side: one request in
//! flight, later ones wait in order (up to [`MAX_WAITING`] per socket and
//! [`MAX_WAITING_BYTES`] per websocket, then are refused
//! with an error frame), and each request gets its reply, an error, or a
//! timeout error after `--bridge-timeout`. Nothing the browser sends closes
//! the websocket: bad input is answered with an error frame for the identity
//! it names.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;
use actix_http::ws::CloseCode;
use serde_json::{Value, json};

use super::Bridge;
use super::endpoint::Endpoint;
use super::gateway::{ReqLease, ReqReply, SubLease, Subscriber};
use super::outbox::{Outbox, OutboxError};
use super::stats::{STATS, bump};
use super::wire::{self, ClientFrame, ConnectRequest, SocketKind, WireError};
use crate::ratelog::Throttle;

/// Virtual sockets one websocket may hold.
pub const MAX_SOCKETS: usize = 1024;
/// Requests one REQ virtual socket may queue behind the one in flight.
pub const MAX_WAITING: usize = 64;
/// Bytes of waiting requests one websocket may hold, all sockets together, so
/// that a client cannot make the proxy buffer sockets × waiting × frame size.
pub const MAX_WAITING_BYTES: usize = 4 * 1024 * 1024;

static CLOSED: Throttle = Throttle::new("bridge: websockets closed, browser not reading");

/// Who is on the other end of the websocket, for the auth service.
#[derive(Debug, Clone)]
pub struct BrowserInfo {
    pub path: String,
    pub remote_addr: Option<String>,
    /// What the auth service returned for the upgrade, given back on connects.
    pub session: Option<Value>,
}

/// One text message from the browser. The reader waits for each to be handled,
/// so connects (which may wait for the auth service) keep their order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromBrowser(pub String);

/// The browser's websocket closed or broke.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BrowserGone;

enum VirtualSocket {
    Req(ReqSocket),
    /// The lease is held only to stay subscribed.
    Sub(#[allow(dead_code)] SubLease),
}

struct ReqSocket {
    key: u64,
    lease: ReqLease,
    next_seq: u64,
    in_flight: Option<(u64, SpawnHandle)>,
    waiting: VecDeque<String>,
}

pub struct BridgeSession {
    bridge: Arc<Bridge>,
    outbox: Outbox,
    peer: BrowserInfo,
    sockets: HashMap<String, VirtualSocket>,
    /// Proxy key → identity, to route replies.
    keys: HashMap<u64, String>,
    /// Bytes in every REQ socket's `waiting` queue.
    waiting_bytes: usize,
}

fn next_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Actor for BridgeSession {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        log::debug!(
            "bridge: websocket from {:?} closed with {} virtual sockets",
            self.peer.remote_addr,
            self.sockets.len()
        );
    }
}

impl Drop for BridgeSession {
    fn drop(&mut self) {
        STATS.websockets_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl BridgeSession {
    pub fn new(bridge: Arc<Bridge>, outbox: Outbox, peer: BrowserInfo) -> BridgeSession {
        bump(&STATS.websockets_opened);
        STATS.websockets_open.fetch_add(1, Ordering::Relaxed);
        BridgeSession {
            bridge,
            outbox,
            peer,
            sockets: HashMap::new(),
            keys: HashMap::new(),
            waiting_bytes: 0,
        }
    }

    /// Writes one frame; a browser that does not read loses its websocket
    /// rather than a reply it is waiting for.
    fn send(&self, ctx: &mut Context<Self>, frame: String) {
        match self.outbox.text(&frame) {
            Ok(()) => {}
            Err(OutboxError::Full) => {
                STATS.closed_not_reading.fetch_add(1, Ordering::Relaxed);
                CLOSED.warn(format_args!("{:?}", self.peer.remote_addr));
                self.outbox.close(CloseCode::Policy);
                ctx.stop();
            }
            Err(OutboxError::Closed) => ctx.stop(),
        }
    }

    fn refuse(&self, ctx: &mut Context<Self>, identity: &str, error: &str) {
        bump(&STATS.connects_refused);
        log::debug!("bridge: connect {identity:?} refused: {error}");
        self.send(ctx, wire::connection_error(identity, error));
    }

    fn connect(
        &mut self,
        identity: String,
        request: Result<ConnectRequest, WireError>,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, ()> {
        let done = || -> ResponseActFuture<Self, ()> { Box::pin(fut::ready(())) };
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                self.refuse(ctx, &identity, &e.to_string());
                return done();
            }
        };
        // Parsed before the policy or 0MQ sees it (the original crashed in
        // native code here); from now on only the canonical form is used.
        let endpoint = match Endpoint::parse(&request.endpoint) {
            Ok(endpoint) => endpoint,
            Err(e) => {
                self.refuse(ctx, &identity, &e.to_string());
                return done();
            }
        };
        let mut request = request;
        request.endpoint = endpoint.to_string();
        if self.sockets.len() >= MAX_SOCKETS && !self.sockets.contains_key(&identity) {
            self.refuse(ctx, &identity, "too many sockets on this websocket");
            return done();
        }
        let config = &self.bridge.config;
        if config.policy.is_none() && config.auth.is_none() {
            self.refuse(ctx, &identity, "denied: the proxy has no access policy");
            return done();
        }
        if let Some(policy) = &config.policy
            && let Err(e) = policy.check(&endpoint, request.kind, &request.params)
        {
            self.refuse(ctx, &identity, &e);
            return done();
        }
        if self.bridge.auth().is_none() {
            self.open(identity, request, ctx);
            return done();
        }
        let question = json!({
            "type": "connect",
            "endpoint": request.endpoint,
            "socket_type": request.kind.number(),
            "socket_type_name": request.kind.name(),
            "msgfilter": request.filter,
            "params": request.params,
            "path": self.peer.path,
            "remote_addr": self.peer.remote_addr,
            "session": self.peer.session,
        });
        let bridge = self.bridge.clone();
        let asked = async move {
            let auth = bridge.auth().expect("checked above");
            auth.ask(&question).await
        };
        Box::pin(
            asked
                .into_actor(self)
                .map(move |verdict, act, ctx| match verdict {
                    Ok(v) if v.allow => act.open(identity, request, ctx),
                    Ok(v) => {
                        let reason = v.reason.unwrap_or_else(|| "no reason given".into());
                        act.refuse(ctx, &identity, &format!("denied by auth service: {reason}"))
                    }
                    Err(e) => act.refuse(ctx, &identity, &format!("denied: {e}")),
                }),
        )
    }

    /// Opens an allowed virtual socket, replacing one with the same identity.
    fn open(&mut self, identity: String, request: ConnectRequest, ctx: &mut Context<Self>) {
        self.close_socket(&identity);
        let key = next_key();
        let gateways = &self.bridge.gateways;
        let socket = match request.kind {
            SocketKind::Req => gateways
                .req(&request.endpoint, key, ctx.address().recipient())
                .map(|lease| {
                    VirtualSocket::Req(ReqSocket {
                        key,
                        lease,
                        next_seq: 0,
                        in_flight: None,
                        waiting: VecDeque::new(),
                    })
                }),
            SocketKind::Sub => {
                let subscriber = Subscriber {
                    identity: identity.clone(),
                    prefix: request.filter.into_bytes(),
                    outbox: self.outbox.clone(),
                };
                gateways
                    .sub(&request.endpoint, key, subscriber)
                    .map(VirtualSocket::Sub)
            }
        };
        match socket {
            Ok(socket) => {
                bump(&STATS.connects_opened);
                self.keys.insert(key, identity.clone());
                self.sockets.insert(identity.clone(), socket);
                self.send(ctx, wire::connection_ok(&identity));
            }
            Err(e) => self.refuse(ctx, &identity, &e.to_string()),
        }
    }

    fn close_socket(&mut self, identity: &str) {
        if let Some(socket) = self.sockets.remove(identity) {
            self.keys.retain(|_, id| id != identity);
            if let VirtualSocket::Req(req) = &socket {
                self.waiting_bytes -= req.waiting.iter().map(String::len).sum::<usize>();
            }
            drop(socket); // the lease deregisters from its gateway
        }
    }

    fn data(&mut self, identity: String, content: String, ctx: &mut Context<Self>) {
        let error = match self.sockets.get_mut(&identity) {
            None => Some("not connected: send a connect for this identity first".to_string()),
            Some(VirtualSocket::Sub(_)) => Some("cannot send on a SUB socket".to_string()),
            Some(VirtualSocket::Req(req)) if req.in_flight.is_none() => {
                self.dispatch(&identity, content, ctx);
                None
            }
            Some(VirtualSocket::Req(req)) if req.waiting.len() >= MAX_WAITING => Some(format!(
                "refused: {MAX_WAITING} requests already wait for a reply"
            )),
            Some(VirtualSocket::Req(_))
                if self.waiting_bytes + content.len() > MAX_WAITING_BYTES =>
            {
                Some(format!(
                    "refused: {MAX_WAITING_BYTES} bytes of requests already wait on this websocket"
                ))
            }
            Some(VirtualSocket::Req(req)) => {
                self.waiting_bytes += content.len();
                req.waiting.push_back(content);
                None
            }
        };
        if let Some(error) = error {
            self.send(ctx, wire::error(&identity, &error));
        }
    }

    /// Sends one request to the backend and arms its timeout.
    fn dispatch(&mut self, identity: &str, content: String, ctx: &mut Context<Self>) {
        let timeout = self.bridge.config.timeout;
        let Some(VirtualSocket::Req(req)) = self.sockets.get_mut(identity) else {
            return;
        };
        let seq = req.next_seq;
        req.next_seq += 1;
        if let Err(e) = req.lease.send(seq, content) {
            let frame = wire::error(identity, &e);
            self.send(ctx, frame);
            return;
        }
        let key = req.key;
        let timer = ctx.run_later(timeout, move |act, ctx| act.expire(key, seq, ctx));
        req.in_flight = Some((seq, timer));
    }

    fn expire(&mut self, key: u64, seq: u64, ctx: &mut Context<Self>) {
        let timeout = self.bridge.config.timeout;
        if let Some((identity, endpoint)) = self.finish(key, seq, ctx) {
            let error = format!("timeout: no reply from {endpoint} within {timeout:?}");
            self.send(ctx, wire::error(&identity, &error));
            self.next(&identity, ctx);
        }
    }

    /// Ends request `seq` if it is the one in flight; returns the identity and
    /// endpoint. A reply to an expired request finds nothing and is dropped.
    fn finish(&mut self, key: u64, seq: u64, ctx: &mut Context<Self>) -> Option<(String, String)> {
        let identity = self.keys.get(&key)?.clone();
        let Some(VirtualSocket::Req(req)) = self.sockets.get_mut(&identity) else {
            return None;
        };
        match req.in_flight {
            Some((current, timer)) if current == seq => {
                ctx.cancel_future(timer);
                req.in_flight = None;
                Some((identity, req.lease.endpoint().to_string()))
            }
            _ => {
                log::debug!("bridge: late reply for {identity:?} request {seq} dropped");
                None
            }
        }
    }

    fn next(&mut self, identity: &str, ctx: &mut Context<Self>) {
        let next = match self.sockets.get_mut(identity) {
            Some(VirtualSocket::Req(req)) => req.waiting.pop_front(),
            _ => None,
        };
        if let Some(content) = &next {
            self.waiting_bytes -= content.len();
        }
        if let Some(content) = next {
            self.dispatch(identity, content, ctx);
        }
    }
}

impl Handler<FromBrowser> for BridgeSession {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: FromBrowser, ctx: &mut Context<Self>) -> Self::Result {
        bump(&STATS.frames_in);
        match wire::parse_client(&msg.0) {
            Ok(ClientFrame::Connect { identity, request }) => {
                return self.connect(identity, request, ctx);
            }
            Ok(ClientFrame::Data { identity, content }) => self.data(identity, content, ctx),
            Err((identity, e)) => {
                let identity = identity.unwrap_or_default();
                self.send(ctx, wire::error(&identity, &e.to_string()));
            }
        }
        Box::pin(fut::ready(()))
    }
}

impl Handler<ReqReply> for BridgeSession {
    type Result = ();

    fn handle(&mut self, reply: ReqReply, ctx: &mut Context<Self>) {
        let Some((identity, _)) = self.finish(reply.socket, reply.seq, ctx) else {
            return;
        };
        let frame = match reply.body {
            Ok(body) => match String::from_utf8(body) {
                Ok(text) => wire::data(&identity, &text),
                Err(_) => wire::error(&identity, "the backend's reply is not UTF-8 text"),
            },
            Err(e) => wire::error(&identity, &e),
        };
        self.send(ctx, frame);
        self.next(&identity, ctx);
    }
}

impl Handler<BrowserGone> for BridgeSession {
    type Result = ();

    fn handle(&mut self, _: BrowserGone, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
