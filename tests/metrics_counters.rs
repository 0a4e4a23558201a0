//! `/metrics` (Prometheus text) and `/healthz` with the real binary: the
//! counters move as sessions open and close (`sessions_open` by transport),
//! as messages flow (`messages_total`/`bytes_total` in and out) and as
//! messages are dropped (`dropped_total` by reason: `queue_full` after a
//! session's outgoing queue overflows, `bad_backend_message` after a garbage
//! backend frame, `unknown_session` after a message for no session); on the
//! main port with `--metrics-public` (the test launcher's default), on
//! `--metrics-port` only when that is given, and nowhere public by default,
//! while `/healthz` stays public.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::{IO_LIMIT, Proxy, bounded, free_port, http, ws};

/// The samples of a scrape: `name{labels}` → value; checks the exposition
/// format on the way (every sample's family has a HELP and a TYPE line).
async fn scrape(port: u16) -> HashMap<String, f64> {
    let res = http::get(port, "/metrics").await;
    assert_eq!(res.status, 200);
    assert!(
        res.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        res.headers
    );
    let text = res.text();
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (key, value) = line.rsplit_once(' ').expect("sample line");
        let family = key.split('{').next().unwrap();
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {family}"
        );
        samples.insert(key.to_string(), value.parse().expect("numeric value"));
    }
    samples
}

fn sample(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {samples:?}"))
}

fn open(transport: &str) -> String {
    format!("sockjsproxy_sessions_open{{service=\"/echo\",transport=\"{transport}\"}}")
}

fn messages(direction: &str) -> String {
    format!("sockjsproxy_messages_total{{service=\"/echo\",direction=\"{direction}\"}}")
}

fn dropped(reason: &str) -> String {
    format!("sockjsproxy_dropped_total{{service=\"/echo\",reason=\"{reason}\"}}")
}

/// Scrapes until `key` has `value`; panics after [`IO_LIMIT`].
async fn wait_for(port: u16, key: &str, value: f64) -> HashMap<String, f64> {
    let deadline = Instant::now() + IO_LIMIT;
    loop {
        let samples = scrape(port).await;
        if samples.get(key) == Some(&value) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "{key} never became {value}: {:?}",
            samples.get(key)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn session_and_message_counters_follow_the_traffic() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::echo(&proxy);
        let port = proxy.http_port;
        let health = http::get(port, "/healthz").await;
        assert_eq!((health.status, health.text().trim()), (200, "ok"));
        let before = scrape(port).await;
        assert_eq!(sample(&before, &open("websocket")), 0.0);
        assert_eq!(sample(&before, &messages("in")), 0.0);

        let mut ws = ws::connect(port, &Proxy::session_path("m", "websocket")).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let id = backend.expect_connect().await;
        let xhr = Proxy::session_path("x", "xhr");
        assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
        backend.expect_connect().await;
        let now = scrape(port).await;
        assert_eq!(sample(&now, &open("websocket")), 1.0);
        assert_eq!(sample(&now, &open("xhr")), 1.0);
        let opened = "sockjsproxy_sessions_opened_total{service=\"/echo\",transport=\"websocket\"}";
        assert_eq!(sample(&now, opened), 1.0);

        ws::send(&mut ws, r#"["one","two!"]"#).await;
        assert_eq!(ws::messages(&mut ws, 2).await, ["one", "two!"]);
        assert_eq!(backend.expect_message(&id).await, "one");
        let now = wait_for(port, &messages("out"), 2.0).await;
        assert_eq!(sample(&now, &messages("in")), 2.0);
        let bytes_in = "sockjsproxy_bytes_total{service=\"/echo\",direction=\"in\"}";
        assert_eq!(sample(&now, bytes_in), 7.0);

        drop(ws);
        backend.expect_message(&id).await;
        backend.expect_disconnect(&id).await;
        let now = wait_for(port, &open("websocket"), 0.0).await;
        assert_eq!(sample(&now, &open("xhr")), 1.0);
        assert_eq!(sample(&now, opened), 1.0);
        let depth = "sockjsproxy_backend_queue_depth{service=\"/echo\"}";
        assert_eq!(sample(&now, depth), 0.0);
    })
    .await
}

