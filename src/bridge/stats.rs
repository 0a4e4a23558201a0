//! Bridge mode's counters for `/metrics`: websockets open, frames in and out,
//! connects opened and refused, what was dropped or refused because a browser
//! or a backend could not keep up, and the bytes queued now.
//!
//! One set per process (bridge mode has one websocket path per process), so
//! the counters are a static that the session, the outbox and the gateways
//! update without threading a handle through; `/metrics` shows them once
//! `--bridge` is on ([`Collector`], registered by `crate::metrics`).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use prometheus_client::encoding::DescriptorEncoder;

use crate::metrics::{counters, gauges};

pub(crate) struct Stats {
    enabled: AtomicBool,
    /// Websockets open now...
    pub(crate) websockets_open: AtomicI64,
    /// ...and opened since start.
    pub(crate) websockets_opened: AtomicU64,
    /// Text frames from browsers...
    pub(crate) frames_in: AtomicU64,
    /// ...and queued for them.
    pub(crate) frames_out: AtomicU64,
    /// Virtual sockets opened...
    pub(crate) connects_opened: AtomicU64,
    /// ...and connects refused (bad request, policy, auth service, limits).
    pub(crate) connects_refused: AtomicU64,
    /// Published (SUB) frames dropped because a browser's outbox was full.
    pub(crate) published_dropped: AtomicU64,
    /// Websockets closed because a reply or an error did not fit the outbox.
    pub(crate) closed_not_reading: AtomicU64,
    /// Requests refused because a REQ gateway's queue was full.
    pub(crate) requests_refused: AtomicU64,
    /// Bytes of frames in every outbox now.
    pub(crate) outbox_bytes: AtomicUsize,
    /// Bytes of requests in every REQ gateway queue now.
    pub(crate) backend_queue_bytes: AtomicUsize,
}

pub(crate) static STATS: Stats = Stats {
    enabled: AtomicBool::new(false),
    websockets_open: AtomicI64::new(0),
    websockets_opened: AtomicU64::new(0),
    frames_in: AtomicU64::new(0),
    frames_out: AtomicU64::new(0),
    connects_opened: AtomicU64::new(0),
    connects_refused: AtomicU64::new(0),
    published_dropped: AtomicU64::new(0),
    closed_not_reading: AtomicU64::new(0),
    requests_refused: AtomicU64::new(0),
    outbox_bytes: AtomicUsize::new(0),
    backend_queue_bytes: AtomicUsize::new(0),
};

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Called when bridge mode starts: `/metrics` then shows its counters.
pub(crate) fn enable() {
    STATS.enabled.store(true, Ordering::Relaxed);
}

/// Writes bridge mode's families, if it is on.
#[derive(Debug)]
pub(crate) struct Collector;

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let s = &STATS;
        if !s.enabled.load(Ordering::Relaxed) {
            return Ok(());
        }
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let none: [(&str, &str); 0] = [];
        gauges(
            &mut e,
            "bridge_websockets_open",
            "Bridge websockets open now.",
            [(none, s.websockets_open.load(Ordering::Relaxed))],
        )?;
        counters(
            &mut e,
            "bridge_websockets_opened",
            "Bridge websockets opened.",
            [(none, load(&s.websockets_opened))],
        )?;
        counters(
            &mut e,
            "bridge_frames",
            "Bridge text frames, in (from browsers) and out (queued for them).",
            [("in", &s.frames_in), ("out", &s.frames_out)]
                .map(|(dir, c)| ([("direction", dir)], load(c))),
        )?;
        counters(
            &mut e,
            "bridge_connects",
            "Bridge virtual socket connects, by result.",
            [
                ("opened", &s.connects_opened),
                ("refused", &s.connects_refused),
            ]
            .map(|(result, c)| ([("result", result)], load(c))),
        )?;
        counters(
            &mut e,
            "bridge_dropped",
            "Bridge messages dropped or refused, by reason.",
            [
                ("outbox_full", &s.published_dropped),
                ("backend_queue_full", &s.requests_refused),
            ]
            .map(|(reason, c)| ([("reason", reason)], load(c))),
        )?;
        counters(
            &mut e,
            "bridge_closed",
            "Bridge websockets closed because the browser did not read.",
            [([("reason", "outbox_full")], load(&s.closed_not_reading))],
        )?;
        gauges(
            &mut e,
            "bridge_queued_bytes",
            "Bytes waiting in bridge queues now.",
            [
                ("outbox", &s.outbox_bytes),
                ("backend", &s.backend_queue_bytes),
            ]
            .map(|(queue, c)| ([("queue", queue)], c.load(Ordering::Relaxed) as i64)),
        )
    }
}
