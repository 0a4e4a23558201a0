//! The benchmark of issue 5: `cargo run --release --example bench`.
//!
//! It builds and starts the proxy (one actix worker, pinned to core 0), the
//! Rust zmq echo backend (`examples/echo.rs`, core 1) and a bare
//! tokio-tungstenite echo server as the reference (this binary with
//! `--reference-server`, core 0), drives each from a load generator on core 1,
//! and prints a Markdown table (also saved to `target/bench/results.md`):
//! round trips/s, latency percentiles, connects/s, RSS per idle session, and
//! 15,000 held SockJS sessions, with the ratio proxy / reference and the
//! issue's floors marked met / not met.
//!
//! `--smoke` runs every scenario with tiny counts in a few seconds and exits
//! non-zero if any scenario errs; CI runs that. `--hostile` runs issue 11's
//! hostile clients against well-behaved sessions instead (`hostile.rs`);
//! `--admission 1000` opens 1,000 sessions at once against an auth service
//! answering in 10 ms (`admission.rs`). `--curve` measures the raw-websocket
//! 100 × 1 load with CURVE off and on (`curve.rs`). `--profile SECS` runs
//! only the raw-websocket 100 × 1 load for SECS under `perf record -g` of
//! the proxy (`profile.rs`).
//!
//! Everything goes to 127.0.0.1 on free ports (`--hostile` dials from other
//! loopback addresses). Modules: `procs` (children, pinning, RSS),
//! `reference`, `wsclient`, `xhr`, `conn` (one session over any transport),
//! `load` (scenarios), `report` (the table).

mod admission;
mod attackers;
mod conn;
mod curve;
mod hostile;
mod load;
mod procs;
mod profile;
mod reference;
mod report;
mod wsclient;
mod xhr;
mod zmtp_echo;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Parser;

use conn::Kind;
use procs::{Pinning, Setup};
use report::{Memory, Results, Throughput};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Past this age a run repeats no disturbed measurement (see `--retries`).
const RETRY_BUDGET: Duration = Duration::from_secs(110);

