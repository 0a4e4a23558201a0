//! Issue 11's fairness attacks: one client's flood must cost other sessions
//! nothing and must not flood the log.
//!
//! The flood: clients looping on 1 MiB `xhr_send` bodies that each hold
//! 349,519 empty messages (`["","",…]`), and on bodies of 10,000 (the most
//! one send may carry by default), as fast as the proxy answers, while
//! 20 healthy SockJS websocket sessions echo one message each every 20 ms
//! through a healthy zmq echo backend (which echoes the flood too). The proxy
//! must hold the flooders back (wait with their `xhr_send` answers, or close
//! them) rather than drop other sessions' events: the healthy sessions lose
//! nothing. Meanwhile the proxy's stderr stays small: warnings are summarised,
//! not one line per dropped event (151 MB of log in 15 s before the fix).
//!
//! Each test prints the healthy sessions' round trips (p50, p99), the flood's
//! figures and the proxy's peak RSS and CPU (`--nocapture`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::attack::{self, Flooded, MIB};
use common::bystanders::{self, Healthy};
use common::meter::{Cost, RSS_LIMIT_KIB, Stop, Watchdog};
use common::{PREFIX, Proxy, bounded, ws};

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(5);
/// Flooding clients.
const FLOODERS: usize = 4;
/// The default `max_messages_per_send`: more in one body are refused (413).
const MOST_PER_SEND: usize = 10_000;
/// Healthy sessions, and how often each sends.
const HEALTHY: usize = 20;
const PERIOD: Duration = Duration::from_millis(20);
/// How long the healthy sessions wait, once the flood is over, for the
/// echoes still due; one that never comes is lost (a late one only shows in
/// the round trips).
const DRAIN: Duration = Duration::from_secs(10);

struct Run {
    healthy: Healthy,
    /// The flooders of 1 MiB bodies, and of [`MOST_PER_SEND`] messages.
    flood: [Flooded; 2],
    cost: Cost,
    /// Lines and bytes the proxy wrote to stderr during the flood.
    log_lines: usize,
    log_bytes: usize,
}

/// Runs the flood beside the healthy sessions on a fresh proxy (default
/// settings, `RUST_LOG=info`) and reports what everybody saw.
async fn flood_beside_healthy_sessions(name: &str) -> Run {
    let proxy = Proxy::start().await;
    let port = proxy.http_port;
    let _echo = bystanders::ZmqEcho::start(&proxy.services[0]);
    // The backend is connected once one echo has gone through.
    let mut probe = ws::connect(port, &Proxy::session_path("probe", "websocket")).await;
    assert_eq!(ws::text(&mut probe).await, "o");
    ws::send(&mut probe, r#"["probe"]"#).await;
    assert_eq!(ws::messages(&mut probe, 1).await, ["probe"]);
    drop(probe);

    let log_before: Vec<String> = proxy.stderr_lines();
    let stop = Stop::after(FLOOD);
    let dog = Watchdog::start(proxy.pid(), RSS_LIMIT_KIB, &stop);
    let healthy = tokio::spawn(bystanders::healthy_sessions(
        port,
        PREFIX,
        HEALTHY,
        PERIOD,
        DRAIN,
        stop.clone(),
    ));
    // Half the flooders send the issue's 1 MiB bodies, half bodies of the
    // most messages one send may carry, which the proxy must take.
    let huge = Arc::new(attack::empty_messages(MIB - 16));
    let most = Arc::new(attack::empty_messages(3 * MOST_PER_SEND + 1));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|i| {
            let body = if i % 2 == 0 { &huge } else { &most };
            tokio::spawn(attack::xhr_send_flood(
                port,
                PREFIX,
                body.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut flood = [Flooded::default(); 2];
    for (i, f) in flooders.into_iter().enumerate() {
        let f = f.await.unwrap();
        let sum = &mut flood[i % 2];
        sum.accepted += f.accepted;
        sum.refused += f.refused;
        sum.sessions += f.sessions;
    }
    let healthy = healthy.await.unwrap();
    let cost = dog.finish(name);
    let log: Vec<String> = proxy.stderr_lines().split_off(log_before.len());
    let run = Run {
        log_lines: log.len(),
        log_bytes: log.iter().map(|l| l.len() + 1).sum(),
        healthy,
        flood,
        cost,
    };
    eprintln!(
        "{name}: healthy sessions sent {}, echoed {}, lost {}, broken {}; round trip p50 {:?}, p99 {:?}",
        run.healthy.sent,
        run.healthy.echoed,
        run.healthy.lost(),
        run.healthy.broken,
        run.healthy.percentile(0.5),
        run.healthy.percentile(0.99)
    );
    for (flood, messages) in run.flood.iter().zip([(MIB - 17) / 3, MOST_PER_SEND]) {
        eprintln!(
            "{name}: bodies of {messages} empty messages: {} taken, {} refused, {} sessions",
            flood.accepted, flood.refused, flood.sessions,
        );
    }
    eprintln!(
        "{name}: proxy stderr {} lines, {} bytes in the {FLOOD:?} flood and the drain after it",
        run.log_lines, run.log_bytes
    );
    for line in log.iter().take(5) {
        eprintln!("  | {line}");
    }
    run
}

#[tokio::test]
async fn a_flood_of_empty_messages_costs_healthy_sessions_no_message() {
    let _serial = attack::one_at_a_time().await;
    bounded(async {
        let name = "empty-message flood beside 20 healthy sessions";
        let run = flood_beside_healthy_sessions(name).await;
        run.cost.assert_within_issue_bound(name);
        assert!(
            run.healthy.sent >= HEALTHY as u64,
            "{name}: the healthy sessions sent almost nothing: {:?}",
            run.healthy.sent
        );
        assert_eq!(
            run.healthy.broken, 0,
            "{name}: healthy sessions were closed"
        );
        assert_eq!(
            run.healthy.lost(),
            0,
            "{name}: healthy sessions lost {} of {} messages",
            run.healthy.lost(),
            run.healthy.sent
        );
        assert!(
            run.flood[1].accepted > 0,
            "{name}: the flood never got going, the test proves nothing"
        );
    })
    .await
}

#[tokio::test]
async fn a_flood_of_dropped_events_is_logged_in_a_few_summary_lines() {
    let _serial = attack::one_at_a_time().await;
    bounded(async {
        let name = "log during the empty-message flood";
        let run = flood_beside_healthy_sessions(name).await;
        // One line per flooding session is fair (a session closed for its
        // full queue is logged once); beyond that, a few summary lines a second.
        let sessions: u64 = run.flood.iter().map(|f| f.sessions).sum();
        let allowed = sessions as usize + 10 * FLOOD.as_secs() as usize + 20;
        assert!(
            run.log_lines <= allowed,
            "{name}: {} stderr lines ({} bytes) in the flood, more than {allowed}",
            run.log_lines,
            run.log_bytes
        );
        assert!(
            run.log_bytes <= 300 * allowed,
            "{name}: {} bytes of stderr in the flood",
            run.log_bytes
        );
    })
    .await
}
