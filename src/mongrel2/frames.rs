//! Checks the websocket frames a handler encodes itself (Mongrel2 passes them
//! to the client as they are) before they reach a client: a reply body must
//! be whole, unmasked RFC 6455 frames with no reserved bits, a known opcode,
//! the minimal length encoding, control frames short and unfragmented, a
//! valid close payload, and fragments in order across replies. A body that
//! breaks any rule is refused whole, so a client never sees a broken stream.

/// What a checked reply body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checked {
    /// Frames in the body.
    pub frames: usize,
    /// The body holds a close frame: nothing may follow it.
    pub close: bool,
}

/// Why a handler's frame is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("truncated frame")]
    Truncated,
    #[error("reserved bits set")]
    Reserved,
    #[error("unknown opcode {0:#x}")]
    Opcode(u8),
    #[error("masked frame (a server's frames are not masked)")]
    Masked,
    #[error("length not minimally encoded")]
    NonMinimalLength,
    #[error("control frame fragmented or over 125 bytes")]
    Control,
    #[error("continuation frame with no message to continue")]
    Continuation,
    #[error("new data frame inside a fragmented message")]
    Interleaved,
    #[error("bad close frame payload")]
    Close,
    #[error("frame after a close frame")]
    AfterClose,
}

/// Follows one connection's outgoing frames.
#[derive(Debug, Default)]
pub struct FrameChecker {
    /// A fragmented data message is open.
    in_message: bool,
    closed: bool,
}

impl FrameChecker {
    /// Checks a reply body; on success the frames may be written as they are.
    /// On error nothing of the body may be written, and the checker is as
    /// it was.
    pub fn check(&mut self, body: &[u8]) -> Result<Checked, FrameError> {
        let mut in_message = self.in_message;
        let mut checked = Checked::default();
        let mut rest = body;
        while !rest.is_empty() {
            if self.closed || checked.close {
                return Err(FrameError::AfterClose);
            }
            let (frame, after) = split_frame(rest)?;
            match frame.opcode {
                0x0 if !in_message => return Err(FrameError::Continuation),
                0x0 => in_message = !frame.fin,
                0x1 | 0x2 if in_message => return Err(FrameError::Interleaved),
                0x1 | 0x2 => in_message = !frame.fin,
                0x8..=0xA => {
                    if !frame.fin || frame.payload.len() > 125 {
                        return Err(FrameError::Control);
                    }
                    if frame.opcode == 0x8 {
                        check_close(frame.payload)?;
                        checked.close = true;
                    }
                }
                other => return Err(FrameError::Opcode(other)),
            }
            checked.frames += 1;
            rest = after;
        }
        self.in_message = in_message;
        self.closed |= checked.close;
        Ok(checked)
    }
}

/// The frames of a body [`FrameChecker::check`] accepted: (FIN, opcode,
/// payload) each. Stops at the first malformed frame.
pub fn each(body: &[u8]) -> impl Iterator<Item = (bool, u8, &[u8])> {
    let mut rest = body;
    std::iter::from_fn(move || {
        let (frame, after) = split_frame(rest).ok()?;
        rest = after;
        Some((frame.fin, frame.opcode, frame.payload))
    })
}

struct Frame<'a> {
    fin: bool,
    opcode: u8,
    payload: &'a [u8],
}

fn split_frame(bytes: &[u8]) -> Result<(Frame<'_>, &[u8]), FrameError> {
    let [b0, b1, rest @ ..] = bytes else {
        return Err(FrameError::Truncated);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    let (len, rest) = match b1 & 0x7F {
        126 => {
            let [a, b, rest @ ..] = rest else {
                return Err(FrameError::Truncated);
            };
            let len = u16::from_be_bytes([*a, *b]) as u64;
            if len < 126 {
                return Err(FrameError::NonMinimalLength);
            }
            (len, rest)
        }
        127 => {
            if rest.len() < 8 {
                return Err(FrameError::Truncated);
            }
            let (l, rest) = rest.split_at(8);
            let mut be = [0u8; 8];
            be.copy_from_slice(l);
            let len = u64::from_be_bytes(be);
            if len <= u16::MAX as u64 || len >> 63 != 0 {
                return Err(FrameError::NonMinimalLength);
            }
            (len, rest)
        }
        n => (n as u64, rest),
    };
    if (rest.len() as u64) < len {
        return Err(FrameError::Truncated);
    }
    let (payload, after) = rest.split_at(len as usize);
    let frame = Frame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0F,
        payload,
    };
    Ok((frame, after))
}

