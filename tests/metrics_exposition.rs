//! `/metrics` read by a real parser, Python's `prometheus_client` (installed
//! by `tests/browser/setup.sh`; the tests are skipped without it): for a
//! two-service proxy, in both text formats the proxy serves (Prometheus 0.0.4
//! by default, OpenMetrics 1.0 to a scraper that asks for it), every family
//! is read once with the samples of both services, a service label holding
//! `"`, `\` and `/` reads back as it is in the config, and the `process_*`,
//! build-info and backends-connected families are there; with bridge mode
//! on, its families count a websocket, its frames and a refused connect.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};

use common::backend::Backend;
use common::{IO_LIMIT, Proxy, bounded, http, ws};
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Reads an exposition on stdin with `prometheus_client`'s parser for the
/// format named in argv[1]; prints its families as JSON.
const PARSE: &str = r#"
import json, sys
if sys.argv[1] == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
families = [
    {"name": f.name, "type": f.type,
     "samples": [[s.name, s.labels, s.value] for s in f.samples]}
    for f in text_string_to_metric_families(sys.stdin.read())
]
print(json.dumps(families))
"#;

/// A service prefix whose label value needs escaping, as the proxy sees it.
const ODD_PREFIX: &str = r#"/q"uo\te"#;
/// The same, as a TOML basic string's contents.
const ODD_PREFIX_TOML: &str = r#"/q\"uo\\te"#;

/// Whether python3 has `prometheus_client`; in CI (`CI` set), it must.
fn parser_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI: python3 has no prometheus_client (tests/browser/setup.sh installs it)"
    );
    if !found {
        eprintln!("SKIPPED: python3 with prometheus_client not found (tests/browser/setup.sh)");
    }
    found
}

/// One family as the parser read it.
#[derive(Debug)]
struct Family {
    kind: String,
    /// (sample name, labels, value)
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

/// Scrapes `/metrics` in `format` and parses it; checks the content type on
/// the way. Fails on a family the parser returned twice.
async fn scrape(port: u16, format: &str) -> HashMap<String, Family> {
    let (accept, content_type) = match format {
        "openmetrics" => (
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            "application/openmetrics-text; version=1.0.0",
        ),
        _ => ("*/*", "text/plain; version=0.0.4"),
    };
    let res = http::request(port, "GET", "/metrics", &[("Accept", accept)], b"").await;
    assert_eq!(res.status, 200);
    let got = res.header("content-type").unwrap_or_default();
    assert!(got.starts_with(content_type), "content type {got:?}");
    let text = res.text();
    let mut python = Command::new("python3")
        .args(["-c", PARSE, format])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the {format} parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut families = HashMap::new();
    for f in parsed {
        let name = f["name"].as_str().unwrap().to_string();
        let samples = f["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels = serde_json::from_value(s[1].clone()).unwrap();
                (
                    s[0].as_str().unwrap().into(),
                    labels,
                    s[2].as_f64().unwrap(),
                )
            })
            .collect();
        let family = Family {
            kind: f["type"].as_str().unwrap().into(),
            samples,
        };
        let again = families.insert(name.clone(), family);
        assert!(
            again.is_none(),
            "{format}: family {name} read twice:\n{text}"
        );
    }
    families
}

/// The value of the sample `name` with exactly these labels.
fn value(
    families: &HashMap<String, Family>,
    family: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let want: HashMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let f = families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"));
    f.samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {f:?}"))
        .2
}

