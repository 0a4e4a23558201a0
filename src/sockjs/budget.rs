//! The byte budget of what clients send towards an application, and the
//! backpressure that keeps it: a client waits for room instead of another
//! session losing messages.
//!
//! Before, the backend queue was bounded by count (65,536 events of up to
//! 1 MiB each: 64 GiB) and dropped what did not fit. One client looping on
//! 1 MiB `xhr_send` bodies of empty messages made 20 other sessions lose 19 %
//! of their messages while the backend was healthy. Now:
//! - a transport [`Budget::reserve`]s a batch's [`cost`] before handing it to
//!   its session: while the budget is spent it waits (a websocket stops being
//!   read, an `xhr_send` answer is held), in arrival order, so a flooder
//!   waits behind the others rather than ahead of them;
//! - the bytes stay [`Held`] until the application is done with each message
//!   (for the 0MQ backend: written to a backend connection); dropping a
//!   [`Held`] gives them back, whatever path the message took;
//! - control events (a session opening or closing) are never made to wait:
//!   [`Budget::try_hold`] lets them use a quarter more than the budget, and
//!   only beyond that are they refused (and counted by the application).
//!
//! A reservation is admitted while anything is left, so the budget is
//! overshot by at most one batch (one request body or websocket message plus
//! its per-message overhead).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{Notify, Semaphore};

/// What one queued message costs beyond its text: the queue's bookkeeping,
/// so that a body of 100,000 empty messages is not free.
pub const MESSAGE_OVERHEAD: usize = 64;

/// The cost of a batch of client messages.
pub fn cost(messages: &[String]) -> usize {
    messages.iter().map(|m| m.len() + MESSAGE_OVERHEAD).sum()
}

/// Reserves a batch's cost when there is a budget; holds nothing otherwise.
pub async fn reserve_for(budget: Option<&Arc<Budget>>, messages: &[String]) -> Held {
    match budget {
        Some(b) => b.reserve(cost(messages)).await,
        None => Held::nothing(),
    }
}

/// Bytes of client input an application holds at most, shared by all its
/// sessions.
pub struct Budget {
    capacity: usize,
    used: AtomicUsize,
    /// One reservation at a time waits for room; the rest queue here, first
    /// come first served (tokio's semaphore is fair).
    turn: Semaphore,
    room: Notify,
    /// Reservations that had to wait, for metrics.
    waits: AtomicU64,
}

impl Budget {
    pub fn new(capacity: usize) -> Arc<Budget> {
        Arc::new(Budget {
            capacity,
            used: AtomicUsize::new(0),
            turn: Semaphore::new(1),
            room: Notify::new(),
            waits: AtomicU64::new(0),
        })
    }

    /// Waits until the budget has room, then holds `bytes` of it.
    pub async fn reserve(self: &Arc<Self>, bytes: usize) -> Held {
        if self.turn.available_permits() == 1 && self.used() < self.capacity {
            return self.hold(bytes);
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        // Never closed: the budget owns its semaphore.
        let _turn = self.turn.acquire().await;
        while self.used() >= self.capacity {
            // `notify_one` stores a wakeup when nobody waits, so none is lost
            // between the check and the wait.
            self.room.notified().await;
        }
        self.hold(bytes)
    }

    /// Holds `bytes` without waiting, when the budget plus a quarter has
    /// room: for events that must not wait behind client messages.
    pub fn try_hold(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        let limit = self.capacity + self.capacity / 4;
        (self.used() + bytes <= limit).then(|| self.hold(bytes))
    }

    fn hold(self: &Arc<Self>, bytes: usize) -> Held {
        self.used.fetch_add(bytes, Ordering::AcqRel);
        Held {
            budget: Some(self.clone()),
            bytes,
        }
    }

    fn release(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        if before >= self.capacity && before - bytes < self.capacity {
            self.room.notify_one();
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many reservations had to wait for room so far.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

/// Bytes held against a [`Budget`] until dropped.
#[must_use]
pub struct Held {
    budget: Option<Arc<Budget>>,
    bytes: usize,
}

impl Held {
    /// Holds nothing: for services whose application keeps no budget.
    pub fn nothing() -> Held {
        Held {
            budget: None,
            bytes: 0,
        }
    }

    /// Moves `bytes` (at most what is held) into a [`Held`] of their own.
    pub fn split(&mut self, bytes: usize) -> Held {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Held {
            budget: self.budget.clone(),
            bytes,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget
            && self.bytes > 0
        {
            budget.release(self.bytes);
        }
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({} bytes)", self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spent_budget_holds_clients_until_bytes_come_back() {
        let budget = Budget::new(100);
        let first = budget.reserve(150).await; // admitted: room was left
        assert_eq!(budget.used(), 150);
        let waiting = tokio::spawn({
            let b = budget.clone();
            async move { b.reserve(10).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(budget.waits(), 1);
        drop(first);
        let second = waiting.await.unwrap();
        assert_eq!(budget.used(), 10);
        drop(second);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn waiting_clients_are_served_in_arrival_order() {
        let budget = Budget::new(10);
        let block = budget.reserve(10).await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (b, order) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let held = b.reserve(10).await;
                order.lock().unwrap().push(i);
                drop(held);
            }));
            tokio::task::yield_now().await;
        }
        drop(block);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_client_that_leaves_while_waiting_does_not_block_the_others() {
        let budget = Budget::new(10);
        let block = budget.reserve(10).await;
        let gone = tokio::spawn({
            let b = budget.clone();
            async move { b.reserve(5).await }
        });
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        drop(block);
        let next = tokio::time::timeout(std::time::Duration::from_secs(1), budget.reserve(5));
        assert_eq!(next.await.expect("blocked").bytes(), 5);
    }

    #[test]
    fn control_events_get_a_quarter_more_and_split_parts_come_back() {
        let budget = Budget::new(100);
        let mut all = budget.try_hold(120).unwrap();
        assert!(budget.try_hold(10).is_none());
        let part = all.split(20);
        assert_eq!((all.bytes(), part.bytes()), (100, 20));
        drop(part);
        assert_eq!(budget.used(), 100);
        drop(all);
        assert_eq!(budget.used(), 0);
        assert_eq!(
            cost(&["ab".to_string(), String::new()]),
            2 + 2 * MESSAGE_OVERHEAD
        );
    }
}
