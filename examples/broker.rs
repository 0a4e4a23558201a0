//! The broker of scale-out mode: N proxies (`sockjsproxy --connect`) on one
//! side, M workers speaking the ordinary 3-part protocol on the other.
//!
//! ```text
//! proxies' PUSH ──► PULL  --proxies-events   (default tcp://*:9241)
//! proxies' DEALER ◄─ ROUTER --proxies-commands (default tcp://*:9242)
//! workers' PULL ◄── PUSH  --workers-events   (default tcp://*:9243)
//! workers' PUSH ──► PULL  --workers-commands (default tcp://*:9244)
//! ```
//!
//! Events are spread over the workers round-robin (PUSH); each command goes to
//! the proxy named in its session id (`<instance>.<n>`) through the ROUTER,
//! and `disconnectall` to every live proxy. Nothing is dropped for want of room:
//! the broker reads no more proxy events while no worker can take one, and no
//! more worker commands while a proxy's pipe is full, so slowness propagates
//! back to where it can be handled (the proxy's bounded event queue).
//!
//! It also keeps the backend's picture of sessions true when a proxy dies: it
//! tracks each instance's open sessions from `connect`/`disconnect`, and when
//! the instance's heartbeats stop for `--liveness-ms` (or it restarts, seen as a
//! new incarnation) it sends the workers a `disconnect` for each of them.
//!
//! One thread, blocking 0MQ calls: a broker only moves frames, and a single
//! core moves several hundred thousand messages a second.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use clap::Parser;

/// Route sockjsproxy scale-out traffic between proxies and workers.
#[derive(Debug, Parser)]
struct Args {
    /// Bound PULL that the proxies' PUSH sockets connect to.
    #[arg(long, default_value = "tcp://*:9241")]
    proxies_events: String,
    /// Bound ROUTER that the proxies' DEALER sockets connect to.
    #[arg(long, default_value = "tcp://*:9242")]
    proxies_commands: String,
    /// Bound PUSH that the workers' PULL sockets connect to.
    #[arg(long, default_value = "tcp://*:9243")]
    workers_events: String,
    /// Bound PULL that the workers' PUSH sockets connect to.
    #[arg(long, default_value = "tcp://*:9244")]
    workers_commands: String,
    /// A proxy silent for this long is dead: its sessions are disconnected.
    #[arg(long, default_value_t = 3000)]
    liveness_ms: u64,
}

#[derive(Debug, thiserror::Error)]
enum BrokerError {
    #[error("cannot set up {what} socket on {endpoint}: {source}")]
    Socket {
        what: &'static str,
        endpoint: String,
        source: zmq::Error,
    },
    #[error("0MQ failed: {0}")]
    Zmq(#[from] zmq::Error),
}

/// What the broker knows of one proxy.
struct Instance {
    incarnation: Vec<u8>,
    last_seen: Instant,
    sessions: HashSet<Vec<u8>>,
}

type Message = Vec<Vec<u8>>;

struct Broker {
    proxies_events: zmq::Socket,
    proxies_commands: zmq::Socket,
    workers_events: zmq::Socket,
    workers_commands: zmq::Socket,
    liveness: Duration,
    instances: HashMap<Vec<u8>, Instance>,
    /// Events made here (disconnects of lost sessions) waiting for a worker.
    to_workers: VecDeque<Message>,
    /// Commands waiting for their proxy's pipe to have room: (instance, frames).
    to_proxies: VecDeque<(Vec<u8>, Message)>,
    /// When the proxies' events were last all read. A heartbeat missing since
    /// long before then was not sent; one missing since later may only be
    /// unread, because the workers held the broker up.
    drained_at: Instant,
}

/// Messages moved per socket per turn, so no direction starves the others.
const BATCH: usize = 512;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    if let Err(e) = Broker::new(&args).and_then(|mut b| b.run()) {
        eprintln!("broker: {e}");
        std::process::exit(2);
    }
}

