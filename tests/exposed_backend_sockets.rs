//! Safe defaults for the backend link: a service whose PUSH or PULL socket
//! is bound where other hosts reach it (a wildcard or routable address) is
//! named in a WARN line at start-up, since anyone who reaches those ports
//! reads and writes its sessions; sockets on loopback or ipc are not, nor
//! sockets that only let listed addresses in (`backend_allow`).

mod common;

use common::{Proxy, bounded, free_ports};

/// The warning's words, shared by both tests.
const EXPOSED: &str = "bound where other hosts reach it";
/// The last start-up warning (the test launcher passes --metrics-public).
const LAST_WARNING: &str = "--metrics-public: /metrics is served";

#[tokio::test]
async fn sockets_bound_on_every_interface_are_warned_about() {
    bounded(async {
        let ports = free_ports(2);
        let push = format!("tcp://*:{}", ports[0]);
        let pull = format!("tcp://0.0.0.0:{}", ports[1]);
        let proxy = Proxy::with_endpoints(&push, &pull, &[]).await;
        let line = proxy.wait_for_log(EXPOSED).await;
        assert!(line.contains(" WARN "), "{line}");
        assert!(line.contains(&push) && line.contains(&pull), "{line}");
        assert!(line.contains("reads and writes its sessions"), "{line}");
    })
    .await
}

#[tokio::test]
async fn sockets_on_loopback_or_ipc_are_not_warned_about() {
    bounded(async {
        let proxy = Proxy::start().await;
        proxy.wait_for_log(LAST_WARNING).await;
        assert!(
            !proxy.stderr_contains(EXPOSED),
            "{:?}",
            proxy.stderr_lines()
        );

        let dir = std::env::temp_dir().join(format!("sjp-exposed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let push = format!("ipc://{}/push", dir.display());
        let pull = format!("ipc://{}/pull", dir.display());
        let proxy = Proxy::with_endpoints(&push, &pull, &[]).await;
        proxy.wait_for_log(LAST_WARNING).await;
        assert!(
            !proxy.stderr_contains(EXPOSED),
            "{:?}",
            proxy.stderr_lines()
        );
        drop(proxy);
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
}

#[tokio::test]
async fn sockets_on_every_interface_with_an_allowlist_are_not_warned_about() {
    bounded(async {
        let ports = free_ports(2);
        let push = format!("tcp://*:{}", ports[0]);
        let pull = format!("tcp://*:{}", ports[1]);
        let allow = r#"backend_allow = ["127.0.0.1/32"]"#;
        let proxy = Proxy::with_endpoints_and(&push, &pull, allow, &[]).await;
        proxy.wait_for_log(LAST_WARNING).await;
        assert!(
            !proxy.stderr_contains(EXPOSED),
            "{:?}",
            proxy.stderr_lines()
        );
    })
    .await
}
