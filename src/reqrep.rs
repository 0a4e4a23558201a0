//! One 0MQ request/reply client: a DEALER that keeps many requests in flight
//! towards a REP service (or a ROUTER that answers like one), shared by the
//! bridge's REQ gateways, the bridge's auth client and the SockJS auth client.
//!
//! Why a DEALER and not a REQ: a REQ socket is lock-step, one question at a
//! time, so one slow answer would stall every asker behind it. A DEALER sends
//! each request as `[id, "", body]`; a REP service sees only `body` and its
//! answer comes back as `[id, "", answer]`, whatever order the service
//! answers in. The id is made here (a counter, in hex), never by a caller,
//! so an answer can only reach the request it was made for, and an answer
//! that comes after its asker gave up is recognised as late and dropped.
//!
//! Limits and failure, designed in:
//! - *in flight*: at most [`Limits::max_in_flight`] requests wait for an
//!   answer; beyond, [`ReqRepError::Busy`] at once (counted);
//! - *bytes*: requests not yet handed to 0MQ hold at most
//!   [`Limits::max_queue_bytes`] (one request always fits an empty queue);
//! - *deadline*: each request has its own; past it the asker gets
//!   [`ReqRepError::Timeout`] and its slot is reclaimed by the next sweep;
//! - *a dead service*: 0MQ queues up to the HWM and then refuses; a request
//!   not taken within [`Limits::send_bound`] fails with
//!   [`ReqRepError::NotSent`]; either way the asker learns by its deadline;
//! - *shutdown*: the task owning the DEALER ends when the last [`Client`] is
//!   dropped or the socket fails; every waiting asker then gets
//!   [`ReqRepError::Closed`] and queued bytes are given back (a drop guard).
//!
//! Every request that does not get its answer is counted in [`Counts`] and
//! logged through [`crate::ratelog`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::ratelog::Throttle;

/// How much one client holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Requests sent or queued and not yet answered.
    pub max_in_flight: usize,
    /// Bytes of requests queued for the DEALER (not yet taken by 0MQ).
    pub max_queue_bytes: usize,
    /// The DEALER's send and receive high-water marks.
    pub hwm: i32,
    /// How long a request may wait for 0MQ to take it.
    pub send_bound: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_in_flight: 4096,
            max_queue_bytes: 16 * 1024 * 1024,
            hwm: 1000,
            send_bound: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReqRepError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("{0} is busy: too many requests in flight or queued")]
    Busy(String),
    #[error("{0} did not take the request (its queue is full)")]
    NotSent(String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("the client of {0} has stopped")]
    Closed(String),
}

/// What went wrong, counted; read by metrics.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    /// Refused at once: in-flight or byte bound reached.
    pub busy: AtomicU64,
    /// 0MQ did not take the request within the send bound.
    pub not_sent: AtomicU64,
    /// The asker's deadline passed first.
    pub timed_out: AtomicU64,
    /// Answers whose asker had given up.
    pub late: AtomicU64,
    /// Answers with no id this client made.
    pub foreign: AtomicU64,
}

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

static BUSY: Throttle = Throttle::new("reqrep: requests refused, client busy");
static NOT_SENT: Throttle = Throttle::new("reqrep: requests not taken by 0MQ");
static TIMED_OUT: Throttle = Throttle::new("reqrep: requests unanswered by their deadline");
static STRAY: Throttle = Throttle::new("reqrep: late or foreign answers dropped");

type Answer = Result<Vec<u8>, ReqRepError>;

struct Request {
    id: u64,
    body: Vec<u8>,
    answer: oneshot::Sender<Answer>,
}

/// State shared by the client handles and the task.
struct Shared {
    name: String,
    limits: Limits,
    counts: Counts,
    next_id: AtomicU64,
    /// Requests handed in and not yet answered or failed.
    in_flight: AtomicUsize,
    /// Bytes of requests in the queue.
    queued: AtomicUsize,
    /// A gauge to mirror `queued` into (a bridge-wide figure), if any.
    gauge: Option<&'static AtomicUsize>,
}