impl Broker {
    fn new(args: &Args) -> Result<Broker, BrokerError> {
        let zmq = zmq::Context::new();
        let socket = |what, kind, endpoint: &str| {
            let err = |source| BrokerError::Socket {
                what,
                endpoint: endpoint.to_string(),
                source,
            };
            let s = zmq.socket(kind).map_err(err)?;
            s.set_linger(0).map_err(err)?;
            s.set_sndhwm(100_000).map_err(err)?;
            s.set_rcvhwm(100_000).map_err(err)?;
            if kind == zmq::ROUTER {
                // Report an unknown or full peer instead of dropping silently,
                // and let a restarted proxy take over its identity at once.
                s.set_router_mandatory(true).map_err(err)?;
                s.set_router_handover(true).map_err(err)?;
            }
            s.bind(endpoint).map_err(err)?;
            Ok::<_, BrokerError>(s)
        };
        let broker = Broker {
            proxies_events: socket("proxy events PULL", zmq::PULL, &args.proxies_events)?,
            proxies_commands: socket("proxy commands ROUTER", zmq::ROUTER, &args.proxies_commands)?,
            workers_events: socket("worker events PUSH", zmq::PUSH, &args.workers_events)?,
            workers_commands: socket("worker commands PULL", zmq::PULL, &args.workers_commands)?,
            liveness: Duration::from_millis(args.liveness_ms),
            instances: HashMap::new(),
            to_workers: VecDeque::new(),
            to_proxies: VecDeque::new(),
            drained_at: Instant::now(),
        };
        log::info!(
            "broker: proxies → {} / ← {}, workers ← {} / → {}",
            args.proxies_events,
            args.proxies_commands,
            args.workers_events,
            args.workers_commands
        );
        Ok(broker)
    }

    fn run(&mut self) -> Result<(), BrokerError> {
        let tick = Duration::from_millis(50);
        let mut next_check = Instant::now() + tick;
        loop {
            // Wait for input we are ready to take, or for the room we need.
            let room = self.workers_events.get_events()?.contains(zmq::POLLOUT);
            let want_events = room && self.to_workers.is_empty();
            let want_commands = self.to_proxies.is_empty();
            let none = zmq::PollEvents::empty();
            let mut items = [
                self.proxies_events
                    .as_poll_item(if want_events { zmq::POLLIN } else { none }),
                self.workers_commands
                    .as_poll_item(if want_commands { zmq::POLLIN } else { none }),
                self.workers_events
                    .as_poll_item(if want_events { none } else { zmq::POLLOUT }),
            ];
            zmq::poll(&mut items, 10)?;
            self.flush_to_workers()?;
            self.flush_to_proxies()?;
            if self.to_workers.is_empty() {
                self.move_events()?;
            }
            if self.to_proxies.is_empty() {
                self.move_commands()?;
            }
            if Instant::now() >= next_check {
                self.expire();
                next_check = Instant::now() + tick;
            }
        }
    }

