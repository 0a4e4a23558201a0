//! What an attack cost the proxy, read from `/proc/<pid>`: its peak resident
//! memory (`VmHWM`, which the kernel keeps as a high-water mark, so no spike
//! between two samples is missed) and its CPU time (`utime + stime` of
//! `/proc/<pid>/stat`, all threads). A [`Watchdog`] also samples `VmRSS`
//! every 20 ms and stops the attack as soon as the proxy passes the test's
//! memory limit: an undefended proxy grows by about 1 GB a second under these
//! attacks, and stopping at the limit fails the test at once instead of
//! taking the machine's memory (and other engineers' runs) with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The issue's bound: with default settings no single attack takes the proxy
/// past 512 MiB.
pub const RSS_LIMIT_KIB: u64 = 512 * 1024;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Peak resident memory so far, KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// Resident memory now, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// CPU time used so far by every thread of the process.
pub fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces:
    // state is field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Tells attack loops to stop: at their deadline, or when the watchdog saw
/// the proxy pass its memory limit. Cheap to clone.
#[derive(Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Stop {
    /// A stop that fires by itself after `after`.
    pub fn after(after: Duration) -> Stop {
        let (tx, rx) = watch::channel(false);
        let stop = Stop {
            tx: Arc::new(tx),
            rx,
        };
        let timer = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            timer.fire();
        });
        stop
    }

    pub fn fire(&self) {
        self.tx.send_replace(true);
    }

    pub fn fired(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until the stop fires.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// `work`'s output, or `None` if the stop fires first.
    pub async fn until<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            out = work => Some(out),
            _ = self.wait() => None,
        }
    }
}

/// Watches the proxy during an attack; see the module doc.
pub struct Watchdog {
    pid: u32,
    start: Instant,
    cpu_before: Duration,
    peak_before_kib: u64,
    over_at: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// What one attack cost the proxy.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    /// VmHWM at the end (the peak of the whole process life).
    pub peak_rss_kib: u64,
    /// How much the peak grew during the attack.
    pub peak_growth_kib: u64,
    /// VmRSS at the end.
    pub rss_kib: u64,
    /// CPU time the proxy used during the attack.
    pub cpu: Duration,
    pub wall: Duration,
    /// Whether the watchdog stopped the attack at the memory limit.
    pub over_limit: bool,
}

impl Watchdog {
    /// Starts watching `pid`; fires `stop` when its RSS passes `limit_kib`.
    pub fn start(pid: u32, limit_kib: u64, stop: &Stop) -> Watchdog {
        let over_at = Arc::new(AtomicU64::new(0));
        let (flag, stop) = (over_at.clone(), stop.clone());
        let task = tokio::spawn(async move {
            loop {
                let rss = rss_kib(pid).max(peak_rss_kib(pid));
                if rss > limit_kib {
                    flag.store(rss, Ordering::Relaxed);
                    stop.fire();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Watchdog {
            pid,
            start: Instant::now(),
            cpu_before: cpu(pid),
            peak_before_kib: peak_rss_kib(pid),
            over_at,
            task,
        }
    }

    /// Ends the watch and reports, printing the figures under `name`.
    pub fn finish(self, name: &str) -> Cost {
        self.task.abort();
        let peak = peak_rss_kib(self.pid);
        let cost = Cost {
            peak_rss_kib: peak,
            peak_growth_kib: peak.saturating_sub(self.peak_before_kib),
            rss_kib: rss_kib(self.pid),
            cpu: cpu(self.pid).saturating_sub(self.cpu_before),
            wall: self.start.elapsed(),
            over_limit: self.over_at.load(Ordering::Relaxed) > 0,
        };
        eprintln!(
            "{name}: proxy peak RSS {:.1} MiB (grew {:.1} MiB), RSS now {:.1} MiB, CPU {:.2} s in {:.2} s{}",
            cost.peak_rss_kib as f64 / 1024.0,
            cost.peak_growth_kib as f64 / 1024.0,
            cost.rss_kib as f64 / 1024.0,
            cost.cpu.as_secs_f64(),
            cost.wall.as_secs_f64(),
            if cost.over_limit {
                " (STOPPED at the memory limit)"
            } else {
                ""
            }
        );
        cost
    }
}

impl Cost {
    /// Asserts the issue's bound: peak RSS within [`RSS_LIMIT_KIB`].
    pub fn assert_within_issue_bound(&self, name: &str) {
        assert!(
            !self.over_limit && self.peak_rss_kib <= RSS_LIMIT_KIB,
            "{name}: the proxy's RSS passed 512 MiB (peak {:.0} MiB)",
            self.peak_rss_kib as f64 / 1024.0
        );
    }
}