impl Shared {
    fn take(&self, n: usize) -> bool {
        let limit = self.limits.max_queue_bytes;
        let bytes_ok = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q == 0 || q + n <= limit).then_some(q + n)
            })
            .is_ok();
        if !bytes_ok {
            return false;
        }
        let max = self.limits.max_in_flight;
        let slot_ok = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
                (f < max).then_some(f + 1)
            })
            .is_ok();
        if !slot_ok {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        if let Some(g) = self.gauge {
            g.fetch_add(n, Ordering::Relaxed);
        }
        true
    }

    fn dequeued(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
        if let Some(g) = self.gauge {
            g.fetch_sub(n, Ordering::Relaxed);
        }
    }

    fn finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A handle on one DEALER; clones share it. The socket closes when the last
/// handle is dropped.
#[derive(Clone)]
pub(crate) struct Client {
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Request>,
}

impl Client {
    /// Connects a DEALER to `endpoint` and starts its task. Must run inside a
    /// tokio runtime, which then owns the socket.
    pub(crate) fn open(
        zmq: &tmq::Context,
        endpoint: &str,
        limits: Limits,
        gauge: Option<&'static AtomicUsize>,
    ) -> Result<Client, ReqRepError> {
        let dealer = tmq::dealer(zmq)
            .set_linger(0)
            .set_sndhwm(limits.hwm)
            .set_rcvhwm(limits.hwm)
            .connect(endpoint)
            .map_err(|e| ReqRepError::Connect(endpoint.to_string(), e.to_string()))?;
        let shared = Arc::new(Shared {
            name: endpoint.to_string(),
            limits,
            counts: Counts::default(),
            next_id: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            gauge,
        });
        // Unbounded as a channel, bounded by `Shared::take` in requests and bytes.
        let (queue, requests) = mpsc::unbounded_channel();
        let task = Task {
            dealer,
            requests,
            waiting: HashMap::new(),
            shared: shared.clone(),
        };
        tokio::spawn(task.run());
        log::debug!("reqrep: DEALER connected to {endpoint}");
        Ok(Client { shared, queue })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.shared.name
    }

    // Read by the tests; the auth clients' figures are in their own metrics.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn counts(&self) -> &Counts {
        &self.shared.counts
    }

    /// Bytes of requests queued for 0MQ now.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Hands in one request without waiting; the future resolves to its
    /// answer, or to an error once `deadline` has passed. A full client
    /// refuses at once.
    pub(crate) fn request(
        &self,
        body: Vec<u8>,
        deadline: Duration,
    ) -> Result<impl Future<Output = Answer> + Send + 'static, ReqRepError> {
        let shared = &self.shared;
        if !shared.take(body.len()) {
            count(&shared.counts.busy);
            BUSY.warn(format_args!(
                "{}: {} in flight, {} bytes queued",
                shared.name,
                shared.in_flight.load(Ordering::Relaxed),
                shared.queued.load(Ordering::Relaxed)
            ));
            return Err(ReqRepError::Busy(shared.name.clone()));
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        let len = body.len();
        if let Err(e) = self.queue.send(Request { id, body, answer }) {
            shared.dequeued(len);
            shared.finished();
            drop(e);
            return Err(ReqRepError::Closed(shared.name.clone()));
        }
        let shared = shared.clone();
        Ok(async move {
            match tokio::time::timeout(deadline, answered).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(ReqRepError::Closed(shared.name.clone())),
                Err(_) => {
                    count(&shared.counts.timed_out);
                    TIMED_OUT.warn(format_args!("{}: {deadline:?}", shared.name));
                    Err(ReqRepError::Timeout(shared.name.clone(), deadline))
                }
            }
        })
    }

    /// [`Client::request`] and wait for the answer.
    pub(crate) async fn ask(&self, body: Vec<u8>, deadline: Duration) -> Answer {
        self.request(body, deadline)?.await
    }
}

/// How often the task forgets askers that gave up.
const SWEEP: Duration = Duration::from_millis(500);

