//! The native ZMTP 3.1 engine (`--zmq-engine native`, the default) against
//! real libzmq peers: backends reach the proxy over `ipc://` as over `tcp://`,
//! and the socket file lives exactly as long as the proxy; the PUSH spreads
//! events round-robin over its PULL peers, none lost or duplicated; events
//! made while no backend is connected wait for the next one, in order; a peer
//! with ZMTP heartbeats gets its PINGs answered and stays connected; peers of
//! the wrong socket type get no events while proper backends work on. And
//! `--zmq-engine libzmq` still carries a round trip, so the old path stays
//! covered. Peers that break the protocol or its bounds:
//! `zmtp_misbehaving_peers.rs`.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::backend::{Backend, raw_session as session};
use common::meter::peak_rss_kib;
use common::zmq_peer::Watched;
use common::zmtp_raw::{read_until_closed, zmtp_hello};
use common::{IO_LIMIT, Proxy, bounded, http, ws};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A directory for `ipc://` socket files, removed on drop.
struct SocketDir(PathBuf);

impl SocketDir {
    fn new() -> SocketDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sockjsproxy-zmtp-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the socket directory");
        SocketDir(dir)
    }

    /// The socket file `name` and its `ipc://` endpoint.
    fn endpoint(&self, name: &str) -> (PathBuf, String) {
        let path = self.0.join(name);
        let endpoint = format!("ipc://{}", path.display());
        (path, endpoint)
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_socket(path: &PathBuf) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Opens an xhr-polling session `name`; its `connect` event goes to a backend.
async fn open_xhr(proxy: &Proxy, name: &str) {
    let path = Proxy::session_path(name, "xhr");
    assert_eq!(http::post(proxy.http_port, &path, b"").await.text(), "o\n");
}

#[tokio::test]
async fn ipc_endpoints_carry_a_round_trip_and_their_files_go_with_the_proxy() {
    bounded(async {
        let dir = SocketDir::new();
        let (push_file, push) = dir.endpoint("push.sock");
        let (pull_file, pull) = dir.endpoint("pull.sock");
        let mut proxy = Proxy::with_endpoints(&push, &pull, &[]).await;
        let bound = proxy.wait_for_log("PUSH bound to").await;
        assert!(
            bound.ends_with(&format!(
                "PUSH bound to {push} (native), PULL bound to {pull} (native)"
            )),
            "{bound}"
        );
        assert!(
            is_socket(&push_file) && is_socket(&pull_file),
            "no socket files in {:?}",
            dir.0
        );

        let mut backend = Backend::echo(&proxy);
        let (mut ws, id) = session(&proxy, &mut backend).await;
        ws::send(&mut ws, common::TRICKY).await;
        assert_eq!(backend.expect_message(&id).await, common::TRICKY);
        assert_eq!(
            ws::text(&mut ws).await,
            common::TRICKY,
            "the echo came back over ipc"
        );
        assert!(proxy.stderr_contains(&format!(
            "backend {} connected to PULL",
            pull_file.display()
        )));

        assert_eq!(proxy.terminate().await, Some(0));
        assert!(
            !push_file.exists() && !pull_file.exists(),
            "socket files left after exit"
        );
    })
    .await
}

#[tokio::test]
async fn push_spreads_events_round_robin_over_two_backends() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backends = [Backend::connect(&proxy), Backend::connect(&proxy)];
        proxy.wait_for_logs("connected to PUSH", 2).await;

        for i in 0..40 {
            open_xhr(&proxy, &format!("rr{i}")).await;
        }
        let mut ids: Vec<HashSet<String>> = Vec::new();
        for backend in &mut backends {
            let mut got = HashSet::new();
            while let Some(event) = backend.next_within(Duration::from_millis(500)).await {
                assert_eq!(event.kind, "connect", "{event:?}");
                assert!(got.insert(event.session.clone()), "{event:?} came twice");
            }
            ids.push(got);
        }
        assert_eq!((ids[0].len(), ids[1].len()), (20, 20), "not round-robin");
        assert!(
            ids[0].is_disjoint(&ids[1]),
            "an event went to both backends"
        );
    })
    .await
}

