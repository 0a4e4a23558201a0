//! A CURVE connection past its handshake: every ZMTP frame, message part or
//! command (PING, PONG), travels boxed in a MESSAGE (RFC 26 §2.9), with a
//! flags byte inside the box (MORE `0x01`, COMMAND `0x02`) and an 8-byte
//! counter in the clear that is the tail of the box's nonce.
//!
//! [`Session::seal`] turns frames we encoded in the clear into MESSAGEs;
//! [`Session::open`] turns one MESSAGE back into the frame it carried, so
//! that the one ZMTP [`Decoder`](super::super::decoder::Decoder) applies its
//! limits to what the peer meant, and only what authenticated reaches it.
//! A peer's counters must strictly increase: a box that is replayed, comes
//! out of order, or does not authenticate is an error, and the connection
//! does not survive it. Ours start at 1 after READY's and never repeat (at
//! 2^64 − 1 the connection ends rather than reuse one).

use bytes::{BufMut, BytesMut};
use crypto_box::{PublicKey, SecretKey};

use super::CurveError;
use super::boxes::{PrefixBox, TAG_LEN};
use crate::backend::zmtp::wire::{COMMAND, LONG, MORE};

/// `\x07MESSAGE`, the counter, the tag: what a MESSAGE adds before its flags.
pub const MESSAGE_OVERHEAD: usize = 8 + 8 + TAG_LEN;
const MESSAGE: &[u8] = b"\x07MESSAGE";
/// Flags inside a MESSAGE box.
const BOX_MORE: u8 = 0x01;
const BOX_COMMAND: u8 = 0x02;

/// Nonce prefixes of MESSAGE boxes, by who sealed them.
const FROM_SERVER: &[u8; 16] = b"CurveZMQMESSAGES";
const FROM_CLIENT: &[u8; 16] = b"CurveZMQMESSAGEC";

/// One connection's keys and counters.
pub struct Session {
    /// Our transient secret with the peer's transient public key, for the
    /// boxes we seal and for the peer's (their nonce prefixes differ).
    ours: PrefixBox,
    theirs: PrefixBox,
    /// The counter of our next box.
    next: u64,
    /// The peer's last counter.
    peer: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("next", &self.next)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The server's side, between our transient `secret` and the client's
    /// transient `public` key: `next` is the counter after READY's, `peer`
    /// the client's INITIATE counter.
    pub(super) fn server(public: &PublicKey, secret: &SecretKey, next: u64, peer: u64) -> Session {
        let [ours, theirs] = PrefixBox::pair(public, secret, [FROM_SERVER, FROM_CLIENT]);
        Session {
            ours,
            theirs,
            next,
            peer,
        }
    }

    /// The client's side (see [`super::client`]): `next` is the counter
    /// after INITIATE's, `peer` the server's READY counter.
    pub(super) fn client(public: &PublicKey, secret: &SecretKey, next: u64, peer: u64) -> Session {
        let [ours, theirs] = PrefixBox::pair(public, secret, [FROM_CLIENT, FROM_SERVER]);
        Session {
            ours,
            theirs,
            next,
            peer,
        }
    }

    /// Boxes every frame of `plain` (whole frames as `wire` encodes them)
    /// into a MESSAGE frame appended to `out`.
    pub fn seal(&mut self, mut plain: &[u8], out: &mut BytesMut) -> Result<(), CurveError> {
        while let Some(&flags) = plain.first() {
            let (header, len) = if flags & LONG != 0 {
                let len = u64::from_be_bytes(plain[1..9].try_into().expect("8 bytes"));
                (9, len as usize)
            } else {
                (2, plain[1] as usize)
            };
            let body = &plain[header..header + len];
            let mut inner = 0;
            if flags & MORE != 0 {
                inner |= BOX_MORE;
            }
            if flags & COMMAND != 0 {
                inner |= BOX_COMMAND;
            }
            self.seal_frame(inner, body, out)?;
            plain = &plain[header + len..];
        }
        Ok(())
    }

    fn seal_frame(&mut self, flags: u8, body: &[u8], out: &mut BytesMut) -> Result<(), CurveError> {
        let counter = self.next;
        self.next = counter.checked_add(1).ok_or(CurveError::NoncesSpent)?;
        let len = MESSAGE_OVERHEAD + 1 + body.len();
        out.reserve(len + 9);
        // A data frame, never MORE: the parts' flags are inside the boxes.
        if len > 255 {
            out.put_u8(LONG);
            out.put_u64(len as u64);
        } else {
            out.put_u8(0);
            out.put_u8(len as u8);
        }
        out.put_slice(MESSAGE);
        out.put_u64(counter);
        let start = out.len();
        out.put_bytes(0, TAG_LEN);
        out.put_u8(flags);
        out.put_slice(body);
        self.ours.seal_in_place(counter, &mut out[start..]);
        Ok(())
    }

    /// Opens one frame the peer sent (its body), appending the frame it
    /// carried, in the clear, to `plain`.
    pub fn open(&mut self, body: &[u8], plain: &mut BytesMut) -> Result<(), CurveError> {
        if body.len() < MESSAGE_OVERHEAD + 1 || !body.starts_with(MESSAGE) {
            return Err(CurveError::NotMessage);
        }
        let counter = u64::from_be_bytes(body[8..16].try_into().expect("8 bytes"));
        if counter <= self.peer {
            return Err(CurveError::Replayed {
                counter,
                last: self.peer,
            });
        }
        let tag = &body[16..16 + TAG_LEN];
        let text = &body[16 + TAG_LEN..];
        let start = plain.len();
        // The frame header goes first, all but its last byte: the box's
        // first byte (its flags) lands there, and is swapped for the
        // header's last byte once read.
        let len = text.len() - 1;
        let size = (len as u64).to_be_bytes();
        if len > 255 {
            plain.put_u8(LONG);
            plain.put_slice(&size[..7]);
        } else {
            plain.put_u8(0);
        }
        let flags_at = plain.len();
        plain.put_slice(text);
        if !self
            .theirs
            .open_in_place(counter, tag, &mut plain[flags_at..])
        {
            plain.truncate(start);
            return Err(CurveError::BadBox("MESSAGE"));
        }
        self.peer = counter;
        let inner = plain[flags_at];
        if inner & !(BOX_MORE | BOX_COMMAND) != 0 || inner == BOX_MORE | BOX_COMMAND {
            plain.truncate(start);
            return Err(CurveError::BadFlags(inner));
        }
        if inner & BOX_MORE != 0 {
            plain[start] |= MORE;
        }
        if inner & BOX_COMMAND != 0 {
            plain[start] |= COMMAND;
        }
        plain[flags_at] = size[7];
        Ok(())
    }
}
