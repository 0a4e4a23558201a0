//! Issue 11's memory attacks, each by one hostile client kind against a proxy
//! with default settings, with the proxy's peak RSS (VmHWM) and CPU time
//! measured and printed (`--nocapture`): no attack may take it past 512 MiB.
//!
//! * a websocket frame whose header promises 2^40 bytes, then data: SockJS,
//!   raw and bridge websockets close with 1009 at the header, buffering
//!   nothing (the peak grows by less than [`NOTHING_BUFFERED_KIB`]);
//! * a hixie-76 frame that never ends: closed once past `max_message_bytes`
//!   (1 MiB), at a CPU cost that stays linear;
//! * with no backend connected, clients sending 1 MiB messages by `xhr_send`
//!   and websocket as fast as they can: the backend queue's byte budget holds
//!   them back (at most [`ACCEPTED_LIMIT_MIB`] taken by `xhr_send`);
//! * 100 sessions whose clients do not read while a backend sends each 1 MiB
//!   messages: each session's outbound queue is bounded in bytes, and the
//!   session closes with `c[3001,"Outgoing queue full"]`.
//!
//! A watchdog stops an attack the moment the proxy passes 512 MiB (see
//! `common::meter`), so that an undefended proxy fails fast instead of
//! growing by a gigabyte a second. Tests run one at a time.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::attack::{self, MIB, Wire};
use common::backend::Backend;
use common::bystanders;
use common::meter::{RSS_LIMIT_KIB, Stop, Watchdog};
use common::{PREFIX, Proxy, bounded, http, ws};
use tokio_tungstenite::tungstenite;

/// How long each streaming attack runs at most.
const ATTACK: Duration = Duration::from_secs(3);
/// "Nothing buffered": a frame refused at its header leaves the proxy's peak
/// RSS within its read buffers and allocator slack of where it was. 16 MiB
/// is generous for that, and 1/4 s of an undefended proxy's growth.
const NOTHING_BUFFERED_KIB: u64 = 16 * 1024;
/// What the backend queue may take while no backend is connected: its
/// default byte budget (16 MiB per service) plus one body in flight for each
/// flooding client, with room to spare (the budget was 64 MiB when this was
/// written).
const ACCEPTED_LIMIT_MIB: u64 = 128;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Sends a frame header that says 2^40 bytes on the websocket at `path`,
/// then streams data until the proxy closes (or [`ATTACK`] ends).
async fn huge_frame_closes_with_1009(proxy: &Proxy, path: &str, name: &str) {
    let (stream, rest) = attack::ws_upgrade(proxy.http_port, path).await;
    let stop = Stop::after(ATTACK);
    let dog = Watchdog::start(proxy.pid(), RSS_LIMIT_KIB, &stop);
    let header = attack::client_frame_header(0x1, 1 << 40);
    let data = vec![b'x'; 64 * 1024];
    let got = attack::stream_until_closed(stream, rest, Wire::Rfc6455, &header, &data, &stop).await;
    let cost = dog.finish(name);
    eprintln!(
        "{name}: sent {:.1} MiB, close code {:?} after {:?}",
        got.sent as f64 / MIB as f64,
        got.close_code,
        got.closed_after
    );
    cost.assert_within_issue_bound(name);
    assert_eq!(got.close_code, Some(1009), "{name}: {got:?}");
    let after = got.closed_after.unwrap();
    assert!(
        after < Duration::from_secs(1),
        "{name}: closed only after {after:?}, not at the header"
    );
    assert!(
        cost.peak_growth_kib <= NOTHING_BUFFERED_KIB,
        "{name}: the proxy buffered the frame: peak RSS grew {:.1} MiB",
        mib(cost.peak_growth_kib)
    );
}

#[tokio::test]
async fn a_sockjs_websocket_frame_header_of_2_pow_40_bytes_closes_with_1009() {
    let _serial = attack::one_at_a_time().await;
    bounded(async {
        let proxy = Proxy::start().await;
        let _backend = Backend::echo(&proxy);
        let path = Proxy::session_path(&attack::session_id("huge"), "websocket");
        huge_frame_closes_with_1009(&proxy, &path, "2^40 frame, SockJS websocket").await;
    })
    .await
}

#[tokio::test]
async fn a_raw_websocket_frame_header_of_2_pow_40_bytes_closes_with_1009() {
    let _serial = attack::one_at_a_time().await;
    bounded(async {
        let proxy = Proxy::start().await;
        let _backend = Backend::echo(&proxy);
        let path = format!("{PREFIX}/websocket");
        huge_frame_closes_with_1009(&proxy, &path, "2^40 frame, raw websocket").await;
    })
    .await
}

