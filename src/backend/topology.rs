//! Scale-out mode: one of many proxies in front of one application.
//!
//! A single proxy binds its PUSH and PULL, so backends connect to it and a reply
//! can only reach the proxy that owns the session. With `--connect`, each
//! service instead *connects* to a broker that owns the well-known addresses:
//!
//! - events go out on a connected PUSH, exactly as before, except that session
//!   ids read `<instance>.<n>`, so that any worker can answer any session;
//! - commands come back on a connected DEALER whose identity is the instance
//!   id: the broker's ROUTER addresses each command to the proxy named in its
//!   session id. ROUTER → DEALER is a point-to-point pipe with a high-water mark,
//!   so a reply is neither broadcast (as PUB/SUB would) nor silently dropped: a
//!   full pipe stalls the broker, which stalls the workers (backpressure);
//! - the PUSH also carries `["heartbeat", instance, incarnation]` at least every
//!   heartbeat interval, on the same pipe as the events, so the broker sees them
//!   in order with `connect`s. When they stop, the broker tells the workers
//!   `disconnect` for each of the instance's sessions; when the incarnation
//!   changes (a restarted proxy reusing its id), it does so before the new
//!   proxy's first `connect`.
//!
//! The single-instance 3-part protocol is unchanged; these are the same three
//! frames with a longer session id, plus one message type only brokers see.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::endpoint::connect_endpoint;
use super::event::{Command, CommandError, Event};
use super::{Backend, BackendError, HWM, LINGER_MS, Sockets};

/// The message type of heartbeats, never sent in single-instance mode.
pub const HEARTBEAT: &[u8] = b"heartbeat";

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot connect {kind} socket to {endpoint}: {source}")]
    Connect {
        kind: &'static str,
        endpoint: String,
        source: tmq::TmqError,
    },
}

/// Scale-out mode's settings (`--connect`): who this proxy is among many and
/// how often it tells its broker that it is alive.
#[derive(Debug, Clone)]
pub struct ScaleOutConfig {
    /// Prefix of every backend session id and the DEALER identity.
    pub instance_id: String,
    pub heartbeat: Duration,
}

/// Who this proxy is among many; shared by every service's socket tasks.
#[derive(Debug)]
pub struct ScaleOut {
    instance: String,
    /// `instance` and the separator, the start of every session id.
    prefix: String,
    /// Differs on every start, so a broker can tell a restart from a pause.
    incarnation: String,
    pub(super) heartbeat: Duration,
}

