//! The start of every connection: greetings both ways, then the NULL
//! mechanism's READY both ways, with the peer's socket type checked.
//!
//! Our greeting goes out at once; READY only after the peer's greeting proved
//! it speaks ZMTP 3 with NULL, so an old or secured peer gets no bytes it
//! cannot read. A peer that does not finish within [`HANDSHAKE_TIMEOUT`] is
//! dropped, so a port scanner holds no task.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Stream;
use super::decoder::{Decoder, Item, Limits};
use super::wire::{self, Command, GREETING_LEN, SocketType, WireError};

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
}

/// Runs the handshake as `ours` on a fresh connection. Bytes the peer sent
/// after its READY stay in `buf` for the caller.
pub async fn handshake(
    stream: &mut Stream,
    ours: SocketType,
    buf: &mut BytesMut,
) -> Result<(), HandshakeError> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange(stream, ours, buf)).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::Timeout),
    }
}

async fn exchange(
    stream: &mut Stream,
    ours: SocketType,
    buf: &mut BytesMut,
) -> Result<(), HandshakeError> {
    stream.write_all(&wire::greeting()).await?;
    while buf.len() < GREETING_LEN {
        if stream.read_buf(buf).await? == 0 {
            return Err(eof());
        }
        // Whatever part has come is checked now: a peer that is not ZMTP 3
        // (an HTTP request, a ZMTP 1.0 identity) may never send 64 bytes.
        // The last pass checked all 64.
        wire::check_greeting(&buf[..buf.len().min(GREETING_LEN)])?;
    }
    buf.advance(GREETING_LEN);

    let mut ready = BytesMut::new();
    wire::encode_ready(ours, &mut ready);
    stream.write_all(&ready).await?;

    // No message may come before READY: the decoder refuses one at its header.
    let mut decoder = Decoder::new(Limits::commands_only(MAX_HANDSHAKE_FRAME));
    loop {
        let item = match decoder.decode(buf) {
            Err(WireError::NoMessages) => return Err(HandshakeError::MessageFirst),
            item => item?,
        };
        match item {
            Some(Item::Command(body)) => match wire::parse_command(&body)? {
                Command::Ready { socket_type } => return check_peer(ours, socket_type),
                Command::Error(reason) => {
                    return Err(HandshakeError::Refused(
                        String::from_utf8_lossy(reason).into_owned(),
                    ));
                }
                Command::Ping { .. } | Command::Other => {}
            },
            Some(Item::Message(_)) => return Err(HandshakeError::MessageFirst),
            None => {
                if stream.read_buf(buf).await? == 0 {
                    return Err(eof());
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
