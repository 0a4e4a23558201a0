//! Faults and load with the real binary: SIGTERM with 100 open sessions (100
//! `disconnect` frames at the backend, exit 0 within the linger); the 0MQ
//! echo backend dropping its sockets mid-stream under load and coming back
//! (every message a client sent after the backend went away is echoed, in
//! order, with nothing dropped by the proxy and memory bounded); 10,000
//! sessions opened and closed with the proxy's RSS back near its start.
//! The issue's full-size runs (1,000 sessions and a 10 s outage; 10,000
//! sessions) are `#[ignore]`d: run them with `cargo test --test
//! faults_under_load -- --ignored --nocapture`.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::{Proxy, bounded, http, ws};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn sigterm_with_100_open_sessions_sends_100_disconnects_within_the_linger() {
    bounded(async {
        let mut proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let mut clients = Vec::new();
        let mut open = HashSet::new();
        for i in 0..100 {
            let mut ws = ws::connect(
                proxy.http_port,
                &Proxy::session_path(&format!("s{i}"), "websocket"),
            )
            .await;
            assert_eq!(ws::text(&mut ws).await, "o");
            open.insert(backend.expect_connect().await);
            clients.push(ws);
        }
        assert_eq!(open.len(), 100);
        let start = Instant::now();
        let exit = proxy.terminate().await;
        let took = start.elapsed();
        assert_eq!(exit, Some(0));
        // The default linger is 2 s; actix may take a little to stop after it.
        assert!(took < Duration::from_millis(2500), "exit took {took:?}");
        let mut told = HashSet::new();
        while told.len() < 100 {
            let Some(event) = backend.next_within(Duration::from_secs(2)).await else {
                break;
            };
            assert_eq!(event.kind, "disconnect", "unexpected {event:?}");
            assert!(told.insert(event.session.clone()), "twice: {event:?}");
        }
        assert_eq!(told, open, "sessions told of");
        // Every client got the SockJS close frame.
        for mut ws in clients {
            assert_eq!(ws::text(&mut ws).await, r#"c[1001,"Server shutting down"]"#);
        }
    })
    .await
}

/// The figures of one backend outage run.
#[derive(Debug)]
struct Outage {
    sent: usize,
    echoed: usize,
    /// Sent before the backend went away and never echoed.
    lost_in_flight: usize,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    rss_after_kib: u64,
}

