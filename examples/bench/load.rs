//! The load generator's scenarios: throughput, latency, connects/s and held
//! sessions (for RSS per idle session and the 15,000-session floor).
//!
//! Each session is one tokio task on the generator's current-thread runtime
//! (no cross-thread wakeups; the generator owns one core). Every scenario is
//! bounded: sessions run under one deadline each, and every wait of the
//! controlling task has a timeout. Every echo is compared byte for byte with
//! what was sent; a session that sees a wrong, missing or extra message fails,
//! and a failed session fails the scenario.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};

use crate::Error;
use crate::conn::{Conn, Kind, message};

mod held;
pub use held::{Held, hold};

/// Connections being opened at once: enough to open 15,000 sessions in a few
/// seconds, few enough not to overflow the servers' accept backlogs.
const CONNECTING_AT_ONCE: usize = 200;
/// Longest wait for all sessions of a scenario to be open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for in-flight echoes after a scenario stops, and for closes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the controlling task and the session tasks share.
struct Ctl {
    connect_limit: Semaphore,
    /// Sessions that are open (and, in `hold`, answered).
    opened: AtomicUsize,
    answered: AtomicUsize,
    failed: AtomicUsize,
    /// The first session error, for the scenario's message.
    first_error: std::sync::Mutex<Option<String>>,
    stop: AtomicBool,
    /// Messages echoed and checked, over all sessions.
    received: AtomicU64,
}

impl Ctl {
    fn new() -> Arc<Ctl> {
        Arc::new(Ctl {
            connect_limit: Semaphore::new(CONNECTING_AT_ONCE),
            opened: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            first_error: std::sync::Mutex::new(None),
            stop: AtomicBool::new(false),
            received: AtomicU64::new(0),
        })
    }

    async fn open(&self, kind: Kind, port: u16) -> Result<Conn, Error> {
        let _permit = self.connect_limit.acquire().await?;
        let conn = Conn::open(kind, port).await?;
        self.opened.fetch_add(1, Relaxed);
        Ok(conn)
    }
}

/// Sessions `0..n` of one scenario, each under `deadline`; failures counted.
fn spawn_sessions<T, F, Fut>(
    n: usize,
    ctl: &Arc<Ctl>,
    deadline: Instant,
    f: F,
) -> Vec<JoinHandle<Result<T, Error>>>
where
    T: Send + 'static,
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
{
    (0..n as u32)
        .map(|i| {
            let fut = f(i);
            let ctl = ctl.clone();
            tokio::spawn(async move {
                let r = match timeout_at(deadline, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("session {i} timed out").into()),
                };
                if let Err(e) = &r {
                    ctl.failed.fetch_add(1, Relaxed);
                    let mut first = ctl.first_error.lock().unwrap_or_else(|p| p.into_inner());
                    first.get_or_insert_with(|| e.to_string());
                }
                r
            })
        })
        .collect()
}

/// Waits until `counter` reaches `n`, failing early if a session failed.
async fn wait_count(
    ctl: &Ctl,
    counter: &AtomicUsize,
    n: usize,
    limit: Duration,
    what: &str,
) -> Result<(), Error> {
    let deadline = Instant::now() + limit;
    while counter.load(Relaxed) < n {
        if ctl.failed.load(Relaxed) > 0 {
            let first = ctl.first_error.lock().unwrap_or_else(|p| p.into_inner());
            return Err(format!(
                "{} session(s) failed while {what}; first: {}",
                ctl.failed.load(Relaxed),
                first.as_deref().unwrap_or("?")
            )
            .into());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {n} sessions {what} within {limit:?}",
                counter.load(Relaxed)
            )
            .into());
        }
        sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Joins every session; the first error (with the number of failures) if any.
async fn join_all<T>(handles: Vec<JoinHandle<Result<T, Error>>>) -> Result<Vec<T>, Error> {
    let mut out = Vec::with_capacity(handles.len());
    let mut first: Option<Error> = None;
    let mut failures = 0;
    for h in handles {
        match h.await {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                failures += 1;
                first.get_or_insert(e);
            }
            Err(e) => {
                failures += 1;
                first.get_or_insert(e.to_string().into());
            }
        }
    }
    match first {
        None => Ok(out),
        Some(e) => Err(format!("{failures} session(s) failed; first: {e}").into()),
    }
}

