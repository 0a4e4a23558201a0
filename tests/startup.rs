//! Start-up errors of the real binary: a bad endpoint, a taken HTTP or 0MQ
//! port, a missing, unreadable or malformed config, an unknown key, a value out
//! of range, conflicting services. Each must exit with code 2 after one
//! `sockjsproxy: ...` line on stderr (at most preceded by INFO log records),
//! and never panic.

mod common;

use std::net::TcpListener;
use std::process::Stdio;

use common::{IO_LIMIT, TempFile, bounded, config_toml, free_ports};
use tokio::process::Command;

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

/// Runs the binary to its exit with the default log settings.
async fn run(args: &[&str]) -> Outcome {
    let child = Command::new(env!("CARGO_BIN_EXE_sockjsproxy"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sockjsproxy");
    let output = tokio::time::timeout(IO_LIMIT, child.wait_with_output())
        .await
        .expect("sockjsproxy did not exit")
        .expect("wait for sockjsproxy");
    Outcome {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the binary on a config file with these contents.
async fn run_config(contents: &str) -> Outcome {
    let file = TempFile::new(contents.as_bytes());
    run(&["--config", file.0.to_str().unwrap()]).await
}

/// An INFO record of env_logger's default format, `[<time> INFO  <target>] ...`.
fn is_info_record(line: &str) -> bool {
    line.starts_with('[')
        && line
            .split(']')
            .next()
            .is_some_and(|head| head.contains(" INFO "))
}

/// Exit code 2, no panic, and exactly one non-log line: the last, starting
/// `sockjsproxy:` and containing `expected`.
fn assert_startup_error(outcome: &Outcome, expected: &str) {
    let stderr = &outcome.stderr;
    assert_eq!(outcome.code, Some(2), "exit code; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !is_info_record(l))
        .collect();
    assert_eq!(errors.len(), 1, "not one error line:\n{stderr}");
    assert_eq!(lines.last(), errors.first(), "error is not last:\n{stderr}");
    assert!(
        errors[0].starts_with("sockjsproxy: "),
        "error line does not start with `sockjsproxy: `:\n{stderr}"
    );
    assert!(
        errors[0].contains(expected),
        "error line lacks {expected:?}:\n{stderr}"
    );
}

fn with_service(extra: &str) -> String {
    let p = free_ports(3);
    config_toml(p[0], p[1], p[2], extra)
}

#[tokio::test]
async fn bad_endpoint_strings_are_startup_errors() {
    bounded(async {
        let [http, pull] = [0, 1].map(|_| common::free_port());
        for bad in ["tcp://127.0.0.1", "udp://127.0.0.1:1", "tcp://:5", "tcp://x:0", "9241", "ipc://"] {
            let config = format!(
                "http_port = {http}\n[[service]]\nprefix = \"/e\"\npush = \"{bad}\"\npull = \"tcp://127.0.0.1:{pull}\"\n"
            );
            let outcome = run_config(&config).await;
            assert_startup_error(&outcome, &format!("bad endpoint {bad:?}"));
        }
    })
    .await
}

/// Which of the three ports of a config a test takes before the proxy starts.
#[derive(Clone, Copy)]
enum Taken {
    Http,
    Push,
    Pull,
}

/// Holds one port with a listener and runs the proxy on a config using it;
/// asserts the start-up error names that port. The other ports were free a
/// moment ago; if a parallel test took one of them meanwhile, try again.
async fn assert_port_in_use_is_a_startup_error(taken: Taken) {
    for _ in 0..5 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let [a, b] = [0, 1].map(|_| common::free_port());
        let (config, expected) = match taken {
            Taken::Http => (
                config_toml(port, a, b, ""),
                format!("cannot listen on 127.0.0.1:{port}"),
            ),
            Taken::Push => (
                config_toml(a, port, b, ""),
                format!("cannot bind PUSH socket to tcp://127.0.0.1:{port}"),
            ),
            Taken::Pull => (
                config_toml(a, b, port, ""),
                format!("cannot bind PULL socket to tcp://127.0.0.1:{port}"),
            ),
        };
        let outcome = run_config(&config).await;
        drop(listener);
        if !outcome.stderr.contains(&expected) && outcome.stderr.contains("in use") {
            continue;
        }
        assert_startup_error(&outcome, &expected);
        return;
    }
    panic!("other ports kept being taken");
}

#[tokio::test]
async fn http_port_in_use_is_a_startup_error() {
    bounded(assert_port_in_use_is_a_startup_error(Taken::Http)).await
}

#[tokio::test]
async fn zmq_push_port_in_use_is_a_startup_error() {
    bounded(assert_port_in_use_is_a_startup_error(Taken::Push)).await
}

#[tokio::test]
async fn zmq_pull_port_in_use_is_a_startup_error() {
    bounded(assert_port_in_use_is_a_startup_error(Taken::Pull)).await
}

#[tokio::test]
async fn missing_config_file_is_a_startup_error() {
    bounded(async {
        let path = std::env::temp_dir().join("sockjsproxy-itest-no-such-file.toml");
        let outcome = run(&["--config", path.to_str().unwrap()]).await;
        assert_startup_error(&outcome, "cannot read config file");
    })
    .await
}

#[tokio::test]
async fn unreadable_config_file_is_a_startup_error() {
    bounded(async {
        // A directory cannot be read as a file, even by root.
        let dir = std::env::temp_dir();
        let outcome = run(&["--config", dir.to_str().unwrap()]).await;
        assert_startup_error(&outcome, "cannot read config file");
        // Nor can a file that is not UTF-8.
        let binary = TempFile::new(b"http_port = 1\xff\xfe\n");
        let outcome = run(&["--config", binary.0.to_str().unwrap()]).await;
        assert_startup_error(&outcome, "cannot read config file");
    })
    .await
}

#[tokio::test]
async fn malformed_config_is_a_startup_error() {
    bounded(async {
        for bad in [
            "http_port = [",
            "[[service]\nprefix = 1",
            "http_port = \"80\"",
        ] {
            let outcome = run_config(bad).await;
            assert_startup_error(&outcome, "bad config file");
        }
    })
    .await
}

#[tokio::test]
async fn unknown_config_key_is_a_startup_error() {
    bounded(async {
        let outcome = run_config(&with_service("max_queu = 3")).await;
        assert_startup_error(&outcome, "unknown field `max_queu`");
        let outcome = run_config(&format!("http_prot = 1\n{}", with_service(""))).await;
        assert_startup_error(&outcome, "unknown field `http_prot`");
    })
    .await
}

#[tokio::test]
async fn out_of_range_values_are_startup_errors() {
    bounded(async {
        let cases = [
            ("max_queue = 0", "max_queue must be at least 1"),
            ("max_sessions = 0", "max_sessions must be at least 1"),
            (
                "heartbeat_delay_ms = 0",
                "heartbeat_delay_ms must be 1 to 86400000 ms",
            ),
        ];
        for (line, expected) in cases {
            let outcome = run_config(&with_service(line)).await;
            assert_startup_error(&outcome, expected);
        }
        let outcome = run_config(&with_service("").replace("workers = 1", "workers = 0")).await;
        assert_startup_error(&outcome, "workers must be 1 to 256");
    })
    .await
}

#[tokio::test]
async fn config_without_service_is_a_startup_error() {
    bounded(async {
        let outcome = run_config("http_port = 8080\n").await;
        assert_startup_error(&outcome, "the config defines no service");
    })
    .await
}

#[tokio::test]
async fn http_port_0_in_config_is_a_startup_error() {
    bounded(async {
        let p = free_ports(2);
        let outcome = run_config(&config_toml(0, p[0], p[1], "")).await;
        assert_startup_error(&outcome, "http_port must be 1 to 65535");
    })
    .await
}

#[tokio::test]
async fn http_port_0_flag_is_a_startup_error() {
    bounded(async {
        let outcome = run(&["--http-port", "0"]).await;
        assert_startup_error(&outcome, "http");
    })
    .await
}

#[tokio::test]
async fn conflicting_services_are_startup_errors() {
    bounded(async {
        let p = free_ports(5);
        let two = |a: (&str, u16, u16), b: (&str, u16, u16)| {
            format!(
                "http_port = {}\n{}{}",
                p[0],
                common::service_toml(a.0, a.1, a.2, ""),
                common::service_toml(b.0, b.1, b.2, "")
            )
        };
        let outcome = run_config(&two(("/a", p[1], p[2]), ("/a/", p[3], p[4]))).await;
        assert_startup_error(&outcome, r#"service prefix "/a" is defined twice"#);
        let outcome = run_config(&two(("/a", p[1], p[2]), ("/b", p[2], p[3]))).await;
        let expected = format!(r#"endpoint "tcp://127.0.0.1:{}" is used twice"#, p[2]);
        assert_startup_error(&outcome, &expected);
        let outcome = run_config(&config_toml(p[0], p[1], p[2], "").replace("/echo", "echo")).await;
        assert_startup_error(&outcome, r#"bad service prefix "echo""#);
    })
    .await
}

#[tokio::test]
async fn endpoint_and_security_flags_with_a_config_file_are_startup_errors_not_ignored() {
    bounded(async {
        let file = TempFile::new(with_service("").as_bytes());
        let config = file.0.to_str().unwrap();
        for (flags, expected) in [
            (
                &["--curve-secret-key", "keys/proxy.key_secret"][..],
                "--curve-secret-key set the service of the command line; with --config, set them in each [[service]] of the file (curve_secret_key)",
            ),
            (&["--backend-allow", "10.0.0.0/8"][..], "(backend_allow)"),
            (
                &["--auth", "tcp://127.0.0.1:9", "--auth-timeout-ms", "500"][..],
                "--auth, --auth-timeout-ms set the service",
            ),
            (&["--auth-jwt-key", "jwt.pem"][..], "([service.auth_jwt])"),
            (
                &["-a", "127.0.0.1", "-i", "9999"][..],
                "--address, --in-port set the service of the command line",
            ),
        ] {
            let mut args = vec!["--config", config];
            args.extend_from_slice(flags);
            assert_startup_error(&run(&args).await, expected);
        }
        // The defaults every file service takes stay allowed.
        let mut proxy = Command::new(env!("CARGO_BIN_EXE_sockjsproxy"))
            .args(["--config", config, "--connect-info", "--max-sessions", "5"])
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let early = tokio::time::timeout(std::time::Duration::from_secs(1), proxy.wait()).await;
        assert!(early.is_err(), "exited: {early:?}");
    })
    .await
}

#[tokio::test]
async fn a_sockjs_client_file_that_is_not_there_is_a_startup_error() {
    bounded(async {
        let outcome = run(&["--sockjs-client", "/nonexistent/sockjs.min.js"]).await;
        assert_startup_error(
            &outcome,
            "sockjs-client file \"/nonexistent/sockjs.min.js\" is not a file",
        );
    })
    .await
}

#[tokio::test]
async fn an_allowed_origin_no_browser_would_send_is_a_startup_error() {
    bounded(async {
        for origin in [
            "notanorigin",
            "https://app.example.com/",
            "app.example.com:443",
        ] {
            let outcome = run(&["--allow-origin", origin]).await;
            assert_startup_error(&outcome, "is not one a browser sends");
        }
        let outcome = run_config(&with_service("allow_origins = [\"https://a.example/x\"]")).await;
        assert_startup_error(
            &outcome,
            "\"https://a.example/x\" is not one a browser sends",
        );
    })
    .await
}