/// Benchmark sockjsproxy against a bare WebSocket echo server (issue 5).
#[derive(Parser, Debug)]
#[command(name = "bench")]
struct Args {
    /// A few seconds with tiny counts: every scenario runs, floors are not
    /// judged, the exit code is non-zero if any scenario errs (for CI).
    #[arg(long)]
    smoke: bool,
    /// Seconds measured per throughput row (after the warm-up).
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Seconds of warm-up per throughput row, not measured.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Seconds of the 1000 sessions × 1 msg/s latency run, per target.
    #[arg(long, default_value_t = 10)]
    latency_secs: u64,
    /// Seconds of each connects/s run.
    #[arg(long, default_value_t = 2.0)]
    connect_secs: f64,
    /// Idle sessions opened to measure RSS per session.
    #[arg(long, default_value_t = 5000)]
    idle_sessions: usize,
    /// Concurrent SockJS sessions the proxy must hold and answer.
    #[arg(long, default_value_t = 15_000)]
    hold_sessions: usize,
    /// How many times a throughput measurement disturbed by other tasks on
    /// the machine (> 10 % of a core) is repeated; the least disturbed is kept.
    /// Retries stop once the run is 110 s old, to stay under 3 minutes.
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Do not pin processes to cores even on a machine with 2+ cores.
    #[arg(long)]
    no_pin: bool,
    /// Do not run `cargo build --release --bin sockjsproxy --example echo` first.
    #[arg(long)]
    no_build: bool,
    /// Where to save the table.
    #[arg(long, default_value = "target/bench/results.md")]
    out: PathBuf,
    /// Only profile: run raw ws 100 × 1 for SECS under `perf record -g -p
    /// <proxy>`, writing target/bench/perf.data.
    #[arg(long, value_name = "SECS")]
    profile: Option<u64>,
    /// Run only these scenario groups (comma-separated): memory, throughput,
    /// latency, connects, hold. Default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Drive only these targets (comma-separated): reference, raw, sockjs,
    /// xhr. Default: all.
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// Instead of the scenarios: hostile clients of each kind (a-f, see
    /// examples/bench/attackers.rs) against well-behaved SockJS sessions;
    /// prints their loss and latency and the proxy's peak RSS.
    #[arg(long)]
    hostile: bool,
    /// Seconds of a --hostile run (3 with --smoke).
    #[arg(long, default_value_t = 30.0)]
    hostile_secs: f64,
    /// Hostile clients of each kind (10 with --smoke).
    #[arg(long, default_value_t = 100)]
    hostile_clients: usize,
    /// Well-behaved sessions during a --hostile run.
    #[arg(long, default_value_t = 100)]
    hostile_healthy: usize,
    /// Attack kinds of a --hostile run, e.g. `a,e` (default: a to f).
    #[arg(long, value_delimiter = ',')]
    hostile_kinds: Vec<char>,
    /// Run each kind alone on a fresh proxy instead of all at once.
    #[arg(long)]
    hostile_separately: bool,
    /// Stop a --hostile run when the proxy's RSS passes this (MiB).
    #[arg(long, default_value_t = 1024)]
    hostile_guard_mib: u64,
    /// A --hostile run with `new_sessions_per_second = N` per address.
    #[arg(long)]
    hostile_per_address: Option<usize>,
    /// Instead of the scenarios: this many raw websockets open at once
    /// against an auth service answering in 10 ms (issue 15); prints how
    /// long until all were decided.
    #[arg(long, value_name = "SESSIONS")]
    admission: Option<usize>,
    /// Instead of the scenarios: raw websocket 100 × 1 with CURVE off and
    /// on (issue 12), ROUNDS rounds of each, alternating (1 with --smoke).
    #[arg(long, value_name = "ROUNDS", num_args = 0..=1, default_missing_value = "3")]
    curve: Option<usize>,
    /// Internal: be the reference echo server on this port.
    #[arg(long, hide = true)]
    reference_server: Option<u16>,
    /// Internal: be the ZMTP echo backend of `--curve` (see zmtp_echo.rs).
    #[arg(long, hide = true)]
    zmtp_echo: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(port) = args.reference_server {
        reference::run(port);
    }
    if let Some(spec) = &args.zmtp_echo {
        zmtp_echo::run(spec);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Children are killed when `run` returns or unwinds; only then do we exit.
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// Scenario sizes: the in a full run, tiny ones in a smoke run.
struct Plan {
    rows: Vec<(usize, usize)>,
    xhr_sessions: usize,
    warmup: Duration,
    measure: Duration,
    latency_sessions: usize,
    latency: Duration,
    connect: Duration,
    idle: usize,
    hold: usize,
}

impl Plan {
    fn new(a: &Args) -> Plan {
        if a.smoke {
            return Plan {
                rows: vec![(10, 1), (10, 8)],
                xhr_sessions: 10,
                warmup: Duration::from_millis(100),
                measure: Duration::from_millis(300),
                latency_sessions: 20,
                latency: Duration::from_millis(1500),
                connect: Duration::from_millis(300),
                idle: 100,
                hold: 300,
            };
        }
        Plan {
            rows: vec![(100, 1), (100, 8), (1000, 1), (1000, 8)],
            xhr_sessions: 100,
            warmup: Duration::from_secs_f64(a.warmup),
            measure: Duration::from_secs_f64(a.duration),
            latency_sessions: 1000,
            latency: Duration::from_secs(a.latency_secs),
            connect: Duration::from_secs_f64(a.connect_secs),
            idle: a.idle_sessions,
            hold: a.hold_sessions,
        }
    }
}

async fn run(args: Args) -> Result<bool, Error> {
    let started = Instant::now();
    let pinning = Pinning::detect(args.no_pin);
    let nofile = procs::raise_nofile();
    // Built before pinning, so that cargo may use every core.
    if !args.no_build {
        build()?;
    }
    // The load generator and the echo backend share core 1; the servers
    // under test get core 0 to themselves. This (only) thread is pinned before
    // any other exists, so every later thread and child inherits it.
    pinning.pin_self(1)?;
    let out_dir = PathBuf::from("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let setup = Setup {
        proxy_bin: PathBuf::from("target/release/sockjsproxy"),
        echo_bin: PathBuf::from("target/release/examples/echo"),
        self_bin: std::env::current_exe()?,
        out_dir: out_dir.clone(),
        pinning,
    };
    if let Some(secs) = args.profile {
        return profile::run(&setup, secs).await;
    }
    if let Some(rounds) = args.curve {
        let plan = curve::Plan {
            sessions: if args.smoke { 10 } else { 100 },
            rounds: if args.smoke { 1 } else { rounds.max(1) },
            warmup: Duration::from_secs_f64(if args.smoke { 0.1 } else { args.warmup }),
            measure: Duration::from_secs_f64(if args.smoke { 0.3 } else { args.duration }),
            smoke: args.smoke,
            out: out_dir.join("curve.md"),
        };
        return curve::run(&setup, plan).await;
    }
    if let Some(sessions) = args.admission {
        return admission::run(&setup, if args.smoke { 50 } else { sessions.max(1) }).await;
    }
    if args.hostile {
        let plan = hostile::Plan {
            duration: Duration::from_secs_f64(if args.smoke { 3.0 } else { args.hostile_secs }),
            clients: if args.smoke { 10 } else { args.hostile_clients },
            healthy: args.hostile_healthy,
            kinds: if args.hostile_kinds.is_empty() {
                attackers::KINDS.chars().collect()
            } else {
                args.hostile_kinds.clone()
            },
            separately: args.hostile_separately,
            guard_kib: args.hostile_guard_mib * 1024,
            per_address: args.hostile_per_address,
        };
        return hostile::run(&setup, plan).await;
    }
    let plan = Plan::new(&args);
    let group = |g: &str| args.only.is_empty() || args.only.iter().any(|o| o == g);
    let target = |k: Kind| {
        args.targets.is_empty()
            || args
                .targets
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&format!("{k:?}")))
    };
    let mut r = Results {
        smoke: args.smoke,
        ..Results::default()
    };
    r.notes.push(format!(
        "{} run, {} cores; {}; open-file limit {nofile}",
        if args.smoke { "SMOKE (tiny counts, floors not meaningful)" } else { "full" },
        pinning.cores,
        if pinning.enabled {
            "proxy and reference on core 0 (taskset -c 0), zmq echo backend and load generator on core 1"
        } else {
            "NOT pinned (fewer than 2 cores or --no-pin)"
        }
    ));
    r.notes
        .push(format!("load average at start: {}", procs::loadavg()));
    r.notes.push("proxy: target/release/sockjsproxy, workers = 1, response_limit = 1 GiB; reference: tokio-tungstenite 0.24, current-thread, 4 KiB read chunk".into());

