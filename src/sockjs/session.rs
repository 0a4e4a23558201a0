//! The SockJS session: one actix actor per client session.
//!
//! A session outlives the HTTP requests that carry it. It holds the messages
//! the application sends until a receiver takes them, batches them into one
//! `a[...]` frame per write, sends heartbeats while a receiver is attached, and
//! closes itself after `disconnect_delay` with no receiver. Its states follow
//! the protocol: *new* (nothing sent yet; the first receiver gets `o`), *open*,
//! and *closed* (every receiver gets the close frame until the session expires).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::admission::{Admit, Connected, DENIED_CODE, Decision, Pending};
use super::budget::Held;
use super::frame::Frame;
use super::metrics::{DropReason, Metrics, Transport};
use super::per_address::Slot;
use super::receiver::{Kind, Receiver, Written};
use super::registry::Registry;
use super::{Application, Service, SessionHandle, SessionKey};

mod messages;
pub use messages::{Attach, ClientGone, CloseSession, Deliver, Detached, FromClient};

/// Close code and reason when the application closes a session.
pub const GO_AWAY: (u16, &str) = (3000, "Go away!");
/// Sent to a second receiver while one is attached.
pub const ANOTHER_CONNECTION: (u16, &str) = (2010, "Another connection still open");
/// The session's receiver went away in the middle of a request.
pub const INTERRUPTED: (u16, &str) = (1002, "Connection interrupted");

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    New,
    Open,
    Closed {
        code: u16,
        reason: Cow<'static, str>,
    },
}

/// Where a session is registered by URL id (HTTP transports only).
pub struct Registration {
    pub id: String,
    pub registry: Arc<Registry>,
}

/// The settings a session needs, copied out of the service's options.
#[derive(Debug, Clone, Copy)]
struct Timing {
    heartbeat_delay: Duration,
    disconnect_delay: Duration,
    max_queue: usize,
    max_queue_bytes: usize,
    poll_batch: Duration,
}

/// Most bytes of messages one frame of a websocket or streaming response
/// carries (one message always goes whole): a frame the response has taken
/// is held until the client reads it, outside the session's byte count, so
/// frames stay small for clients that stop reading.
const FRAME_BYTES: usize = 64 * 1024;

/// How many of `pending`'s first messages go in the next frame.
fn frame_length(pending: &[String]) -> usize {
    let mut bytes = 0;
    pending
        .iter()
        .take_while(|m| {
            let fits = bytes == 0 || bytes + m.len() <= FRAME_BYTES;
            bytes += m.len();
            fits
        })
        .count()
}

/// Where a polling receiver is in its batch window (see `Options::poll_batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PollBatch {
    /// No message waits for the current polling receiver.
    Idle,
    /// Messages wait; the window is open.
    Open,
    /// The window has closed: write what waits.
    Due,
}

pub struct Session {
    key: SessionKey,
    app: Arc<dyn Application>,
    timing: Timing,
    registration: Option<Registration>,
    metrics: Arc<Metrics>,
    transport: Transport,
    state: State,
    /// Messages waiting for a receiver, oldest first.
    pending: VecDeque<String>,
    /// Bytes of the messages in `pending`.
    pending_bytes: usize,
    receiver: Option<Receiver>,
    /// A wait for room in the receiver's channel is under way.
    waiting_for_room: bool,
    poll_batch: PollBatch,
    expiry: Option<SpawnHandle>,
    /// Who the client is; the application is told on open.
    who: Connected,
    /// The admission's decision, until the session starts waiting for it.
    asking: Option<Pending>,
    /// Client messages waiting for the admission's decision, and their bytes.
    waiting_in: Option<(VecDeque<(String, Held)>, usize)>,
    /// Whether the application was told of the open...
    app_told_open: bool,
    /// ...and of the close.
    app_told_closed: bool,
    /// This session's place in its client address's count; dropped with it.
    _slot: Option<Slot>,
}

