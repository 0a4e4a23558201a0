//! The processes under test and the machine around them: free ports, CPU
//! pinning, file-descriptor limits, the proxy's config file, RSS readings, and
//! a guard that kills each child when it goes out of scope.
//!
//! Every child is killed on every exit path of the bench: by `Drop` on a normal
//! return, an error or a panic (unwinding), and by `PR_SET_PDEATHSIG` if the
//! bench itself is killed, so that no proxy is left holding ports on the box.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// A child process that is killed and reaped when dropped.
pub struct Child {
    pub name: String,
    inner: std::process::Child,
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    /// An error if the child has already exited (e.g. it could not bind).
    pub fn check_alive(&mut self) -> Result<(), Error> {
        match self.inner.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited early: {status}", self.name).into()),
            Err(e) => Err(format!("{}: {e}", self.name).into()),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.inner.kill();
        let _ = self.inner.wait();
    }
}

/// Which cores things run on. With fewer than 2 cores nothing is pinned and
/// the numbers mean less; the table says so.
#[derive(Clone, Copy, Debug)]
pub struct Pinning {
    pub enabled: bool,
    /// Cores available when the bench started (before it pinned itself).
    pub cores: usize,
}

impl Pinning {
    pub fn detect(disabled: bool) -> Pinning {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Pinning {
            enabled: !disabled && cores >= 2,
            cores,
        }
    }

    /// `taskset -c <core> program` when pinning, else `program`.
    pub fn command(&self, core: usize, program: &Path) -> Command {
        if self.enabled {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core.to_string()).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    /// Pins the calling process (all its threads to come) to one core.
    pub fn pin_self(&self, core: usize) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only
        // read and write it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(core, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(
                    format!("sched_setaffinity: {}", std::io::Error::last_os_error()).into(),
                );
            }
        }
        Ok(())
    }
}

/// Raises the soft open-file limit to the hard one. Children inherit it, so
/// the proxy and the reference server get it too (15,000 sessions need
/// 15,000 descriptors on each side of loopback).
pub fn raise_nofile() -> u64 {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_cur
    }
}

/// A port nobody listens on right now. There is a window in which another
/// process could take it; on this box that is acceptable, and a clash shows
/// up as "exited early" rather than as a wrong number.
pub fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Starts a child with its output in `log`, killed if the bench dies.
pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Child, Error> {
    let out = File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .env("RUST_LOG", "warn");
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let inner = cmd
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    Ok(Child {
        name: name.to_string(),
        inner,
    })
}

