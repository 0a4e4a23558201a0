//! The well-behaved side of the attack tests, and the backends around them:
//! a zmq echo backend and a backend that sends large messages, both on plain
//! libzmq sockets in their own threads (no channel to the test, so a flood of
//! events costs the test nothing), and healthy SockJS sessions that send on a
//! clock and count their lost echoes and their round trips.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::attack::session_id;
use super::meter::Stop;
use super::{Endpoints, ws};

/// A zmq echo backend on plain libzmq sockets in its own thread (no channel
/// to the test, so a flood of events costs the test nothing): every
/// `message` event goes straight back to its session.
pub struct ZmqEcho {
    stop: Arc<AtomicBool>,
    events: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ZmqEcho {
    pub fn start(service: &Endpoints) -> ZmqEcho {
        let (stop, events) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (pull_at, push_at) = (service.push.clone(), service.pull.clone());
        let (done, count) = (stop.clone(), events.clone());
        let thread = std::thread::spawn(move || {
            let ctx = zmq::Context::new();
            let pull = ctx.socket(zmq::PULL).unwrap();
            let push = ctx.socket(zmq::PUSH).unwrap();
            for s in [&pull, &push] {
                s.set_linger(0).unwrap();
                s.set_rcvtimeo(100).unwrap();
                s.set_sndtimeo(100).unwrap();
            }
            pull.connect(&pull_at).unwrap();
            push.connect(&push_at).unwrap();
            while !done.load(Ordering::Relaxed) {
                let Ok(parts) = pull.recv_multipart(0) else {
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                if parts.first().map(Vec::as_slice) != Some(b"message".as_slice()) {
                    continue;
                }
                while !done.load(Ordering::Relaxed) {
                    match push.send_multipart(&parts, 0) {
                        Err(zmq::Error::EAGAIN) => continue,
                        _ => break,
                    }
                }
            }
        });
        ZmqEcho {
            stop,
            events,
            thread: Some(thread),
        }
    }

    /// Events received so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

impl Drop for ZmqEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A backend that sends `message` commands of `size` bytes to each of
/// `sessions` in turn, as fast as the proxy takes them (plain libzmq PUSH in
/// its own thread, a high-water mark of 4 so that the test holds little),
/// skipping sessions in `closed`, until it is dropped. Counts what it sent.
pub struct ZmqSender {
    stop: Arc<AtomicBool>,
    pub sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ZmqSender {
    pub fn start(
        service: &Endpoints,
        sessions: Vec<String>,
        size: usize,
        closed: Arc<Mutex<HashSet<String>>>,
    ) -> ZmqSender {
        let (stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (done, count, at) = (stop.clone(), sent.clone(), service.pull.clone());
        let thread = std::thread::spawn(move || {
            let ctx = zmq::Context::new();
            let push = ctx.socket(zmq::PUSH).unwrap();
            push.set_linger(0).unwrap();
            push.set_sndhwm(4).unwrap();
            push.set_sndtimeo(100).unwrap();
            push.connect(&at).unwrap();
            let data = vec![b'x'; size];
            'all: while !done.load(Ordering::Relaxed) {
                let open: Vec<&String> = {
                    let closed = closed.lock().unwrap();
                    sessions.iter().filter(|s| !closed.contains(*s)).collect()
                };
                if open.is_empty() {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                for session in open {
                    let parts: [&[u8]; 3] = [b"message", session.as_bytes(), &data];
                    loop {
                        if done.load(Ordering::Relaxed) {
                            break 'all;
                        }
                        match push.send_multipart(parts, 0) {
                            Ok(()) => break,
                            Err(zmq::Error::EAGAIN) => continue,
                            Err(e) => panic!("zmq send: {e}"),
                        }
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        ZmqSender {
            stop,
            sent,
            thread: Some(thread),
        }
    }
}

impl Drop for ZmqSender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the well-behaved sessions saw.
#[derive(Debug, Default)]
pub struct Healthy {
    pub sent: u64,
    pub echoed: u64,
    /// Sessions that ended (closed or broke) before the run did.
    pub broken: u64,
    /// Round-trip times, sorted.
    pub rtts: Vec<Duration>,
}

impl Healthy {
    pub fn lost(&self) -> u64 {
        self.sent - self.echoed
    }

    /// The `p`th percentile round trip (0.0 to 1.0).
    pub fn percentile(&self, p: f64) -> Duration {
        if self.rtts.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.rtts.len() as f64 * p).ceil() as usize).clamp(1, self.rtts.len()) - 1;
        self.rtts[i]
    }
}

/// `n` SockJS websocket sessions, each sending one numbered message every
/// `period` until `stop`, whatever the echoes do, and reading every echo
/// (each is checked against what was sent, and timed). After `stop`, each
/// waits up to `drain` for the echoes still due: a message whose echo never
/// comes is lost; a late one only shows in the round trips.
pub async fn healthy_sessions(
    port: u16,
    prefix: &str,
    n: usize,
    period: Duration,
    drain: Duration,
    stop: Stop,
) -> Healthy {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (stop, prefix) = (stop.clone(), prefix.to_string());
            tokio::spawn(async move {
                let path = format!("{prefix}/000/{}/websocket", session_id("healthy"));
                let mut ws = ws::connect(port, &path).await;
                assert_eq!(
                    ws::text(&mut ws).await,
                    "o",
                    "healthy session {i} did not open"
                );
                let (mut sink, mut stream) = ws.split();
                let sent_at = Arc::new(Mutex::new(Vec::<Instant>::new()));
                let times = sent_at.clone();
                let sender = tokio::spawn(async move {
                    let mut tick = tokio::time::interval(period);
                    while !stop.fired() {
                        if stop.until(tick.tick()).await.is_none() {
                            break;
                        }
                        let seq = times.lock().unwrap().len();
                        let text = super::payload(&[&format!("healthy {i} {seq}")]);
                        times.lock().unwrap().push(Instant::now());
                        if sink.send(Message::Text(text)).await.is_err() {
                            break;
                        }
                    }
                    sink
                });
                let mut out = Healthy::default();
                let mut echoed = HashSet::new();
                let mut drain_until = None;
                loop {
                    if sender.is_finished() && drain_until.is_none() {
                        drain_until = Some(Instant::now() + drain);
                    }
                    let due = sent_at.lock().unwrap().len();
                    if drain_until.is_some() && echoed.len() >= due {
                        break;
                    }
                    let wait = drain_until.map_or(Duration::from_millis(50), |d| {
                        d.saturating_duration_since(Instant::now())
                    });
                    if wait.is_zero() {
                        break;
                    }
                    let frame = match tokio::time::timeout(
                        wait.min(Duration::from_millis(50)),
                        stream.next(),
                    )
                    .await
                    {
                        Err(_) => continue,
                        Ok(Some(Ok(Message::Text(frame)))) => frame,
                        Ok(Some(Ok(_))) => continue,
                        Ok(_) => {
                            out.broken = 1;
                            break;
                        }
                    };
                    if frame.starts_with('c') {
                        out.broken = 1;
                        break;
                    }
                    if !frame.starts_with('a') {
                        continue;
                    }
                    for m in super::messages(&frame) {
                        let seq: usize = m
                            .strip_prefix(&format!("healthy {i} "))
                            .and_then(|s| s.parse().ok())
                            .unwrap_or_else(|| panic!("session {i} got a foreign echo {m:?}"));
                        let at = sent_at.lock().unwrap()[seq];
                        assert!(echoed.insert(seq), "session {i}: echo {seq} came twice");
                        out.rtts.push(at.elapsed());
                    }
                }
                let _ = sender.await;
                out.sent = sent_at.lock().unwrap().len() as u64;
                out.echoed = echoed.len() as u64;
                out
            })
        })
        .collect();
    let mut all = Healthy::default();
    for t in tasks {
        let h = t.await.expect("healthy session task");
        all.sent += h.sent;
        all.echoed += h.echoed;
        all.broken += h.broken;
        all.rtts.extend(h.rtts);
    }
    all.rtts.sort_unstable();
    all
}
