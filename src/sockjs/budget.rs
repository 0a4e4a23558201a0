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
//!   read, an `xhr_send` answer is held);
//! - when room comes back, the waiting session holding the fewest bytes goes
//!   first (ties in arrival order): each session has a [`Share`], the bytes
//!   it holds now, so a session that sends now and then passes every
//!   flooder, and flooders share what is left evenly;
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

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// What one queued message costs beyond its text. A message costs the
/// backend path work of its own (a 0MQ message, a send, the backend's
/// reply), so a body of 10,000 empty messages must not be nearly free: at
/// 64 bytes each, a 64 MiB budget held a million of them, seconds of work
/// that every other session's messages queued behind.
pub const MESSAGE_OVERHEAD: usize = 512;

/// The cost of a batch of client messages.
pub fn cost(messages: &[String]) -> usize {
    messages.iter().map(|m| m.len() + MESSAGE_OVERHEAD).sum()
}

/// Reserves a batch's cost for `share` when there is a budget; holds nothing
/// otherwise.
pub async fn reserve_for(budget: Option<&Arc<Budget>>, share: &Share, messages: &[String]) -> Held {
    match budget {
        Some(b) => b.reserve(share, cost(messages)).await,
        None => Held::nothing(),
    }
}

/// The bytes one session holds in a budget now.
#[derive(Debug, Clone, Default)]
pub struct Share(Arc<AtomicUsize>);

