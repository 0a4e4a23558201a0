//! Safe defaults: what a configuration leaves open to other hosts, said once
//! at start-up. A service's bound PUSH and PULL sockets carry every session
//! of it: whoever connects a PULL to the push endpoint receives a share of
//! every user's messages, whoever connects a PUSH to the pull endpoint can
//! write into any session. Bound on a wildcard or routable address with
//! nothing to tell backends from strangers, that is a warning the operator
//! should see, not a silent default.

use super::Config;
use crate::backend::endpoint::reachable_from_other_hosts;

/// One line per exposed service (and one for a public `/metrics`), for the
/// log at WARN. Empty when everything bound stays on this host. In scale-out
/// mode the proxy binds nothing: its sockets connect out to a broker.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    if config.scale_out.is_none() {
        for service in &config.services {
            let open: Vec<&str> = [&service.backend.push, &service.backend.pull]
                .into_iter()
                .filter(|e| reachable_from_other_hosts(e))
                .map(String::as_str)
                .collect();
            if !open.is_empty() {
                let name = if service.prefix.is_empty() {
                    "/"
                } else {
                    &service.prefix
                };
                lines.push(format!(
                    "service {name}: {} bound where other hosts reach it; anyone who \
                     reaches those ports reads and writes its sessions (bind them to \
                     127.0.0.1 or ipc:// when the backends run on this host)",
                    open.join(" and ")
                ));
            }
        }
    }
    if config.metrics_public {
        lines.push(
            "--metrics-public: /metrics is served on the public HTTP port; anyone who \
             reaches it reads the counters"
                .to_string(),
        );
    }
    lines
}
