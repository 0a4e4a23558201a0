//! Scale-out mode's wire, seen from a broker: a `--connect` proxy facing this
//! test's own bound PULL and ROUTER. Heartbeats come first and name the
//! instance; session ids read `<instance>.<n>`; a command addressed to the
//! proxy's DEALER identity reaches the session, one naming another instance is
//! dropped; and SIGTERM still sends `disconnect` for every open session.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use common::procs::spawn;

const WAIT: Duration = Duration::from_secs(10);

/// The broker side: PULL for events, ROUTER for commands, both bound.
struct FakeBroker {
    events: zmq::Socket,
    commands: zmq::Socket,
}

impl FakeBroker {
    fn bind(events: u16, commands: u16) -> FakeBroker {
        let zmq = zmq::Context::new();
        let pull = zmq.socket(zmq::PULL).unwrap();
        pull.set_rcvtimeo(WAIT.as_millis() as i32).unwrap();
        pull.bind(&format!("tcp://127.0.0.1:{events}")).unwrap();
        let router = zmq.socket(zmq::ROUTER).unwrap();
        router.set_router_mandatory(true).unwrap();
        router.set_linger(0).unwrap();
        router.bind(&format!("tcp://127.0.0.1:{commands}")).unwrap();
        FakeBroker {
            events: pull,
            commands: router,
        }
    }

    /// The next event other than a heartbeat, as text frames.
    fn event(&self) -> Vec<String> {
        loop {
            let parts = self.events.recv_multipart(0).expect("an event in time");
            let parts: Vec<String> = parts
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            if parts[0] != "heartbeat" {
                return parts;
            }
        }
    }

    /// Sends a command to `instance`, waiting for its DEALER to be there.
    fn command(&self, instance: &str, parts: [&str; 3]) {
        let deadline = Instant::now() + WAIT;
        loop {
            let frames = [instance, parts[0], parts[1], parts[2]];
            match self.commands.send_multipart(frames, 0) {
                Ok(()) => return,
                Err(zmq::Error::EHOSTUNREACH) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("ROUTER send: {e}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_proxy_heartbeats_prefixes_ids_and_takes_routed_commands() {
    let ports = common::free_ports(3);
    let (http, events, commands) = (ports[0], ports[1], ports[2]);
    let broker = FakeBroker::bind(events, commands);
    let args = [
        "--http-address",
        "127.0.0.1",
        "--http-port",
        &http.to_string(),
        "--address",
        "127.0.0.1",
        "--in-port",
        &events.to_string(),
        "--out-port",
        &commands.to_string(),
        "--workers",
        "1",
        "--connect",
        "--instance-id",
        "t1",
        "--scaleout-heartbeat-ms",
        "100",
    ];
    let mut proxy = spawn(
        Path::new(env!("CARGO_BIN_EXE_sockjsproxy")),
        &args.map(String::from),
        "info",
    );
    proxy.wait_for("SockJS listening on").await;
    proxy.wait_for("instance t1, PUSH connected to").await;

    // Heartbeats first, naming the instance and an incarnation.
    let beat = broker.events.recv_multipart(0).expect("a heartbeat");
    assert_eq!(
        (&beat[0][..], &beat[1][..]),
        (&b"heartbeat"[..], &b"t1"[..])
    );
    assert!(!beat[2].is_empty(), "an incarnation");

    let url = format!("ws://127.0.0.1:{http}/000/abc/websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let next_text = async |ws: &mut common::ws::Ws| loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t != "h" => return t,
            Ok(Some(Ok(_))) => continue,
            other => panic!("websocket: {other:?}"),
        }
    };
    assert_eq!(next_text(&mut ws).await, "o");
    let connect = tokio::task::block_in_place(|| broker.event());
    assert_eq!(connect[0], "connect");
    let session = connect[1].clone();
    assert!(session.starts_with("t1."), "session id {session:?}");
    assert!(session[3..].parse::<u64>().is_ok());

    ws.send(Message::Text("[\"hi\"]".into())).await.unwrap();
    let message = tokio::task::block_in_place(|| broker.event());
    assert_eq!(message, ["message", session.as_str(), "hi"]);

    // Another instance's session id is refused; this one's is delivered.
    tokio::task::block_in_place(|| {
        broker.command("t1", ["message", "t2.1", "not mine"]);
        broker.command("t1", ["message", &session, "back"]);
    });
    assert_eq!(next_text(&mut ws).await, "a[\"back\"]");
    proxy.wait_for("is not one this proxy made").await;

    // SIGTERM: the session closes and the broker hears it.
    let pid = proxy.child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let disconnect = tokio::task::block_in_place(|| broker.event());
    assert_eq!(disconnect, ["disconnect", session.as_str(), ""]);
    let status = tokio::time::timeout(WAIT, proxy.child.wait()).await;
    assert!(status.expect("exit after SIGTERM").unwrap().success());
}