#[tokio::test]
async fn every_family_is_read_once_with_both_services_and_escaped_labels() {
    if !parser_available() {
        return;
    }
    bounded(async {
        let proxy = Proxy::with_services(&[("/echo", ""), (ODD_PREFIX_TOML, "")]).await;
        let _backend = Backend::connect(&proxy);
        // A session on /echo, so that its counters differ from the other's.
        let mut ws = ws::connect(proxy.http_port, &Proxy::session_path("m", "websocket")).await;
        assert_eq!(ws::text(&mut ws).await, "o");
        let deadline = std::time::Instant::now() + IO_LIMIT;
        for format in ["prometheus", "openmetrics"] {
            let families = loop {
                let families = scrape(proxy.http_port, format).await;
                let connected = [("push", 1.0), ("pull", 1.0)].iter().all(|(socket, n)| {
                    let labels = [("service", "/echo"), ("socket", *socket)];
                    value(
                        &families,
                        "sockjsproxy_backends_connected",
                        "sockjsproxy_backends_connected",
                        &labels,
                    ) == *n
                });
                if connected {
                    break families;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the backend never showed as connected"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            };
            let mut with_service = 0;
            for (name, family) in &families {
                let services: HashSet<&str> = family
                    .samples
                    .iter()
                    .filter_map(|(_, l, _)| l.get("service").map(String::as_str))
                    .collect();
                if name.starts_with("sockjsproxy_") && !services.is_empty() {
                    with_service += 1;
                    assert_eq!(
                        services,
                        HashSet::from(["/echo", ODD_PREFIX]),
                        "{format}: {name}"
                    );
                }
            }
            assert_eq!(
                with_service,
                14,
                "{format}: per-service families: {:?}",
                families.keys()
            );
            let open = [("service", "/echo"), ("transport", "websocket")];
            assert_eq!(
                value(
                    &families,
                    "sockjsproxy_sessions_open",
                    "sockjsproxy_sessions_open",
                    &open
                ),
                1.0
            );
            let odd = [("service", ODD_PREFIX), ("transport", "websocket")];
            assert_eq!(
                value(
                    &families,
                    "sockjsproxy_sessions_open",
                    "sockjsproxy_sessions_open",
                    &odd
                ),
                0.0
            );
            // Counters: one family, named without `_total` by the parser.
            let opened = &families["sockjsproxy_sessions_opened"];
            assert_eq!(opened.kind, "counter");
            assert_eq!(
                value(
                    &families,
                    "sockjsproxy_sessions_opened",
                    "sockjsproxy_sessions_opened_total",
                    &open
                ),
                1.0
            );
            let version = [("version", env!("CARGO_PKG_VERSION"))];
            let (build, build_sample) = match format {
                "openmetrics" => ("sockjsproxy_build", "sockjsproxy_build_info"),
                _ => ("sockjsproxy_build_info", "sockjsproxy_build_info"),
            };
            assert_eq!(value(&families, build, build_sample, &version), 1.0);
            let cpu = value(
                &families,
                "process_cpu_seconds",
                "process_cpu_seconds_total",
                &[],
            );
            assert!((0.0..60.0).contains(&cpu), "cpu {cpu}");
            let rss = value(
                &families,
                "process_resident_memory_bytes",
                "process_resident_memory_bytes",
                &[],
            );
            assert!((1e6..1e9).contains(&rss), "rss {rss}");
            let fds = value(&families, "process_open_fds", "process_open_fds", &[]);
            assert!((5.0..200.0).contains(&fds), "fds {fds}");
            let start = value(
                &families,
                "process_start_time_seconds",
                "process_start_time_seconds",
                &[],
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            assert!(
                start <= now && start > now - 60.0,
                "start {start}, now {now}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn bridge_mode_counts_its_websockets_frames_and_refused_connects() {
    if !parser_available() {
        return;
    }
    bounded(async {
        let args = || vec!["--bridge".to_string(), "/data".to_string()];
        let proxy = Proxy::with_args("", args, "info").await;
        let mut ws = ws::connect(proxy.http_port, "/data").await;
        // No policy and no auth service: every connect is refused.
        let connect = r#"{"identity":"r","msg_type":"connect","content":"{\"endpoint\":\"tcp://127.0.0.1:9\",\"socket_type\":3}"}"#;
        ws.send(Message::text(connect)).await.unwrap();
        let answer = ws::text(&mut ws).await;
        assert!(answer.contains(r#"\"status\":\"error\""#), "{answer}");
        for format in ["prometheus", "openmetrics"] {
            let f = scrape(proxy.http_port, format).await;
            let total = |name: &str, labels: &[(&str, &str)]| {
                value(&f, name, &format!("{name}_total"), labels)
            };
            let open = "sockjsproxy_bridge_websockets_open";
            assert_eq!(value(&f, open, open, &[]), 1.0);
            assert_eq!(total("sockjsproxy_bridge_websockets_opened", &[]), 1.0);
            assert_eq!(total("sockjsproxy_bridge_frames", &[("direction", "in")]), 1.0);
            assert_eq!(total("sockjsproxy_bridge_frames", &[("direction", "out")]), 1.0);
            assert_eq!(total("sockjsproxy_bridge_connects", &[("result", "refused")]), 1.0);
            assert_eq!(total("sockjsproxy_bridge_connects", &[("result", "opened")]), 0.0);
            let dropped = [("reason", "outbox_full")];
            assert_eq!(total("sockjsproxy_bridge_dropped", &dropped), 0.0);
        }
    })
    .await;
}
