//! What the session actor is told: by transports (a receiver offered or
//! gone, the client's messages, the websocket reader's end) and by the
//! application (a message to deliver, a close). Each message type sits with
//! its handler; the session's own logic stays in `session.rs`.

use actix::prelude::*;

use super::*;

/// A transport offers a receiver.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach(pub Receiver);

impl Handler<Attach> for Session {
    type Result = ();

    fn handle(&mut self, Attach(mut receiver): Attach, ctx: &mut Context<Self>) {
        if let Some(current) = &self.receiver {
            if !current.is_gone() {
                let (code, reason) = ANOTHER_CONNECTION;
                // The newcomer gets the close frame; the session is unaffected.
                let _ = receiver.write(&Frame::Close { code, reason });
                return;
            }
            self.receiver_gone(ctx);
        }
        if let Some(handle) = self.expiry.take() {
            ctx.cancel_future(handle);
        }
        self.receiver = Some(receiver);
        self.flush(ctx);
    }
}

/// A receiver's response body was dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detached {
    pub receiver: u64,
}

impl Handler<Detached> for Session {
    type Result = ();

    fn handle(&mut self, msg: Detached, ctx: &mut Context<Self>) {
        if self.receiver.as_ref().is_some_and(|r| r.id == msg.receiver) {
            self.receiver_gone(ctx);
        }
    }
}

/// Messages the client sent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromClient(pub Vec<String>, pub Held);

impl Handler<FromClient> for Session {
    type Result = ();

    fn handle(&mut self, FromClient(messages, mut held): FromClient, _: &mut Context<Self>) {
        if self.state != State::Open {
            log::debug!(
                "session {}: {} client messages after close, dropped",
                self.key,
                messages.len()
            );
            return;
        }
        Metrics::add(&self.metrics.messages_in, messages.len());
        for m in messages {
            Metrics::add(&self.metrics.bytes_in, m.len());
            let share = held.split(m.len() + crate::sockjs::budget::MESSAGE_OVERHEAD);
            match &mut self.waiting_in {
                None => self.app.on_message(self.key, m, share),
                Some((waiting, bytes)) => {
                    // The admission has not decided yet: the message waits.
                    let over_bytes = *bytes > 0 && *bytes + m.len() > self.timing.max_queue_bytes;
                    if waiting.len() >= self.timing.max_queue || over_bytes {
                        self.metrics.count_drop(DropReason::AdmissionPending);
                        static OVER: crate::ratelog::Throttle = crate::ratelog::Throttle::new(
                            "client messages dropped while admission was pending",
                        );
                        OVER.warn(format_args!(
                            "session {}: {} waiting",
                            self.key,
                            waiting.len()
                        ));
                        continue;
                    }
                    *bytes += m.len();
                    waiting.push_back((m, share));
                }
            }
        }
    }
}

/// One message from the application for the client.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub String);

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, Deliver(message): Deliver, ctx: &mut Context<Self>) {
        if matches!(self.state, State::Closed { .. }) {
            self.metrics.count_drop(DropReason::SessionClosed);
            static CLOSED: crate::ratelog::Throttle =
                crate::ratelog::Throttle::new("messages for closed sessions dropped");
            CLOSED.warn(format_args!("session {}", self.key));
            return;
        }
        let held = self.pending_bytes + self.receiver.as_ref().map_or(0, Receiver::queued_bytes);
        let over_count = self.pending.len() >= self.timing.max_queue;
        // One message always fits an empty queue, however large.
        let over_bytes = held > 0 && held + message.len() > self.timing.max_queue_bytes;
        if over_count || over_bytes {
            self.metrics.count_drop(DropReason::QueueFull);
            static FULL: crate::ratelog::Throttle =
                crate::ratelog::Throttle::new("sessions closed, outgoing queue full");
            FULL.warn(format_args!(
                "session {}: {} messages, {held} bytes held for a client not reading",
                self.key,
                self.pending.len()
            ));
            // A client that cannot keep up is told so rather than silently
            // missing messages in the middle of the stream. One that is
            // connected but has stopped reading would never take what is
            // held: it is dropped, so that only the close waits for it.
            if let Some(receiver) = self.receiver.as_ref().filter(|r| r.kind != Kind::Polling) {
                receiver.discard_queued();
                self.pending.clear();
                self.pending_bytes = 0;
            }
            self.close(ctx, 3001, "Outgoing queue full".into());
            return;
        }
        self.pending_bytes += message.len();
        self.pending.push_back(message);
        self.flush(ctx);
    }
}

/// The application closes the session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSession {
    pub code: u16,
    pub reason: &'static str,
}

impl Handler<CloseSession> for Session {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, ctx: &mut Context<Self>) {
        self.close(ctx, msg.code, msg.reason.into());
    }
}

/// The websocket's reader ended (client close or broken input).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientGone;

impl Handler<ClientGone> for Session {
    type Result = ();

    fn handle(&mut self, _: ClientGone, ctx: &mut Context<Self>) {
        self.tell_app_closed();
        ctx.stop();
    }
}