/// Cancels sessions and waits until they are gone, so that their sockets
/// are closed before the next scenario (or the results file) needs a descriptor.
async fn abort_all<T>(handles: Vec<JoinHandle<T>>) {
    for h in &handles {
        h.abort();
    }
    for h in handles {
        let _ = h.await;
    }
}

/// Checks one echoed message against the one expected next.
fn check(got: &[u8], session: u32, seq: u64) -> Result<(), Error> {
    let want = message(session, seq);
    if got == want {
        return Ok(());
    }
    Err(format!(
        "session {session}: expected message {seq} {:?}, got {:?}",
        String::from_utf8_lossy(&want),
        String::from_utf8_lossy(got)
    )
    .into())
}

/// Round trips per second with `sessions` × `inflight` messages outstanding.
/// A throughput measurement.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Median of the rates of [`WINDOWS`] equal sub-windows: a neighbour's
    /// burst that stalls our core for a moment moves it far less than a mean.
    pub median: f64,
    pub mean: f64,
    /// CPU used by the server under test, in % of one core.
    pub server_cpu: f64,
    /// Server CPU time per round trip, in µs.
    pub server_us_per_rt: f64,
    /// CPU used by the load generator, in % of one core.
    pub gen_cpu: f64,
    /// CPU used by the zmq echo backend (proxy rows only), % of one core.
    pub backend_cpu: Option<f64>,
    /// CPU taken by all other tasks on the machine during the measurement,
    /// plus the hypervisor's steal time of cores 0 and 1, in % of one core:
    /// the noise that may have slowed this measurement.
    pub others: f64,
    /// Idle % of cores 0 and 1 (None when nothing is pinned): a generator core
    /// with no idle time means core 1, not the server, may be the limit.
    pub idle: Option<[f64; 2]>,
    /// Context switches of the server's threads per round trip.
    pub server_cs_per_rt: f64,
}

/// Where a server listens and which processes do its work.
#[derive(Clone, Copy, Debug)]
pub struct Server {
    pub port: u16,
    pub pid: u32,
    /// The zmq echo backend behind a proxy.
    pub backend: Option<u32>,
    /// Whether the server is on core 0 and the generator on core 1.
    pub pinned: bool,
}

/// Sub-windows of a throughput measurement.
pub const WINDOWS: u32 = 8;

