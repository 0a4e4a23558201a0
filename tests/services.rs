//! Several services on one proxy: each prefix has its own 0MQ endpoints and
//! backend, the longest prefix wins, one URL session id in two services names
//! two sessions, a backend's commands reach only its own sessions, and each
//! service's options (`websocket = false`) apply to it alone. Also the one
//! service at `/` that the SockJSProxy 0.7 command-line flags describe.

mod common;

use std::time::Duration;

use common::backend::Backend;
use common::{Proxy, bounded, http, ws};
use tokio_tungstenite::tungstenite;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn each_service_talks_to_its_own_backend_and_the_longest_prefix_wins() {
    bounded(async {
        let proxy = Proxy::with_services(&[("/a", ""), ("/a/b", "")]).await;
        let mut a = Backend::start(&proxy.services[0], true);
        let mut b = Backend::start(&proxy.services[1], true);
        let port = proxy.http_port;

        // `/a/b/...` belongs to `/a/b`, not to `/a` with server id `b`.
        let mut ws_b = ws::connect(port, "/a/b/000/s1/websocket").await;
        assert_eq!(ws::text(&mut ws_b).await, "o");
        let id_b = b.expect_connect().await;
        // The same URL session id under `/a` is another session.
        assert_eq!(http::post(port, "/a/000/s1/xhr", b"").await.text(), "o\n");
        let id_a = a.expect_connect().await;
        assert_ne!(id_a, id_b);

        ws::send(&mut ws_b, r#"["to b"]"#).await;
        assert_eq!(b.expect_message(&id_b).await, "to b");
        assert_eq!(ws::text(&mut ws_b).await, r#"a["to b"]"#);

        let sent = http::post(port, "/a/000/s1/xhr_send", br#"["to a"]"#).await;
        assert_eq!(sent.status, 204);
        assert_eq!(a.expect_message(&id_a).await, "to a");
        assert_eq!(
            http::post(port, "/a/000/s1/xhr", b"").await.text(),
            "a[\"to a\"]\n"
        );

        assert_eq!(a.next_within(QUIET).await, None, "crossed to a");
        assert_eq!(b.next_within(QUIET).await, None, "crossed to b");
    })
    .await
}

#[tokio::test]
async fn backend_commands_reach_only_their_own_services_sessions() {
    bounded(async {
        let proxy = Proxy::with_services(&[("/one", ""), ("/two", "")]).await;
        let mut one = Backend::start(&proxy.services[0], false);
        let mut two = Backend::start(&proxy.services[1], false);
        let port = proxy.http_port;
        let mut ws_one = ws::connect(port, "/one/000/s/websocket").await;
        assert_eq!(ws::text(&mut ws_one).await, "o");
        let id_one = one.expect_connect().await;
        let mut ws_two = ws::connect(port, "/two/000/s/websocket").await;
        assert_eq!(ws::text(&mut ws_two).await, "o");
        let id_two = two.expect_connect().await;

        // A message for a session of another service is an unknown session.
        one.send_message(&id_two, "wrong service");
        proxy
            .wait_for_log(&format!("message for unknown session {id_two} dropped"))
            .await;

        one.disconnect_all();
        assert_eq!(ws::text(&mut ws_one).await, r#"c[3000,"Go away!"]"#);
        one.expect_disconnect(&id_one).await;

        assert_eq!(ws::next_within(&mut ws_two, QUIET).await, None);
        ws::send(&mut ws_two, r#"["still open"]"#).await;
        assert_eq!(two.expect_message(&id_two).await, "still open");
    })
    .await
}

#[tokio::test]
async fn service_options_apply_to_their_own_service() {
    bounded(async {
        let proxy = Proxy::with_services(&[("/ws", ""), ("/nows", "websocket = false")]).await;
        let port = proxy.http_port;

        let info: serde_json::Value =
            serde_json::from_slice(&http::get(port, "/ws/info").await.body).unwrap();
        assert_eq!(info["websocket"], true);
        let info: serde_json::Value =
            serde_json::from_slice(&http::get(port, "/nows/info").await.body).unwrap();
        assert_eq!(info["websocket"], false);

        match ws::refused(port, "/nows/000/s/websocket").await {
            tungstenite::Error::Http(response) => assert_eq!(response.status(), 404),
            other => panic!("websocket refused with {other}, not 404"),
        }
        let _ = ws::connect(port, "/ws/000/s/websocket").await;

        assert_eq!(http::get(port, "/nope/info").await.status, 404);
    })
    .await
}

#[tokio::test]
async fn command_line_flags_serve_one_service_at_the_root() {
    bounded(async {
        let proxy = Proxy::with_flags().await;
        let mut backend = Backend::echo(&proxy);
        let port = proxy.http_port;

        let info = http::get(port, "/info").await;
        assert_eq!(info.status, 200);
        let info: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
        assert_eq!(info["websocket"], true);

        let mut ws = ws::connect(port, "/000/s1/websocket").await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;
        ws::send(&mut ws, r#"["at the root"]"#).await;
        assert_eq!(backend.expect_message(&id).await, "at the root");
        assert_eq!(ws::text(&mut ws).await, r#"a["at the root"]"#);
    })
    .await
}
