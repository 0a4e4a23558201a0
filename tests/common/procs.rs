//! Child processes for multi-process tests (broker, workers, nginx, proxies
//! started from the command line): killed on drop, stderr kept for assertions.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::sleep;

/// How long [`Proc::wait_for`] waits.
const WAIT: Duration = Duration::from_secs(10);

pub type Lines = Arc<Mutex<Vec<String>>>;

/// A child process, killed on drop, whose stderr is kept.
pub struct Proc {
    pub child: Child,
    pub lines: Lines,
}

pub fn spawn(program: &Path, args: &[String], rust_log: &str) -> Proc {
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
    pub fn contains(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub async fn wait_for(&self, needle: &str) {
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

/// An example binary next to the proxy's. Plain `cargo test` builds every
/// example; `cargo test --test <one file>` does not, so a missing one is
/// built here (a separate `cargo build` resolves features differently and
/// rebuilds much, hence only when needed).
pub fn example(name: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_sockjsproxy"));
    let path = bin.parent().unwrap().join("examples").join(name);
    if !path.exists() {
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
    }
    path
}
