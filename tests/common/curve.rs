//! CURVE peers for the backend-link tests (`tests/backend_curve.rs`): key
//! pairs written by the proxy's own `keygen` and by pyzmq, a pyzmq backend
//! (libzmq with libsodium, as pyzmq's wheels ship it: the `zmq` crate's
//! bundled libzmq has no CURVE) that echoes like [`super::backend`], and a
//! man in the middle: a TCP relay that flips a byte of, or replays, the
//! first MESSAGE box a backend sends.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::IO_LIMIT;

/// Whether python3 has pyzmq with CURVE; in CI (`CI` set) it must.
pub fn pyzmq_has_curve() -> bool {
    let found = std::process::Command::new("python3")
        .args([
            "-c",
            "import zmq, sys; sys.exit(0 if zmq.has('curve') else 1)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI: python3 has no pyzmq with CURVE (tests/browser/setup.sh installs it)"
    );
    if !found {
        eprintln!("SKIPPED: python3 with pyzmq (CURVE) not found (tests/browser/setup.sh)");
    }
    found
}

/// A temporary directory of certificates, removed on drop.
pub struct KeyDir(pub PathBuf);

impl KeyDir {
    pub fn new() -> KeyDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sockjsproxy-curve-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create key dir");
        KeyDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// `sockjsproxy keygen DIR --name NAME` in `sub` (created): the public
    /// and secret certificate files.
    pub fn keygen(&self, sub: &str, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.path(sub);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sockjsproxy"))
            .arg("keygen")
            .arg(&dir)
            .args(["--name", name])
            .output()
            .expect("run sockjsproxy keygen");
        assert!(
            out.status.success(),
            "keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.key_secret")),
        )
    }

    /// pyzmq's `zmq.auth.create_certificates(DIR/sub, name)`.
    pub fn pyzmq(&self, sub: &str, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.path(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, zmq.auth; zmq.auth.create_certificates(sys.argv[1], sys.argv[2])",
            ])
            .arg(&dir)
            .arg(name)
            .status()
            .expect("python3");
        assert!(status.success(), "pyzmq create_certificates failed");
        (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.key_secret")),
        )
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How a pyzmq backend secures its sockets.
pub enum Security<'a> {
    /// No CURVE: libzmq's default.
    Null,
    /// CURVE with the backend's secret certificate and the server's public one.
    Curve {
        client_secret: &'a Path,
        server_public: &'a Path,
    },
}

/// The backend: connects a PULL to `push` and a PUSH to `pull`, prints
/// every message it gets as a JSON list, and echoes `message` events.
const BACKEND: &str = r#"
import json, sys, zmq, zmq.auth
push_ep, pull_ep = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
def sock(kind, endpoint):
    s = ctx.socket(kind)
    s.linger = 0
    if len(sys.argv) > 3:
        public, secret = zmq.auth.load_certificate(sys.argv[3])
        server, _ = zmq.auth.load_certificate(sys.argv[4])
        s.curve_publickey, s.curve_secretkey, s.curve_serverkey = public, secret, server
    s.connect(endpoint)
    return s
pull = sock(zmq.PULL, push_ep)
push = sock(zmq.PUSH, pull_ep)
print("started", flush=True)
while True:
    parts = pull.recv_multipart()
    print(json.dumps([p.decode("utf-8", "replace") for p in parts]), flush=True)
    if parts[0] == b"message":
        push.send_multipart(parts)
"#;

/// A pyzmq backend process, killed on drop.
pub struct PyBackend {
    _child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl PyBackend {
    /// Starts a backend for the proxy's PUSH endpoint `push` and PULL
    /// endpoint `pull`.
    pub async fn start(push: &str, pull: &str, security: Security<'_>) -> PyBackend {
        let mut command = Command::new("python3");
        command.args(["-c", BACKEND, push, pull]);
        if let Security::Curve {
            client_secret,
            server_public,
        } = security
        {
            command.arg(client_secret).arg(server_public);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn python3");
        let (tx, lines) = mpsc::unbounded_channel();
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut backend = PyBackend {
            _child: child,
            lines,
        };
        assert_eq!(
            backend.line_within(IO_LIMIT).await.as_deref(),
            Some("started")
        );
        backend
    }

    /// The next message the backend got (a JSON list of its parts), if one
    /// comes within `wait`.
    pub async fn line_within(&mut self, wait: Duration) -> Option<String> {
        tokio::time::timeout(wait, self.lines.recv())
            .await
            .ok()
            .flatten()
    }
}

/// What the relay does to the first MESSAGE box from the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Flips a bit in the box's last byte (its ciphertext).
    FlipByte,
    /// Sends the frame twice.
    Replay,
}

/// A TCP relay to `target` that tampers with the first MESSAGE frame a
/// backend sends through it (once, on whichever connection carries it);
/// everything else passes as it is.
pub struct Relay {
    pub endpoint: String,
    /// Set once the relay has tampered.
    pub done: Arc<AtomicBool>,
}

impl Relay {
    pub async fn start(target: &str, tamper: Tamper) -> Relay {
        let target = target
            .strip_prefix("tcp://")
            .expect("tcp endpoint")
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
        let done = Arc::new(AtomicBool::new(false));
        let once = done.clone();
        tokio::spawn(async move {
            while let Ok((backend, _)) = listener.accept().await {
                let Ok(proxy) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (mut from_backend, to_backend) = backend.into_split();
                let (from_proxy, mut to_proxy) = proxy.into_split();
                tokio::spawn(copy(from_proxy, to_backend));
                let once = once.clone();
                tokio::spawn(async move {
                    let _ = relay_frames(&mut from_backend, &mut to_proxy, tamper, &once).await;
                });
            }
        });
        Relay { endpoint, done }
    }
}

async fn copy(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
}

/// Passes the greeting, then frame by frame, tampering once.
async fn relay_frames(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    tamper: Tamper,
    once: &AtomicBool,
) -> std::io::Result<()> {
    let mut greeting = [0u8; 64];
    from.read_exact(&mut greeting).await?;
    to.write_all(&greeting).await?;
    loop {
        let mut head = vec![from.read_u8().await?];
        let size = if head[0] & 0x02 != 0 {
            let size = from.read_u64().await?;
            head.extend_from_slice(&size.to_be_bytes());
            size as usize
        } else {
            let size = from.read_u8().await?;
            head.push(size);
            size as usize
        };
        let mut body = vec![0u8; size];
        from.read_exact(&mut body).await?;
        let boxed = head[0] & 0x04 == 0 && body.starts_with(b"\x07MESSAGE");
        let mut frame = head;
        if boxed && !once.swap(true, Ordering::SeqCst) {
            match tamper {
                Tamper::FlipByte => *body.last_mut().unwrap() ^= 0x01,
                Tamper::Replay => {
                    frame.extend_from_slice(&body);
                    let again = frame.clone();
                    frame.extend_from_slice(&again);
                    to.write_all(&frame).await?;
                    continue;
                }
            }
        }
        frame.extend_from_slice(&body);
        to.write_all(&frame).await?;
    }
}