impl Session {
    pub(crate) fn new(
        service: &Service,
        transport: Transport,
        registration: Option<Registration>,
        slot: Option<Slot>,
        admit: Admit,
    ) -> Session {
        let (who, asking) = match admit {
            Admit::Known(who) => (who, None),
            Admit::Ask(who, pending) => (who, Some(pending)),
        };
        service.metrics.session_opened(transport);
        let options = &service.options;
        Session {
            key: SessionKey::next(),
            app: service.app.clone(),
            timing: Timing {
                heartbeat_delay: options.heartbeat_delay,
                disconnect_delay: options.disconnect_delay,
                max_queue: options.max_queue,
                max_queue_bytes: options.max_queue_bytes,
                poll_batch: options.poll_batch,
            },
            registration,
            metrics: service.metrics.clone(),
            transport,
            state: State::New,
            pending: VecDeque::new(),
            pending_bytes: 0,
            receiver: None,
            waiting_for_room: false,
            poll_batch: PollBatch::Idle,
            expiry: None,
            waiting_in: asking.as_ref().map(|_| (VecDeque::new(), 0)),
            who,
            asking,
            app_told_open: false,
            app_told_closed: false,
            _slot: slot,
        }
    }

    /// Writes whatever is due to the attached receiver.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        while let Some(kind) = self.receiver.as_ref().map(|r| r.kind) {
            if self.waiting_for_room {
                return;
            }
            let messages_due = self.state != State::New && !self.pending.is_empty();
            if messages_due && kind == Kind::Polling && !self.batch_window_closed(ctx) {
                return;
            }
            let Some(receiver) = self.receiver.as_mut() else {
                return;
            };
            let written = match &self.state {
                State::New => {
                    let w = receiver.write(&Frame::Open);
                    if !matches!(w, Written::Full | Written::Gone) {
                        self.state = State::Open;
                    }
                    w
                }
                _ if !self.pending.is_empty() => {
                    let batch = self.pending.make_contiguous();
                    let n = match kind {
                        Kind::Polling => batch.len(),
                        _ => frame_length(batch),
                    };
                    let batch = &batch[..n];
                    let w = receiver.write(&Frame::Messages(batch));
                    if !matches!(w, Written::Full | Written::Gone) {
                        let bytes: usize = batch.iter().map(String::len).sum();
                        Metrics::add(&self.metrics.messages_out, n);
                        Metrics::add(&self.metrics.bytes_out, bytes);
                        self.pending.drain(..n);
                        self.pending_bytes -= bytes;
                        if self.pending.is_empty() {
                            self.poll_batch = PollBatch::Idle;
                        }
                    }
                    w
                }
                State::Closed { code, reason } => {
                    let w = receiver.write(&Frame::Close {
                        code: *code,
                        reason,
                    });
                    if matches!(w, Written::Open) {
                        Written::Done
                    } else {
                        w
                    }
                }
                State::Open => return,
            };
            match written {
                Written::Open => {}
                Written::Done => self.let_go_of_receiver(ctx),
                Written::Full => self.wait_for_room(ctx),
                Written::Gone => self.receiver_gone(ctx),
            }
        }
    }

    /// A polling response answers once its batch window has closed: the
    /// first call opens the window and says no; when it closes, the session
    /// flushes again.
    fn batch_window_closed(&mut self, ctx: &mut Context<Self>) -> bool {
        match self.poll_batch {
            _ if self.timing.poll_batch.is_zero() => true,
            PollBatch::Due => true,
            PollBatch::Open => false,
            PollBatch::Idle => {
                self.poll_batch = PollBatch::Open;
                ctx.run_later(self.timing.poll_batch, |act, ctx| {
                    if act.poll_batch == PollBatch::Open {
                        act.poll_batch = PollBatch::Due;
                        act.flush(ctx);
                    }
                });
                false
            }
        }
    }

    fn wait_for_room(&mut self, ctx: &mut Context<Self>) {
        let Some(receiver) = &self.receiver else {
            return;
        };
        self.waiting_for_room = true;
        let id = receiver.id;
        ctx.spawn(
            receiver
                .wait_for_room()
                .into_actor(self)
                .map(move |(), act, ctx| {
                    act.waiting_for_room = false;
                    if act.receiver.as_ref().is_some_and(|r| r.id == id) {
                        act.flush(ctx);
                    }
                }),
        );
    }

    /// The current receiver is done; the session waits for the next one.
    fn let_go_of_receiver(&mut self, ctx: &mut Context<Self>) {
        let Some(receiver) = self.receiver.take() else {
            return;
        };
        self.waiting_for_room = false;
        if receiver.kind == Kind::WebSocket {
            // A websocket session has no second receiver.
            self.close(ctx, INTERRUPTED.0, INTERRUPTED.1.into());
            ctx.stop();
        } else {
            self.schedule_expiry(ctx);
        }
    }

    /// The client went away while a receiver was attached.
    fn receiver_gone(&mut self, ctx: &mut Context<Self>) {
        if self.state == State::Open {
            self.close(ctx, INTERRUPTED.0, INTERRUPTED.1.into());
        }
        self.let_go_of_receiver(ctx);
    }

    fn schedule_expiry(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.expiry.take() {
            ctx.cancel_future(handle);
        }
        self.expiry = Some(ctx.run_later(self.timing.disconnect_delay, |act, ctx| {
            act.expiry = None;
            if act.receiver.is_none() {
                ctx.stop();
            }
        }));
    }

    /// Moves to *closed* and tells the application, once.
    fn close(&mut self, ctx: &mut Context<Self>, code: u16, reason: Cow<'static, str>) {
        if matches!(self.state, State::Closed { .. }) {
            return;
        }
        self.state = State::Closed { code, reason };
        self.tell_app_closed();
        self.flush(ctx);
    }

    fn tell_app_open(&mut self, ctx: &mut Context<Self>) {
        let handle = SessionHandle {
            addr: ctx.address(),
        };
        self.app_told_open = true;
        self.app.on_open(self.key, handle, &self.who);
    }

    /// The admission has decided: an allowed session reaches the
    /// application with what its client sent meanwhile; a denied one closes
    /// with 4403 and the application never hears of it.
    fn decided(&mut self, decision: Decision, ctx: &mut Context<Self>) {
        let (waiting, _) = self.waiting_in.take().unwrap_or_default();
        match decision {
            Decision::Allow { user, auth } => {
                Metrics::add(&self.metrics.sessions_admitted, 1);
                self.who.user = user;
                self.who.auth = auth;
                if matches!(self.state, State::Closed { .. }) {
                    return; // the client left while waiting
                }
                self.tell_app_open(ctx);
                for (message, held) in waiting {
                    self.app.on_message(self.key, message, held);
                }
            }
            Decision::Deny { reason, label } => {
                self.metrics.count_denial(label);
                for _ in &waiting {
                    self.metrics.count_drop(DropReason::Denied);
                }
                static DENIED: crate::ratelog::Throttle =
                    crate::ratelog::Throttle::new("sessions denied");
                DENIED.warn(format_args!("session {}: {label}: {reason}", self.key));
                self.close(ctx, DENIED_CODE, reason.into());
            }
        }
    }

    fn tell_app_closed(&mut self) {
        if self.app_told_open && !self.app_told_closed {
            self.app_told_closed = true;
            self.app.on_close(self.key);
        }
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.asking.take() {
            None => self.tell_app_open(ctx),
            Some(pending) => {
                ctx.spawn(
                    pending
                        .into_actor(self)
                        .map(|decision, act, ctx| act.decided(decision, ctx)),
                );
            }
        }
        ctx.run_interval(self.timing.heartbeat_delay, |act, ctx| {
            if act.state == State::Open
                && act.pending.is_empty()
                && !act.waiting_for_room
                && let Some(receiver) = act.receiver.as_mut()
            {
                match receiver.write(&Frame::Heartbeat) {
                    Written::Open | Written::Full => {}
                    Written::Done => act.let_go_of_receiver(ctx),
                    Written::Gone => act.receiver_gone(ctx),
                }
            }
        });
        self.schedule_expiry(ctx);
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        if let Some(reg) = self.registration.take() {
            reg.registry.remove(&reg.id, &ctx.address());
        }
        self.tell_app_closed();
        if !self.pending.is_empty() {
            log::debug!(
                "session {} ended with {} undelivered messages",
                self.key,
                self.pending.len()
            );
        }
        self.metrics.session_closed(self.transport);
    }
}