#[tokio::test]
async fn a_bridge_websocket_frame_header_of_2_pow_40_bytes_closes_with_1009() {
    let _serial = attack::one_at_a_time().await;
    bounded(async {
        let bridge = || vec!["--bridge".to_string(), "/data".to_string()];
        let proxy = Proxy::with_args("", bridge, "info").await;
        huge_frame_closes_with_1009(&proxy, "/data", "2^40 frame, bridge websocket").await;
    })
    .await
}

#[tokio::test]
async fn an_endless_hixie76_frame_is_closed_past_max_message_bytes_at_linear_cost() {
    let _serial = attack::one_at_a_time().await;
    bounded(async {
        let proxy = Proxy::start().await;
        let _backend = Backend::echo(&proxy);
        let path = Proxy::session_path(&attack::session_id("hixie"), "websocket");
        let (stream, rest) = attack::hixie_upgrade(proxy.http_port, &path).await;
        let stop = Stop::after(ATTACK);
        let dog = Watchdog::start(proxy.pid(), RSS_LIMIT_KIB, &stop);
        let data = vec![b'x'; 64 * 1024];
        let got =
            attack::stream_until_closed(stream, rest, Wire::Hixie76, &[0x00], &data, &stop).await;
        let name = "endless hixie-76 frame";
        let cost = dog.finish(name);
        eprintln!(
            "{name}: sent {:.1} MiB, closed {} after {:?}; proxy CPU {:.1} ms per MiB sent",
            got.sent as f64 / MIB as f64,
            got.closed,
            got.closed_after,
            cost.cpu.as_secs_f64() * 1000.0 / (got.sent as f64 / MIB as f64).max(1.0)
        );
        cost.assert_within_issue_bound(name);
        assert!(got.closed, "{name}: still open after {ATTACK:?}: {got:?}");
        assert!(
            got.sent >= MIB as u64,
            "{name}: closed before max_message_bytes was reached: {got:?}"
        );
        // Scanning each byte once, 1 MiB (plus what the socket buffers held)
        // costs milliseconds; rescanning the buffer per chunk costs seconds.
        assert!(
            cost.cpu <= Duration::from_millis(500),
            "{name}: the proxy spent {:?} of CPU",
            cost.cpu
        );
        assert!(
            cost.peak_growth_kib <= 2 * NOTHING_BUFFERED_KIB,
            "{name}: peak RSS grew {:.1} MiB",
            mib(cost.peak_growth_kib)
        );
    })
    .await
}