impl ScaleOut {
    pub fn new(config: &ScaleOutConfig) -> ScaleOut {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        ScaleOut {
            instance: config.instance_id.clone(),
            prefix: format!("{}.", config.instance_id),
            incarnation: format!("{}-{}", now.as_micros(), std::process::id()),
            heartbeat: config.heartbeat,
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// An event's three frames, its session id prefixed with the instance.
    pub(super) fn event_frames(&self, event: Event) -> [Bytes; 3] {
        let [kind, session, data] = event.into_frames();
        let mut id = Vec::with_capacity(self.prefix.len() + session.len());
        id.extend_from_slice(self.prefix.as_bytes());
        id.extend_from_slice(&session);
        [kind, Bytes::from(id), data]
    }

    pub(super) fn heartbeat_frames(&self) -> [Bytes; 3] {
        [
            Bytes::from_static(HEARTBEAT),
            Bytes::from(self.instance.clone()),
            Bytes::from(self.incarnation.clone()),
        ]
    }

    /// Parses a command whose session id must carry this instance's prefix.
    pub(super) fn parse_command<P: AsRef<[u8]>>(
        &self,
        parts: &[P],
    ) -> Result<Command, CommandError> {
        let [kind, session, data] = parts else {
            return Err(CommandError::PartCount(parts.len()));
        };
        if kind.as_ref() == b"disconnectall" {
            return Command::parse(parts);
        }
        match session.as_ref().strip_prefix(self.prefix.as_bytes()) {
            Some(local) => Command::parse(&[kind.as_ref(), local, data.as_ref()]),
            // Another proxy's session: the broker routed it wrongly.
            None => Err(CommandError::BadSessionId(
                String::from_utf8_lossy(session.as_ref())
                    .chars()
                    .take(64)
                    .collect(),
            )),
        }
    }
}

impl Backend {
    /// Scale-out's counterpart of [`Backend::bind`]: connects a PUSH to `push`
    /// and a DEALER named after the instance to `pull`. Connecting never fails
    /// for an absent peer; 0MQ retries, and holds events meanwhile.
    pub fn connect(
        zmq: &zmq::Context,
        name: &str,
        settings: &super::Settings,
        scale: Arc<ScaleOut>,
    ) -> Result<(Arc<Backend>, Sockets), BackendError> {
        let (push, pull) = (&settings.push, &settings.pull);
        let connect = |kind: &'static str, socket_type, endpoint: &str| {
            let endpoint = connect_endpoint(endpoint);
            let err = |e: zmq::Error| TopologyError::Connect {
                kind,
                endpoint: endpoint.clone(),
                source: e.into(),
            };
            let socket = zmq.socket(socket_type).map_err(err)?;
            if socket_type == zmq::PUSH {
                socket.set_linger(LINGER_MS).map_err(err)?;
                socket.set_sndhwm(HWM).map_err(err)?;
            } else {
                socket.set_linger(0).map_err(err)?;
                socket.set_rcvhwm(HWM).map_err(err)?;
                socket
                    .set_identity(scale.instance.as_bytes())
                    .map_err(err)?;
            }
            socket.connect(&endpoint).map_err(err)?;
            Ok::<_, TopologyError>(super::Bound::Zmq(socket))
        };
        let push_socket = connect("PUSH", zmq::PUSH, push)?;
        let dealer = connect("DEALER", zmq::DEALER, pull)?;
        let (backend, queue) = Backend::new(name, Some(scale.clone()), settings.queue_bytes);
        log::info!(
            "service {}: instance {}, PUSH connected to {}, DEALER connected to {}",
            backend.name,
            scale.instance,
            connect_endpoint(push),
            connect_endpoint(pull)
        );
        Ok((
            backend,
            Sockets {
                push: push_socket,
                pull: dealer,
                queue,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockjs::SessionKey;

    fn scale() -> ScaleOut {
        ScaleOut::new(&ScaleOutConfig {
            instance_id: "web1-8080".into(),
            heartbeat: Duration::from_secs(1),
        })
    }

    #[test]
    fn session_ids_carry_the_instance() {
        let [k, s, d] = scale().event_frames(Event::Message(SessionKey(7), "hi".into()));
        assert_eq!(
            (&k[..], &s[..], &d[..]),
            (&b"message"[..], &b"web1-8080.7"[..], &b"hi"[..])
        );
    }

    #[test]
    fn commands_must_name_this_instance() {
        let s = scale();
        assert_eq!(
            s.parse_command(&[&b"message"[..], b"web1-8080.7", b"x"]),
            Ok(Command::Message(SessionKey(7), "x".into()))
        );
        assert!(matches!(
            s.parse_command(&[&b"message"[..], b"web2-8080.7", b"x"]),
            Err(CommandError::BadSessionId(_))
        ));
        assert!(matches!(
            s.parse_command(&[&b"message"[..], b"7", b"x"]),
            Err(CommandError::BadSessionId(_))
        ));
        assert_eq!(
            s.parse_command(&[&b"disconnectall"[..], b"", b""]),
            Ok(Command::DisconnectAll)
        );
    }

    #[test]
    fn heartbeats_name_instance_and_incarnation() {
        let [k, i, _] = scale().heartbeat_frames();
        assert_eq!((&k[..], &i[..]), (HEARTBEAT, &b"web1-8080"[..]));
    }
}
