//! Mongrel2 handlers for the tests: the proxy with a `[[mongrel2]]` route at
//! [`ROUTE`], and `m2_handler.py` (Python, pyzmq and tnetstring3, written to
//! the formats of Mongrel2's own python library) connected to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{IO_LIMIT, Proxy};

/// The route every Mongrel2 test proxy serves.
pub const ROUTE: &str = "/m2";
/// The route's `send_ident`, as a Mongrel2 config would have it.
pub const SENDER: &str = "54c6755b-9628-40a4-9a2d-cc82a816345e";

/// Whether python3 has pyzmq and tnetstring3; the tests that need them say
/// SKIPPED otherwise (`tests/browser/setup.sh` installs both).
pub fn python_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import zmq, tnetstring"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI: python3 has no pyzmq or tnetstring3 (tests/browser/setup.sh installs them)"
    );
    found
}

/// Whether the Python handlers can run; says so when `test` is skipped
/// (never in CI, where their absence is a failure).
pub fn python_ready(test: &str) -> bool {
    let found = python_available();
    if !found {
        eprintln!("SKIPPED {test}: python3 with pyzmq and tnetstring3 not found");
    }
    found
}

/// A proxy with one route and the endpoints its handlers connect to.
pub struct M2 {
    pub proxy: Proxy,
    /// Where the proxy's PUSH is bound (handlers' PULL connects here).
    pub send_spec: String,
    /// Where the proxy's SUB is bound (handlers' PUB connects here).
    pub recv_spec: String,
    pub protocol: &'static str,
}

impl M2 {
    /// The proxy with a route at [`ROUTE`]; `extra` is TOML lines for the
    /// route's table.
    pub async fn start(protocol: &'static str, extra: &str) -> M2 {
        let ports = std::sync::Mutex::new(Vec::new());
        let proxy = Proxy::with_toml(3, |p| {
            *ports.lock().unwrap() = p.to_vec();
            format!(
                "http_address = \"127.0.0.1\"\nhttp_port = {}\nworkers = 1\n\n\
                 [[mongrel2]]\nroute = \"{ROUTE}\"\nsend_spec = \"tcp://127.0.0.1:{}\"\n\
                 send_ident = \"{SENDER}\"\nrecv_spec = \"tcp://127.0.0.1:{}\"\n\
                 protocol = \"{protocol}\"\n{extra}\n",
                p[0], p[1], p[2]
            )
        })
        .await;
        let p = ports.into_inner().unwrap();
        M2 {
            send_spec: format!("tcp://127.0.0.1:{}", p[1]),
            recv_spec: format!("tcp://127.0.0.1:{}", p[2]),
            proxy,
            protocol,
        }
    }

    /// Starts the Python handler and waits until a request reaches it and
    /// its answer comes back.
    pub async fn handler(&self) -> Handler {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/m2_handler.py");
        let child = Command::new("python3")
            .args([script, &self.send_spec, &self.recv_spec, self.protocol])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python3");
        let handler = Handler::from(child);
        self.wait_ready().await;
        handler
    }

    /// Waits until a GET of `/m2/echo` is answered 200: the handler is
    /// connected both ways (its PUB's subscription has arrived). A request
    /// that reached the handler before the subscription reached its PUB has
    /// its answer dropped by 0MQ (and would wait for `handler_timeout_ms`):
    /// each try gets a second, then the next one goes.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + IO_LIMIT;
        loop {
            let get = super::http::get(self.proxy.http_port, "/m2/echo");
            let status = tokio::time::timeout(Duration::from_secs(1), get)
                .await
                .map(|r| r.status);
            if status == Ok(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the handler never answered: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A running handler process, killed on drop, and what it printed (when
/// its stdout is piped): `m2_handler.py` prints `disconnect ID` for each
/// disconnect message, so that a test can see them when the proxy is gone.
pub struct Handler {
    child: Child,
    said: Arc<Mutex<Vec<String>>>,
}

impl Handler {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The lines it printed so far.
    pub fn said(&self) -> Vec<String> {
        self.said.lock().unwrap().clone()
    }

    /// Waits until `count` lines it printed start with `prefix`; panics
    /// after [`IO_LIMIT`].
    pub async fn wait_said(&self, prefix: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + IO_LIMIT;
        loop {
            let lines: Vec<String> = self
                .said()
                .into_iter()
                .filter(|l| l.starts_with(prefix))
                .collect();
            if lines.len() >= count {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "the handler printed {lines:?}, not {count} lines {prefix:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl From<Child> for Handler {
    fn from(mut child: Child) -> Handler {
        let said = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let said = said.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    said.lock().unwrap().push(line);
                }
            });
        }
        Handler { child, said }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The ids `m2_handler.py` printed with `prefix` (`"open "`,
/// `"disconnect "`), as a set.
pub fn ids(lines: &[String], prefix: &str) -> std::collections::BTreeSet<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        .collect()
}

/// Waits until the handler was told of the end of every websocket it saw
/// open (`m2_handler.py` prints both); panics after [`IO_LIMIT`].
pub async fn every_open_websocket_disconnected(handler: &Handler) {
    let deadline = Instant::now() + IO_LIMIT;
    loop {
        let said = handler.said();
        let (open, gone) = (ids(&said, "open "), ids(&said, "disconnect "));
        if !open.is_empty() && open.is_subset(&gone) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "websockets opened: {open:?}; disconnects heard: {gone:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
