//! Scale-out, end to end on loopback: nginx (samples/nginx-scaleout.conf)
//! in front of two `sockjsproxy --connect` instances, the example broker, and
//! three echo workers. 200 SockJS sessions over websocket, xhr-streaming and
//! xhr-polling each get every echo; then one proxy is SIGKILLed: its sessions
//! close, their clients reconnect through nginx to the other proxy and work, and
//! the workers hear `disconnect` for every lost session (from the broker, when
//! the dead proxy's heartbeats stop).
//!
//! Real processes only. Prints `SKIPPED` and passes if nginx cannot be installed.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep, timeout};

use common::client::{Lost, Session, Transport};
use common::procs::{Proc, example, spawn};

const SESSIONS: usize = 200;
const ECHOES: usize = 5;
const HEARTBEAT_MS: u64 = 250;
const LIVENESS_MS: u64 = 1500;
/// The whole test; it normally takes a few seconds.
const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

/// Debian's nginx, installed by tests/nginx-setup.sh when missing.
fn nginx() -> Option<PathBuf> {
    let find = || {
        ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(p) = find() {
        return Some(p);
    }
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nginx-setup.sh");
    let ok = std::process::Command::new("bash")
        .arg(setup)
        .status()
        .is_ok_and(|s| s.success());
    if ok { find() } else { None }
}

async fn listening(port: u16, nginx: &Proc) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port}: {:?}",
            nginx.lines.lock().unwrap()
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// What one client saw.
#[derive(Debug, Default)]
struct Outcome {
    lost: bool,
    reconnected: bool,
    detected_in: Option<Duration>,
}

/// One client: open, echo, and after the kill, probe; if lost, reconnect.
async fn client(
    port: u16,
    n: usize,
    transport: Transport,
    ready: tokio::sync::mpsc::Sender<()>,
    mut killed: watch::Receiver<Option<Instant>>,
) -> Result<Outcome, String> {
    let err = |stage: &str, e: Lost| format!("session {n} ({transport:?}) {stage}: {}", e.0);
    let mut session = Session::open(port, transport, &format!("s{n}"))
        .await
        .map_err(|e| err("open", e))?;
    for i in 0..ECHOES {
        session
            .echo(port, &format!("{n}-{i} \u{e9}"))
            .await
            .map_err(|e| err("echo", e))?;
    }
    ready.send(()).await.ok();
    drop(ready);
    let _ = killed.wait_for(|k| k.is_some()).await;
    let Some(killed_at) = *killed.borrow() else {
        return Err("the test gave up".into());
    };
    // A live session echoes; a lost one says so: a closed websocket or
    // stream, or an xhr_send the surviving proxy does not know (404).
    let probe = match &mut session {
        Session::Ws(_) | Session::Streaming(..) => {
            match timeout(Duration::from_millis(1500), session.frame()).await {
                Ok(Ok(f)) => Err(Lost(format!("unexpected frame {f}"))),
                Ok(Err(lost)) => Err(lost),
                Err(_) => session.echo(port, "probe").await,
            }
        }
        Session::Polling(_) => session.echo(port, "probe").await,
    };
    let mut outcome = Outcome::default();
    if probe.is_err() {
        outcome.lost = true;
        outcome.detected_in = Some(killed_at.elapsed());
        let mut again = Session::open(port, transport, &format!("r{n}"))
            .await
            .map_err(|e| err("reconnect", e))?;
        for i in 0..ECHOES {
            again
                .echo(port, &format!("again {n}-{i}"))
                .await
                .map_err(|e| err("echo after reconnect", e))?;
        }
        outcome.reconnected = true;
    }
    Ok(outcome)
}

/// (kind, session id) of every event the echo workers logged, per worker.
fn worker_events(workers: &[Proc]) -> Vec<Vec<(String, String)>> {
    workers
        .iter()
        .map(|w| {
            w.lines
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| {
                    let rest = &l[l.find("event ")? + 6..];
                    let (kind, session) = rest.split_once(' ')?;
                    Some((kind.to_string(), session.trim().to_string()))
                })
                .collect()
        })
        .collect()
}

