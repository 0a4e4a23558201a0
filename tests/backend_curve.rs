//! Securing the backend link with CURVE (issue #12): a pyzmq backend with
//! CURVE keys is served over websocket and xhr; a backend with the wrong
//! server key, with a client key not listed, or without CURVE at all is
//! refused at the handshake (logged with its address, counted) while a good
//! backend keeps working; a box tampered with or replayed on the wire is
//! dropped and ends its connection. `sockjsproxy keygen` writes what pyzmq
//! reads, and CURVE where libzmq would carry the sockets is a start-up error.

mod common;

use std::time::Duration;

use common::client::{Session, Transport};
use common::curve::{KeyDir, PyBackend, Relay, Security, Tamper, pyzmq_has_curve};
use common::{Proxy, bounded};

/// The proxy's CURVE keys (by `sockjsproxy keygen`) and one allowed
/// backend's (by pyzmq, its public certificate in `clients/`).
struct Keys {
    dir: KeyDir,
    server_public: std::path::PathBuf,
    server_secret: std::path::PathBuf,
    backend_secret: std::path::PathBuf,
}

fn keys() -> Keys {
    let dir = KeyDir::new();
    let (server_public, server_secret) = dir.keygen("server", "proxy");
    let (backend_public, backend_secret) = dir.pyzmq("backend", "good");
    std::fs::create_dir_all(dir.path("clients")).unwrap();
    std::fs::copy(&backend_public, dir.path("clients/good.key")).unwrap();
    Keys {
        dir,
        server_public,
        server_secret,
        backend_secret,
    }
}

/// A proxy serving `/` with CURVE and the client list of `keys`.
async fn curve_proxy(keys: &Keys) -> Proxy {
    let extra = format!(
        "curve_secret_key = {:?}\ncurve_clients = {:?}\n",
        keys.server_secret,
        keys.dir.path("clients")
    );
    Proxy::with_services(&[("/", &extra)]).await
}

async fn good_backend(proxy: &Proxy, keys: &Keys) -> PyBackend {
    let s = &proxy.services[0];
    PyBackend::start(
        &s.push,
        &s.pull,
        Security::Curve {
            client_secret: &keys.backend_secret,
            server_public: &keys.server_public,
        },
    )
    .await
}

const REFUSED: &str =
    "sockjsproxy_backend_disconnects_total{service=\"/\",reason=\"curve_handshake\"}";
const BAD_BOX: &str = "sockjsproxy_backend_disconnects_total{service=\"/\",reason=\"bad_box\"}";

async fn connected(proxy: &Proxy) {
    proxy.wait_for_log("connected to PUSH").await;
    proxy.wait_for_log("connected to PULL").await;
}

#[tokio::test]
async fn a_curve_backend_echoes_through_the_proxy_over_websocket_and_xhr() {
    if !pyzmq_has_curve() {
        return;
    }
    bounded(async {
        let keys = keys();
        let proxy = curve_proxy(&keys).await;
        let mut backend = good_backend(&proxy, &keys).await;
        connected(&proxy).await;
        assert!(proxy.stderr_contains("is CURVE client"));
        for (i, transport) in [
            Transport::Websocket,
            Transport::XhrPolling,
            Transport::XhrStreaming,
        ]
        .into_iter()
        .enumerate()
        {
            let mut session = Session::open(proxy.http_port, transport, &format!("s{i}"))
                .await
                .unwrap();
            for text in ["hello over CURVE", common::TRICKY] {
                session.echo(proxy.http_port, text).await.unwrap();
            }
        }
        // The backend saw the sessions' events in the clear.
        let mut seen = Vec::new();
        while let Some(line) = backend.line_within(Duration::from_millis(200)).await {
            seen.push(line);
        }
        assert!(
            seen.iter().any(|l| l.contains("hello over CURVE")),
            "{seen:?}"
        );
        assert_eq!(proxy.metric(REFUSED).await, 0.0);
    })
    .await
}

