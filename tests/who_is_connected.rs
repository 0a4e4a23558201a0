//! Who is connected, end to end with the real proxy, a real 0MQ backend and
//! a real auth service, over every transport: the backend's `connect` JSON
//! (address, transport, query, headers, user); JWTs good, expired, forged,
//! for another audience, missing; an auth service that allows, denies, is
//! slow, dead or answers garbage, without holding up anyone else. A denied
//! session gets `o`, then `c[4403,"<reason>"]`, and never reaches the
//! backend; a raw websocket gets 403 before the upgrade.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

use common::backend::Backend;
use common::who::{AuthService, Client, Transport};
use common::{Proxy, TempFile, bounded, http, ws};

const SECRET: &[u8] = b"the secret of the who-is-connected tests";
/// Nothing more reaches the backend within this.
const QUIET: Duration = Duration::from_millis(300);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(claims: Value, secret: &[u8]) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// The tokens of the tests and the reason each gets in its close frame.
fn tokens() -> (String, Vec<(&'static str, String, &'static str)>) {
    let good = token(
        json!({"sub": "alice", "exp": now() + 600, "aud": "chat", "role": "admin"}),
        SECRET,
    );
    let bad = vec![
        (
            "expired",
            token(
                json!({"sub": "alice", "exp": now() - 600, "aud": "chat"}),
                SECRET,
            ),
            "token expired",
        ),
        (
            "forged",
            token(
                json!({"sub": "admin", "exp": now() + 600, "aud": "chat"}),
                b"guessed",
            ),
            "token signature invalid",
        ),
        (
            "wrong audience",
            token(
                json!({"sub": "alice", "exp": now() + 600, "aud": "billing"}),
                SECRET,
            ),
            "token for another audience",
        ),
        ("missing", String::new(), "token missing"),
    ];
    (good, bad)
}

fn close_frame(reason: &str) -> String {
    format!("c[4403,{}]", serde_json::to_string(reason).unwrap())
}

async fn jwt_proxy(secret: &TempFile) -> Proxy {
    Proxy::with(&format!(
        "connect_info = true\n[service.auth_jwt]\nkey_file = {:?}\naudience = \"chat\"\nclaims = [\"role\"]\n",
        secret.0
    ))
    .await
}

async fn scrape(port: u16) -> String {
    http::get(port, "/metrics").await.text()
}

#[tokio::test]
async fn with_connect_info_the_backend_sees_who_connected_on_every_transport() {
    bounded(async {
        let proxy = Proxy::with("connect_info = true").await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        // Kept open: a client dropped would end its session (a `disconnect`).
        let mut open = Vec::new();
        for t in Transport::ALL {
            let mut client = Client::open(port, t, t.name(), "a=1&b=x%20y").await;
            assert_eq!(client.next(port).await, "o", "{t:?}");
            let (id, info) = backend.expect_connect_json().await;
            assert_eq!(info["remote_addr"], "127.0.0.1", "{t:?}: {info}");
            assert_eq!(info["transport"], t.name());
            assert_eq!(info["prefix"], "/echo");
            assert!(
                info["query"].as_str().unwrap().ends_with("a=1&b=x%20y"),
                "{info}"
            );
            assert_eq!(
                info["headers"]["host"],
                format!("127.0.0.1:{port}"),
                "{info}"
            );
            assert!(info.get("user").is_none(), "no user without authentication");
            client.send(port, "hello").await;
            assert_eq!(backend.expect_message(&id).await, "hello");
            open.push(client);
        }
        let mut raw = ws::connect(port, "/echo/websocket?a=1").await;
        let (id, info) = backend.expect_connect_json().await;
        assert_eq!(
            (&info["transport"], &info["query"]),
            (&json!("raw_websocket"), &json!("a=1"))
        );
        ws::send(&mut raw, "raw hello").await;
        assert_eq!(backend.expect_message(&id).await, "raw hello");
    })
    .await
}