    /// Proxy events → workers, while a worker has room.
    fn move_events(&mut self) -> Result<(), BrokerError> {
        for _ in 0..BATCH {
            if !self.workers_events.get_events()?.contains(zmq::POLLOUT) {
                return Ok(());
            }
            let parts = match self.proxies_events.recv_multipart(zmq::DONTWAIT) {
                Ok(p) => p,
                Err(zmq::Error::EAGAIN) => {
                    self.drained_at = Instant::now();
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            let [kind, session, data] = parts.as_slice() else {
                log::warn!("broker: proxy event with {} frames dropped", parts.len());
                continue;
            };
            if kind == b"heartbeat" {
                self.heartbeat(session, data);
                continue;
            }
            let Some(instance) = instance_of(session) else {
                log::warn!("broker: event for session {session:?} without an instance dropped");
                continue;
            };
            let now = Instant::now();
            let entry = self
                .instances
                .entry(instance.to_vec())
                .or_insert_with(|| Instance {
                    incarnation: Vec::new(),
                    last_seen: now,
                    sessions: HashSet::new(),
                });
            entry.last_seen = now;
            match kind.as_slice() {
                b"connect" => {
                    entry.sessions.insert(session.clone());
                }
                b"disconnect" => {
                    entry.sessions.remove(session);
                }
                _ => {}
            }
            self.to_workers.push_back(parts);
            self.flush_to_workers()?;
        }
        Ok(())
    }

    /// Worker commands → the proxy each names.
    fn move_commands(&mut self) -> Result<(), BrokerError> {
        for _ in 0..BATCH {
            let parts = match self.workers_commands.recv_multipart(zmq::DONTWAIT) {
                Ok(p) => p,
                Err(zmq::Error::EAGAIN) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let [kind, session, _] = parts.as_slice() else {
                log::warn!("broker: worker command with {} frames dropped", parts.len());
                continue;
            };
            if kind == b"disconnectall" {
                for instance in self.instances.keys() {
                    self.to_proxies.push_back((instance.clone(), parts.clone()));
                }
            } else {
                match instance_of(session) {
                    Some(instance) => self.to_proxies.push_back((instance.to_vec(), parts)),
                    None => log::warn!("broker: command for session {session:?} dropped"),
                }
            }
            self.flush_to_proxies()?;
            if !self.to_proxies.is_empty() {
                return Ok(());
            }
        }
        Ok(())
    }

    fn flush_to_workers(&mut self) -> Result<(), BrokerError> {
        while let Some(parts) = self.to_workers.front() {
            match self.workers_events.send_multipart(parts, zmq::DONTWAIT) {
                Ok(()) => {
                    self.to_workers.pop_front();
                }
                Err(zmq::Error::EAGAIN) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn flush_to_proxies(&mut self) -> Result<(), BrokerError> {
        while let Some((instance, parts)) = self.to_proxies.front() {
            let mut frames = Vec::with_capacity(4);
            frames.push(instance.as_slice());
            frames.extend(parts.iter().map(Vec::as_slice));
            match self.proxies_commands.send_multipart(frames, zmq::DONTWAIT) {
                Ok(()) => {}
                // The proxy's pipe is full: keep it and read no more commands.
                Err(zmq::Error::EAGAIN) => return Ok(()),
                // No such proxy (any more): its sessions are gone with it.
                Err(zmq::Error::EHOSTUNREACH) => log::debug!(
                    "broker: no proxy {:?}, command dropped",
                    String::from_utf8_lossy(instance)
                ),
                Err(e) => return Err(e.into()),
            }
            self.to_proxies.pop_front();
        }
        Ok(())
    }

    fn heartbeat(&mut self, instance: &[u8], incarnation: &[u8]) {
        let now = Instant::now();
        let known = self.instances.get(instance).map(|i| i.incarnation.clone());
        match known {
            Some(old) if old == incarnation => {}
            // A restart under the same id: the old process's sessions are gone.
            Some(old) if !old.is_empty() => {
                self.lose(instance, "restarted");
                log::info!("broker: proxy {} back", String::from_utf8_lossy(instance));
            }
            _ => log::info!("broker: proxy {} up", String::from_utf8_lossy(instance)),
        }
        let entry = self
            .instances
            .entry(instance.to_vec())
            .or_insert_with(|| Instance {
                incarnation: Vec::new(),
                last_seen: now,
                sessions: HashSet::new(),
            });
        entry.incarnation = incarnation.to_vec();
        entry.last_seen = now;
    }

    fn expire(&mut self) {
        let drained = self.drained_at;
        let dead: Vec<Vec<u8>> = self
            .instances
            .iter()
            .filter(|(_, i)| drained.saturating_duration_since(i.last_seen) > self.liveness)
            .map(|(name, _)| name.clone())
            .collect();
        for name in dead {
            self.lose(&name, "silent");
        }
    }

    /// Forgets an instance and tells the workers each of its sessions ended.
    fn lose(&mut self, instance: &[u8], why: &str) {
        let Some(lost) = self.instances.remove(instance) else {
            return;
        };
        log::warn!(
            "broker: proxy {} {why}: disconnecting its {} sessions",
            String::from_utf8_lossy(instance),
            lost.sessions.len()
        );
        for session in lost.sessions {
            self.to_workers
                .push_back(vec![b"disconnect".to_vec(), session, Vec::new()]);
        }
    }
}

/// `web1-8080` of `web1-8080.42`.
fn instance_of(session: &[u8]) -> Option<&[u8]> {
    let dot = session.iter().rposition(|&b| b == b'.')?;
    (dot > 0).then(|| &session[..dot])
}