/// Round trips per second with `sessions` × `inflight` messages outstanding;
/// The server's (and backend's) CPU use is read from /proc.
pub async fn throughput(
    kind: Kind,
    server: Server,
    sessions: usize,
    inflight: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<Rate, Error> {
    let Server {
        port,
        pid,
        backend,
        pinned,
    } = server;
    let ctl = Ctl::new();
    let (go_tx, go_rx) = watch::channel(false);
    let deadline = Instant::now() + OPEN_TIMEOUT + warmup + measure + DRAIN_TIMEOUT;
    let handles = spawn_sessions(sessions, &ctl, deadline, |i| {
        let (ctl, mut go) = (ctl.clone(), go_rx.clone());
        async move {
            let mut conn = ctl.open(kind, port).await?;
            go.wait_for(|g| *g).await?;
            let (mut sent, mut got) = (0u64, 0u64);
            for _ in 0..inflight {
                conn.queue(&message(i, sent));
                sent += 1;
            }
            conn.flush().await?;
            let mut ranges: Vec<Range<usize>> = Vec::with_capacity(16);
            // Runs until stopped and every message sent has come back.
            while got < sent {
                ranges.clear();
                conn.recv(&mut ranges).await?;
                let stopping = ctl.stop.load(Relaxed);
                ctl.received.fetch_add(ranges.len() as u64, Relaxed);
                for r in ranges.drain(..) {
                    check(conn.data(r), i, got)?;
                    got += 1;
                    if !stopping {
                        conn.queue(&message(i, sent));
                        sent += 1;
                    }
                }
                if !conn.has_buffered() {
                    conn.flush().await?;
                }
            }
            let _ = timeout(Duration::from_secs(1), conn.close()).await;
            Ok(got)
        }
    });
    let run = async {
        wait_count(&ctl, &ctl.opened, sessions, OPEN_TIMEOUT, "opened").await?;
        go_tx.send(true)?;
        sleep(warmup).await;
        let me = std::process::id();
        let (s0, g0) = (crate::procs::cpu_ns(pid)?, crate::procs::cpu_ns(me)?);
        let x0 = crate::procs::context_switches(pid)?;
        let b0 = backend.map(crate::procs::cpu_ns).transpose()?;
        let ours: Vec<u32> = [Some(pid), Some(me), backend]
            .into_iter()
            .flatten()
            .collect();
        let o0 = crate::procs::other_tasks_ns(&ours);
        let i0 = crate::procs::idle_secs().ok();
        let st0 = crate::procs::steal_secs().unwrap_or(0.0);
        let (c0, t0) = (ctl.received.load(Relaxed), Instant::now());
        let (mut c, mut t) = (c0, t0);
        let mut rates = Vec::with_capacity(WINDOWS as usize);
        for w in 1..=WINDOWS {
            sleep_until(t0 + measure * w / WINDOWS).await;
            let (cw, tw) = (ctl.received.load(Relaxed), Instant::now());
            rates.push((cw - c) as f64 / (tw - t).as_secs_f64());
            (c, t) = (cw, tw);
        }
        let (s1, g1) = (crate::procs::cpu_ns(pid)?, crate::procs::cpu_ns(me)?);
        let x1 = crate::procs::context_switches(pid)?;
        let b1 = backend.map(crate::procs::cpu_ns).transpose()?;
        let i1 = crate::procs::idle_secs().ok();
        let st1 = crate::procs::steal_secs().unwrap_or(0.0);
        let o1 = crate::procs::other_tasks_ns(&ours);
        if ctl.failed.load(Relaxed) > 0 {
            return Err::<Rate, Error>("a session failed during the run".into());
        }
        rates.sort_by(f64::total_cmp);
        let secs = (t - t0).as_secs_f64();
        let done = (c - c0).max(1) as f64;
        Ok(Rate {
            median: (rates[rates.len() / 2] + rates[(rates.len() - 1) / 2]) / 2.0,
            mean: (c - c0) as f64 / secs,
            server_cpu: (s1 - s0) as f64 / 1e7 / secs,
            server_us_per_rt: (s1 - s0) as f64 / 1e3 / done,
            gen_cpu: (g1 - g0) as f64 / 1e7 / secs,
            server_cs_per_rt: (x1 - x0) as f64 / done,
            backend_cpu: b0.zip(b1).map(|(b0, b1)| (b1 - b0) as f64 / 1e7 / secs),
            // Other tasks, and time the hypervisor gave other machines.
            others: crate::procs::other_tasks_delta(&o0, &o1) as f64 / 1e7 / secs
                + 100.0 * (st1 - st0).max(0.0) / secs,
            idle: i0
                .zip(i1)
                .filter(|_| pinned)
                .map(|(a, b)| [100.0 * (b[0] - a[0]) / secs, 100.0 * (b[1] - a[1]) / secs]),
        })
    };
    let result = run.await;
    ctl.stop.store(true, Relaxed);
    let _ = go_tx.send(true);
    Ok(finish(handles, result).await?.0)
}

/// Ends a scenario: on success joins every session (which checks that they
/// all drained cleanly); on failure aborts them so nothing outlives it.
async fn finish<T, R>(
    handles: Vec<JoinHandle<Result<T, Error>>>,
    result: Result<R, Error>,
) -> Result<(R, Vec<T>), Error> {
    match result {
        Ok(r) => Ok((r, join_all(handles).await?)),
        Err(e) => {
            abort_all(handles).await;
            Err(e)
        }
    }
}

/// Latency samples (µs) with `sessions` each sending one message a second at
/// a random phase for `duration`.
pub async fn latency(
    kind: Kind,
    port: u16,
    sessions: usize,
    duration: Duration,
) -> Result<Vec<u32>, Error> {
    let ctl = Ctl::new();
    let (go_tx, go_rx) = watch::channel(false);
    let deadline = Instant::now() + OPEN_TIMEOUT + duration + DRAIN_TIMEOUT;
    let handles = spawn_sessions(sessions, &ctl, deadline, |i| {
        let (ctl, mut go) = (ctl.clone(), go_rx.clone());
        async move {
            let mut conn = ctl.open(kind, port).await?;
            go.wait_for(|g| *g).await?;
            let start = Instant::now();
            let until = start + duration;
            let mut next = start + Duration::from_micros(phase(i) % 1_000_000);
            let mut samples = Vec::with_capacity(duration.as_secs() as usize + 1);
            let mut ranges = Vec::with_capacity(2);
            let mut seq = 0;
            while next < until {
                sleep_until(next).await;
                let t = Instant::now();
                conn.queue(&message(i, seq));
                conn.flush().await?;
                ranges.clear();
                conn.recv(&mut ranges).await?;
                let rtt = t.elapsed();
                if ranges.len() != 1 {
                    return Err(
                        format!("session {i}: {} messages for one sent", ranges.len()).into(),
                    );
                }
                check(conn.data(ranges[0].clone()), i, seq)?;
                samples.push(rtt.as_micros().min(u32::MAX as u128) as u32);
                seq += 1;
                next += Duration::from_secs(1);
            }
            let _ = timeout(Duration::from_secs(1), conn.close()).await;
            Ok(samples)
        }
    });
    let result = async {
        wait_count(&ctl, &ctl.opened, sessions, OPEN_TIMEOUT, "opened").await?;
        go_tx.send(true)?;
        Ok(())
    }
    .await;
    let (_, per_session) = finish(handles, result).await?;
    let mut all: Vec<u32> = per_session.into_iter().flatten().collect();
    all.sort_unstable();
    Ok(all)
}

/// A per-session pseudo-random number (splitmix64), for send phases.
fn phase(i: u32) -> u64 {
    let mut z = u64::from(i).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Connects per second: `workers` clients each opening a session, getting
/// its `o` (SockJS) or one echo (raw, reference), and closing it politely.
pub async fn connects(
    kind: Kind,
    port: u16,
    workers: usize,
    duration: Duration,
) -> Result<f64, Error> {
    let ctl = Ctl::new();
    let start = Instant::now();
    let until = start + duration;
    let handles = spawn_sessions(workers, &ctl, until + DRAIN_TIMEOUT, |i| async move {
        let mut n = 0u64;
        while Instant::now() < until {
            let mut conn = Conn::open(kind, port).await?;
            if kind != Kind::Sockjs {
                conn.queue(&message(i, n));
                conn.flush().await?;
                let mut ranges = Vec::with_capacity(1);
                conn.recv(&mut ranges).await?;
                if ranges.len() != 1 {
                    return Err("more than one echo for one message".into());
                }
                check(conn.data(ranges[0].clone()), i, n)?;
            }
            timeout(Duration::from_secs(2), conn.close())
                .await
                .map_err(|_| "close handshake timed out")??;
            n += 1;
        }
        Ok(n)
    });
    let counts = join_all(handles).await?;
    Ok(counts.iter().sum::<u64>() as f64 / start.elapsed().as_secs_f64())
}

/// Waits until one raw-websocket echo goes through the proxy and its backend
/// (the backend connects to the proxy's zmq sockets asynchronously).
pub async fn wait_echo(port: u16, limit: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + limit;
    let mut last: Error = "no attempt".into();
    while Instant::now() < deadline {
        let attempt = async {
            let mut conn = Conn::open(Kind::Raw, port).await?;
            conn.queue(&message(0, 0));
            conn.flush().await?;
            let mut ranges = Vec::new();
            conn.recv(&mut ranges).await?;
            check(conn.data(ranges[0].clone()), 0, 0)
        };
        match timeout(Duration::from_millis(500), attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(_) => last = "no echo within 500 ms".into(),
        }
        sleep(Duration::from_millis(50)).await;
    }
    Err(format!("the proxy's echo backend did not answer within {limit:?}: {last}").into())
}
