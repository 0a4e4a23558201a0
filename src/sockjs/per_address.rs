//! Limits per client address: how many sessions one address holds, and how
//! many it may open per second.
//!
//! `max_sessions` protects the proxy, but a single client could take all of
//! it and lock everyone else out. These limits keep one address to its share.
//! The address is the TCP peer, or the client named by `X-Forwarded-For` when
//! the peer is a `--trusted-proxy`, so that users behind one reverse proxy
//! are told apart and a client cannot spoof its way around the limit.
//!
//! Defaults are generous (10,000 sessions per address, no rate limit), since
//! many users can share one address behind a NAT; a session holds a
//! [`Slot`], whose drop gives its place back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The length of the rate limit's window.
const WINDOW: Duration = Duration::from_secs(1);
/// Entries kept before idle ones are pruned.
const PRUNE_AT: usize = 4096;

/// Why an address may not open a session now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many sessions from one address ({0})")]
    Sessions(usize),
    #[error("too many new sessions per second from one address ({0})")]
    Rate(usize),
}

#[derive(Debug)]
struct Entry {
    sessions: usize,
    window_start: Instant,
    opened_in_window: usize,
}

/// The limits of one service and what each address holds.
#[derive(Debug)]
pub struct AddressLimits {
    /// Sessions one address holds at once; 0: no limit.
    max_sessions: usize,
    /// Sessions one address opens per second; 0: no limit.
    max_per_second: usize,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

/// One session's place in its address's count.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<AddressLimits>,
    address: IpAddr,
}

impl AddressLimits {
    pub fn new(max_sessions: usize, max_per_second: usize) -> Arc<AddressLimits> {
        Arc::new(AddressLimits {
            max_sessions,
            max_per_second,
            table: Mutex::default(),
        })
    }

    /// Takes a place for a new session from `address`, or says why not.
    /// Without an address (a unix socket) or with both limits off, nothing
    /// is counted.
    pub fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Option<Slot>, Refusal> {
        let Some(address) = address else {
            return Ok(None);
        };
        if self.max_sessions == 0 && self.max_per_second == 0 {
            return Ok(None);
        }
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= PRUNE_AT {
            table.retain(|_, e| e.sessions > 0 || now - e.window_start < WINDOW);
        }
        let entry = table.entry(address).or_insert(Entry {
            sessions: 0,
            window_start: now,
            opened_in_window: 0,
        });
        if now - entry.window_start >= WINDOW {
            entry.window_start = now;
            entry.opened_in_window = 0;
        }
        if self.max_sessions > 0 && entry.sessions >= self.max_sessions {
            return Err(Refusal::Sessions(self.max_sessions));
        }
        if self.max_per_second > 0 && entry.opened_in_window >= self.max_per_second {
            return Err(Refusal::Rate(self.max_per_second));
        }
        entry.sessions += 1;
        entry.opened_in_window += 1;
        Ok(Some(Slot {
            limits: self.clone(),
            address,
        }))
    }

    #[cfg(test)]
    fn sessions_of(&self, address: IpAddr) -> usize {
        let table = self.table.lock().unwrap();
        table.get(&address).map_or(0, |e| e.sessions)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.limits.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = table.get_mut(&self.address) {
            entry.sessions -= 1;
            if entry.sessions == 0 && entry.window_start.elapsed() >= WINDOW {
                table.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

    #[test]
    fn one_address_holds_at_most_its_share_and_gets_it_back() {
        let limits = AddressLimits::new(2, 0);
        let one = limits.admit(Some(A)).unwrap();
        let _two = limits.admit(Some(A)).unwrap();
        assert_eq!(limits.admit(Some(A)).unwrap_err(), Refusal::Sessions(2));
        // Another address is not affected.
        assert!(limits.admit(Some(B)).unwrap().is_some());
        drop(one);
        assert_eq!(limits.sessions_of(A), 1);
        assert!(limits.admit(Some(A)).is_ok());
    }

    #[test]
    fn the_rate_limit_counts_openings_not_open_sessions() {
        let limits = AddressLimits::new(0, 3);
        for _ in 0..3 {
            drop(limits.admit(Some(A)).unwrap());
        }
        assert_eq!(limits.admit(Some(A)).unwrap_err(), Refusal::Rate(3));
        assert!(limits.admit(Some(B)).is_ok());
    }

    #[test]
    fn no_limits_count_nothing() {
        let limits = AddressLimits::new(0, 0);
        assert!(limits.admit(Some(A)).unwrap().is_none());
        assert!(limits.admit(None).unwrap().is_none());
    }
}
