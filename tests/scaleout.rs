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
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::{sleep, timeout};
use tokio_tungstenite::tungstenite::Message;

const SESSIONS: usize = 200;
const ECHOES: usize = 5;
const HEARTBEAT_MS: u64 = 250;
const LIVENESS_MS: u64 = 1500;
/// The whole test; it normally takes a few seconds.
const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

type Lines = Arc<Mutex<Vec<String>>>;

/// A child process, killed on drop, whose stderr is kept.
struct Proc {
    child: Child,
    lines: Lines,
}

fn spawn(program: &Path, args: &[String], rust_log: &str) -> Proc {
    let mut child = Command::new(program)
        .args(args)
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    let lines: Lines = Arc::default();
    let mut pipe = BufReader::new(child.stderr.take().unwrap()).lines();
    let keep = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = pipe.next_line().await {
            keep.lock().unwrap().push(line);
        }
    });
    Proc { child, lines }
}

impl Proc {
    fn contains(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    async fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The example binaries next to the proxy's, (re)built: `cargo test --test
/// scaleout` alone does not build examples, and a stale one would mislead.
fn example(name: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_sockjsproxy"));
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if bin.parent().unwrap().ends_with("release") {
        cargo.arg("--release");
    }
    assert!(
        cargo.status().unwrap().success(),
        "cargo build --example {name}"
    );
    bin.parent().unwrap().join("examples").join(name)
}

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

// ---- A SockJS client of three transports, which reports loss, never panics.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Transport {
    Websocket,
    XhrStreaming,
    XhrPolling,
}

#[derive(Debug)]
struct Lost(String);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

enum Session {
    Ws(Box<Ws>),
    /// The streaming response, what was read of it (raw, then de-chunked) but
    /// not parsed yet, and the session's base path.
    Streaming(TcpStream, Vec<u8>, Vec<u8>, String),
    Polling(String),
}

/// Takes complete chunks of a chunked body from `raw` into `body`; false at
/// the last chunk.
fn dechunk(raw: &mut Vec<u8>, body: &mut Vec<u8>) -> bool {
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return true;
        };
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            return false;
        }
        if raw.len() < eol + 2 + size + 2 {
            return true;
        }
        body.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw.drain(..eol + 2 + size + 2);
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`, so the
/// response ends with it): status, body.
async fn http1(port: u16, path: &str, body: &str) -> Result<(u16, String), Lost> {
    let lost = |e: std::io::Error| Lost(format!("{path}: {e}"));
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(lost)?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.map_err(lost)?;
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.map_err(lost)?;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut raw = out.get(split + 4..).unwrap_or_default().to_vec();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut body = Vec::new();
        dechunk(&mut raw, &mut body);
        String::from_utf8_lossy(&body).into_owned()
    } else {
        String::from_utf8_lossy(&raw).into_owned()
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Lost(format!("{path}: no status in {head:?}")))?;
    Ok((status, body.to_string()))
}

fn messages_of(frame: &str) -> Vec<String> {
    frame
        .strip_prefix('a')
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

impl Session {
    async fn open(port: u16, transport: Transport, id: &str) -> Result<Session, Lost> {
        let base = format!("/000/{id}");
        match transport {
            Transport::Websocket => {
                let url = format!("ws://127.0.0.1:{port}{base}/websocket");
                let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                    .await
                    .map_err(|e| Lost(format!("websocket: {e}")))?;
                let mut s = Session::Ws(Box::new(ws));
                match s.frame().await? {
                    f if f == "o" => Ok(s),
                    f => Err(Lost(format!("websocket opened with {f:?}"))),
                }
            }
            Transport::XhrStreaming => {
                let lost = |e: std::io::Error| Lost(format!("xhr_streaming: {e}"));
                let mut conn = TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map_err(lost)?;
                let req = format!(
                    "POST {base}/xhr_streaming HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
                );
                conn.write_all(req.as_bytes()).await.map_err(lost)?;
                let mut s = Session::Streaming(conn, Vec::new(), Vec::new(), base);
                match s.frame().await? {
                    f if f == "o" => Ok(s),
                    f => Err(Lost(format!("xhr_streaming opened with {f:?}"))),
                }
            }
            Transport::XhrPolling => match http1(port, &format!("{base}/xhr"), "").await? {
                (200, body) if body == "o\n" => Ok(Session::Polling(base)),
                other => Err(Lost(format!("xhr opened with {other:?}"))),
            },
        }
    }

    /// The next frame other than a heartbeat (streaming and websocket).
    async fn frame(&mut self) -> Result<String, Lost> {
        loop {
            let frame = match self {
                Session::Ws(ws) => match ws.next().await {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => return Err(Lost(format!("websocket: {other:?}"))),
                },
                Session::Streaming(conn, raw, buf, _) => loop {
                    // Skip the response head (the `h` prelude is skipped below).
                    let head = raw.starts_with(b"HTTP/");
                    if head && let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        raw.drain(..i + 4);
                        continue;
                    }
                    if !head && !dechunk(raw, buf) {
                        return Err(Lost("xhr_streaming: response ended".into()));
                    }
                    if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        break String::from_utf8_lossy(&line[..i]).into_owned();
                    }
                    let mut chunk = [0u8; 8192];
                    match conn.read(&mut chunk).await {
                        Ok(0) => return Err(Lost("xhr_streaming: connection closed".into())),
                        Ok(n) => raw.extend_from_slice(&chunk[..n]),
                        Err(e) => return Err(Lost(format!("xhr_streaming: {e}"))),
                    }
                },
                Session::Polling(_) => unreachable!("polling reads with requests"),
            };
            if frame.starts_with('c') {
                return Err(Lost(format!("closed: {frame}")));
            }
            if !frame.is_empty() && !frame.bytes().all(|b| b == b'h') {
                return Ok(frame);
            }
        }
    }

    /// Sends one message and waits for its echo.
    async fn echo(&mut self, port: u16, text: &str) -> Result<(), Lost> {
        let payload = serde_json::to_string(&[text]).unwrap();
        let got = match self {
            Session::Ws(ws) => {
                ws.send(Message::Text(payload))
                    .await
                    .map_err(|e| Lost(format!("websocket send: {e}")))?;
                messages_of(&self.frame().await?)
            }
            Session::Streaming(_, _, _, base) => {
                let send = format!("{base}/xhr_send");
                match http1(port, &send, &payload).await? {
                    (204, _) => messages_of(&self.frame().await?),
                    other => return Err(Lost(format!("xhr_send: {other:?}"))),
                }
            }
            Session::Polling(base) => {
                match http1(port, &format!("{base}/xhr_send"), &payload).await? {
                    (204, _) => {}
                    other => return Err(Lost(format!("xhr_send: {other:?}"))),
                }
                match http1(port, &format!("{base}/xhr"), "").await? {
                    (200, body) => messages_of(body.trim_end()),
                    other => return Err(Lost(format!("xhr: {other:?}"))),
                }
            }
        };
        if got == [text] {
            Ok(())
        } else {
            Err(Lost(format!("sent {text:?}, got {got:?}")))
        }
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
    timeout(LIMIT, scenario(nginx_bin))
        .await
        .expect("the scale-out test took over 60 s");
}

async fn scenario(nginx_bin: PathBuf) {
    let started = Instant::now();
    let ports = common::free_ports(7);
    let (web, http_a, http_b) = (ports[0], ports[1], ports[2]);
    let endpoint = |p: u16| format!("tcp://127.0.0.1:{p}");
    let (p_events, p_commands, w_events, w_commands) = (ports[3], ports[4], ports[5], ports[6]);

    let broker = spawn(
        &example("broker"),
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
    let echo = example("echo");
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