    // Memory first, each on a fresh server, so that earlier scenarios' freed
    // heap cannot hide the cost of new sessions.
    for kind in [Kind::Reference, Kind::Raw, Kind::Sockjs] {
        if !group("memory") || !target(kind) {
            continue;
        }
        eprintln!("memory: {} × {} idle sessions", kind.label(), plan.idle);
        let held = match kind {
            Kind::Reference => {
                let (child, port) = setup.start_reference("mem-reference").await?;
                load::hold(kind, port, plan.idle, child.pid()).await
            }
            _ => {
                let p = setup
                    .start_proxy(&format!("mem-{kind:?}").to_lowercase())
                    .await?;
                load::hold(kind, p.port, plan.idle, p.proxy.pid()).await
            }
        };
        let held = r.cell(&format!("memory {}", kind.label()), held);
        if let Ok(h) = &held
            && let Some(e) = &h.error
        {
            r.errors.push(format!("memory {}: {e}", kind.label()));
        }
        r.memory.push(Memory {
            kind,
            sessions: plan.idle,
            held,
        });
    }

    let (mut ref_child, ref_port) = setup.start_reference("reference").await?;
    let mut proxy = setup.start_proxy("proxy").await?;
    for &(sessions, inflight) in plan.rows.iter().filter(|_| group("throughput")) {
        let mut rates: [Option<report::Cell<load::Rate>>; 4] = [None, None, None, None];
        for (idx, kind) in [Kind::Reference, Kind::Raw, Kind::Sockjs, Kind::Xhr]
            .into_iter()
            .enumerate()
        {
            if (kind == Kind::Xhr && sessions != plan.xhr_sessions) || !target(kind) {
                continue;
            }
            let server = if kind == Kind::Reference {
                load::Server {
                    port: ref_port,
                    pid: ref_child.pid(),
                    backend: None,
                    pinned: pinning.enabled,
                }
            } else {
                load::Server {
                    port: proxy.port,
                    pid: proxy.proxy.pid(),
                    backend: Some(proxy.echo.pid()),
                    pinned: pinning.enabled,
                }
            };
            let mut rate =
                load::throughput(kind, server, sessions, inflight, plan.warmup, plan.measure).await;
            // A measurement that other tasks disturbed is repeated (while the
            // run stays within its time budget); the least disturbed is kept.
            let mut retries = if args.smoke { 0 } else { args.retries };
            while let Ok(v) = &rate {
                let noise = v.others;
                if noise <= report::NOISY || retries == 0 || started.elapsed() > RETRY_BUDGET {
                    break;
                }
                retries -= 1;
                eprintln!("  disturbed ({noise:.0} % other load), measuring again");
                let again =
                    load::throughput(kind, server, sessions, inflight, plan.warmup, plan.measure)
                        .await;
                match &again {
                    Ok(a) if a.others < noise => rate = again,
                    Ok(_) => {}
                    Err(_) => rate = again,
                }
            }
            if let Ok(v) = &rate {
                eprintln!(
                    "throughput {sessions} × {inflight}: {}: {:.0}/s (mean {:.0}), server {:.0} % CPU, {:.2} µs/rt, {:.2} cs/rt, generator {:.0} % CPU, echo backend {:.0} % CPU, other tasks {:.0} % CPU, idle cores 0/1 {:?}",
                    kind.label(),
                    v.median,
                    v.mean,
                    v.server_cpu,
                    v.server_us_per_rt,
                    v.server_cs_per_rt,
                    v.gen_cpu,
                    v.backend_cpu.unwrap_or(0.0),
                    v.others,
                    v.idle.map(|[a, b]| (a.round(), b.round()))
                );
            }
            rates[idx] = Some(r.cell(
                &format!("throughput {sessions} × {inflight} {}", kind.label()),
                rate,
            ));
        }
        r.throughput.push(Throughput {
            sessions,
            inflight,
            rates,
        });
    }
    for kind in [Kind::Reference, Kind::Raw, Kind::Sockjs] {
        if !group("latency") || !target(kind) {
            continue;
        }
        eprintln!("latency: {}", kind.label());
        let port = if kind == Kind::Reference {
            ref_port
        } else {
            proxy.port
        };
        let lat = load::latency(kind, port, plan.latency_sessions, plan.latency).await;
        let cell = r.cell(&format!("latency {}", kind.label()), lat);
        r.latency.push((kind, cell));
    }
    for kind in [Kind::Reference, Kind::Raw, Kind::Sockjs] {
        if !group("connects") || !target(kind) {
            continue;
        }
        eprintln!("connects: {}", kind.label());
        let port = if kind == Kind::Reference {
            ref_port
        } else {
            proxy.port
        };
        let c = load::connects(kind, port, 32, plan.connect).await;
        let cell = r.cell(&format!("connects {}", kind.label()), c);
        r.connects.push((kind, cell));
    }
    ref_child.check_alive()?;
    proxy.proxy.check_alive()?;
    drop((ref_child, proxy));

    if group("hold") {
        eprintln!("hold: {} SockJS sessions", plan.hold);
        let p = setup.start_proxy("hold").await?;
        let held = load::hold(Kind::Sockjs, p.port, plan.hold, p.proxy.pid()).await;
        let held = r.cell("hold", held);
        if let Ok(h) = &held
            && let Some(e) = &h.error
        {
            r.errors.push(format!("hold: {e}"));
        }
        r.hold = Some((plan.hold, held));
        drop(p);
    }

    r.notes.push(format!(
        "load average at end: {}; wall time {:.0} s",
        procs::loadavg(),
        started.elapsed().as_secs_f64()
    ));
    let table = r.markdown();
    println!("{table}");
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &table)?;
    eprintln!("saved {}", args.out.display());
    Ok(r.errors.is_empty())
}

/// Builds the proxy and the echo backend so that one command is enough.
fn build() -> Result<(), Error> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--bin",
            "sockjsproxy",
            "--example",
            "echo",
        ])
        .status()?;
    if !status.success() {
        return Err(format!("cargo build failed: {status}").into());
    }
    Ok(())
}