#[tokio::test]
async fn with_no_backend_floods_of_1_mib_messages_are_held_back_within_the_memory_bound() {
    let _serial = attack::one_at_a_time().await;
    bounded(async {
        let proxy = Proxy::start().await;
        let port = proxy.http_port;
        let body = Arc::new(attack::one_big_message(MIB - 16));
        let frame = Arc::new(attack::client_text_frame(&body));
        let stop = Stop::after(Duration::from_secs(4));
        let dog = Watchdog::start(proxy.pid(), RSS_LIMIT_KIB, &stop);
        let xhr: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(attack::xhr_send_flood(
                    port,
                    PREFIX,
                    body.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        let wss: Vec<_> = (0..4)
            .map(|_| tokio::spawn(attack::ws_flood(port, PREFIX, frame.clone(), stop.clone())))
            .collect();
        // Mid-attack, the proxy still answers others.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let info = format!("{PREFIX}/info");
        let answered = tokio::time::timeout(Duration::from_secs(2), http::get(port, &info)).await;
        let (mut accepted, mut refused, mut ws_bytes) = (0, 0, 0);
        for t in xhr {
            let flooded = t.await.unwrap();
            accepted += flooded.accepted;
            refused += flooded.refused;
        }
        for t in wss {
            ws_bytes += t.await.unwrap();
        }
        let name = "no backend, 1 MiB floods (4 xhr_send + 4 websocket clients)";
        let cost = dog.finish(name);
        eprintln!(
            "{name}: xhr_send took {accepted} MiB ({refused} refused), websockets wrote {:.0} MiB",
            ws_bytes as f64 / MIB as f64
        );
        cost.assert_within_issue_bound(name);
        assert!(
            matches!(&answered, Ok(r) if r.status == 200),
            "{name}: /info was not answered during the flood"
        );
        assert!(
            accepted <= ACCEPTED_LIMIT_MIB,
            "{name}: xhr_send took {accepted} MiB with no backend: not held back"
        );
    })
    .await
}

/// A SockJS websocket whose receive buffer is small, so that what the proxy
/// cannot send piles up in the proxy rather than in this test's kernel.
async fn small_window_websocket(port: u16) -> ws::Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let path = Proxy::session_path(&attack::session_id("deaf"), "websocket");
    let url = format!("ws://127.0.0.1:{port}{path}");
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("websocket upgrade");
    assert_eq!(ws::text(&mut ws).await, "o");
    ws
}

#[tokio::test]
async fn sessions_that_do_not_read_1_mib_messages_close_with_3001_within_the_memory_bound() {
    let _serial = attack::one_at_a_time().await;
    bounded(async {
        const SESSIONS: usize = 100;
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let mut clients = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..SESSIONS {
            clients.push(small_window_websocket(proxy.http_port).await);
            ids.push(backend.expect_connect().await);
        }
        let closed = Arc::new(Mutex::new(HashSet::new()));
        let stop = Stop::after(Duration::from_secs(8));
        let dog = Watchdog::start(proxy.pid(), RSS_LIMIT_KIB, &stop);
        let sender = bystanders::ZmqSender::start(&proxy.services[0], ids, MIB, closed.clone());
        while !stop.fired() && closed.lock().unwrap().len() < SESSIONS {
            if let Some(e) = backend.next_within(Duration::from_millis(50)).await
                && e.kind == "disconnect"
            {
                closed.lock().unwrap().insert(e.session);
            }
        }
        let sent = sender.sent.load(std::sync::atomic::Ordering::Relaxed);
        drop(sender);
        let name = "100 sessions not reading 1 MiB messages";
        let cost = dog.finish(name);
        let closed = closed.lock().unwrap().len();
        eprintln!("{name}: backend sent {sent} MiB; {closed} sessions closed");
        cost.assert_within_issue_bound(name);
        assert_eq!(closed, SESSIONS, "{name}: sessions left open");
        // What each client finally reads ends with the queue-full close.
        for (i, mut client) in clients.into_iter().enumerate() {
            let last = loop {
                let frame = ws::text(&mut client).await;
                if !frame.starts_with('a') && frame != "h" {
                    break frame;
                }
            };
            assert_eq!(last, r#"c[3001,"Outgoing queue full"]"#, "client {i}");
        }
    })
    .await
}

#[tokio::test]
async fn sessions_that_do_not_read_the_echoes_of_their_own_1_mib_messages_close_with_3001() {
    let _serial = attack::one_at_a_time().await;
    bounded(async {
        const SESSIONS: usize = 100;
        let proxy = Proxy::start().await;
        let _echo = bystanders::ZmqEcho::start(&proxy.services[0]);
        let mut probe =
            ws::connect(proxy.http_port, &Proxy::session_path("probe", "websocket")).await;
        assert_eq!(ws::text(&mut probe).await, "o");
        ws::send(&mut probe, r#"["probe"]"#).await;
        assert_eq!(ws::messages(&mut probe, 1).await, ["probe"]);
        let mut clients = Vec::new();
        for _ in 0..SESSIONS {
            clients.push(small_window_websocket(proxy.http_port).await);
        }
        let message = String::from_utf8(attack::one_big_message(MIB - 16)).unwrap();
        let stop = Stop::after(Duration::from_secs(6));
        let dog = Watchdog::start(proxy.pid(), RSS_LIMIT_KIB, &stop);
        let mut sent = 0;
        while !stop.fired() {
            for client in clients.iter_mut() {
                let send = futures_util::SinkExt::send(
                    client,
                    tungstenite::Message::Text(message.clone()),
                );
                if let Some(Ok(Ok(()))) = stop
                    .until(tokio::time::timeout(Duration::from_millis(200), send))
                    .await
                {
                    sent += 1;
                }
            }
            stop.until(tokio::time::sleep(Duration::from_millis(500)))
                .await;
        }
        let name = "100 sessions not reading the echoes of their 1 MiB messages";
        let cost = dog.finish(name);
        eprintln!("{name}: clients sent {sent} MiB");
        cost.assert_within_issue_bound(name);
        let mut ends = std::collections::BTreeMap::<String, usize>::new();
        for client in clients.iter_mut() {
            let end = loop {
                match tokio::time::timeout(Duration::from_secs(5), ws::next(client)).await {
                    Err(_) => break "still open".to_string(),
                    Ok(tungstenite::Message::Text(f)) if f.starts_with('c') => break f,
                    Ok(tungstenite::Message::Close(_)) => break "close without c[...]".to_string(),
                    Ok(_) => {}
                }
            };
            *ends.entry(end).or_default() += 1;
        }
        eprintln!("{name}: sessions ended {ends:?}");
        assert_eq!(
            ends.get(r#"c[3001,"Outgoing queue full"]"#),
            Some(&SESSIONS),
            "{name}: {ends:?}"
        );
    })
    .await
}