#[tokio::test]
async fn only_the_listed_headers_are_passed_on_and_credentials_only_when_named() {
    bounded(async {
        let proxy = Proxy::with("connect_info = true\nconnect_headers = [\"X-Custom\"]").await;
        let mut backend = Backend::connect(&proxy);
        let headers = [
            ("X-Custom", "v"),
            ("Cookie", "sid=secret"),
            ("User-Agent", "t"),
        ];
        let path = Proxy::session_path("h1", "xhr");
        let open = http::request(proxy.http_port, "POST", &path, &headers, b"").await;
        assert_eq!(open.text(), "o\n");
        let (_, info) = backend.expect_connect_json().await;
        assert_eq!(info["headers"], json!({"x-custom": "v"}));

        // By default: sockjs-node's safe list, never the cookie.
        let proxy = Proxy::with("connect_info = true").await;
        let mut backend = Backend::connect(&proxy);
        let path = Proxy::session_path("h2", "xhr");
        http::request(proxy.http_port, "POST", &path, &headers, b"").await;
        let (_, info) = backend.expect_connect_json().await;
        assert_eq!(info["headers"]["user-agent"], "t");
        assert!(info["headers"].get("cookie").is_none(), "{info}");
        assert!(info["headers"].get("x-custom").is_none(), "{info}");
    })
    .await
}

#[tokio::test]
async fn with_neither_option_connect_data_stays_empty() {
    bounded(async {
        let proxy = Proxy::start().await;
        let mut backend = Backend::connect(&proxy);
        let mut open = Vec::new();
        for t in [Transport::Websocket, Transport::Xhr] {
            let mut client = Client::open(proxy.http_port, t, "plain", "token=x").await;
            assert_eq!(client.next(proxy.http_port).await, "o");
            // `expect_connect` asserts the data frame is empty, as in 0.7.
            backend.expect_connect().await;
            open.push(client);
        }
    })
    .await
}

#[tokio::test]
async fn a_good_token_gets_in_and_bad_ones_are_closed_with_4403_on_every_transport() {
    bounded(async {
        let secret = TempFile::new(SECRET);
        let proxy = jwt_proxy(&secret).await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let (good, bad) = tokens();
        let mut open = Vec::new();
        for t in Transport::ALL {
            for (case, token, reason) in &bad {
                let id = format!("{}-{}", t.name(), case.replace(' ', "-"));
                let query = if token.is_empty() {
                    String::new()
                } else {
                    format!("token={token}")
                };
                let mut client = Client::open(port, t, &id, &query).await;
                assert_eq!(client.next(port).await, "o", "{t:?} {case}");
                assert_eq!(client.next(port).await, close_frame(reason), "{t:?} {case}");
            }
            let mut client = Client::open(
                port,
                t,
                &format!("{}-good", t.name()),
                &format!("token={good}"),
            )
            .await;
            assert_eq!(client.next(port).await, "o");
            // The first event the backend hears: the denied sessions never reached it.
            let (id, info) = backend.expect_connect_json().await;
            assert_eq!(
                (&info["user"], &info["auth"]),
                (&json!("alice"), &json!({"role": "admin"})),
                "{info}"
            );
            assert_eq!(info["transport"], t.name());
            client.send(port, "in").await;
            assert_eq!(backend.expect_message(&id).await, "in");
            open.push(client);
        }
        for (case, token, reason) in &bad {
            let refused = ws::refused(port, &format!("/echo/websocket?token={token}")).await;
            match refused {
                tokio_tungstenite::tungstenite::Error::Http(r) => {
                    assert_eq!(r.status(), 403, "{case}")
                }
                other => panic!("{case}: {other:?}"),
            }
            // The reason is the 403's body.
            let upgrade = [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ];
            let path = format!("/echo/websocket?token={token}");
            let r = http::request(port, "GET", &path, &upgrade, b"").await;
            assert_eq!((r.status, r.text()), (403, reason.to_string()), "{case}");
        }
        let _raw = ws::connect(port, &format!("/echo/websocket?token={good}")).await;
        let (_, info) = backend.expect_connect_json().await;
        assert_eq!(
            (&info["user"], &info["transport"]),
            (&json!("alice"), &json!("raw_websocket"))
        );
        assert!(
            backend.next_within(QUIET).await.is_none(),
            "a denied session reached the backend"
        );

        let metrics = scrape(port).await;
        // Six transports, and the raw websocket twice (client and plain HTTP).
        for (label, n) in [
            ("token_expired", 8),
            ("token_invalid", 8),
            ("token_audience", 8),
            ("token_missing", 8),
        ] {
            let line = format!(
                "sockjsproxy_sessions_denied_total{{service=\"/echo\",reason=\"{label}\"}} {n}"
            );
            assert!(
                metrics.lines().any(|l| l == line),
                "no {line:?} in\n{metrics}"
            );
        }
        assert!(
            metrics.contains("sockjsproxy_sessions_admitted_total{service=\"/echo\"} 7"),
            "{metrics}"
        );
    })
    .await
}

