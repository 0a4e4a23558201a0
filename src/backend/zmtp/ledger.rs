//! What a broken PUSH connection may have cost: the events the proxy wrote to
//! a backend that cannot have reached it, counted exactly, by event.
//!
//! 0MQ's PUSH/PULL has no acknowledgement, so no byte is ever *known* to have
//! reached the backend's application. What the proxy can know is which bytes
//! the backend's host has not acknowledged when the connection breaks:
//!
//! * the batch being written (taken from the peer's buffer, not all of it
//!   handed to the kernel): never sent;
//! * the kernel's send queue, read with `ioctl(SIOCOUTQ)` at break time (for
//!   TCP, bytes written and not acknowledged by the backend's host; it stays
//!   readable after a reset). On `ipc://` the queue lives on the backend's
//!   side and is gone with it, so there only the batch is counted.
//!
//! Those events are counted as *unconfirmed* (`/metrics`:
//! `sockjsproxy_backend_unconfirmed_events_total` and `_bytes_total`): they
//! are not resent, since an unacknowledged byte may still have arrived (a
//! lost ACK), and a duplicate is worse than a gap for most backends. What the
//! counter cannot see is what the backend's host had acknowledged but its
//! application had not read (its kernel receive buffer, then libzmq's queue
//! of up to `ZMQ_RCVHWM` messages): lost too when a backend is killed, so the
//! real bound is kernel send buffer + backend's buffers + batch in flight.
//! Measured on loopback (`tests/zmtp_loss.rs`), a backend stopped with a
//! backlog and then SIGKILLed: 18,719 events lost, 18,139 counted; the other
//! 580 were in its 128 KiB receive buffer. A backend that had been reading
//! fast (a receive buffer grown to megabytes, libzmq's queue full) hides more.
//!
//! Events are told apart by where each ends in the connection's byte stream:
//! a ledger of end offsets, 8 bytes per event not yet known to be past the
//! kernel (events of 20 bytes and more, so at most 40 % of the bytes held).
//! Ends the kernel has had acknowledged are dropped from time to time, by
//! asking it for its queue when the ledger has doubled since the last time:
//! one `ioctl` per thousands of events, nothing per event.

use std::collections::VecDeque;

/// The smallest ledger worth trimming.
const MIN_TRIM: usize = 4096;

/// One connection's byte stream, as offsets from its first byte.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// Bytes put in the peer's output buffer (events and commands).
    queued: u64,
    /// Bytes taken from the buffer to be written.
    taken: u64,
    /// Bytes the kernel took.
    written: u64,
    /// Where each event not known to be acknowledged ends, in order.
    ends: VecDeque<u64>,
    /// Ledger length at which to ask the kernel again.
    trim_at: usize,
}

/// Events and bytes the backend's host did not acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AtRisk {
    pub events: u64,
    pub bytes: u64,
}

impl Ledger {
    /// A ledger for a connection whose buffer starts with `len` bytes of
    /// whole events ending at `ends` (offsets in that buffer).
    pub(crate) fn starting_with(len: usize, ends: Vec<u64>) -> Ledger {
        Ledger {
            queued: len as u64,
            taken: 0,
            written: 0,
            ends: ends.into(),
            trim_at: MIN_TRIM,
        }
    }

    /// `len` bytes were put in the buffer: one event, or a command (`event`
    /// false).
    pub(crate) fn queued(&mut self, len: usize, event: bool) {
        self.queued += len as u64;
        if event {
            self.ends.push_back(self.queued);
        }
    }

    /// `len` bytes were taken from the buffer to be written.
    pub(crate) fn taken(&mut self, len: usize) {
        self.taken += len as u64;
    }

    /// The kernel took `len` bytes; true when the ledger should be trimmed
    /// with [`Ledger::trim`].
    pub(crate) fn written(&mut self, len: usize) -> bool {
        self.written += len as u64;
        self.ends.len() >= self.trim_at
    }

    /// Forgets the events the kernel no longer holds: it has `unacked` bytes
    /// in its send queue.
    pub(crate) fn trim(&mut self, unacked: u64) {
        let acked = self.written.saturating_sub(unacked);
        let gone = self.ends.partition_point(|&end| end <= acked);
        self.ends.drain(..gone);
        self.trim_at = (2 * self.ends.len()).max(MIN_TRIM);
    }

    /// What the backend's host cannot have acknowledged when the connection
    /// broke with `unacked` bytes in the kernel's send queue: those, and the
    /// batch taken and not written. Events that end in that span count (one
    /// that began before it is cut short all the same).
    pub(crate) fn at_risk(&self, unacked: u64) -> AtRisk {
        let from = self.written.saturating_sub(unacked);
        let first = self.ends.partition_point(|&end| end <= from);
        let last = self.ends.partition_point(|&end| end <= self.taken);
        AtRisk {
            events: (last - first) as u64,
            bytes: self.taken - from,
        }
    }

    /// The ends of the events still in the buffer (not taken), as offsets in
    /// it: they go with the buffer to another peer.
    pub(crate) fn untaken_ends(&self) -> Vec<u64> {
        let first = self.ends.partition_point(|&end| end <= self.taken);
        self.ends
            .range(first..)
            .map(|end| end - self.taken)
            .collect()
    }

    /// Bytes in the buffer now.
    #[cfg(test)]
    fn buffered(&self) -> u64 {
        self.queued - self.taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_in_the_kernel_queue_and_the_batch_in_flight_are_at_risk() {
        let mut ledger = Ledger::starting_with(0, Vec::new());
        // Ten events of 10 bytes, and a 6-byte PONG after the fifth.
        for i in 0..10 {
            ledger.queued(10, true);
            if i == 4 {
                ledger.queued(6, false);
            }
        }
        // Take 80 bytes, of which the kernel takes 70, and holds 25 of those
        // unacknowledged: bytes 45 to 80 are at risk, the events that end
        // at 50 (cut short), 66 and 76, not the PONG that ends at 56.
        ledger.taken(80);
        ledger.written(70);
        assert_eq!(
            ledger.at_risk(25),
            AtRisk {
                events: 3,
                bytes: 35
            }
        );
        // Nothing unacknowledged: only the 10 bytes never written.
        assert_eq!(
            ledger.at_risk(0),
            AtRisk {
                events: 1,
                bytes: 10
            }
        );
        // The rest of the buffer goes elsewhere with its ends.
        assert_eq!(ledger.buffered(), 26);
        assert_eq!(ledger.untaken_ends(), vec![6, 16, 26]);
    }

    #[test]
    fn trimming_forgets_only_what_the_kernel_has_had_acknowledged() {
        let mut ledger = Ledger::starting_with(20, vec![10, 20]);
        let mut trim = false;
        for _ in 0..MIN_TRIM {
            ledger.queued(10, true);
        }
        ledger.taken(20 + 10 * MIN_TRIM);
        for _ in 0..MIN_TRIM + 2 {
            trim |= ledger.written(10);
        }
        assert!(trim, "a long ledger asks to be trimmed");
        ledger.trim(35);
        // 35 bytes unacknowledged: the last four events (one cut short).
        assert_eq!(ledger.ends.len(), 4);
        assert_eq!(
            ledger.at_risk(35),
            AtRisk {
                events: 4,
                bytes: 35
            }
        );
        assert_eq!(ledger.trim_at, MIN_TRIM);
        assert!(!ledger.written(0));
    }
}
