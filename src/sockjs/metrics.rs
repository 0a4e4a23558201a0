//! Counters of one service's SockJS side, read by the `/metrics` endpoint.
//! Plain atomics: they are bumped on the hot path and read rarely.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The transport that opened a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Websocket,
    RawWebsocket,
    Xhr,
    XhrStreaming,
    EventSource,
    HtmlFile,
    Jsonp,
}

impl Transport {
    pub const ALL: [Transport; 7] = [
        Transport::Websocket,
        Transport::RawWebsocket,
        Transport::Xhr,
        Transport::XhrStreaming,
        Transport::EventSource,
        Transport::HtmlFile,
        Transport::Jsonp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::RawWebsocket => "raw_websocket",
            Transport::Xhr => "xhr",
            Transport::XhrStreaming => "xhr_streaming",
            Transport::EventSource => "eventsource",
            Transport::HtmlFile => "htmlfile",
            Transport::Jsonp => "jsonp",
        }
    }
}

/// Why a message did not reach its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The session's outgoing queue was full.
    QueueFull,
    /// The message was for a session already closed.
    SessionClosed,
    /// A client message beyond the bound while its session's admission was pending.
    AdmissionPending,
    /// A client message held while admission was pending, of a denied session.
    Denied,
}

impl DropReason {
    pub const ALL: [DropReason; 4] = [
        DropReason::QueueFull,
        DropReason::SessionClosed,
        DropReason::AdmissionPending,
        DropReason::Denied,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::SessionClosed => "session_closed",
            DropReason::AdmissionPending => "admission_pending",
            DropReason::Denied => "denied",
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    open: [AtomicI64; 7],
    opened: [AtomicU64; 7],
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_out: AtomicU64,
    dropped: [AtomicU64; 4],
    /// New sessions refused because the service was full.
    pub sessions_refused: AtomicU64,
    /// Sessions admitted, and denied by reason (labels are a fixed few).
    pub sessions_admitted: AtomicU64,
    denied: Mutex<Vec<(&'static str, u64)>>,
}

impl Metrics {
    pub fn session_opened(&self, t: Transport) {
        self.opened[t as usize].fetch_add(1, Ordering::Relaxed);
        self.open[t as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_closed(&self, t: Transport) {
        self.open[t as usize].fetch_sub(1, Ordering::Relaxed);
    }

    pub fn open(&self, t: Transport) -> i64 {
        self.open[t as usize].load(Ordering::Relaxed)
    }

    pub fn opened(&self, t: Transport) -> u64 {
        self.opened[t as usize].load(Ordering::Relaxed)
    }

    pub fn count_drop(&self, why: DropReason) {
        self.dropped[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self, why: DropReason) -> u64 {
        self.dropped[why as usize].load(Ordering::Relaxed)
    }

    pub fn count_denial(&self, label: &'static str) {
        let mut denied = self.denied.lock().unwrap_or_else(|e| e.into_inner());
        match denied.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => denied.push((label, 1)),
        }
    }

    /// Sessions denied so far, by reason.
    pub fn denials(&self) -> Vec<(&'static str, u64)> {
        self.denied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
