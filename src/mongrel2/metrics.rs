//! `/metrics` for Mongrel2 routes and services, per route (label `route`,
//! the prefix, `/` for the root): connections open, requests handed to
//! handlers, replies taken, and every fault by reason. Each [`Link`]
//! enrols itself when bound; the collector reads their counters at scrape
//! time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use prometheus_client::encoding::DescriptorEncoder;

use super::link::Link;
use crate::metrics::{counters, gauges};

/// Every link of the process.
static LINKS: Mutex<Vec<Weak<Link>>> = Mutex::new(Vec::new());

/// Makes `link` show in `/metrics`.
pub(super) fn enrol(link: &Arc<Link>) {
    let mut links = LINKS.lock().unwrap_or_else(|e| e.into_inner());
    links.retain(|l| l.strong_count() > 0);
    links.push(Arc::downgrade(link));
}

/// Writes the Mongrel2 families, when there is a link.
#[derive(Debug)]
pub(crate) struct Collector;

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let links: Vec<Arc<Link>> = LINKS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        if links.is_empty() {
            return Ok(());
        }
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let route = |l: &Link| [("route", l.name().to_string())];
        gauges(
            &mut e,
            "mongrel2_connections_open",
            "Client connections (requests, websockets, SockJS sessions) open with Mongrel2 handlers.",
            links.iter().map(|l| (route(l), l.connections() as i64)),
        )?;
        counters(
            &mut e,
            "mongrel2_requests",
            "Requests handed to Mongrel2 handlers (disconnect messages included).",
            links.iter().map(|l| (route(l), load(&l.stats.requests))),
        )?;
        counters(
            &mut e,
            "mongrel2_replies",
            "Reply messages taken from Mongrel2 handlers.",
            links.iter().map(|l| (route(l), load(&l.stats.replies))),
        )?;
        gauges(
            &mut e,
            "mongrel2_reply_queue_bytes",
            "Bytes of handler replies held for clients that have not taken them yet.",
            links
                .iter()
                .map(|l| (route(l), load(&l.stats.queued_bytes) as i64)),
        )?;
        counters(
            &mut e,
            "mongrel2_connections_cut",
            "Client connections cut because the replies held for them passed reply_queue_bytes.",
            links
                .iter()
                .map(|l| (route(l), load(&l.stats.cut_connections))),
        )?;
        counters(
            &mut e,
            "mongrel2_errors",
            "Mongrel2 faults, by reason: no handler (502), timeout (504), bad reply, \
             reply for an unknown connection, reply dropped for a connection whose queue was \
             full, refused response or frame.",
            links.iter().flat_map(|l| {
                let s = &l.stats;
                [
                    ("no_handler", &s.no_handler),
                    ("timeout", &s.timeouts),
                    ("bad_reply", &s.bad_replies),
                    ("unknown_connection", &s.unknown_connections),
                    ("reply_queue_full", &s.dropped_replies),
                    ("refused", &s.refused),
                ]
                .map(|(reason, c)| {
                    let labels = [
                        ("route", l.name().to_string()),
                        ("reason", reason.to_string()),
                    ];
                    (labels, load(c))
                })
            }),
        )?;
        Ok(())
    }
}
