//! The proxy under test: the real binary, started on ports it picks (and
//! started again on fresh ones if a parallel test took one), with its
//! stderr kept for the test to read and its process killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// Where one service's backend connects.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub prefix: String,
    /// Endpoint the proxy's PUSH is bound to (the backend's PULL connects here).
    pub push: String,
    /// Endpoint the proxy's PULL is bound to (the backend's PUSH connects here).
    pub pull: String,
}

/// A running proxy. Killed when dropped; its stderr is kept for assertions and
/// printed if the test fails.
pub struct Proxy {
    child: Child,
    pub http_port: u16,
    /// The endpoints of each service, in config order.
    pub services: Vec<Endpoints>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Set when the stderr pipe reached its end (the process exited).
    stderr_done: Arc<AtomicBool>,
    _config: Option<TempFile>,
}

/// How to start one proxy: its arguments and what they make it listen on.
struct Launch {
    args: Vec<String>,
    http_port: u16,
    services: Vec<Endpoints>,
    /// The config file the arguments name, removed with the proxy.
    config: Option<TempFile>,
    /// The proxy's RUST_LOG.
    log: String,
}

impl Proxy {
    /// Starts the proxy with the default options.
    pub async fn start() -> Proxy {
        Proxy::with("").await
    }

    /// Starts the proxy with extra TOML lines in its service table, on free
    /// ports; retries on fresh ports if one was taken in the meantime.
    pub async fn with(extra: &str) -> Proxy {
        Proxy::with_services(&[(PREFIX, extra)]).await
    }

    /// Starts the proxy with these services: (prefix, extra TOML lines).
    pub async fn with_services(services: &[(&str, &str)]) -> Proxy {
        Proxy::with_workers(1, services).await
    }

    /// Starts the proxy with `workers` HTTP worker threads and these services.
    pub async fn with_workers(workers: usize, services: &[(&str, &str)]) -> Proxy {
        Proxy::launch(|| {
            let ports = free_ports(1 + 2 * services.len());
            let mut toml = format!(
                "http_address = \"127.0.0.1\"\nhttp_port = {}\nworkers = {workers}\n\n",
                ports[0]
            );
            let mut endpoints = Vec::new();
            for (i, (prefix, extra)) in services.iter().enumerate() {
                let (push, pull) = (ports[1 + 2 * i], ports[2 + 2 * i]);
                toml.push_str(&service_toml(prefix, push, pull, extra));
                endpoints.push(Endpoints {
                    prefix: prefix.to_string(),
                    push: format!("tcp://127.0.0.1:{push}"),
                    pull: format!("tcp://127.0.0.1:{pull}"),
                });
            }
            let config = TempFile::new(toml.as_bytes());
            Launch {
                args: vec!["--config".into(), config.0.to_str().unwrap().into()],
                http_port: ports[0],
                services: endpoints,
                config: Some(config),
                log: "info".into(),
            }
        })
        .await
    }

    /// Starts the proxy from a whole config file: `toml` is given `ports`
    /// free ports, the first of them for HTTP (its `http_port`).
    pub async fn with_toml(ports: usize, toml: impl Fn(&[u16]) -> String) -> Proxy {
        Proxy::launch(|| {
            let p = free_ports(ports);
            let config = TempFile::new(toml(&p).as_bytes());
            Launch {
                args: vec!["--config".into(), config.0.to_str().unwrap().into()],
                http_port: p[0],
                services: Vec::new(),
                config: Some(config),
                log: "info".into(),
            }
        })
        .await
    }

    /// Starts the proxy from command-line flags alone, the way SockJSProxy 0.7
    /// deployments do: one service at `/`, PUSH on `--in-port`, PULL on
    /// `--out-port`.
    pub async fn with_flags() -> Proxy {
        Proxy::launch(|| {
            let ports = free_ports(3);
            let flags = [
                ("--http-address", "127.0.0.1".to_string()),
                ("--http-port", ports[0].to_string()),
                ("--address", "127.0.0.1".to_string()),
                ("--in-port", ports[1].to_string()),
                ("--out-port", ports[2].to_string()),
                ("--workers", "1".to_string()),
            ];
            Launch {
                args: flags
                    .into_iter()
                    .flat_map(|(flag, value)| [flag.to_string(), value])
                    .collect(),
                http_port: ports[0],
                services: vec![Endpoints {
                    prefix: String::new(),
                    push: format!("tcp://127.0.0.1:{}", ports[1]),
                    pull: format!("tcp://127.0.0.1:{}", ports[2]),
                }],
                config: None,
                log: "info".into(),
            }
        })
        .await
    }

    /// Starts the proxy with one service at [`PREFIX`] (extra TOML lines in its
    /// table), the command-line flags `args` makes (called again with fresh
    /// ports on a retry) and `RUST_LOG=log`.
    pub async fn with_args(extra: &str, args: impl Fn() -> Vec<String>, log: &str) -> Proxy {
        Proxy::launch(|| {
            let ports = free_ports(3);
            let config = TempFile::new(config_toml(ports[0], ports[1], ports[2], extra).as_bytes());
            let mut all = vec!["--config".into(), config.0.to_str().unwrap().into()];
            all.extend(args());
            Launch {
                args: all,
                http_port: ports[0],
                services: vec![Endpoints {
                    prefix: PREFIX.to_string(),
                    push: format!("tcp://127.0.0.1:{}", ports[1]),
                    pull: format!("tcp://127.0.0.1:{}", ports[2]),
                }],
                config: Some(config),
                log: log.to_string(),
            }
        })
        .await
    }

    /// Starts the proxy with one service at [`PREFIX`] bound to these PUSH and
    /// PULL endpoints (`ipc://...`, or any the config takes), plus the
    /// command-line flags `args`.
    pub async fn with_endpoints(push: &str, pull: &str, args: &[&str]) -> Proxy {
        Proxy::with_endpoints_and(push, pull, "", args).await
    }

