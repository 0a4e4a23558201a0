//! The start of every connection: greetings both ways, then the mechanism's
//! commands: NULL's READY both ways, or CURVE's HELLO, WELCOME, INITIATE and
//! READY (see [`super::curve`]), with the peer's socket type checked.
//!
//! Our greeting goes out at once; anything more only after the peer's
//! greeting proved it speaks ZMTP 3 with our mechanism, so an old peer, or a
//! peer of another mechanism, gets no bytes it cannot read. A peer that does
//! not finish within [`HANDSHAKE_TIMEOUT`] is dropped, so a port scanner
//! holds no task.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Stream;
use super::curve::{self, CurveError};
use super::decoder::{Decoder, Item, Limits};
use super::wire::{self, Command, GREETING_LEN, Mechanism, SocketType, WireError};

/// How long a new peer has to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest command body accepted during the handshake.
const MAX_HANDSHAKE_FRAME: u64 = 4096;

/// Why a peer was turned away.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("handshake not finished within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("peer is a {theirs} socket; a {ours} socket takes only {wanted} peers")]
    PeerType {
        ours: &'static str,
        theirs: String,
        wanted: &'static str,
    },
    #[error("peer refused the connection: {0}")]
    Refused(String),
    #[error("peer sent a message before READY")]
    MessageFirst,
    /// libzmq closes when it reads a greeting of another mechanism than
    /// its own, often before it has sent any of its own: its 10-byte
    /// signature waits for the socket to be writable, our greeting is read
    /// at once. A port check looks the same: on a CURVE socket it is
    /// counted the same, since the bytes sent cannot tell them apart
    /// (pyzmq's NULL peers under load sent none).
    #[error(
        "peer closed the connection on reading our {} greeting, having sent {sent} bytes of its own: {}",
        ours.name(),
        match ours {
            Mechanism::Curve => "a backend without CURVE does (so does a port check)",
            Mechanism::Null => "a backend set up for CURVE does (this socket has no CURVE key; so does a port check)",
        }
    )]
    ClosedAtGreeting { ours: Mechanism, sent: usize },
}

impl From<CurveError> for HandshakeError {
    fn from(e: CurveError) -> Self {
        HandshakeError::Wire(e.into())
    }
}

impl HandshakeError {
    /// Whether the peer failed the security mechanism: the wrong mechanism
    /// (a NULL peer of a CURVE socket), a key or box that does not check
    /// out, a client key not allowed.
    pub fn is_security(&self) -> bool {
        matches!(
            self,
            HandshakeError::Wire(WireError::Mechanism { .. } | WireError::Curve(_))
                | HandshakeError::ClosedAtGreeting {
                    ours: Mechanism::Curve,
                    ..
                }
        )
    }
}

/// Runs the handshake as `ours` on a fresh connection, with CURVE when
/// `curve` has our keys; returns CURVE's session. Bytes the peer sent after
/// the handshake stay in `buf` for the caller.
pub async fn handshake(
    stream: &mut Stream,
    ours: SocketType,
    curve: Option<&Arc<curve::Keys>>,
    buf: &mut BytesMut,
) -> Result<Option<curve::Done>, HandshakeError> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange(stream, ours, curve, buf)).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::Timeout),
    }
}

async fn exchange(
    stream: &mut Stream,
    ours: SocketType,
    curve: Option<&Arc<curve::Keys>>,
    buf: &mut BytesMut,
) -> Result<Option<curve::Done>, HandshakeError> {
    let mechanism = match curve {
        Some(_) => Mechanism::Curve,
        None => Mechanism::Null,
    };
    stream.write_all(&wire::greeting(mechanism)).await?;
    while buf.len() < GREETING_LEN {
        if stream.read_buf(buf).await? == 0 {
            // A peer of another mechanism may close once it has read ours:
            // what it sent of its own says why.
            wire::check_greeting(buf, mechanism)?;
            return Err(HandshakeError::ClosedAtGreeting {
                ours: mechanism,
                sent: buf.len(),
            });
        }
        // Whatever part has come is checked now: a peer that is not ZMTP 3
        // (an HTTP request, a ZMTP 1.0 identity) may never send 64 bytes.
        // The last pass checked all 64.
        wire::check_greeting(&buf[..buf.len().min(GREETING_LEN)], mechanism)?;
    }
    buf.advance(GREETING_LEN);

    let mut curve = curve.map(|keys| curve::Handshake::new(keys.clone(), ours));
    if curve.is_none() {
        let mut ready = BytesMut::new();
        wire::encode_ready(ours, &mut ready);
        stream.write_all(&ready).await?;
    }

    // No message may come before READY: the decoder refuses one at its header.
    let mut decoder = Decoder::new(Limits::commands_only(MAX_HANDSHAKE_FRAME));
    loop {
        let item = match decoder.decode(buf) {
            Err(WireError::NoMessages) => return Err(HandshakeError::MessageFirst),
            item => item?,
        };
        let body = match item {
            Some(Item::Command(body)) => body,
            Some(Item::Message(_)) => return Err(HandshakeError::MessageFirst),
            None => {
                if stream.read_buf(buf).await? == 0 {
                    return Err(eof());
                }
                continue;
            }
        };
        if let Ok(Command::Error(reason)) = wire::parse_command(&body) {
            return Err(HandshakeError::Refused(
                String::from_utf8_lossy(reason).into_owned(),
            ));
        }
        match &mut curve {
            None => match wire::parse_command(&body)? {
                Command::Ready { socket_type } => {
                    return check_peer(ours, socket_type).map(|()| None);
                }
                Command::Error(_) | Command::Ping { .. } | Command::Other => {}
            },
            Some(handshake) => {
                let mut out = BytesMut::new();
                let step = handshake.on_command(&body, &mut out);
                if !out.is_empty() {
                    // WELCOME, READY, or the ERROR that tells a client why.
                    stream.write_all(&out).await?;
                }
                if let Some(done) = step? {
                    check_peer(ours, done.socket_type.as_deref())?;
                    return Ok(Some(done));
                }
            }
        }
    }
}

fn check_peer(ours: SocketType, theirs: Option<&[u8]>) -> Result<(), HandshakeError> {
    let wanted = ours.peer().name();
    match theirs {
        Some(t) if t.eq_ignore_ascii_case(wanted.as_bytes()) => Ok(()),
        other => Err(HandshakeError::PeerType {
            ours: ours.name(),
            theirs: other.map_or("untyped".into(), |t| {
                String::from_utf8_lossy(t).into_owned()
            }),
            wanted,
        }),
    }
}

fn eof() -> HandshakeError {
    HandshakeError::Io(std::io::ErrorKind::UnexpectedEof.into())
}