#[tokio::test]
async fn the_token_may_come_in_a_cookie_or_header_instead() {
    bounded(async {
        let secret = TempFile::new(SECRET);
        let proxy = Proxy::with(&format!(
            "[service.auth_jwt]\nkey_file = {:?}\nquery_param = \"\"\ncookie = \"jwt\"\nheader = \"Authorization\"\n",
            secret.0
        ))
        .await;
        let mut backend = Backend::connect(&proxy);
        let good = token(json!({"sub": "bob", "exp": now() + 60}), SECRET);
        let cookie = format!("a=b; jwt={good}");
        let bearer = format!("Bearer {good}");
        for (i, header) in [("Cookie", cookie.as_str()), ("Authorization", bearer.as_str())].into_iter().enumerate() {
            let path = Proxy::session_path(&format!("c{i}"), "xhr");
            let open = http::request(proxy.http_port, "POST", &path, &[header], b"").await;
            assert_eq!(open.text(), "o\n");
            let (_, who) = backend.expect_connect_json().await;
            assert_eq!(who, json!({"user": "bob"}), "only the user without connect_info");
        }
        // In the query, where it is not looked for: missing.
        let path = format!("{}?token={good}", Proxy::session_path("q", "xhr"));
        assert_eq!(http::post(proxy.http_port, &path, b"").await.text(), "o\n");
        let closed = http::post(proxy.http_port, &path, b"").await.text();
        assert_eq!(closed.trim_end(), close_frame("token missing"));
    })
    .await
}

async fn service_proxy(service: &str, timeout_ms: u64) -> Proxy {
    Proxy::with(&format!(
        "connect_info = true\nauth = \"{service}\"\nauth_timeout_ms = {timeout_ms}"
    ))
    .await
}