/// Connects to the proxy at 127.0.0.1:`port` from the loopback address
/// `from` (all of 127/8 is this machine), so that per-address limits see
/// each source as a client of its own; `rcvbuf` shrinks the receive buffer.
pub async fn dial(
    port: u16,
    from: std::net::Ipv4Addr,
    rcvbuf: Option<u32>,
) -> Result<tokio::net::TcpStream, Error> {
    use std::os::fd::AsRawFd;
    let socket = tokio::net::TcpSocket::new_v4()?;
    // The port is chosen at connect, as without a bind: otherwise each bind
    // searches the ephemeral ports alone, past every one in TIME_WAIT, and
    // the attackers' loops slow down fifteenfold.
    let yes: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&yes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    socket.bind((from, 0).into())?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    let stream = socket.connect(([127, 0, 0, 1], port).into()).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Waits until something accepts TCP connections on the port.
pub async fn wait_listening(child: &mut Child, port: u16, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        child.check_alive()?;
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(
                format!("{} did not listen on {port} within {timeout:?}", child.name).into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// VmRSS of a process, in KiB.
pub fn rss_kb(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS for pid {pid}").into())
}

/// The ports of one proxy: HTTP plus its bound PUSH and PULL endpoints.
pub struct ProxyPorts {
    pub http: u16,
    pub push: u16,
    pub pull: u16,
}

pub const PREFIX: &str = "/echo";

/// Writes the TOML config shared by the proxy and the echo backend.
///
/// `response_limit` is huge so that one xhr-streaming response carries a whole
/// run (the default 128 KiB would end it after ~3,000 messages and the bench
/// would measure reconnects); `max_sessions` is above the 15,000 we hold.
pub fn write_config(dir: &Path, name: &str, ports: &ProxyPorts) -> Result<PathBuf, Error> {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "http_address = \"127.0.0.1\"\n\
         http_port = {http}\n\
         workers = 1\n\
         \n\
         [[service]]\n\
         prefix = \"{PREFIX}\"\n\
         push = \"tcp://127.0.0.1:{push}\"\n\
         pull = \"tcp://127.0.0.1:{pull}\"\n\
         max_sessions = 100000\n\
         response_limit = 1073741824\n",
        http = ports.http,
        push = ports.push,
        pull = ports.pull,
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

/// A proxy with its zmq echo backend.
pub struct Proxy {
    pub proxy: Child,
    pub echo: Child,
    pub port: u16,
}

/// Where the binaries are and how to place them.
#[derive(Clone)]
pub struct Setup {
    pub proxy_bin: PathBuf,
    pub echo_bin: PathBuf,
    pub self_bin: PathBuf,
    pub out_dir: PathBuf,
    pub pinning: Pinning,
}

impl Setup {
    /// Starts a fresh proxy (core 0) and echo backend (core 1, with the load
    /// generator) and waits until the pair answers.
    pub async fn start_proxy(&self, name: &str) -> Result<Proxy, Error> {
        let ports = ProxyPorts {
            http: free_port()?,
            push: free_port()?,
            pull: free_port()?,
        };
        let config = write_config(&self.out_dir, name, &ports)?;
        let mut cmd = self.pinning.command(0, &self.proxy_bin);
        cmd.arg("--config").arg(&config);
        let mut proxy = spawn(name, cmd, &self.out_dir.join(format!("{name}.log")))?;
        wait_listening(&mut proxy, ports.http, Duration::from_secs(10)).await?;
        let mut cmd = self.pinning.command(1, &self.echo_bin);
        cmd.arg("--config").arg(&config);
        let mut echo = spawn(
            &format!("{name}-echo"),
            cmd,
            &self.out_dir.join(format!("{name}-echo.log")),
        )?;
        // The backend connects asynchronously; an echo through it proves the path.
        crate::load::wait_echo(ports.http, Duration::from_secs(10)).await?;
        echo.check_alive()?;
        Ok(Proxy {
            proxy,
            echo,
            port: ports.http,
        })
    }

    /// Starts the bare WebSocket echo reference (this binary in
    /// `--reference-server` mode) on core 0, where the proxy runs.
    pub async fn start_reference(&self, name: &str) -> Result<(Child, u16), Error> {
        let port = free_port()?;
        let mut cmd = self.pinning.command(0, &self.self_bin);
        cmd.arg("--reference-server").arg(port.to_string());
        let mut child = spawn(name, cmd, &self.out_dir.join(format!("{name}.log")))?;
        wait_listening(&mut child, port, Duration::from_secs(10)).await?;
        Ok((child, port))
    }
}

/// CPU time used so far by all threads of a process, in ns (from
/// `/proc/<pid>/task/*/schedstat`; the proxy's zmq I/O threads count too).
/// Dividing it by the work done gives a cost per round trip that other load
/// on the machine barely changes, unlike a rate.
pub fn cpu_ns(pid: u32) -> Result<u64, Error> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may exit between the listing and the read.
        if let Ok(s) = std::fs::read_to_string(path) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

/// Context switches (voluntary and not) so far over all threads of a process.
/// Per round trip, this shows how many thread hops a message costs: on one
/// core every hop is a switch.
pub fn context_switches(pid: u32) -> Result<u64, Error> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Ok(s) = std::fs::read_to_string(task?.path().join("status")) {
            total += s
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Ok(total)
}

/// CPU time so far (ns) of every task on the machine that does not belong to
/// one of `ours`, by thread id. The difference of two snapshots is what other
/// tasks (other users' builds, kernel threads) took from us during a
/// measurement: the machine's noise.
pub fn other_tasks_ns(ours: &[u32]) -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if ours.contains(&pid) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let tid = t.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
            let ns = std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
            if let (Some(tid), Some(ns)) = (tid, ns) {
                out.insert(tid, ns);
            }
        }
    }
    out
}

/// CPU (ns) other tasks used between two [`other_tasks_ns`] snapshots; tasks
/// born in between count from zero, tasks that died are not counted.
pub fn other_tasks_delta(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// Idle seconds (idle + iowait, from `/proc/stat`) of cores 0 and 1 so far.
pub fn idle_secs() -> Result<[f64; 2], Error> {
    core_secs(4..6)
}

/// Seconds the hypervisor gave cores 0 and 1 to other machines so far
/// (`steal` in `/proc/stat`): on a VM, a disturbance no task list shows.
pub fn steal_secs() -> Result<f64, Error> {
    Ok(core_secs(8..9)?.iter().sum())
}

/// The sum of these `/proc/stat` columns (0 is the `cpuN` label), in seconds,
/// for cores 0 and 1.
fn core_secs(columns: std::ops::Range<usize>) -> Result<[f64; 2], Error> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string("/proc/stat")?;
    let mut out = [0.0; 2];
    for (core, slot) in out.iter_mut().enumerate() {
        let prefix = format!("cpu{core} ");
        let line = stat
            .lines()
            .find(|l| l.starts_with(&prefix))
            .ok_or_else(|| format!("no {prefix}line in /proc/stat"))?;
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(columns.start)
            .take(columns.len())
            .filter_map(|v| v.parse().ok())
            .collect();
        *slot = f.iter().sum::<u64>() as f64 / hz;
    }
    Ok(out)
}

/// /proc/loadavg's first three fields.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
