//! The replies waiting for one connection of a Mongrel2 link, until its
//! owner (an HTTP response, a websocket, a SockJS session) takes them for
//! its client. Mongrel2's protocol gives a handler no way to wait for a
//! slow client, so the inbox is where a client that does not read meets
//! its bound: in bytes (the route's `reply_queue_bytes`) and in count
//! ([`CONN_QUEUE`]). A reply that would pass it cuts the inbox: what it
//! held is freed at once, and it takes nothing more. An empty inbox takes
//! any one reply, so that a handler may send a large response whole.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

/// Reply bodies held for one connection that has not taken them yet.
pub const CONN_QUEUE: usize = 256;

/// The replies waiting for one connection, bounded in bytes and count.
/// The link's reader puts, the connection's owner takes.
#[derive(Default)]
pub(super) struct Inbox {
    state: Mutex<InboxState>,
    /// Wakes the owner: a reply came, or the inbox was cut.
    ready: Notify,
}

#[derive(Default)]
struct InboxState {
    replies: VecDeque<Bytes>,
    bytes: usize,
    /// Set when a reply would have passed the bound: nothing is held or
    /// taken any more.
    cut: bool,
}

/// What [`Inbox::put`] did with a reply.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Put {
    Queued,
    /// The reply would pass the bound: the inbox is cut, the `replies` it
    /// held (`freed` bytes) are dropped with this one.
    Cut {
        replies: u64,
        freed: u64,
    },
    /// The inbox was cut before: the reply is dropped.
    Dropped,
}

impl Inbox {
    fn state(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `reply` if it fits `max_bytes` (an empty inbox takes any one
    /// reply), else cuts the inbox.
    pub(super) fn put(&self, reply: &Bytes, max_bytes: usize) -> Put {
        let mut s = self.state();
        if s.cut {
            return Put::Dropped;
        }
        let fits = s.replies.is_empty()
            || (s.replies.len() < CONN_QUEUE && s.bytes + reply.len() <= max_bytes);
        let put = if fits {
            s.bytes += reply.len();
            s.replies.push_back(reply.clone());
            Put::Queued
        } else {
            let (replies, freed) = (s.replies.len() as u64, s.bytes as u64);
            s.cut = true;
            s.bytes = 0;
            s.replies = Default::default();
            Put::Cut { replies, freed }
        };
        drop(s);
        self.ready.notify_one();
        put
    }

    /// The next reply; `None` once cut.
    pub(super) async fn take(&self) -> Option<Bytes> {
        loop {
            {
                let mut s = self.state();
                if let Some(reply) = s.replies.pop_front() {
                    s.bytes -= reply.len();
                    return Some(reply);
                }
                if s.cut {
                    return None;
                }
            }
            // `notify_one` keeps a permit when no one waits: no wake is lost.
            self.ready.notified().await;
        }
    }

    /// Empties the inbox: the bytes it held.
    pub(super) fn clear(&self) -> u64 {
        let mut s = self.state();
        let freed = s.bytes as u64;
        s.bytes = 0;
        s.replies.clear();
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::time::Duration;

    fn reply(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[tokio::test]
    async fn an_inbox_holds_replies_up_to_its_bound_in_bytes() {
        let inbox = Inbox::default();
        assert_eq!(inbox.put(&reply(400), 1000), Put::Queued);
        assert_eq!(inbox.put(&reply(600), 1000), Put::Queued);
        assert_eq!(inbox.take().await.unwrap().len(), 400);
        // Taking frees room.
        assert_eq!(inbox.put(&reply(400), 1000), Put::Queued);
        let cut = Put::Cut {
            replies: 2,
            freed: 1000,
        };
        assert_eq!(inbox.put(&reply(1), 1000), cut);
        // Cut: what it held is gone, later replies are dropped.
        assert_eq!(inbox.take().await, None);
        assert_eq!(inbox.put(&reply(1), 1000), Put::Dropped);
        assert_eq!(inbox.clear(), 0);
    }

    #[tokio::test]
    async fn an_empty_inbox_takes_one_reply_larger_than_its_bound() {
        let inbox = Inbox::default();
        assert_eq!(inbox.put(&reply(5000), 1000), Put::Queued);
        let cut = Put::Cut {
            replies: 1,
            freed: 5000,
        };
        assert_eq!(inbox.put(&Bytes::new(), 1000), cut);
        let inbox = Inbox::default();
        assert_eq!(inbox.put(&reply(5000), 1000), Put::Queued);
        assert_eq!(inbox.take().await.unwrap().len(), 5000);
        assert_eq!(inbox.put(&reply(5000), 1000), Put::Queued);
        assert_eq!(inbox.clear(), 5000);
    }

    #[tokio::test]
    async fn an_inbox_holds_at_most_conn_queue_replies() {
        let inbox = Inbox::default();
        for _ in 0..CONN_QUEUE {
            assert_eq!(inbox.put(&Bytes::new(), 1000), Put::Queued);
        }
        let cut = Put::Cut {
            replies: CONN_QUEUE as u64,
            freed: 0,
        };
        assert_eq!(inbox.put(&Bytes::new(), 1000), cut);
    }

    #[tokio::test]
    async fn a_waiting_taker_wakes_for_a_reply_and_for_a_cut() {
        let inbox = Arc::new(Inbox::default());
        let wait = |inbox: &Arc<Inbox>| {
            let inbox = inbox.clone();
            tokio::spawn(async move { inbox.take().await.map(|b| b.len()) })
        };
        let taker = wait(&inbox);
        tokio::time::sleep(Duration::from_millis(20)).await;
        inbox.put(&reply(3), 10);
        assert_eq!(taker.await.unwrap(), Some(3));
        inbox.put(&reply(10), 10);
        inbox.put(&reply(1), 10);
        let taker = wait(&inbox);
        assert_eq!(taker.await.unwrap(), None);
    }
}
