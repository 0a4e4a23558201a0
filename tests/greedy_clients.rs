//! Issue 11's greedy client: one address opening sessions in a loop must not
//! take the service from everybody else. Past `max_sessions_per_address`, or
//! `new_sessions_per_second` for one address, that address gets HTTP 429
//! while a client from another address (127.0.0.2 here: the proxy sees the
//! TCP peer) still opens a session and is echoed.
//!
//! Both limits are set low here (the defaults are 10,000 sessions per address
//! and no rate limit) so that a test of a few seconds reaches them, and
//! `max_sessions` is set above them so that the global limit, which refuses
//! everybody alike, is not what stops the loop.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::attack::{self, Conn};
use common::backend::Backend;
use common::meter::{RSS_LIMIT_KIB, Stop, Watchdog};
use common::{PREFIX, Proxy, bounded, payload};

/// How long the greedy client loops.
const LOOP: Duration = Duration::from_secs(2);

/// Opens xhr sessions from 127.0.0.1 as fast as the proxy answers, for
/// [`LOOP`]; how many times each status came back.
async fn open_sessions_in_a_loop(port: u16) -> BTreeMap<u16, u64> {
    let mut statuses = BTreeMap::new();
    let mut conn = Conn::open(port).await.expect("connect");
    let end = Instant::now() + LOOP;
    while Instant::now() < end {
        let path = format!("{PREFIX}/000/{}/xhr", attack::session_id("greedy"));
        let (status, _) = conn.post(&path, b"").await.expect("session open answered");
        *statuses.entry(status).or_default() += 1;
    }
    statuses
}

/// One POST from 127.0.0.2 on its own connection.
async fn post_from_elsewhere(port: u16, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut conn = Conn::open_from(port, [127, 0, 0, 2])
        .await
        .expect("connect from 127.0.0.2");
    conn.post(path, body).await.expect("an answer")
}

/// A client from 127.0.0.2 opens a session and gets an echo.
async fn another_address_is_served(port: u16) {
    let base = format!("{PREFIX}/000/{}", attack::session_id("other"));
    let xhr = format!("{base}/xhr");
    let (status, body) = post_from_elsewhere(port, &xhr, b"").await;
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"o\n"[..]),
        "another address refused"
    );
    let message = payload(&["from elsewhere"]);
    let send = format!("{base}/xhr_send");
    let (status, _) = post_from_elsewhere(port, &send, message.as_bytes()).await;
    assert_eq!(status, 204);
    let (_, body) = post_from_elsewhere(port, &xhr, b"").await;
    assert_eq!(body, b"a[\"from elsewhere\"]\n");
}

#[tokio::test]
async fn one_address_opening_sessions_in_a_loop_gets_429_past_its_share_and_others_are_served() {
    let _serial = attack::one_at_a_time().await;
    bounded(async {
        let proxy = Proxy::with("max_sessions = 1000\nmax_sessions_per_address = 100").await;
        let _backend = Backend::echo(&proxy);
        let stop = Stop::after(LOOP * 2);
        let dog = Watchdog::start(proxy.pid(), RSS_LIMIT_KIB, &stop);
        let statuses = open_sessions_in_a_loop(proxy.http_port).await;
        let name = "sessions in a loop, max_sessions_per_address = 100";
        let cost = dog.finish(name);
        eprintln!("{name}: answers {statuses:?}");
        cost.assert_within_issue_bound(name);
        assert_eq!(statuses.get(&200), Some(&100), "{name}: {statuses:?}");
        assert!(
            statuses.get(&429).is_some_and(|n| *n > 0),
            "{name}: {statuses:?}"
        );
        assert_eq!(statuses.len(), 2, "{name}: other answers: {statuses:?}");
        another_address_is_served(proxy.http_port).await;
    })
    .await
}

#[tokio::test]
async fn one_address_opening_sessions_too_fast_gets_429_and_others_are_served() {
    let _serial = attack::one_at_a_time().await;
    bounded(async {
        const RATE: u64 = 20;
        let proxy = Proxy::with(&format!("new_sessions_per_second = {RATE}")).await;
        let _backend = Backend::echo(&proxy);
        let statuses = open_sessions_in_a_loop(proxy.http_port).await;
        eprintln!("sessions in a loop, new_sessions_per_second = {RATE}: answers {statuses:?}");
        // A second's worth at the start, then RATE a second.
        let most = RATE * (LOOP.as_secs() + 1);
        let opened = statuses.get(&200).copied().unwrap_or(0);
        assert!((RATE..=most).contains(&opened), "{statuses:?}");
        assert!(statuses.get(&429).is_some_and(|n| *n > 0), "{statuses:?}");
        another_address_is_served(proxy.http_port).await;
    })
    .await
}
