//! The far end of the backend protocol, for Rust backends such as
//! `examples/echo.rs` and `examples/datereply.rs`: read the proxy's own flags
//! (or its `--config` file), and connect a PULL to each service's PUSH and a
//! PUSH to its PULL, so one command line describes the proxy and its backend.

use clap::Parser;

use crate::cli::Cli;
use crate::config::{Config, connect_endpoint};

/// One service, as a backend sees it.
pub struct ServiceSockets {
    /// The service prefix (`/` for the flags' single service).
    pub name: String,
    /// Session events from the proxy.
    pub events: tmq::pull::Pull,
    /// Commands to the proxy.
    pub commands: tmq::push::Push,
}

/// Parses the proxy's command line and connects to every service it
/// describes. A bad command line or endpoint ends the process with a one-line
/// error naming `program` and exit code 2, as the proxy does.
pub fn connect_services(program: &str, linger_ms: i32) -> (tmq::Context, Vec<ServiceSockets>) {
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("{program}: {e}");
        std::process::exit(2)
    };
    let config = Config::from_cli(&Cli::parse()).unwrap_or_else(|e| fail(&e));
    let zmq = tmq::Context::new();
    let services = config
        .services
        .into_iter()
        .map(|service| {
            let (push, pull) = (
                connect_endpoint(&service.push),
                connect_endpoint(&service.pull),
            );
            let events = tmq::pull(&zmq).connect(&push).unwrap_or_else(|e| fail(&e));
            let commands = tmq::push(&zmq)
                .set_linger(linger_ms)
                .connect(&pull)
                .unwrap_or_else(|e| fail(&e));
            let name = match service.prefix.as_str() {
                "" => "/".to_string(),
                p => p.to_string(),
            };
            log::info!("{program} serving {name:?}: events from {push}, commands to {pull}");
            ServiceSockets {
                name,
                events,
                commands,
            }
        })
        .collect();
    (zmq, services)
}