#[tokio::test]
async fn drops_are_counted_by_reason() {
    bounded(async {
        let proxy = Proxy::with("max_queue = 3").await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let before = scrape(port).await;
        for reason in ["queue_full", "bad_backend_message", "unknown_session"] {
            assert_eq!(sample(&before, &dropped(reason)), 0.0, "{reason}");
        }

        // Five messages for a session without a receiver and a queue of 3.
        let xhr = Proxy::session_path("q", "xhr");
        assert_eq!(http::post(port, &xhr, b"").await.text(), "o\n");
        let id = backend.expect_connect().await;
        for m in ["m1", "m2", "m3", "m4", "m5"] {
            backend.send_message(&id, m);
        }
        backend.expect_disconnect(&id).await;
        let now = scrape(port).await;
        assert!(sample(&now, &dropped("queue_full")) >= 1.0, "{now:?}");

        // Garbage from the backend: two parts, then an unknown session.
        backend.send(&[b"message", b"1"]);
        wait_for(port, &dropped("bad_backend_message"), 1.0).await;
        // m5 above may have counted here already: it is "unknown" when the
        // reader met it after the session closed at m4 (it came in a later
        // read), "session_closed" otherwise. The reader took it before the
        // bad message, so the count is settled now.
        let before = sample(&scrape(port).await, &dropped("unknown_session"));
        backend.send_message("987654321", "nobody");
        let now = wait_for(port, &dropped("unknown_session"), before + 1.0).await;
        assert_eq!(sample(&now, &dropped("bad_backend_message")), 1.0);
        assert_eq!(sample(&now, &dropped("backend_queue_full")), 0.0);
    })
    .await
}

#[tokio::test]
async fn metrics_port_serves_the_metrics_and_healthz_stays_on_the_main_port() {
    bounded(async {
        let metrics_port = free_port();
        let args = move || vec!["--metrics-port".to_string(), metrics_port.to_string()];
        let proxy = Proxy::with_args("", args, "info").await;
        proxy.wait_for_log("metrics on http://").await;
        let mut backend = Backend::echo(&proxy);
        let health = http::get(metrics_port, "/healthz").await;
        assert_eq!((health.status, health.text().trim()), (200, "ok"));
        assert_eq!(http::get(proxy.http_port, "/metrics").await.status, 404);
        let public_health = http::get(proxy.http_port, "/healthz").await;
        assert_eq!(
            (public_health.status, public_health.text().trim()),
            (200, "ok")
        );

        let mut ws = ws::connect(proxy.http_port, &Proxy::session_path("p", "websocket")).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        backend.expect_connect().await;
        let now = scrape(metrics_port).await;
        assert_eq!(sample(&now, &open("websocket")), 1.0);
        ws::send(&mut ws, r#"["x"]"#).await;
        assert_eq!(ws::messages(&mut ws, 1).await, ["x"]);
        wait_for(metrics_port, &messages("out"), 1.0).await;
    })
    .await
}

#[tokio::test]
async fn metrics_are_not_public_by_default() {
    bounded(async {
        // Any --metrics flag keeps the launcher from adding --metrics-public;
        // this one states the default.
        let args = || vec!["--metrics-address".to_string(), "127.0.0.1".to_string()];
        let proxy = Proxy::with_args("", args, "info").await;
        proxy.wait_for_log("/metrics not served").await;
        assert_eq!(http::get(proxy.http_port, "/metrics").await.status, 404);
        assert_eq!(http::get(proxy.http_port, "/healthz").await.status, 200);
        assert!(!proxy.stderr_contains("--metrics-public: /metrics is served"));
    })
    .await
}

#[tokio::test]
async fn metrics_public_serves_them_on_the_main_port_with_a_warning() {
    bounded(async {
        let args = || vec!["--metrics-public".to_string()];
        let proxy = Proxy::with_args("", args, "info").await;
        proxy
            .wait_for_log("--metrics-public: /metrics is served")
            .await;
        let _ = scrape(proxy.http_port).await;
    })
    .await
}
