//! A connection past its handshake, as the socket tasks see it: frames in
//! the clear both ways, whatever the mechanism. Under NULL the peer's bytes
//! are decoded as they are; under CURVE each MESSAGE is opened first (see
//! `curve::session`) and what it carried is decoded by the same
//! [`Decoder`], so the limits on frames and bytes apply to what the peer
//! meant, and a box that does not open ends the connection before anything
//! of it is delivered.
//!
//! Either side of a connection can use it, given its [`Session`]: besides
//! the proxy's sockets, the benchmark's CURVE echo backend (a client,
//! `examples/bench/zmtp_echo.rs`) and the fuzz targets (`tests/fuzz/`),
//! which is why it is public.

use bytes::BytesMut;

use super::curve::Session;
use super::curve::session::MESSAGE_OVERHEAD;
use super::decoder::{Decoder, Item, Limits};
use super::wire::WireError;

/// How a connection's bytes are carried.
#[derive(Debug)]
pub enum Link {
    Null,
    Curve(Box<Boxed>),
}

/// A CURVE connection's state.
#[derive(Debug)]
pub struct Boxed {
    session: Session,
    /// Splits the peer's bytes into MESSAGE frames.
    outer: Decoder,
    /// What the boxes held, frames in the clear, not yet decoded.
    plain: BytesMut,
}

impl Link {
    pub fn curve(session: Session, inner: Limits) -> Link {
        // A MESSAGE carries one frame; its box adds MESSAGE_OVERHEAD and a
        // flags byte. libzmq sends each as a frame of its own, never MORE.
        let overhead = MESSAGE_OVERHEAD as u64 + 1;
        let frames = inner.frames.max(1);
        let outer = Limits {
            frames,
            bytes: inner.bytes.max(inner.command) + overhead * frames as u64,
            command: inner.command + overhead,
        };
        Link::Curve(Box::new(Boxed {
            session,
            outer: Decoder::new(outer),
            plain: BytesMut::new(),
        }))
    }

    /// The next item the peer sent, from the bytes in `raw`, or `None` until
    /// more arrive.
    pub fn decode(
        &mut self,
        decoder: &mut Decoder,
        raw: &mut BytesMut,
    ) -> Result<Option<Item>, WireError> {
        let b = match self {
            Link::Null => return decoder.decode(raw),
            Link::Curve(b) => b,
        };
        loop {
            if let Some(item) = decoder.decode(&mut b.plain)? {
                return Ok(Some(item));
            }
            match b.outer.decode(raw)? {
                None => return Ok(None),
                Some(Item::Message(parts)) => {
                    for part in parts {
                        b.session.open(&part, &mut b.plain)?;
                    }
                }
                Some(Item::Command(body)) => b.session.open(&body, &mut b.plain)?,
            }
        }
    }

    /// What to write for the frames of `plain` (as `wire` encodes them).
    pub fn seal(&mut self, plain: BytesMut) -> Result<BytesMut, WireError> {
        match self {
            Link::Null => Ok(plain),
            Link::Curve(b) => {
                let mut out = BytesMut::with_capacity(plain.len() + plain.len() / 2 + 64);
                b.session.seal(&plain, &mut out)?;
                Ok(out)
            }
        }
    }
}
