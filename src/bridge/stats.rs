//! Bridge mode's counters for `/metrics`: what was dropped or refused because
//! a browser or a backend could not keep up, and the bytes queued now.
//!
//! One set per process (bridge mode has one websocket path per process), so
//! the counters are a static that the outbox and the gateways update without
//! threading a handle through; `/metrics` shows them once `--bridge` is on.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

pub(crate) struct Stats {
    enabled: AtomicBool,
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
    published_dropped: AtomicU64::new(0),
    closed_not_reading: AtomicU64::new(0),
    requests_refused: AtomicU64::new(0),
    outbox_bytes: AtomicUsize::new(0),
    backend_queue_bytes: AtomicUsize::new(0),
};

/// Called when bridge mode starts: `/metrics` then shows its counters.
pub(crate) fn enable() {
    STATS.enabled.store(true, Ordering::Relaxed);
}

/// Appends bridge mode's metrics, if it is on.
pub(crate) fn render(out: &mut String) {
    let s = &STATS;
    if !s.enabled.load(Ordering::Relaxed) {
        return;
    }
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let _ = write!(
        out,
        "# HELP sockjsproxy_bridge_dropped_total Bridge messages dropped or refused, by reason.\n\
         # TYPE sockjsproxy_bridge_dropped_total counter\n\
         sockjsproxy_bridge_dropped_total{{reason=\"outbox_full\"}} {}\n\
         sockjsproxy_bridge_dropped_total{{reason=\"backend_queue_full\"}} {}\n\
         # HELP sockjsproxy_bridge_closed_total Bridge websockets closed because the browser did not read.\n\
         # TYPE sockjsproxy_bridge_closed_total counter\n\
         sockjsproxy_bridge_closed_total{{reason=\"outbox_full\"}} {}\n\
         # HELP sockjsproxy_bridge_queued_bytes Bytes waiting in bridge queues now.\n\
         # TYPE sockjsproxy_bridge_queued_bytes gauge\n\
         sockjsproxy_bridge_queued_bytes{{queue=\"outbox\"}} {}\n\
         sockjsproxy_bridge_queued_bytes{{queue=\"backend\"}} {}\n",
        load(&s.published_dropped),
        load(&s.requests_refused),
        load(&s.closed_not_reading),
        s.outbox_bytes.load(Ordering::Relaxed),
        s.backend_queue_bytes.load(Ordering::Relaxed),
    );
}