/// A close payload: empty, or a sendable code and a UTF-8 reason.
fn check_close(payload: &[u8]) -> Result<(), FrameError> {
    match payload {
        [] => Ok(()),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if sendable && std::str::from_utf8(reason).is_ok() {
                Ok(())
            } else {
                Err(FrameError::Close)
            }
        }
        _ => Err(FrameError::Close),
    }
}

/// Encodes one unmasked frame, as handlers do (for the Rust example handler
/// and the tests).
pub fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | (opcode & 0x0F));
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &[u8]) -> Result<Checked, FrameError> {
        FrameChecker::default().check(body)
    }

    #[test]
    fn frames_as_the_python_library_encodes_them() {
        // websocket_response("hi"): 0x81, length, payload.
        assert_eq!(
            check(b"\x81\x02hi"),
            Ok(Checked {
                frames: 1,
                close: false
            })
        );
        let medium = encode(1, &[b'a'; 300]);
        assert_eq!(&medium[..4], &[0x81, 126, 0x01, 0x2C]);
        assert_eq!(check(&medium).unwrap().frames, 1);
        let large = encode(2, &vec![0; 70_000]);
        assert_eq!(&large[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(check(&large).unwrap().frames, 1);
        assert_eq!(check(&encode(9, b"ping")).unwrap().frames, 1);
    }

    #[test]
    fn several_frames_in_one_reply() {
        let mut body = encode(1, b"one");
        body.extend(encode(10, b""));
        body.extend(encode(8, b"\x03\xe8bye"));
        assert_eq!(
            check(&body),
            Ok(Checked {
                frames: 3,
                close: true
            })
        );
        let frames: Vec<_> = each(&body).collect();
        let expected: Vec<(bool, u8, &[u8])> = vec![
            (true, 1, b"one"),
            (true, 10, b""),
            (true, 8, b"\x03\xe8bye"),
        ];
        assert_eq!(frames, expected);
    }

    #[test]
    fn every_truncation_is_refused() {
        for frame in [
            encode(1, b"hello"),
            encode(1, &[1; 300]),
            encode(2, &vec![1; 70_000]),
        ] {
            for n in 1..frame.len() {
                assert_eq!(check(&frame[..n]), Err(FrameError::Truncated), "{n} bytes");
            }
        }
    }

    #[test]
    fn malformed_frames_are_refused() {
        let cases: &[(&[u8], FrameError)] = &[
            (b"\xC1\x00", FrameError::Reserved),
            (b"\x83\x00", FrameError::Opcode(3)),
            (b"\x8B\x00", FrameError::Opcode(0xB)),
            (b"\x81\x81abcdx", FrameError::Masked),
            (b"\x81\x7E\x00\x05hello", FrameError::NonMinimalLength),
            (
                b"\x81\x7F\x00\x00\x00\x00\x00\x00\x00\x05hello",
                FrameError::NonMinimalLength,
            ),
            (
                b"\x81\x7F\x80\x00\x00\x00\x00\x01\x00\x00",
                FrameError::NonMinimalLength,
            ),
            (b"\x09\x00", FrameError::Control),
            (b"\x80\x00", FrameError::Continuation),
            (b"\x88\x01x", FrameError::Close),
            (b"\x88\x02\x03\xed", FrameError::Close), // 1005 is never sent
            (b"\x88\x04\x03\xe8\xff\xfe", FrameError::Close),
            (b"\x88\x00\x81\x00", FrameError::AfterClose),
        ];
        for (body, err) in cases {
            assert_eq!(check(body), Err(*err), "{body:?}");
        }
        let mut long_ping = vec![0x89, 126, 0, 126];
        long_ping.extend([0; 126]);
        assert_eq!(check(&long_ping), Err(FrameError::Control));
    }

    #[test]
    fn fragments_follow_across_replies_and_a_refusal_changes_nothing() {
        let mut c = FrameChecker::default();
        assert!(c.check(b"\x01\x03hel").is_ok()); // text, not final
        assert_eq!(c.check(b"\x81\x01x"), Err(FrameError::Interleaved));
        assert!(c.check(b"\x89\x00").is_ok()); // a ping between fragments
        assert!(c.check(b"\x80\x02lo").is_ok()); // the last fragment
        assert_eq!(c.check(b"\x80\x01x"), Err(FrameError::Continuation));
        assert!(c.check(b"\x88\x00").is_ok());
        assert_eq!(c.check(b"\x81\x00"), Err(FrameError::AfterClose));
    }
}
