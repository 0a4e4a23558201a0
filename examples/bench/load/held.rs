//! The held-sessions scenario: many idle sessions open at once, for the
//! RSS per idle session and the 15,000-session floor.

use std::sync::atomic::Ordering::Relaxed;

use std::time::Duration;
use tokio::sync::watch;

use tokio::time::{Instant, sleep};

use super::{
    Ctl, DRAIN_TIMEOUT, OPEN_TIMEOUT, abort_all, check, join_all, spawn_sessions, wait_count,
};
use crate::Error;
use crate::conn::{Kind, message};

/// What `hold` saw.
pub struct Held {
    pub held: usize,
    pub answered: usize,
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    pub error: Option<String>,
}

/// Opens `n` sessions and keeps them all open; once all are open, each sends
/// one message and checks its echo; then RSS of `pid` is read, and the
/// sessions are dropped. Numbers are reported even when some sessions fail.
pub async fn hold(kind: Kind, port: u16, n: usize, pid: u32) -> Result<Held, Error> {
    let ctl = Ctl::new();
    let (go_tx, go_rx) = watch::channel(false);
    let (release_tx, release_rx) = watch::channel(false);
    let rss_before_kb = crate::procs::rss_kb(pid)?;
    let deadline = Instant::now() + OPEN_TIMEOUT + DRAIN_TIMEOUT * 3;
    let handles = spawn_sessions(n, &ctl, deadline, |i| {
        let (ctl, mut go, mut release) = (ctl.clone(), go_rx.clone(), release_rx.clone());
        async move {
            let mut conn = ctl.open(kind, port).await?;
            go.wait_for(|g| *g).await?;
            conn.queue(&message(i, 0));
            conn.flush().await?;
            let mut ranges = Vec::with_capacity(1);
            conn.recv(&mut ranges).await?;
            if ranges.len() != 1 {
                return Err("more than one echo for one message".into());
            }
            check(conn.data(ranges[0].clone()), i, 0)?;
            ctl.answered.fetch_add(1, Relaxed);
            // Held open (and idle) until the RSS has been read.
            release.wait_for(|r| *r).await?;
            Ok(())
        }
    });
    let mut error = None;
    let mut rss_after_kb = rss_before_kb;
    let run = async {
        wait_count(&ctl, &ctl.opened, n, OPEN_TIMEOUT, "opened").await?;
        go_tx.send(true)?;
        wait_count(&ctl, &ctl.answered, n, DRAIN_TIMEOUT, "answered").await?;
        // Let the server finish whatever it does after an echo.
        sleep(Duration::from_millis(300)).await;
        crate::procs::rss_kb(pid)
    };
    match run.await {
        Ok(rss) => rss_after_kb = rss,
        Err(e) => error = Some(e.to_string()),
    }
    let (held, answered) = (ctl.opened.load(Relaxed), ctl.answered.load(Relaxed));
    let _ = go_tx.send(true);
    let _ = release_tx.send(true);
    if error.is_some() {
        abort_all(handles).await;
    } else if let Err(e) = join_all(handles).await {
        error = Some(e.to_string());
    }
    Ok(Held {
        held,
        answered,
        rss_before_kb,
        rss_after_kb,
        error,
    })
}