/// `sessions` websocket sessions each send a numbered message every
/// `period`; after `before` the echo backend drops its sockets, after
/// `outage` a new one connects, and sending goes on for `after`. Asserts that
/// every message sent once the backend was gone is echoed, that each
/// session's echoes come in order without duplicates, and that the proxy
/// dropped nothing itself.
async fn backend_outage(
    sessions: usize,
    period: Duration,
    before: Duration,
    outage: Duration,
    after: Duration,
) -> Outage {
    let proxy = Proxy::with("heartbeat_delay_ms = 60000").await;
    let backend = Backend::echo(&proxy);
    let rss_before_kib = proxy.rss_kib();
    let setup_start = Instant::now();
    let mut sockets = Vec::new();
    for s in 0..sessions {
        let path = Proxy::session_path(&format!("load{s}"), "websocket");
        let mut socket = ws::connect(proxy.http_port, &path).await;
        assert_eq!(ws::text(&mut socket).await, "o");
        sockets.push(socket);
    }
    let setup = setup_start.elapsed();
    let start = Instant::now();
    let stop_at = start + before + outage + after;
    // Time for the echoes of the last messages to come back.
    let drain_until = stop_at + Duration::from_secs(10);
    let mut tasks = Vec::new();
    for socket in sockets {
        let (mut sink, mut stream) = socket.split();
        let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let sender = {
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut i = 0usize;
                while Instant::now() < stop_at {
                    sent.lock().await.push(Instant::now());
                    let text = format!("[\"{i}\"]");
                    sink.send(Message::Text(text)).await.expect("send");
                    i += 1;
                    tokio::time::sleep(period).await;
                }
                sink
            })
        };
        let receiver = tokio::spawn(async move {
            let mut echoed = Vec::new();
            let left = || drain_until.saturating_duration_since(Instant::now());
            while let Ok(Some(Ok(message))) = tokio::time::timeout(left(), stream.next()).await {
                if let Message::Text(frame) = message
                    && frame != "h"
                {
                    for m in common::messages(&frame) {
                        echoed.push(m.parse::<usize>().expect("numbered message"));
                    }
                }
                if Instant::now() > stop_at && stream_done(&echoed, &sent).await {
                    break;
                }
            }
            (echoed, sent)
        });
        tasks.push((sender, receiver));
    }
    tokio::time::sleep((start + before).saturating_duration_since(Instant::now())).await;
    drop(backend);
    let gone = Instant::now();
    let mut rss_peak_kib = proxy.rss_kib();
    while Instant::now() < gone + outage {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rss_peak_kib = rss_peak_kib.max(proxy.rss_kib());
    }
    let _backend = Backend::echo(&proxy);
    // 0MQ gives no delivery guarantee for what was already in the pipe to
    // (or inside) the peer that went away; the proxy's 0MQ I/O thread needs a
    // moment to see the disconnect, and this test's runtime to drop the
    // backend's sockets. Messages sent in that window may be lost with it.
    let grace = Duration::from_millis(300);
    let (mut sent_total, mut echoed_total, mut lost_in_flight) = (0, 0, 0);
    for (sender, receiver) in tasks {
        let _sink = sender.await.unwrap();
        let (echoed, sent) = receiver.await.unwrap();
        let sent = sent.lock().await;
        let mut seen = vec![false; sent.len()];
        let mut last = None;
        for &i in &echoed {
            assert!(i < sent.len(), "echo of a message never sent: {i}");
            assert!(
                last < Some(i),
                "echo {i} after {last:?}: out of order or twice"
            );
            last = Some(i);
            seen[i] = true;
        }
        for (i, at) in sent.iter().enumerate().filter(|(i, _)| !seen[*i]) {
            assert!(
                *at < gone + grace,
                "message {i} sent {:?} after the backend went away was lost",
                at.duration_since(gone)
            );
            lost_in_flight += 1;
        }
        sent_total += sent.len();
        echoed_total += echoed.len();
        rss_peak_kib = rss_peak_kib.max(proxy.rss_kib());
    }
    let scrape = http::get(proxy.http_port, "/metrics").await.text();
    for line in scrape
        .lines()
        .filter(|l| l.starts_with("sockjsproxy_dropped_total"))
    {
        assert!(line.ends_with(" 0"), "the proxy dropped messages: {line}");
    }
    let rss_after_kib = proxy.rss_kib();
    println!("setup of {sessions} sessions took {setup:?}");
    Outage {
        sent: sent_total,
        echoed: echoed_total,
        lost_in_flight,
        rss_before_kib,
        rss_peak_kib,
        rss_after_kib,
    }
}

/// Whether every message sent so far has been echoed.
async fn stream_done(echoed: &[usize], sent: &Mutex<Vec<Instant>>) -> bool {
    echoed.last().map(|l| l + 1) == Some(sent.lock().await.len())
}

#[tokio::test]
async fn backend_restarted_mid_stream_loses_nothing_sent_while_it_was_away() {
    bounded(async {
        let ms = Duration::from_millis;
        let figures = backend_outage(200, ms(200), ms(1000), ms(2000), ms(1000)).await;
        println!("{figures:?}");
        assert!(figures.sent >= 200 * 15, "{figures:?}");
        assert_eq!(figures.echoed + figures.lost_in_flight, figures.sent);
        assert!(
            figures.rss_peak_kib < figures.rss_before_kib + 64 * 1024,
            "{figures:?}"
        );
        assert!(
            figures.rss_after_kib < figures.rss_before_kib + 32 * 1024,
            "{figures:?}"
        );
    })
    .await
}