#[tokio::test]
async fn the_start_up_log_says_curve_is_on_and_warns_of_a_secret_others_can_read() {
    if !pyzmq_has_curve() {
        return;
    }
    bounded(async {
        let keys = keys();
        use std::os::unix::fs::PermissionsExt;
        let open = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(&keys.server_secret, open).unwrap();
        let proxy = curve_proxy(&keys).await;
        let line = proxy.wait_for_log("is readable by others (mode 644)").await;
        assert!(line.contains("WARN"), "{line}");
        let line = proxy.wait_for_log("PUSH bound to").await;
        assert!(
            line.contains("; CURVE, server key ") && line.contains("1 client key(s) allowed"),
            "{line}"
        );
    })
    .await
}

#[tokio::test]
async fn wrong_server_key_unknown_client_key_and_null_backends_are_refused_while_a_good_one_works()
{
    if !pyzmq_has_curve() {
        return;
    }
    bounded(async {
        let keys = keys();
        let (other_public, _) = keys.dir.keygen("other", "other");
        let (_, stranger_secret) = keys.dir.pyzmq("stranger", "stranger");
        let proxy = curve_proxy(&keys).await;
        let mut good = good_backend(&proxy, &keys).await;
        connected(&proxy).await;
        let s = &proxy.services[0];
        let mut wrong_server = PyBackend::start(
            &s.push,
            &s.pull,
            Security::Curve {
                client_secret: &keys.backend_secret,
                server_public: &other_public,
            },
        )
        .await;
        let mut unknown = PyBackend::start(
            &s.push,
            &s.pull,
            Security::Curve {
                client_secret: &stranger_secret,
                server_public: &keys.server_public,
            },
        )
        .await;
        let mut null = PyBackend::start(&s.push, &s.pull, Security::Null).await;
        for why in [
            "the backend has the wrong server key",
            "has no certificate in curve_clients",
            // libzmq closes on reading our CURVE greeting, mostly before
            // its own names NULL.
            "backends refused: not CURVE: ",
        ] {
            proxy.wait_for_log(why).await;
        }
        // Each refusal names the backend's address.
        let line = proxy
            .wait_for_log("has no certificate in curve_clients")
            .await;
        assert!(line.contains("backend 127.0.0.1:"), "{line}");
        assert!(proxy.metric(REFUSED).await >= 3.0);
        assert_eq!(proxy.stderr_count("connected to PUSH"), 1);
        assert_eq!(proxy.stderr_count("connected to PULL"), 1);

        // Every message goes to the good backend and back.
        let mut session = Session::open(proxy.http_port, Transport::Websocket, "w")
            .await
            .unwrap();
        for n in 0..20 {
            session
                .echo(proxy.http_port, &format!("m{n}"))
                .await
                .unwrap();
        }
        let mut got = 0;
        while let Some(line) = good.line_within(Duration::from_millis(200)).await {
            got += line.contains("\"message\"") as usize;
        }
        assert_eq!(got, 20);
        for refused in [&mut wrong_server, &mut unknown, &mut null] {
            assert_eq!(refused.line_within(Duration::from_millis(100)).await, None);
        }
    })
    .await
}

/// The good backend's PUSH goes through a relay that tampers with its first
/// box: that message is dropped, the connection ends, libzmq reconnects and
/// the next message arrives.
async fn tampered_box_is_dropped(tamper: Tamper, why: &str) {
    if !pyzmq_has_curve() {
        return;
    }
    bounded(async {
        let keys = keys();
        let proxy = curve_proxy(&keys).await;
        let s = &proxy.services[0];
        let relay = Relay::start(&s.pull, tamper).await;
        let _backend = PyBackend::start(
            &s.push,
            &relay.endpoint,
            Security::Curve {
                client_secret: &keys.backend_secret,
                server_public: &keys.server_public,
            },
        )
        .await;
        connected(&proxy).await;
        let mut session = Session::open(proxy.http_port, Transport::Websocket, "t")
            .await
            .unwrap();
        send_only(&mut session, "first").await;
        let line = proxy.wait_for_log(why).await;
        assert!(relay.done.load(std::sync::atomic::Ordering::SeqCst));
        assert!(line.contains("disconnected"), "{line}");
        assert_eq!(proxy.metric(BAD_BOX).await, 1.0);
        proxy.wait_for_logs("left PULL", 1).await;
        // Nothing of the tampered message reached the session...
        assert!(
            tokio::time::timeout(Duration::from_millis(500), session.frame())
                .await
                .is_err(),
            "the session got a frame"
        );
        // ...and the backend, reconnected, is served again.
        proxy.wait_for_logs("connected to PULL", 2).await;
        session.echo(proxy.http_port, "second").await.unwrap();
    })
    .await
}

