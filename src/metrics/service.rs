//! The families of each service (`sockjsproxy_*`, label `service`): its
//! sessions and messages from the SockJS layer, its backend queue and drops
//! from the backend, and what its native ZMTP sockets count. Every family
//! carries all services' samples together. A service served by Mongrel2
//! handlers has the SockJS layer's families like any other; its handler
//! link's own are `sockjsproxy_mongrel2_*` (see `crate::mongrel2::metrics`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{counters, gauges};
use crate::backend::Backend;
use crate::sockjs::Service;
use crate::sockjs::metrics::{DropReason, Transport};

/// What the endpoints report on: each service with its zmq backend (none
/// for a service served by Mongrel2 handlers).
#[derive(Clone, Default)]
pub struct Sources(pub Vec<(Arc<Service>, Option<Arc<Backend>>)>);

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(s, _)| label(s)).collect();
        f.debug_tuple("Sources").field(&names).finish()
    }
}

/// The `service` label: the prefix, `/` for the root.
fn label(s: &Service) -> &str {
    if s.prefix.is_empty() { "/" } else { &s.prefix }
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Collector for Sources {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let each = || self.0.iter().map(|(s, b)| (label(s), &**s, b.as_deref()));
        // The services with a zmq backend, for the backend's families.
        let zmq = || each().filter_map(|(l, s, b)| Some((l, s, b?)));
        gauges(
            &mut e,
            "sessions_open",
            "Sessions open now, by the transport that opened them.",
            each().flat_map(|(l, s, _)| {
                Transport::ALL
                    .map(|t| ([("service", l), ("transport", t.name())], s.metrics.open(t)))
            }),
        )?;
        counters(
            &mut e,
            "sessions_opened",
            "Sessions opened, by transport.",
            each().flat_map(|(l, s, _)| {
                Transport::ALL.map(|t| {
                    (
                        [("service", l), ("transport", t.name())],
                        s.metrics.opened(t),
                    )
                })
            }),
        )?;
        counters(
            &mut e,
            "sessions_refused",
            "New sessions refused by max_sessions.",
            each().map(|(l, s, _)| ([("service", l)], load(&s.metrics.sessions_refused))),
        )?;
        counters(
            &mut e,
            "sessions_admitted",
            "New sessions the service's admission (auth service, JWT) allowed.",
            each().map(|(l, s, _)| ([("service", l)], load(&s.metrics.sessions_admitted))),
        )?;
        let denials: Vec<_> = each()
            .flat_map(|(l, s, _)| {
                s.metrics
                    .denials()
                    .into_iter()
                    .map(move |(reason, n)| ([("service", l), ("reason", reason)], n))
            })
            .collect();
        counters(
            &mut e,
            "sessions_denied",
            "New sessions denied by the service's admission, by reason.",
            denials,
        )?;
        let directions = |bytes: bool| {
            each().flat_map(move |(l, s, _)| {
                let m = &s.metrics;
                let [i, o] = if bytes {
                    [&m.bytes_in, &m.bytes_out]
                } else {
                    [&m.messages_in, &m.messages_out]
                };
                [("in", i), ("out", o)]
                    .map(|(dir, c)| ([("service", l), ("direction", dir)], load(c)))
            })
        };
        counters(
            &mut e,
            "messages",
            "Messages, in (from clients) and out (to clients).",
            directions(false),
        )?;
        counters(
            &mut e,
            "bytes",
            "Message bytes, in and out.",
            directions(true),
        )?;
        counters(
            &mut e,
            "dropped",
            "Messages dropped, by reason.",
            each().flat_map(|(l, s, b)| {
                let sockjs = DropReason::ALL.map(|r| (r.name(), s.metrics.dropped(r)));
                let backend = b.map(|b| {
                    [
                        ("backend_queue_full", load(&b.stats.events_dropped)),
                        ("bad_backend_message", load(&b.stats.bad_commands)),
                        ("unknown_session", load(&b.stats.unknown_sessions)),
                    ]
                });
                sockjs
                    .into_iter()
                    .chain(backend.into_iter().flatten())
                    .map(move |(reason, n)| ([("service", l), ("reason", reason)], n))
            }),
        )?;
        gauges(
            &mut e,
            "backend_queue_depth",
            "Events waiting for the PUSH socket.",
            zmq().map(|(l, _, b)| ([("service", l)], b.queue_depth() as i64)),
        )?;
        gauges(
            &mut e,
            "backend_queue_bytes",
            "Bytes of client messages held for the backend (budget: backend_queue_bytes).",
            zmq().map(|(l, _, b)| ([("service", l)], b.queue_bytes().0 as i64)),
        )?;
        counters(
            &mut e,
            "client_backpressure",
            "Times clients were held back because the backend queue's byte budget was spent.",
            zmq().map(|(l, _, b)| ([("service", l)], b.backpressure_waits())),
        )?;
        native(&mut e, self)
    }
}

/// What the native ZMTP sockets know: backends connected, refused for what
/// they sent, events lost with a broken connection.
fn native(e: &mut DescriptorEncoder, sources: &Sources) -> fmt::Result {
    let each = || {
        sources
            .0
            .iter()
            .filter_map(|(s, b)| Some((label(s), &*b.as_ref()?.stats.native)))
    };
    gauges(
        e,
        "backends_connected",
        "Backends connected now, by socket (native ZMTP sockets only).",
        each().flat_map(|(l, n)| {
            [("push", &n.push_peers), ("pull", &n.pull_peers)]
                .into_iter()
                .filter_map(move |(socket, peers)| {
                    Some(([("service", l), ("socket", socket)], peers.get()? as i64))
                })
        }),
    )?;
    counters(
        e,
        "backend_disconnects",
        "Backend connections closed by the proxy for what the backend sent (or, curve_handshake, failed to prove), by reason.",
        each().flat_map(|(l, n)| {
            [
                ("too_many_frames", &n.too_many_frames),
                ("message_too_large", &n.too_large),
                ("message_on_push", &n.message_on_push),
                ("bad_frame", &n.bad_frames),
                ("bad_box", &n.bad_boxes),
                ("curve_handshake", &n.security_refused),
                ("address_not_allowed", &n.address_refused),
            ]
            .map(|(reason, c)| ([("service", l), ("reason", reason)], load(c)))
        }),
    )?;
    counters(
        e,
        "backend_unconfirmed_events",
        "Events written to a backend connection that broke before the backend's host acknowledged them.",
        each().map(|(l, n)| ([("service", l)], load(&n.unconfirmed_events))),
    )?;
    counters(
        e,
        "backend_unconfirmed_bytes",
        "Bytes written to a backend connection that broke before the backend's host acknowledged them.",
        each().map(|(l, n)| ([("service", l)], load(&n.unconfirmed_bytes))),
    )
}