#[tokio::test]
#[ignore = "heavy: 1,000 sessions and a 10 s backend outage (about 20 s)"]
async fn backend_stopped_10s_under_1000_sessions_loses_nothing_sent_while_it_was_away() {
    let ms = Duration::from_millis;
    let run = backend_outage(1000, ms(500), ms(2000), ms(10_000), ms(2000));
    let figures = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("heavy outage test timed out");
    println!("{figures:?}");
    assert_eq!(figures.echoed + figures.lost_in_flight, figures.sent);
    assert!(
        figures.rss_peak_kib < figures.rss_before_kib + 256 * 1024,
        "{figures:?}"
    );
}

/// Sessions open at once in each batch (`CHURN_BATCH` overrides it). RSS is
/// compared with its start after a warm-up batch of the same 100 sessions;
/// with larger batches the proxy keeps the high-water memory of the largest
/// batch (with CHURN_BATCH=1000, measured once: 18.9 MB at the start, 32.9 MB
/// after the first batch, flat at 39.9 MB from the fifth to the tenth, i.e.
/// retained, not growing with the number of sessions).
const BATCH: usize = 100;

#[tokio::test]
#[ignore = "heavy: 10,000 websocket sessions opened and closed (about 30 s)"]
async fn ten_thousand_sessions_opened_and_closed_leave_rss_near_its_start() {
    let run = async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        // Warm up allocator arenas and worker buffers with one small batch.
        churn(&proxy, &mut backend, 0, 100).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start_kib = proxy.rss_kib();
        let mut peak_kib = start_kib;
        let batch_size: usize = std::env::var("CHURN_BATCH")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(BATCH);
        let batches = 10_000 / batch_size;
        for batch in 0..batches {
            churn(&proxy, &mut backend, batch_size * (batch + 1), batch_size).await;
            let now_kib = proxy.rss_kib();
            if (batch + 1) % (batches / 10).max(1) == 0 {
                println!(
                    "after {} sessions: RSS {now_kib} KiB",
                    batch_size * (batch + 1)
                );
            }
            peak_kib = peak_kib.max(now_kib);
        }
        // Sessions are gone once the backend heard every disconnect; give
        // the allocator a moment.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let end_kib = proxy.rss_kib();
        let open = http::get(proxy.http_port, "/metrics").await.text();
        let still_open: Vec<&str> = open
            .lines()
            .filter(|l| l.starts_with("sockjsproxy_sessions_open{") && !l.ends_with(" 0"))
            .collect();
        println!("RSS start {start_kib} KiB, peak {peak_kib} KiB, end {end_kib} KiB");
        assert!(still_open.is_empty(), "{still_open:?}");
        let allowed = (start_kib / 5).max(4096);
        assert!(
            end_kib <= start_kib + allowed,
            "RSS {end_kib} KiB after 10,000 sessions, {start_kib} KiB at the start"
        );
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("heavy session churn timed out");
}

/// Opens `count` websocket sessions at once, sends one message on each, then
/// closes them all and waits until the backend heard every disconnect.
async fn churn(proxy: &Proxy, backend: &mut Backend, first: usize, count: usize) {
    let mut sockets = Vec::new();
    for i in first..first + count {
        let mut socket = ws::connect(
            proxy.http_port,
            &Proxy::session_path(&format!("c{i}"), "websocket"),
        )
        .await;
        assert_eq!(ws::text(&mut socket).await, "o");
        ws::send(&mut socket, r#"["hello"]"#).await;
        sockets.push(socket);
    }
    for mut socket in sockets {
        socket.close(None).await.expect("close");
    }
    let mut disconnects = 0;
    while disconnects < count {
        let event = backend.next().await;
        if event.kind == "disconnect" {
            disconnects += 1;
        }
    }
}