#[tokio::test]
async fn events_made_while_no_backend_is_connected_wait_for_the_next_one() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut first = Backend::connect(&proxy);
        let (mut early, early_id) = session(&proxy, &mut first).await;
        drop(first);
        proxy.wait_for_log("left PUSH").await;
        proxy.wait_for_log("left PULL").await;

        // With no backend: messages on an open session, and two new sessions.
        let mut sessions = vec![early];
        sessions.push(ws::connect(proxy.http_port, "/echo/websocket").await);
        sessions.push(ws::connect(proxy.http_port, "/echo/websocket").await);
        for (s, ws) in sessions.iter_mut().enumerate() {
            for n in 0..5 {
                ws::send(ws, &format!("s{s}-{n}")).await;
            }
        }
        early = sessions.remove(0);

        let mut backend = Backend::connect(&proxy);
        let mut by_session: HashMap<String, Vec<String>> = HashMap::new();
        for _ in 0..17 {
            let event = backend.next().await;
            let text = String::from_utf8(event.data).unwrap();
            by_session
                .entry(event.session)
                .or_default()
                .push(match event.kind.as_str() {
                    "message" => text,
                    kind => kind.to_string(),
                });
        }
        assert_eq!(
            backend.next_within(Duration::from_millis(300)).await,
            None,
            "more events than made"
        );
        let expect = |s: usize, connect: bool| {
            let messages = (0..5).map(|n| format!("s{s}-{n}"));
            connect
                .then(|| "connect".to_string())
                .into_iter()
                .chain(messages)
                .collect::<Vec<_>>()
        };
        assert_eq!(by_session.remove(&early_id), Some(expect(0, false)));
        let mut late: Vec<(String, Vec<String>)> = by_session.into_iter().collect();
        late.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            late.iter()
                .map(|(_, events)| events.clone())
                .collect::<Vec<_>>(),
            [expect(1, true), expect(2, true)]
        );

        // Commands flow again too, to sessions opened either way.
        backend.send_message(&early_id, "welcome back");
        assert_eq!(ws::text(&mut early).await, "welcome back");
        backend.send_message(&late[1].0, "to s2");
        assert_eq!(ws::text(&mut sessions[1]).await, "to s2");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeating_libzmq_peer_gets_its_pings_answered_and_stays() {
    bounded(async {
        let proxy = Proxy::start().await;
        let ctx = zmq::Context::new();
        let heartbeats = |s: &zmq::Socket| {
            s.set_heartbeat_ivl(100).unwrap();
            s.set_heartbeat_timeout(300).unwrap();
        };
        let events = Watched::connect(&ctx, zmq::PULL, &proxy.services[0].push, heartbeats);
        let commands = Watched::connect(&ctx, zmq::PUSH, &proxy.services[0].pull, heartbeats);
        let (events, commands) = tokio::task::spawn_blocking(move || {
            events.wait_for(zmq::SocketEvent::HANDSHAKE_SUCCEEDED);
            commands.wait_for(zmq::SocketEvent::HANDSHAKE_SUCCEEDED);
            // Quiet for 1.5 s: only PONGs reset libzmq's 300 ms heartbeat timeout.
            let seen = [
                events.events_for(Duration::from_millis(1500)),
                commands.events_for(Duration::from_millis(100)),
            ];
            for (socket, seen) in ["PULL", "PUSH"].iter().zip(seen) {
                assert!(
                    !seen.contains(&zmq::SocketEvent::DISCONNECTED),
                    "the {socket} peer was dropped: {seen:?}"
                );
            }
            (events, commands)
        })
        .await
        .unwrap();
        assert_eq!(
            proxy.stderr_count("connected to P"),
            2,
            "a peer reconnected"
        );

        let mut ws = ws::connect(proxy.http_port, "/echo/websocket").await;
        let connect = events.recv();
        assert_eq!(connect[0], b"connect");
        ws::send(&mut ws, "still there?").await;
        assert_eq!(
            events.recv(),
            [
                b"message".to_vec(),
                connect[1].clone(),
                b"still there?".to_vec()
            ]
        );
        commands.send(&[b"message", &connect[1], b"yes"]);
        assert_eq!(ws::text(&mut ws).await, "yes");
    })
    .await
}

