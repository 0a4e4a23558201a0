//! `--admission`: issue 15's figure. 1,000 raw websockets open at once
//! against a service whose auth service (a libzmq ROUTER on a thread of this
//! process) answers each question after 10 ms, allowing even-numbered
//! clients and denying odd ones. A raw websocket is asked before the
//! upgrade, so its handshake's answer (101 or 403) is the decision. Prints
//! how many were decided, the wall time until the last one, and the
//! percentiles of one decision's time; exits non-zero if any was undecided.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::Error;
use crate::procs::{self, Setup};

/// The auth service's answer time.
const ANSWER_AFTER: Duration = Duration::from_millis(10);

pub async fn run(setup: &Setup, sessions: usize) -> Result<bool, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let (endpoint, service) = auth_service(stop.clone())?;
    let port = procs::free_port()?;
    let (push, pull) = (procs::free_port()?, procs::free_port()?);
    let config = setup.out_dir.join("admission.toml");
    std::fs::write(
        &config,
        format!(
            "http_address = \"127.0.0.1\"\nhttp_port = {port}\nworkers = 1\n\n\
             [[service]]\nprefix = \"/echo\"\npush = \"tcp://127.0.0.1:{push}\"\n\
             pull = \"tcp://127.0.0.1:{pull}\"\nauth = \"{endpoint}\"\nauth_timeout_ms = 10000\n"
        ),
    )?;
    let mut cmd = setup.pinning.command(0, &setup.proxy_bin);
    cmd.arg("--config").arg(&config);
    let mut proxy = procs::spawn("admission", cmd, &setup.out_dir.join("admission.log"))?;
    procs::wait_listening(&mut proxy, port, Duration::from_secs(10)).await?;
    // One warm-up question, so that the proxy's DEALER is connected.
    let _ = decide(port, 0).await;

    let started = Instant::now();
    let clients: Vec<_> = (0..sessions)
        .map(|n| tokio::spawn(async move { (decide(port, n).await, started.elapsed()) }))
        .collect();
    let mut times = Vec::new();
    let (mut allowed, mut denied, mut undecided) = (0, 0, 0);
    for c in clients {
        let (outcome, at) = c.await?;
        match outcome {
            Some(true) => allowed += 1,
            Some(false) => denied += 1,
            _ => undecided += 1,
        }
        times.push(at);
    }
    let wall = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = service.join();
    proxy.check_alive()?;
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "| admission: {sessions} raw websockets at once, auth service answering in {} ms | |\n\
         |---|---|\n\
         | decided | {} of {sessions} ({allowed} allowed, {denied} denied as asked) |\n\
         | all decided in | {:.0} ms |\n\
         | one decision p50 / p99 / max | {:.0} / {:.0} / {:.0} ms |",
        ANSWER_AFTER.as_millis(),
        allowed + denied,
        wall.as_secs_f64() * 1e3,
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        pct(1.0).as_secs_f64() * 1e3,
    );
    Ok(undecided == 0 && allowed == sessions.div_ceil(2))
}

/// `Some(true)`: upgraded; `Some(false)`: 403; `None`: anything else.
async fn decide(port: u16, n: usize) -> Option<bool> {
    let url = format!("ws://127.0.0.1:{port}/echo/websocket?n={n}");
    let connected = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await
    .ok()?;
    match connected {
        Ok((ws, _)) => {
            drop(ws);
            Some(true)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403 => Some(false),
        Err(_) => None,
    }
}

/// A ROUTER answering like a REP service, each answer `ANSWER_AFTER` after
/// its question: allow when the query's `n` is even.
fn auth_service(stop: Arc<AtomicBool>) -> Result<(String, std::thread::JoinHandle<()>), Error> {
    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::ROUTER)?;
    socket.set_linger(0)?;
    socket.bind("tcp://127.0.0.1:*")?;
    let endpoint = socket
        .get_last_endpoint()?
        .map_err(|_| "endpoint is not UTF-8")?;
    let thread = std::thread::spawn(move || {
        let mut due: std::collections::VecDeque<(Instant, Vec<Vec<u8>>)> = Default::default();
        while !stop.load(Ordering::Relaxed) {
            let wait = due.front().map_or(50, |(at, _)| {
                at.saturating_duration_since(Instant::now()).as_millis() as i64
            });
            if socket.poll(zmq::POLLIN, wait).unwrap_or(0) > 0 {
                while let Ok(mut parts) = socket.recv_multipart(zmq::DONTWAIT) {
                    let body = parts.pop().unwrap_or_default();
                    let question: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or_default();
                    let n: usize = question["query"]
                        .as_str()
                        .and_then(|q| q.strip_prefix("n="))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1);
                    let answer = if n.is_multiple_of(2) {
                        serde_json::json!({"allow": true, "user": format!("u{n}")})
                    } else {
                        serde_json::json!({"allow": false, "reason": "odd"})
                    };
                    parts.push(answer.to_string().into_bytes());
                    due.push_back((Instant::now() + ANSWER_AFTER, parts));
                }
            }
            while due.front().is_some_and(|(at, _)| *at <= Instant::now()) {
                if let Some((_, parts)) = due.pop_front() {
                    let _ = socket.send_multipart(parts, 0);
                }
            }
        }
    });
    Ok((endpoint, thread))
}