/// Owns the DEALER.
struct Task {
    dealer: tmq::dealer::Dealer,
    requests: mpsc::UnboundedReceiver<Request>,
    /// Sent requests by id, until answered or their asker gives up.
    waiting: HashMap<u64, oneshot::Sender<Answer>>,
    shared: Arc<Shared>,
}

impl Drop for Task {
    /// Queued requests give their bytes and slots back; askers learn the
    /// client has stopped.
    fn drop(&mut self) {
        self.requests.close();
        while let Ok(r) = self.requests.try_recv() {
            self.shared.dequeued(r.body.len());
            self.shared.finished();
            let _ = r
                .answer
                .send(Err(ReqRepError::Closed(self.shared.name.clone())));
        }
        for (_, asker) in self.waiting.drain() {
            self.shared.finished();
            let _ = asker.send(Err(ReqRepError::Closed(self.shared.name.clone())));
        }
    }
}

impl Task {
    async fn run(mut self) {
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = self.requests.recv() => {
                    let Some(request) = request else { break };
                    self.send(request).await;
                }
                answer = self.dealer.next() => {
                    let Some(Ok(answer)) = answer else {
                        log::error!("reqrep: DEALER {}: receive failed", self.shared.name);
                        break;
                    };
                    let parts: Vec<&[u8]> = answer.iter().map(|m| &m[..]).collect();
                    self.answer(&parts);
                }
                _ = sweep.tick() => self.sweep(),
            }
        }
        log::debug!("reqrep: DEALER {} task ends", self.shared.name);
    }

    async fn send(&mut self, request: Request) {
        let shared = self.shared.clone();
        shared.dequeued(request.body.len());
        if request.answer.is_closed() {
            shared.finished();
            return;
        }
        let parts = vec![
            tmq::Message::from(format!("{:x}", request.id).as_bytes()),
            tmq::Message::new(),
            tmq::Message::from(request.body),
        ];
        let sent = tokio::time::timeout(
            shared.limits.send_bound,
            self.dealer.send(tmq::Multipart::from(parts)),
        )
        .await;
        if matches!(sent, Ok(Ok(()))) {
            count(&shared.counts.sent);
            self.waiting.insert(request.id, request.answer);
        } else {
            count(&shared.counts.not_sent);
            NOT_SENT.warn(format_args!("{}", shared.name));
            shared.finished();
            let _ = request
                .answer
                .send(Err(ReqRepError::NotSent(shared.name.clone())));
        }
    }

    /// `[id, "", body]`; like a REQ socket, the body is the last frame.
    fn answer(&mut self, parts: &[&[u8]]) {
        let id = match parts {
            [id, .., _] if parts.len() >= 3 => parse_id(id),
            _ => None,
        };
        let body = parts.last().copied().unwrap_or_default();
        match id.map(|id| (id, self.waiting.remove(&id))) {
            Some((_, Some(asker))) => {
                self.shared.finished();
                if asker.send(Ok(body.to_vec())).is_ok() {
                    count(&self.shared.counts.answered);
                } else {
                    count(&self.shared.counts.late);
                    STRAY.warn(format_args!("{}: late answer", self.shared.name));
                }
            }
            Some((id, None)) if id < self.shared.next_id.load(Ordering::Relaxed) => {
                count(&self.shared.counts.late);
                STRAY.warn(format_args!("{}: late answer", self.shared.name));
            }
            _ => {
                count(&self.shared.counts.foreign);
                STRAY.warn(format_args!(
                    "{}: answer without an id of ours ({} frames)",
                    self.shared.name,
                    parts.len()
                ));
            }
        }
    }

    fn sweep(&mut self) {
        let before = self.waiting.len();
        self.waiting.retain(|_, asker| !asker.is_closed());
        for _ in self.waiting.len()..before {
            self.shared.finished();
        }
    }
}

fn parse_id(id: &[u8]) -> Option<u64> {
    let id = std::str::from_utf8(id).ok()?;
    if id.is_empty() || id.len() > 16 {
        return None;
    }
    u64::from_str_radix(id, 16).ok()
}

#[cfg(test)]
mod tests;