fn sessions_of(workers: &[Proc], kind: &str, instance: &str) -> HashSet<String> {
    let prefix = format!("{instance}.");
    worker_events(workers)
        .into_iter()
        .flatten()
        .filter(|(k, s)| k == kind && s.starts_with(&prefix))
        .map(|(_, s)| s)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_three_workers_behind_nginx_survive_a_killed_proxy() {
    let Some(nginx_bin) = nginx() else {
        println!("SKIPPED: nginx is not installed and tests/nginx-setup.sh could not install it");
        return;
    };
    // Built (or found fresh) before the clock starts.
    let (broker, echo) = (example("broker"), example("echo"));
    timeout(LIMIT, scenario(nginx_bin, broker, echo))
        .await
        .expect("the scale-out test took over 60 s");
}

async fn scenario(nginx_bin: PathBuf, broker_bin: PathBuf, echo: PathBuf) {
    let started = Instant::now();
    let ports = common::free_ports(7);
    let (web, http_a, http_b) = (ports[0], ports[1], ports[2]);
    let endpoint = |p: u16| format!("tcp://127.0.0.1:{p}");
    let (p_events, p_commands, w_events, w_commands) = (ports[3], ports[4], ports[5], ports[6]);

    let broker = spawn(
        &broker_bin,
        &[
            "--proxies-events".into(),
            endpoint(p_events),
            "--proxies-commands".into(),
            endpoint(p_commands),
            "--workers-events".into(),
            endpoint(w_events),
            "--workers-commands".into(),
            endpoint(w_commands),
            "--liveness-ms".into(),
            LIVENESS_MS.to_string(),
        ],
        "info",
    );
    broker.wait_for("broker: proxies").await;
    let workers: Vec<Proc> = (0..3)
        .map(|_| {
            let args = [
                "--address",
                "127.0.0.1",
                "--in-port",
                &w_events.to_string(),
                "--out-port",
                &w_commands.to_string(),
            ];
            spawn(&echo, &args.map(String::from), "echo=debug")
        })
        .collect();
    let proxy = |name: &str, http: u16| {
        let args = [
            "--http-address",
            "127.0.0.1",
            "--http-port",
            &http.to_string(),
            "--address",
            "127.0.0.1",
            "--in-port",
            &p_events.to_string(),
            "--out-port",
            &p_commands.to_string(),
            "--workers",
            "1",
            "--connect",
            "--instance-id",
            name,
            "--scaleout-heartbeat-ms",
            &HEARTBEAT_MS.to_string(),
        ];
        spawn(
            Path::new(env!("CARGO_BIN_EXE_sockjsproxy")),
            &args.map(String::from),
            "info",
        )
    };
    let mut proxy_a = proxy("proxy-a", http_a);
    let proxy_b = proxy("proxy-b", http_b);
    proxy_a.wait_for("SockJS listening on").await;
    proxy_b.wait_for("SockJS listening on").await;
    broker.wait_for("proxy proxy-a up").await;
    broker.wait_for("proxy proxy-b up").await;

    // nginx, from the shipped sample, on our ports, in a prefix of its own.
    let prefix = std::env::temp_dir().join(format!("sockjs-scaleout-{}", std::process::id()));
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/nginx-scaleout.conf"),
    )
    .unwrap();
    let conf = sample
        .replace(
            "listen 127.0.0.1:8080;",
            &format!("listen 127.0.0.1:{web};"),
        )
        .replace("127.0.0.1:8081 ", &format!("127.0.0.1:{http_a} "))
        .replace("127.0.0.1:8082 ", &format!("127.0.0.1:{http_b} "));
    assert_ne!(conf, sample, "the sample's ports moved");
    std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
    let nginx = spawn(
        &nginx_bin,
        &[
            "-p".into(),
            format!("{}/", prefix.display()),
            "-c".into(),
            "nginx.conf".into(),
            "-e".into(),
            "stderr".into(),
            "-g".into(),
            "daemon off; master_process off;".into(),
        ],
        "info",
    );
    listening(web, &nginx).await;

    // 200 sessions through nginx, a third per transport, every echo checked.
    let transports = [
        Transport::Websocket,
        Transport::XhrStreaming,
        Transport::XhrPolling,
    ];
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(SESSIONS);
    let (kill_tx, kill_rx) = watch::channel(None);
    let phase = Instant::now();
    let clients: Vec<_> = (0..SESSIONS)
        .map(|n| {
            let t = transports[n % 3];
            tokio::spawn(client(web, n, t, ready_tx.clone(), kill_rx.clone()))
        })
        .collect();
    drop(ready_tx);
    let mut ready = 0;
    while ready < SESSIONS {
        match timeout(WAIT, ready_rx.recv()).await {
            Ok(Some(())) => ready += 1,
            _ => break,
        }
    }
    if ready < SESSIONS {
        for c in clients {
            if c.is_finished()
                && let Ok(Err(e)) = c.await
            {
                panic!("{e}\nnginx: {:?}", nginx.lines.lock().unwrap());
            }
        }
        panic!("only {ready} of {SESSIONS} sessions ready");
    }
    let echo_phase = phase.elapsed();
    // Connects and messages may reach different workers; let the logs settle.
    let deadline = Instant::now() + WAIT;
    let (mut on_a, mut on_b);
    loop {
        on_a = sessions_of(&workers, "connect", "proxy-a");
        on_b = sessions_of(&workers, "connect", "proxy-b");
        if on_a.len() + on_b.len() >= SESSIONS || Instant::now() > deadline {
            break;
        }
        sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        on_a.len() + on_b.len(),
        SESSIONS,
        "one backend session per client"
    );
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "nginx used both proxies"
    );
    let per_worker: Vec<usize> = worker_events(&workers)
        .iter()
        .map(|e| e.iter().filter(|(k, _)| k == "message").count())
        .collect();
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "every worker served: {per_worker:?}"
    );

    // SIGKILL proxy A: no goodbye; only the broker can tell the workers.
    let kill_at = Instant::now();
    proxy_a.child.start_kill().unwrap();
    proxy_a.child.wait().await.unwrap();
    kill_tx.send(Some(kill_at)).unwrap();
    let mut outcomes = Vec::new();
    for c in clients {
        match c.await.unwrap() {
            Ok(o) => outcomes.push(o),
            Err(e) => panic!("{e}"),
        }
    }
    let lost = outcomes.iter().filter(|o| o.lost).count();
    let reconnected = outcomes.iter().filter(|o| o.reconnected).count();
    let slowest_detection = outcomes.iter().filter_map(|o| o.detected_in).max();
    let recovery = kill_at.elapsed();
    assert_eq!(lost, on_a.len(), "exactly proxy A's sessions were lost");
    assert_eq!(
        reconnected, lost,
        "every lost client reconnected and echoed"
    );

    // The workers hear `disconnect` for each of proxy A's sessions.
    let deadline = Instant::now() + WAIT;
    let mut missing;
    loop {
        missing = on_a
            .difference(&sessions_of(&workers, "disconnect", "proxy-a"))
            .count();
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    let disconnects_in = kill_at.elapsed();
    assert_eq!(
        missing,
        0,
        "workers missed disconnects; broker said:\n{}",
        broker.lines.lock().unwrap().join("\n")
    );
    assert!(broker.contains("proxy proxy-a silent"));
    let mut by_transport: HashMap<Transport, usize> = HashMap::new();
    for (n, o) in outcomes.iter().enumerate() {
        if o.lost {
            *by_transport.entry(transports[n % 3]).or_default() += 1;
        }
    }
    println!(
        "scaleout: {SESSIONS} sessions x {ECHOES} echoes in {echo_phase:?} \
         (proxy-a {}, proxy-b {}; messages per worker {per_worker:?}); \
         killed proxy-a: {lost} lost ({by_transport:?}), slowest client noticed in \
         {slowest_detection:?}, all reconnected and echoed within {recovery:?}; \
         workers had every disconnect {disconnects_in:?} after the kill; total {:?}",
        on_a.len(),
        on_b.len(),
        started.elapsed()
    );
    drop(nginx);
    let _ = std::fs::remove_dir_all(&prefix);
}
