//! `--curve`: issue 12's figure, what CURVE costs. Two proxies (one worker,
//! core 0), one serving `/echo` with the NULL mechanism and one with CURVE
//! (keys by the crate's `keygen`, the backend's key in `curve_clients`),
//! each with the same echo backend (`zmtp_echo.rs`, core 1), which speaks
//! NULL or CURVE as its proxy does. The raw-websocket load of 100 sessions ×
//! 1 in flight (the bench's headline row, where the proxy does the least
//! work besides CURVE, so CURVE's share is the largest) runs against each
//! in turn, off then on, `ROUNDS` times; each mode's figures are the
//! median of its rounds, so that a neighbour's burst moves one round only.
//!
//! Prints, and saves to `target/bench/curve.md`: round trips/s, the
//! proxy's CPU time per round trip, the CPU use of proxy and backend, the
//! other tasks' load, and the throughput lost with CURVE against the 25 %
//! the issue allows (judged in full runs only). Exits non-zero if a
//! measurement failed (a lost or wrong echo fails it, as everywhere).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;
use crate::conn::Kind;
use crate::load::{self, Rate};
use crate::procs::{self, Child, ProxyPorts, Setup};
use crate::zmtp_echo;

/// Most throughput CURVE may cost (issue 12).
const ALLOWED_COST: f64 = 0.25;

/// Sizes of a `--curve` run.
pub struct Plan {
    pub sessions: usize,
    pub rounds: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub smoke: bool,
    pub out: PathBuf,
}

/// A proxy and its ZMTP echo backend.
struct Pair {
    proxy: Child,
    echo: Child,
    port: u16,
}

/// The proxy's key pair and the backend's, as `keygen` writes them.
struct KeyFiles {
    server_secret: PathBuf,
    server_public: PathBuf,
    clients: PathBuf,
    backend_secret: PathBuf,
}

pub async fn run(setup: &Setup, plan: Plan) -> Result<bool, Error> {
    let keys = keygen(&setup.out_dir.join("curve-keys"))?;
    let off = start(setup, "curve-off", None).await?;
    let on = start(setup, "curve-on", Some(&keys)).await?;
    let mut rates: [Vec<Rate>; 2] = [Vec::new(), Vec::new()];
    let mut errors = Vec::new();
    for round in 1..=plan.rounds {
        for (i, pair) in [&off, &on].into_iter().enumerate() {
            let label = ["CURVE off", "CURVE on"][i];
            let server = load::Server {
                port: pair.port,
                pid: pair.proxy.pid(),
                backend: Some(pair.echo.pid()),
                pinned: setup.pinning.enabled,
            };
            let rate = load::throughput(
                Kind::Raw,
                server,
                plan.sessions,
                1,
                plan.warmup,
                plan.measure,
            )
            .await;
            match rate {
                Ok(r) => {
                    eprintln!(
                        "round {round}, {label}: {:.0}/s, proxy {:.0} % CPU, {:.2} µs/rt, echo backend {:.0} % CPU, other tasks {:.0} % CPU, idle cores 0/1 {:?}",
                        r.median,
                        r.server_cpu,
                        r.server_us_per_rt,
                        r.backend_cpu.unwrap_or(0.0),
                        r.others,
                        r.idle.map(|[a, b]| (a.round(), b.round()))
                    );
                    rates[i].push(r);
                }
                Err(e) => errors.push(format!("round {round}, {label}: {e}")),
            }
        }
    }
    let mut pairs = [off, on];
    for p in &mut pairs {
        p.proxy.check_alive()?;
        p.echo.check_alive()?;
    }
    let table = report(&plan, &rates, &errors);
    println!("{table}");
    std::fs::write(&plan.out, &table)?;
    eprintln!("saved {}", plan.out.display());
    Ok(errors.is_empty())
}

/// Fresh keys in `dir`: the proxy's, and one backend's whose public
/// certificate is the only one in `dir/clients`.
fn keygen(dir: &Path) -> Result<KeyFiles, Error> {
    let _ = std::fs::remove_dir_all(dir);
    let (server_public, server_secret) = sockjsproxy::config::curve::keygen(dir, "proxy")?;
    let backends = dir.join("backends");
    let (backend_public, backend_secret) = sockjsproxy::config::curve::keygen(&backends, "bench")?;
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients)?;
    std::fs::copy(backend_public, clients.join("bench.key"))?;
    Ok(KeyFiles {
        server_secret,
        server_public,
        clients,
        backend_secret,
    })
}