impl Share {
    pub fn bytes(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// A reservation waiting for room.
struct Waiter {
    ticket: u64,
    share: Share,
    waker: Waker,
}

#[derive(Default)]
struct Waiting {
    next_ticket: u64,
    list: Vec<Waiter>,
}

impl Waiting {
    /// The waiter to admit next: the fewest bytes held, then the oldest.
    fn best(&self) -> Option<&Waiter> {
        self.list.iter().min_by_key(|w| (w.share.bytes(), w.ticket))
    }

    fn wake_best(&self) {
        if let Some(w) = self.best() {
            w.waker.wake_by_ref();
        }
    }
}

/// Bytes of client input an application holds at most, shared by all its
/// sessions.
pub struct Budget {
    capacity: usize,
    used: AtomicUsize,
    waiting: Mutex<Waiting>,
    /// How many wait in `waiting`, so that the common case (nobody waits)
    /// takes no lock.
    waiters: AtomicUsize,
    /// Reservations that had to wait, for metrics.
    waits: AtomicU64,
}

impl Budget {
    pub fn new(capacity: usize) -> Arc<Budget> {
        Arc::new(Budget {
            capacity,
            used: AtomicUsize::new(0),
            waiting: Mutex::default(),
            waiters: AtomicUsize::new(0),
            waits: AtomicU64::new(0),
        })
    }

    /// Waits until the budget has room and no session holding fewer bytes
    /// waits, then holds `bytes` of it for `share`.
    pub fn reserve(self: &Arc<Self>, share: &Share, bytes: usize) -> Reserve {
        Reserve {
            budget: self.clone(),
            share: share.clone(),
            bytes,
            ticket: None,
        }
    }

    /// Holds `bytes` without waiting, when the budget plus a quarter has
    /// room: for events that must not wait behind client messages.
    pub fn try_hold(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        let limit = self.capacity + self.capacity / 4;
        (self.used() + bytes <= limit).then(|| self.hold(None, bytes))
    }

    fn hold(self: &Arc<Self>, share: Option<Share>, bytes: usize) -> Held {
        self.used.fetch_add(bytes, Ordering::AcqRel);
        if let Some(s) = &share {
            s.0.fetch_add(bytes, Ordering::AcqRel);
        }
        Held {
            budget: Some(self.clone()),
            share,
            bytes,
        }
    }

    fn release(&self, bytes: usize) {
        let after = self.used.fetch_sub(bytes, Ordering::AcqRel) - bytes;
        if after < self.capacity && self.waiters.load(Ordering::Acquire) > 0 {
            let waiting = self.lock();
            waiting.wake_best();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
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

/// A reservation under way; see [`Budget::reserve`]. Dropping it while it
/// waits (the client went away) leaves the line without blocking it.
pub struct Reserve {
    budget: Arc<Budget>,
    share: Share,
    bytes: usize,
    /// Set while waiting in the line.
    ticket: Option<u64>,
}

impl Future for Reserve {
    type Output = Held;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Held> {
        let this = &mut *self;
        let budget = this.budget.clone();
        let fast = this.ticket.is_none()
            && budget.waiters.load(Ordering::Acquire) == 0
            && budget.used() < budget.capacity;
        if fast {
            return Poll::Ready(budget.hold(Some(this.share.clone()), this.bytes));
        }
        let mut waiting = budget.lock();
        let room = budget.used() < budget.capacity;
        let admitted = match this.ticket {
            None => room && waiting.list.is_empty(),
            Some(ticket) => room && waiting.best().is_some_and(|w| w.ticket == ticket),
        };
        if admitted {
            if let Some(ticket) = this.ticket.take() {
                waiting.list.retain(|w| w.ticket != ticket);
                budget.waiters.store(waiting.list.len(), Ordering::Release);
            }
            let held = budget.hold(Some(this.share.clone()), this.bytes);
            if budget.used() < budget.capacity {
                waiting.wake_best();
            }
            return Poll::Ready(held);
        }
        match this.ticket {
            Some(ticket) => {
                if let Some(w) = waiting.list.iter_mut().find(|w| w.ticket == ticket) {
                    w.waker.clone_from(cx.waker());
                }
                // Shares shrink while their sessions wait: the one woken may
                // no longer be the best. Pass the wake-up on, or nobody would
                // move until the next release (never, once the queue drains).
                if room {
                    waiting.wake_best();
                }
            }
            None => {
                budget.waits.fetch_add(1, Ordering::Relaxed);
                let ticket = waiting.next_ticket;
                waiting.next_ticket += 1;
                waiting.list.push(Waiter {
                    ticket,
                    share: this.share.clone(),
                    waker: cx.waker().clone(),
                });
                budget.waiters.store(waiting.list.len(), Ordering::Release);
                this.ticket = Some(ticket);
            }
        }
        Poll::Pending
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let mut waiting = self.budget.lock();
            waiting.list.retain(|w| w.ticket != ticket);
            self.budget
                .waiters
                .store(waiting.list.len(), Ordering::Release);
            if self.budget.used() < self.budget.capacity {
                waiting.wake_best();
            }
        }
    }
}

/// Bytes held against a [`Budget`] (and a session's [`Share`]) until dropped.
#[must_use]
pub struct Held {
    budget: Option<Arc<Budget>>,
    share: Option<Share>,
    bytes: usize,
}

impl Held {
    /// Holds nothing: for services whose application keeps no budget.
    pub fn nothing() -> Held {
        Held {
            budget: None,
            share: None,
            bytes: 0,
        }
    }

    /// Moves `bytes` (at most what is held) into a [`Held`] of their own.
    pub fn split(&mut self, bytes: usize) -> Held {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Held {
            budget: self.budget.clone(),
            share: self.share.clone(),
            bytes,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        if let Some(share) = &self.share {
            share.0.fetch_sub(self.bytes, Ordering::AcqRel);
        }
        if let Some(budget) = &self.budget {
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
        let share = Share::default();
        let first = budget.reserve(&share, 150).await; // admitted: room was left
        assert_eq!((budget.used(), share.bytes()), (150, 150));
        let waiting = tokio::spawn({
            let (b, s) = (budget.clone(), share.clone());
            async move { b.reserve(&s, 10).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(budget.waits(), 1);
        drop(first);
        let second = waiting.await.unwrap();
        assert_eq!((budget.used(), share.bytes()), (10, 10));
        drop(second);
        assert_eq!((budget.used(), share.bytes()), (0, 0));
    }

    /// Waits for a reservation in a task of its own, recording the order in
    /// which reservations are admitted.
    fn queue_up(
        budget: &Arc<Budget>,
        share: &Share,
        name: &'static str,
        order: &Arc<Mutex<Vec<&'static str>>>,
    ) -> tokio::task::JoinHandle<()> {
        let (b, s, order) = (budget.clone(), share.clone(), order.clone());
        tokio::spawn(async move {
            let held = b.reserve(&s, 10).await;
            order.lock().unwrap().push(name);
            drop(held);
        })
    }

    #[tokio::test]
    async fn the_session_holding_least_goes_first_then_arrival_order() {
        let budget = Budget::new(10);
        let (flooder, quiet, other) = (Share::default(), Share::default(), Share::default());
        let _kept = budget.reserve(&flooder, 5).await;
        let flooding = budget.reserve(&flooder, 10).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = vec![queue_up(&budget, &flooder, "flooder", &order)];
        tokio::task::yield_now().await;
        tasks.push(queue_up(&budget, &quiet, "quiet", &order));
        tokio::task::yield_now().await;
        tasks.push(queue_up(&budget, &other, "other", &order));
        tokio::task::yield_now().await;
        drop(flooding);
        for t in tasks {
            t.await.unwrap();
        }
        // The flooder came first but holds bytes; the two that hold none
        // pass it, in the order they came.
        assert_eq!(*order.lock().unwrap(), ["quiet", "other", "flooder"]);
        assert_eq!(budget.used(), 5);
    }

    #[tokio::test]
    async fn every_waiter_is_admitted_once_room_comes_back_whatever_the_order_of_releases() {
        let budget = Budget::new(10);
        let (a, b) = (Share::default(), Share::default());
        let b_kept = budget.reserve(&b, 1).await;
        let block = budget.reserve(&a, 10).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let tb = queue_up(&budget, &b, "b", &order);
        tokio::task::yield_now().await;
        let ta = queue_up(&budget, &a, "a", &order);
        tokio::task::yield_now().await;
        // Shares change while both wait: b's byte goes back with no room
        // (nobody is woken), then a's block makes room.
        drop(b_kept);
        drop(block);
        let done = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            tb.await.unwrap();
            ta.await.unwrap();
        });
        done.await.expect("a waiter was never woken");
        assert_eq!(*order.lock().unwrap(), ["b", "a"]);
    }

    #[tokio::test]
    async fn a_client_that_leaves_while_waiting_does_not_block_the_others() {
        let budget = Budget::new(10);
        let share = Share::default();
        let block = budget.reserve(&share, 10).await;
        let gone = tokio::spawn({
            let (b, s) = (budget.clone(), Share::default());
            async move { b.reserve(&s, 5).await }
        });
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        drop(block);
        let next = budget.reserve(&share, 5);
        let next = tokio::time::timeout(std::time::Duration::from_secs(1), next);
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
