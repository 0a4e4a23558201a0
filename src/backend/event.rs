//! The backend wire protocol of SockJSProxy 0.7: every 0MQ message has exactly
//! three frames, `[type, session_id, data]`.
//!
//! Proxy → backend (PUSH): `connect` (data empty, or with connection info or
//! authentication on, one JSON object: see `sockjs::admission`), `message`
//! (data: one client message as UTF-8), `disconnect` (data empty but present).
//! Backend → proxy (PULL): `message` (data to that session), `disconnect` (close
//! that session), `disconnectall` (close every session).

use bytes::Bytes;

use crate::sockjs::SessionKey;

/// An event for the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A session opened; its data is empty unless connect info or an
    /// admission supplied some.
    Connect(SessionKey, Option<String>),
    Message(SessionKey, String),
    Disconnect(SessionKey),
}

impl Event {
    /// The message type (first frame) and the session of this event.
    fn head(&self) -> (&'static [u8], SessionKey) {
        match self {
            Event::Connect(k, _) => (b"connect", *k),
            Event::Message(k, _) => (b"message", *k),
            Event::Disconnect(k) => (b"disconnect", *k),
        }
    }

    /// The three frames of this event; a message's text is moved, not copied.
    pub fn into_frames(self) -> [Bytes; 3] {
        let (kind, key) = self.head();
        let data = match self {
            Event::Message(_, m) | Event::Connect(_, Some(m)) => Bytes::from(m),
            Event::Connect(_, None) | Event::Disconnect(_) => Bytes::new(),
        };
        [Bytes::from_static(kind), Bytes::from(key.to_string()), data]
    }

    /// Calls `f` with the three frames of this event, without allocating: the
    /// native PUSH encodes them straight into its output buffer.
    pub fn with_frames<R>(&self, f: impl FnOnce([&[u8]; 3]) -> R) -> R {
        let (kind, key) = self.head();
        let data: &[u8] = match self {
            Event::Message(_, m) | Event::Connect(_, Some(m)) => m.as_bytes(),
            Event::Connect(_, None) | Event::Disconnect(_) => b"",
        };
        // u64::MAX has 20 digits.
        let mut digits = [0u8; 20];
        let mut n = key.0;
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        f([kind, &digits[start..], data])
    }
}

/// A command from the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Message(SessionKey, String),
    Disconnect(SessionKey),
    DisconnectAll,
}

/// Why a backend message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("expected 3 frames, got {0}")]
    PartCount(usize),
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("session id {0:?} is not one this proxy made")]
    BadSessionId(String),
    #[error("data of {kind} for session {session} is not valid UTF-8")]
    NotUtf8 { kind: &'static str, session: String },
}

impl Command {
    /// Parses one multipart message.
    pub fn parse<P: AsRef<[u8]>>(parts: &[P]) -> Result<Command, CommandError> {
        let [kind, session, data] = parts else {
            return Err(CommandError::PartCount(parts.len()));
        };
        let text = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .chars()
                .take(64)
                .collect::<String>()
        };
        let key = || {
            std::str::from_utf8(session.as_ref())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .map(SessionKey)
                .ok_or_else(|| CommandError::BadSessionId(text(session.as_ref())))
        };
        match kind.as_ref() {
            b"message" => {
                let key = key()?;
                let data = String::from_utf8(data.as_ref().to_vec()).map_err(|_| {
                    CommandError::NotUtf8 {
                        kind: "message",
                        session: key.to_string(),
                    }
                })?;
                Ok(Command::Message(key, data))
            }
            b"disconnect" => Ok(Command::Disconnect(key()?)),
            b"disconnectall" => Ok(Command::DisconnectAll),
            other => Err(CommandError::UnknownType(text(other))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_three_frames_with_data_present_even_when_empty() {
        let [t, s, d] = Event::Connect(SessionKey(7), None).into_frames();
        assert_eq!(
            (&t[..], &s[..], &d[..]),
            (&b"connect"[..], &b"7"[..], &b""[..])
        );
        let [t, _, d] = Event::Message(SessionKey(7), "é".into()).into_frames();
        assert_eq!((&t[..], &d[..]), (&b"message"[..], "é".as_bytes()));
    }

    #[test]
    fn borrowed_frames_match_the_owned_ones() {
        for event in [
            Event::Connect(SessionKey(0), None),
            Event::Connect(SessionKey(1), Some(r#"{"user":"a"}"#.into())),
            Event::Message(SessionKey(1234567890), "hi".into()),
            Event::Disconnect(SessionKey(u64::MAX)),
        ] {
            let owned = event.clone().into_frames();
            event.with_frames(|borrowed| {
                for (b, o) in borrowed.iter().zip(&owned) {
                    assert_eq!(*b, &o[..]);
                }
            });
        }
    }

    #[test]
    fn commands_parse_by_type() {
        assert_eq!(
            Command::parse(&[&b"message"[..], b"12", b"hi"]),
            Ok(Command::Message(SessionKey(12), "hi".into()))
        );
        assert_eq!(
            Command::parse(&[&b"disconnect"[..], b"12", b""]),
            Ok(Command::Disconnect(SessionKey(12)))
        );
        assert_eq!(
            Command::parse(&[&b"disconnectall"[..], b"", b""]),
            Ok(Command::DisconnectAll)
        );
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert_eq!(
            Command::parse(&[&b"message"[..], b"1"]),
            Err(CommandError::PartCount(2))
        );
        assert_eq!(
            Command::parse::<&[u8]>(&[]),
            Err(CommandError::PartCount(0))
        );
        assert!(matches!(
            Command::parse(&[&b"shout"[..], b"1", b""]),
            Err(CommandError::UnknownType(_))
        ));
        assert!(matches!(
            Command::parse(&[&b"message"[..], b"abc", b""]),
            Err(CommandError::BadSessionId(_))
        ));
        assert!(matches!(
            Command::parse(&[&b"message"[..], b"1", b"\xff"]),
            Err(CommandError::NotUtf8 { .. })
        ));
    }
}