/// Starts a proxy (core 0) with CURVE when `keys` says so, and its echo
/// backend (core 1); waits until an echo goes through both.
async fn start(setup: &Setup, name: &str, keys: Option<&KeyFiles>) -> Result<Pair, Error> {
    let ports = ProxyPorts {
        http: procs::free_port()?,
        push: procs::free_port()?,
        pull: procs::free_port()?,
    };
    let config = procs::write_config(&setup.out_dir, name, &ports)?;
    if let Some(k) = keys {
        // The service's table is the file's last: its keys go at the end.
        let mut text = std::fs::read_to_string(&config)?;
        text.push_str(&format!(
            "curve_secret_key = {:?}\ncurve_clients = {:?}\n",
            k.server_secret, k.clients
        ));
        std::fs::write(&config, text)?;
    }
    let mut cmd = setup.pinning.command(0, &setup.proxy_bin);
    cmd.arg("--config").arg(&config);
    let mut proxy = procs::spawn(name, cmd, &setup.out_dir.join(format!("{name}.log")))?;
    procs::wait_listening(&mut proxy, ports.http, Duration::from_secs(10)).await?;
    let mut cmd = setup.pinning.command(1, &setup.self_bin);
    let curve = keys.map(|k| (k.backend_secret.as_path(), k.server_public.as_path()));
    cmd.arg("--zmtp-echo")
        .arg(zmtp_echo::spec(ports.push, ports.pull, curve));
    let echo_name = format!("{name}-echo");
    let mut echo = procs::spawn(
        &echo_name,
        cmd,
        &setup.out_dir.join(format!("{echo_name}.log")),
    )?;
    load::wait_echo(ports.http, Duration::from_secs(10)).await?;
    echo.check_alive()?;
    Ok(Pair {
        proxy,
        echo,
        port: ports.http,
    })
}

/// The median of `f` over `rates`.
fn median(rates: &[Rate], f: impl Fn(&Rate) -> f64) -> Option<f64> {
    let mut v: Vec<f64> = rates.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (n > 0).then(|| (v[n / 2] + v[(n - 1) / 2]) / 2.0)
}

/// A row of the table: its name, its figure, the digits shown.
type Row = (&'static str, fn(&Rate) -> f64, usize);

fn report(plan: &Plan, rates: &[Vec<Rate>; 2], errors: &[String]) -> String {
    let mut t = format!(
        "## CURVE off and on: raw websocket, {} sessions × 1, 32-byte messages\n\n\
         {} run; {} round(s) of {:.1} s per mode, alternating; medians of the rounds\n\n\
         | measure | CURVE off | CURVE on | on / off |\n|---|---|---|---|\n",
        plan.sessions,
        if plan.smoke {
            "SMOKE (tiny, not judged)"
        } else {
            "full"
        },
        plan.rounds,
        plan.measure.as_secs_f64(),
    );
    let rows: [Row; 5] = [
        ("round trips/s", |r| r.median, 0),
        ("proxy CPU µs per round trip", |r| r.server_us_per_rt, 2),
        ("proxy CPU %", |r| r.server_cpu, 0),
        ("echo backend CPU %", |r| r.backend_cpu.unwrap_or(0.0), 0),
        ("other tasks' CPU %", |r| r.others, 0),
    ];
    for (name, f, digits) in rows {
        let [off, on] = [median(&rates[0], f), median(&rates[1], f)];
        let cell = |v: Option<f64>| v.map_or("ERROR".into(), |v| format!("{v:.digits$}"));
        let ratio = match (off, on) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
            _ => "–".into(),
        };
        t.push_str(&format!(
            "| {name} | {} | {} | {ratio} |\n",
            cell(off),
            cell(on)
        ));
    }
    let throughput = |i: usize| median(&rates[i], |r| r.median);
    if let (Some(off), Some(on)) = (throughput(0), throughput(1)) {
        let cost = 1.0 - on / off;
        t.push_str(&format!(
            "\nCURVE costs {:.1} % of throughput (allowed: {:.0} %){}\n",
            100.0 * cost,
            100.0 * ALLOWED_COST,
            match (plan.smoke, cost <= ALLOWED_COST) {
                (true, _) => ": not judged in a smoke run",
                (false, true) => ": met",
                (false, false) => ": NOT met",
            }
        ));
    }
    if !errors.is_empty() {
        t.push_str("\nErrors:\n");
        for e in errors {
            t.push_str(&format!("- {e}\n"));
        }
    }
    t
}