#[tokio::test]
async fn peers_of_the_wrong_type_get_no_events_and_proper_ones_do() {
    bounded(async {
        let proxy = Proxy::start().await;
        let ctx = zmq::Context::new();
        let sub = Watched::connect(&ctx, zmq::SUB, &proxy.services[0].push, |s| {
            s.set_subscribe(b"").unwrap()
        });
        proxy
            .wait_for_log(
                "refused on PUSH: peer is a SUB socket; a PUSH socket takes only PULL peers",
            )
            .await;
        // A peer that does not check our type in turn: the proxy closes it
        // after the handshake, with nothing but its greeting and READY sent.
        let mut req = TcpStream::connect(proxy.services[0].push.trim_start_matches("tcp://"))
            .await
            .unwrap();
        req.write_all(&zmtp_hello("REQ")).await.unwrap();
        let got = read_until_closed(&mut req, IO_LIMIT).await;
        assert_eq!(got[0], 0xFF, "no ZMTP greeting: {got:?}");
        assert_eq!(
            &got[64..68],
            &[0x04, 26, 5, b'R'],
            "not a READY after the greeting: {got:?}"
        );
        assert!(got.ends_with(b"Socket-Type\0\0\0\x04PUSH"), "{got:?}");
        assert_eq!(got.len(), 64 + 2 + 26, "more than READY sent: {got:?}");
        proxy.wait_for_log("peer is a REQ socket").await;

        let mut backend = Backend::connect(&proxy);
        proxy.wait_for_log("connected to PUSH").await;
        for i in 0..20 {
            open_xhr(&proxy, &format!("w{i}")).await;
        }
        let mut ids = HashSet::new();
        for _ in 0..20 {
            assert!(
                ids.insert(backend.expect_connect().await),
                "an event came twice"
            );
        }
        assert_eq!(
            sub.recv_within(Duration::from_millis(300)),
            None,
            "the SUB peer got an event"
        );
        assert_eq!(
            proxy.stderr_count("connected to PUSH"),
            1,
            "a wrong peer was taken"
        );
    })
    .await
}

#[tokio::test]
async fn the_libzmq_engine_still_carries_a_round_trip() {
    bounded(async {
        let args = || vec!["--zmq-engine".to_string(), "libzmq".to_string()];
        let proxy = Proxy::with_args("", args, "info").await;
        let bound = proxy.wait_for_log("PUSH bound to").await;
        assert!(
            bound.contains("(libzmq), PULL bound to") && bound.ends_with("(libzmq)"),
            "{bound}"
        );

        let mut backend = Backend::echo(&proxy);
        let (mut ws, id) = session(&proxy, &mut backend).await;
        ws::send(&mut ws, common::TRICKY).await;
        assert_eq!(backend.expect_message(&id).await, common::TRICKY);
        assert_eq!(ws::text(&mut ws).await, common::TRICKY);
        assert!(
            !proxy.stderr_contains("connected to PUSH"),
            "the native engine took a backend"
        );
    })
    .await
}

#[tokio::test]
async fn with_the_libzmq_engine_a_frame_over_64_mib_disconnects_its_backend_unbuffered() {
    bounded(async {
        let args = || vec!["--zmq-engine".to_string(), "libzmq".to_string()];
        let proxy = Proxy::with_args("", args, "info").await;
        let mut backend = Backend::connect(&proxy);
        let (mut ws, id) = session(&proxy, &mut backend).await;
        let before = peak_rss_kib(proxy.pid());

        let huge = vec![b'x'; (64 << 20) + 1];
        backend.send(&[b"message", id.as_bytes(), &huge]);
        drop(huge);
        backend.send_message(&id, "next");
        // libzmq (ZMQ_MAXMSGSIZE) dropped the connection at the frame's
        // header; the backend reconnected and sent what followed.
        assert_eq!(ws::text(&mut ws).await, "next");
        let grown = peak_rss_kib(proxy.pid()).saturating_sub(before);
        assert!(grown < 32 << 10, "peak RSS grew by {grown} KiB");
    })
    .await
}
