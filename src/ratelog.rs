//! Warnings that a peer can cause many times a second, summarised instead of
//! written one line each.
//!
//! A client flooding a full queue used to produce one WARN line per dropped
//! event: 151 MB of log in 15 s, a denial of service of its own (disk, and the
//! log pipeline behind it). A [`Throttle`] writes the first occurrence at once
//! and then at most one line per second per call site, saying how many it
//! summarises: `dropped 283464 events (backend_queue_full) in the last 1.0 s`.
//! [`flush`], called once a second by the server, writes what is still
//! pending once the flood has stopped, so that no count is left unsaid.
//!
//! The counts in `/metrics` stay exact; this only shapes the log.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The shortest time between two lines of one throttle.
const WINDOW: Duration = Duration::from_secs(1);

/// Every throttle that has logged, so that [`flush`] can find the pending ones.
static ALL: Mutex<Vec<&'static Throttle>> = Mutex::new(Vec::new());

/// One kind of warning, declared `static` at its call site.
pub struct Throttle {
    /// What happened, in the plural: "events dropped (backend_queue_full)".
    what: &'static str,
    /// Occurrences not yet written.
    pending: AtomicU64,
    /// When the last line was written, and whether this throttle is in [`ALL`].
    state: Mutex<Option<Instant>>,
}

impl Throttle {
    pub const fn new(what: &'static str) -> Throttle {
        Throttle {
            what,
            pending: AtomicU64::new(0),
            state: Mutex::new(None),
        }
    }

    /// Counts one occurrence; writes a line when the window allows. `detail`
    /// is shown with the first line of a window only (it describes one case).
    pub fn warn(&'static self, detail: std::fmt::Arguments<'_>) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let Ok(mut state) = self.state.try_lock() else {
            return; // another thread is writing this throttle's line
        };
        let now = Instant::now();
        match *state {
            None => {
                ALL.lock().unwrap_or_else(|e| e.into_inner()).push(self);
                self.pending.store(0, Ordering::Relaxed);
                *state = Some(now);
                log::warn!("{}: {detail}", self.what);
            }
            Some(last) if now.duration_since(last) >= WINDOW => {
                let n = self.pending.swap(0, Ordering::Relaxed);
                *state = Some(now);
                log::warn!(
                    "{}: {detail} ({n} in the last {:.1} s)",
                    self.what,
                    secs(now - last)
                );
            }
            Some(_) => {}
        }
    }

    /// Writes the pending count, if any, when its window has passed.
    fn flush(&self, now: Instant) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(last) = *state
            && now.duration_since(last) >= WINDOW
        {
            let n = self.pending.swap(0, Ordering::Relaxed);
            if n > 0 {
                *state = Some(now);
                log::warn!("{}: {n} in the last {:.1} s", self.what, secs(now - last));
            }
        }
    }

    /// Occurrences counted but not yet written (for tests).
    #[cfg(test)]
    fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Writes every throttle's pending summary whose window has passed.
pub fn flush() {
    let now = Instant::now();
    let all = ALL.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for t in all {
        t.flush(now);
    }
}

/// Spawns the once-a-second [`flush`] on the current actix/tokio runtime.
pub fn spawn_flusher() {
    actix_web::rt::spawn(async {
        let mut tick = tokio::time::interval(WINDOW);
        loop {
            tick.tick().await;
            flush();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_then_a_count() {
        static T: Throttle = Throttle::new("test events");
        for i in 0..10_000 {
            T.warn(format_args!("case {i}"));
        }
        // The first was written; the rest wait for the window.
        assert_eq!(T.pending(), 9_999);
        // Not before the window has passed...
        T.flush(Instant::now());
        assert_eq!(T.pending(), 9_999);
        // ...and all of them once it has.
        T.flush(Instant::now() + WINDOW);
        assert_eq!(T.pending(), 0);
    }
}
