//! What a service's backend is given and what can go wrong starting it:
//! its typed settings (built by `config` from the command line or the file)
//! and the errors of binding and starting its sockets.

use std::sync::Arc;

use super::{topology, zmtp};

/// Which 0MQ implementation carries a service's bound sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Engine {
    /// The native ZMTP transport for `tcp://` and `ipc://` endpoints (libzmq
    /// for any other).
    #[default]
    Native,
    /// libzmq for every socket.
    Libzmq,
}

/// One service's backend settings, built by `config` from the command line
/// or the file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Endpoint of the PUSH socket (proxy → backend), checked by [`super::endpoint::check`].
    pub push: String,
    /// Endpoint of the PULL socket (backend → proxy).
    pub pull: String,
    /// Bytes of client messages held for the backend (see `sockjs::budget`).
    pub queue_bytes: usize,
    /// Which 0MQ implementation carries bound sockets.
    pub engine: Engine,
    /// Our CURVE keys and the clients we take: both sockets speak CURVE
    /// (native engine only; `config` refuses it elsewhere, and
    /// [`super::Backend::bind`] refuses an endpoint the native engine cannot bind).
    pub curve: Option<Arc<zmtp::curve::Keys>>,
    /// Networks backends may connect from (empty: any). Native TCP sockets
    /// only, as CURVE.
    pub allow: Vec<ipnet::IpNet>,
}

/// Default of [`Settings::queue_bytes`]: 16 MiB per service, about 30,000
/// small messages. What waits here is what every new message queues behind,
/// so it is kept short: clients are held back beyond it, nothing is lost.
pub const QUEUE_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot bind {kind} socket to {endpoint}: {source}")]
    Bind {
        kind: &'static str,
        endpoint: String,
        source: tmq::TmqError,
    },
    #[error("cannot bind {kind} socket to {endpoint}: {source}")]
    BindNative {
        kind: &'static str,
        endpoint: String,
        source: std::io::Error,
    },
    #[error("service {name}: cannot start the {kind} socket: {source}")]
    Start {
        kind: &'static str,
        name: String,
        source: tmq::TmqError,
    },
    #[error("service {name}: cannot listen on the {kind} socket: {source}")]
    StartNative {
        kind: &'static str,
        name: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error(
        "service {name}: the {kind} endpoint {endpoint} is carried by libzmq, which has no CURVE here; CURVE needs a tcp:// or ipc:// endpoint on the native engine"
    )]
    CurveNeedsNative {
        name: String,
        kind: &'static str,
        endpoint: String,
    },
    #[error(
        "service {name}: backend_allow needs a tcp:// endpoint on the native engine; {endpoint} ({kind}) is not one"
    )]
    AllowNeedsTcp {
        name: String,
        kind: &'static str,
        endpoint: String,
    },
}
