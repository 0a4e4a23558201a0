//! `--profile SECS`: the raw-websocket 100 × 1 load for SECS seconds under
//! `perf record -g -p <proxy>`, writing `target/bench/perf.data`, and the
//! command that reports it.

use std::process::Command;
use std::time::Duration;

use crate::Error;
use crate::conn::Kind;
use crate::load;
use crate::procs::{self, Setup};

/// `perf record -g` of the proxy during the raw ws 100 × 1 load.
pub async fn run(setup: &Setup, secs: u64) -> Result<bool, Error> {
    let proxy = setup.start_proxy("profile").await?;
    let data = setup.out_dir.join("perf.data");
    let mut cmd = Command::new("perf");
    cmd.args(["record", "-g", "-o"])
        .arg(&data)
        .args(["-p", &proxy.proxy.pid().to_string()]);
    let perf = procs::spawn("perf", cmd, &setup.out_dir.join("perf.log"))?;
    // Give perf a moment to attach before the load starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = load::Server {
        port: proxy.port,
        pid: proxy.proxy.pid(),
        backend: Some(proxy.echo.pid()),
        pinned: setup.pinning.enabled,
    };
    let window = Duration::from_secs(secs);
    let rate = load::throughput(
        Kind::Raw,
        server,
        100,
        1,
        Duration::from_millis(200),
        window,
    )
    .await?;
    // SIGINT lets perf write its file; Drop's SIGKILL is only the fallback.
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(perf.pid() as i32, libc::SIGINT);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(perf);
    println!(
        "raw ws 100 × 1 under perf: {:.0}/s, proxy {:.0} % CPU, {:.2} µs/rt, {:.2} context switches/rt",
        rate.median, rate.server_cpu, rate.server_us_per_rt, rate.server_cs_per_rt
    );
    println!(
        "perf report -i {} --stdio --no-children | head -60",
        data.display()
    );
    Ok(true)
}
