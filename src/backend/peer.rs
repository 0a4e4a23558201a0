//! The far end of the backend protocol, for Rust backends such as
//! `examples/echo.rs` and `examples/datereply.rs`: connect a PULL to each
//! service's PUSH and a PUSH to its PULL. `config::peer_endpoints` reads the
//! proxy's own flags (or its `--config` file) into [`Endpoints`], so one
//! command line describes the proxy and its backend. [`Who`] reads the
//! `connect` event's connection info.

pub use super::connect_info::Who;
use super::endpoint::connect_endpoint;

/// Where one service's sockets are bound, as the proxy's config says.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The service prefix (`/` for the flags' single service).
    pub name: String,
    /// The proxy's PUSH endpoint (events come from there).
    pub push: String,
    /// The proxy's PULL endpoint (commands go there).
    pub pull: String,
}

/// One service, as a backend sees it.
pub struct ServiceSockets {
    /// The service prefix (`/` for the flags' single service).
    pub name: String,
    /// Session events from the proxy.
    pub events: tmq::pull::Pull,
    /// Commands to the proxy.
    pub commands: tmq::push::Push,
}

/// Connects to every service of `services`. A socket that cannot be made
/// ends the process with a one-line error naming `program` and exit code 2,
/// as the proxy does.
pub fn connect_services(
    program: &str,
    services: Vec<Endpoints>,
    linger_ms: i32,
) -> (tmq::Context, Vec<ServiceSockets>) {
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("{program}: {e}");
        std::process::exit(2)
    };
    let zmq = tmq::Context::new();
    let services = services
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
            let name = service.name;
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