    /// The same, with extra TOML lines in the service's table.
    pub async fn with_endpoints_and(push: &str, pull: &str, extra: &str, args: &[&str]) -> Proxy {
        Proxy::launch(|| {
            let http_port = free_port();
            let toml = format!(
                "http_address = \"127.0.0.1\"\nhttp_port = {http_port}\nworkers = 1\n\n\
                 [[service]]\nprefix = \"{PREFIX}\"\npush = \"{push}\"\npull = \"{pull}\"\n{extra}\n"
            );
            let config = TempFile::new(toml.as_bytes());
            let mut all = vec!["--config".to_string(), config.0.to_str().unwrap().into()];
            all.extend(args.iter().map(|a| a.to_string()));
            Launch {
                args: all,
                http_port,
                services: vec![Endpoints {
                    prefix: PREFIX.to_string(),
                    push: push.to_string(),
                    pull: pull.to_string(),
                }],
                config: Some(config),
                log: "info".into(),
            }
        })
        .await
    }

    /// How many stderr lines contain `needle` now.
    pub fn stderr_count(&self, needle: &str) -> usize {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until `count` stderr lines contain `needle`; panics after [`IO_LIMIT`].
    pub async fn wait_for_logs(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + IO_LIMIT;
        while self.stderr_count(needle) < count {
            assert!(
                Instant::now() < deadline,
                "fewer than {count} stderr lines with {needle:?} in {IO_LIMIT:?}:\n{}",
                self.stderr_lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The proxy's resident memory in KiB (VmRSS of /proc/<pid>/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// The value of the sample `key` (name and labels) in `/metrics`.
    pub async fn metric(&self, key: &str) -> f64 {
        let text = http::get(self.http_port, "/metrics").await.text();
        sample(&text, key).unwrap_or_else(|| panic!("no sample {key} in:\n{text}"))
    }

    /// The value of the sample `key` in `/metrics`, 0 while there is none
    /// (a labelled counter appears with its first count).
    pub async fn count(&self, key: &str) -> f64 {
        let text = http::get(self.http_port, "/metrics").await.text();
        sample(&text, key).unwrap_or(0.0)
    }

    /// Starts the proxy as `plan` says, on ports it picks; if the proxy finds
    /// a port taken (by a parallel test), plans again on fresh ports.
    async fn launch(plan: impl Fn() -> Launch) -> Proxy {
        let mut last_error = Vec::new();
        for _ in 0..5 {
            let launch = plan();
            // Tests read /metrics on the HTTP port unless they move it.
            let public = !launch.args.iter().any(|a| a.starts_with("--metrics"));
            let mut child = Command::new(env!("CARGO_BIN_EXE_sockjsproxy"))
                .args(&launch.args)
                .args(public.then_some("--metrics-public"))
                .env("RUST_LOG", &launch.log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn sockjsproxy");
            let stderr = Arc::new(Mutex::new(Vec::new()));
            let pipe = child.stderr.take().unwrap();
            let stderr_done = Arc::new(AtomicBool::new(false));
            let (lines, done) = (stderr.clone(), stderr_done.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
                done.store(true, Ordering::Release);
            });
            let mut proxy = Proxy {
                child,
                http_port: launch.http_port,
                services: launch.services,
                stderr,
                stderr_done,
                _config: launch.config,
            };
            match proxy.ready().await {
                Ok(()) => return proxy,
                Err(lines) if lines.iter().any(|l| l.contains("in use")) => last_error = lines,
                Err(lines) => panic!("sockjsproxy did not start:\n{}", lines.join("\n")),
            }
        }
        panic!("no free ports after 5 tries:\n{}", last_error.join("\n"));
    }

    /// Waits for the proxy to listen (it logs so after binding every socket), or
    /// returns its stderr if it exits first.
    async fn ready(&mut self) -> Result<(), Vec<String>> {
        let deadline = Instant::now() + IO_LIMIT;
        loop {
            if self.stderr_contains("SockJS listening on") {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread collect the last lines.
                let until = Instant::now() + Duration::from_secs(2);
                while !self.stderr_done.load(Ordering::Acquire) && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let mut lines = self.stderr_lines();
                lines.push(format!("(sockjsproxy exited: {status})"));
                return Err(lines);
            }
            assert!(
                Instant::now() < deadline,
                "sockjsproxy not ready in {IO_LIMIT:?}:\n{}",
                self.stderr_lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code (`None`
    /// if a signal ended it). Panics if it does not exit within [`IO_LIMIT`].
    pub async fn terminate(&mut self) -> Option<i32> {
        self.signal("TERM").await
    }

    /// Sends a signal (`"TERM"`, `"INT"`) and waits for the exit, as
    /// [`Proxy::terminate`].
    pub async fn signal(&mut self, signal: &str) -> Option<i32> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
        let deadline = Instant::now() + IO_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for sockjsproxy") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "no exit {IO_LIMIT:?} after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stderr_contains(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Waits until a stderr line contains `needle`; panics after [`IO_LIMIT`].
    pub async fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + IO_LIMIT;
        loop {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no stderr line with {needle:?} in {IO_LIMIT:?}:\n{}",
                self.stderr_lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `/echo/000/<session>/<transport>`, the URL of a session endpoint.
    pub fn session_path(session: &str, transport: &str) -> String {
        format!("{PREFIX}/000/{session}/{transport}")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- sockjsproxy stderr ---\n{}\n---",
                self.stderr_lines().join("\n")
            );
        }
    }
}

/// The value of the sample `key` (name and labels) in a `/metrics` text.
fn sample(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .map(|v| v.parse().expect("numeric sample"))
}