#[tokio::test]
async fn an_auth_service_that_is_slow_or_answers_garbage_denies_without_holding_up_others() {
    bounded(async {
        let service = AuthService::start();
        let proxy = service_proxy(&service.endpoint, 3000).await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let started = Instant::now();
        // A slow (5 s) question on every transport at once...
        let slow: Vec<_> = Transport::ALL
            .into_iter()
            .map(|t| {
                tokio::spawn(async move {
                    let mut c =
                        Client::open(port, t, &format!("slow-{}", t.name()), "who=slow").await;
                    (c.next(port).await, c.next(port).await, Instant::now())
                })
            })
            .collect();
        // ...does not hold up the others, who are answered at once.
        let mut open = Vec::new();
        for t in Transport::ALL {
            let mut c = Client::open(port, t, &format!("carol-{}", t.name()), "who=carol").await;
            assert_eq!(c.next(port).await, "o");
            let (id, info) = backend.expect_connect_json().await;
            assert_eq!(
                (&info["user"], &info["auth"]),
                (&json!("carol"), &json!({"role": "user"}))
            );
            c.send(port, "hi").await;
            assert_eq!(backend.expect_message(&id).await, "hi");
            open.push(c);
            for (who, reason) in [
                ("deny", "banned"),
                ("garbage", "auth service answer not understood"),
            ] {
                let mut c = Client::open(
                    port,
                    t,
                    &format!("{who}-{}", t.name()),
                    &format!("who={who}"),
                )
                .await;
                assert_eq!(
                    (c.next(port).await, c.next(port).await),
                    ("o".into(), close_frame(reason)),
                    "{t:?} {who}"
                );
            }
        }
        let others_done = Instant::now();
        for s in slow {
            let (open, close, at) = s.await.unwrap();
            assert_eq!(
                (open.as_str(), close),
                ("o", close_frame("auth service did not answer"))
            );
            assert!(
                at >= started + Duration::from_millis(2900),
                "denied at the timeout, not before"
            );
            assert!(
                others_done < at,
                "the others were served while the slow ones waited"
            );
        }
        assert_eq!(
            ws::refused(port, "/echo/websocket?who=deny")
                .await
                .to_string(),
            "HTTP error: 403 Forbidden"
        );
        assert!(
            backend.next_within(QUIET).await.is_none(),
            "a denied session reached the backend"
        );
        // The service saw what the backend would have: the connection info.
        let first = service.questions.lock().unwrap()[0].clone();
        assert_eq!(first["type"], "sockjs");
        assert_eq!(first["prefix"], "/echo");
        assert_eq!(first["remote_addr"], "127.0.0.1");
        let metrics = scrape(port).await;
        for (label, n) in [
            ("service_timeout", 6),
            ("service_denied", 7),
            ("service_garbage", 6),
        ] {
            let line = format!(
                "sockjsproxy_sessions_denied_total{{service=\"/echo\",reason=\"{label}\"}} {n}"
            );
            assert!(
                metrics.lines().any(|l| l == line),
                "no {line:?} in\n{metrics}"
            );
        }
    })
    .await
}

#[tokio::test]
async fn a_dead_auth_service_denies_by_the_timeout() {
    bounded(async {
        let dead = format!("tcp://127.0.0.1:{}", common::free_port());
        let proxy = service_proxy(&dead, 500).await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        for t in Transport::ALL {
            let mut c = Client::open(port, t, &format!("dead-{}", t.name()), "who=alice").await;
            assert_eq!(c.next(port).await, "o");
            assert_eq!(
                c.next(port).await,
                close_frame("auth service did not answer"),
                "{t:?}"
            );
        }
        assert!(backend.next_within(QUIET).await.is_none());
    })
    .await
}

#[tokio::test]
async fn messages_sent_while_admission_is_pending_reach_the_backend_after_the_allow() {
    bounded(async {
        let service = AuthService::start();
        let proxy = service_proxy(&service.endpoint, 2000).await;
        let mut backend = Backend::connect(&proxy);
        let port = proxy.http_port;
        let mut open = Vec::new();
        for t in [
            Transport::Websocket,
            Transport::Xhr,
            Transport::XhrStreaming,
        ] {
            // The service answers in 300 ms; the client does not wait for it.
            let mut c = Client::open(port, t, &format!("later-{}", t.name()), "who=later").await;
            assert_eq!(c.next(port).await, "o");
            c.send(port, "early 1").await;
            c.send(port, "early 2").await;
            let (id, info) = backend.expect_connect_json().await;
            assert_eq!(info["user"], "later");
            assert_eq!(backend.expect_message(&id).await, "early 1");
            assert_eq!(backend.expect_message(&id).await, "early 2");
            open.push(c);
        }
        // A denied session's waiting messages never reach the backend.
        let mut c = Client::open(port, Transport::Websocket, "denied", "who=deny").await;
        assert_eq!(c.next(port).await, "o");
        c.send(port, "secret").await;
        assert_eq!(c.next(port).await, close_frame("banned"));
        assert!(backend.next_within(QUIET).await.is_none());
    })
    .await
}