/// Sends one message on a websocket session without waiting for its echo.
async fn send_only(session: &mut Session, text: &str) {
    use futures_util::SinkExt;
    let Session::Ws(ws) = session else {
        panic!("a websocket session")
    };
    let payload = serde_json::to_string(&[text]).unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(payload))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_box_with_a_flipped_byte_is_dropped_and_ends_the_connection() {
    tampered_box_is_dropped(Tamper::FlipByte, "MESSAGE box does not open").await
}

#[tokio::test]
async fn a_replayed_box_is_dropped_and_ends_the_connection() {
    tampered_box_is_dropped(Tamper::Replay, "replayed or reordered").await
}

#[tokio::test]
async fn keygen_writes_certificates_pyzmq_reads_and_never_replaces_them() {
    if !pyzmq_has_curve() {
        return;
    }
    let dir = KeyDir::new();
    let (public, secret) = dir.keygen("k", "proxy");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zmq, zmq.auth\n\
             p, s = zmq.auth.load_certificate(sys.argv[1])\n\
             q, none = zmq.auth.load_certificate(sys.argv[2])\n\
             assert p == q and none is None and zmq.curve_public(s) == p\n\
             print(p.decode())",
        ])
        .arg(&secret)
        .arg(&public)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim().len(), 40);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the secret certificate is its owner's only"
    );
    let before = std::fs::read(&secret).unwrap();
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_sockjsproxy"))
        .arg("keygen")
        .arg(dir.path("k"))
        .args(["--name", "proxy"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("File exists"));
    assert_eq!(std::fs::read(&secret).unwrap(), before);
}

/// Runs the proxy with `args` to its exit: (exit code, stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sockjsproxy"))
        .args(["-p", "1", "-i", "1", "-o", "2", "-a", "127.0.0.1"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn curve_where_libzmq_carries_the_sockets_or_with_bad_keys_is_a_startup_error() {
    let dir = KeyDir::new();
    let (public, secret) = dir.keygen("k", "proxy");
    let secret = secret.to_str().unwrap();
    let empty = dir.path("empty");
    let cases: [(&[&str], &str); 5] = [
        (
            &["--curve-secret-key", secret, "--zmq-engine", "libzmq"],
            "need the native ZMTP engine; with --zmq-engine libzmq",
        ),
        (
            &["--curve-secret-key", secret, "--connect"],
            "with --connect (scale-out mode)",
        ),
        (
            &["--curve-secret-key", public.to_str().unwrap()],
            "has no secret-key: it is a public certificate",
        ),
        (
            &["--curve-secret-key", "/nonexistent/key"],
            "cannot read CURVE certificate /nonexistent/key",
        ),
        (
            &[
                "--curve-secret-key",
                secret,
                "--curve-clients",
                empty.to_str().unwrap(),
            ],
            "cannot read curve_clients",
        ),
    ];
    for (args, expected) in cases {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn a_rust_example_backend_given_the_proxys_curve_flags_refuses_to_start() {
    let dir = KeyDir::new();
    let (_, secret) = dir.keygen("k", "proxy");
    // The examples read the proxy's command line; their libzmq has no CURVE.
    let out = std::process::Command::new(common::procs::example("echo"))
        .args(["-i", "1", "-o", "2", "-a", "127.0.0.1"])
        .arg("--curve-secret-key")
        .arg(&secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("uses CURVE, which this backend cannot speak"),
        "{stderr}"
    );
}
