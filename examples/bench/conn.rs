//! One client session against any target, behind one enum so that every
//! scenario drives the reference, the proxy's raw websocket, its SockJS
//! websocket and xhr-streaming with the same code (an enum rather than a trait
//! so that session futures stay `Send` for `tokio::spawn`).
//!
//! Also the message codec: every message is 32 bytes naming its session and
//! sequence number, so an echo can be checked byte for byte and a lost,
//! duplicated, reordered or foreign message is caught.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;
use crate::procs::PREFIX;
use crate::wsclient::WsConn;
use crate::xhr::XhrConn;

/// What a scenario talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The bare tokio-tungstenite echo server.
    Reference,
    /// `/<prefix>/websocket`: one text message per message.
    Raw,
    /// `/<prefix>/000/<session>/websocket`: `o`, `["m"]` → `a["m",...]`.
    Sockjs,
    /// xhr-streaming + xhr_send.
    Xhr,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Reference => "reference (raw ws echo)",
            Kind::Raw => "proxy raw ws",
            Kind::Sockjs => "proxy SockJS ws",
            Kind::Xhr => "proxy xhr-streaming",
        }
    }
}

pub const MSG_LEN: usize = 32;

/// Message `seq` of session `session`: 8 hex digits, then 24 decimal digits.
/// Only alphanumerics, so no JSON escaping anywhere on the path.
pub fn message(session: u32, seq: u64) -> [u8; MSG_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut m = [b'0'; MSG_LEN];
    for i in 0..8 {
        m[i] = HEX[((session >> (28 - 4 * i)) & 0xF) as usize];
    }
    let mut s = seq;
    for i in (8..MSG_LEN).rev() {
        m[i] = b'0' + (s % 10) as u8;
        s /= 10;
    }
    m
}

/// SockJS session ids unique over the whole run (a reused id would join an
/// old session).
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

pub enum Conn {
    Ws(WsConn, Kind),
    Xhr(Box<XhrConn>),
}

impl Conn {
    /// Opens a session: websocket upgrade (and `o` for SockJS), or the
    /// xhr-streaming response up to `o`.
    pub async fn open(kind: Kind, port: u16) -> Result<Conn, Error> {
        Self::open_from(kind, port, std::net::Ipv4Addr::LOCALHOST).await
    }

    /// [`Conn::open`] from the loopback address `from` (websockets; xhr
    /// always comes from 127.0.0.1).
    pub async fn open_from(kind: Kind, port: u16, from: std::net::Ipv4Addr) -> Result<Conn, Error> {
        match kind {
            Kind::Reference => Ok(Conn::Ws(WsConn::connect(port, "/", from).await?, kind)),
            Kind::Raw => Ok(Conn::Ws(
                WsConn::connect(port, &format!("{PREFIX}/websocket"), from).await?,
                kind,
            )),
            Kind::Sockjs => {
                let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
                let path = format!("{PREFIX}/000/b{id}/websocket");
                let mut ws = WsConn::connect(port, &path, from).await?;
                match ws.read_frame().await? {
                    Some(r) if ws.data(r.clone()) == b"o" => Ok(Conn::Ws(ws, kind)),
                    Some(r) => Err(format!(
                        "SockJS websocket: expected 'o', got {:?}",
                        String::from_utf8_lossy(ws.data(r))
                    )
                    .into()),
                    None => Err("SockJS websocket closed before 'o'".into()),
                }
            }
            Kind::Xhr => {
                let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
                Ok(Conn::Xhr(Box::new(
                    XhrConn::open(port, PREFIX, &format!("x{id}")).await?,
                )))
            }
        }
    }

    /// Queues one message (sent by the next `flush`).
    pub fn queue(&mut self, msg: &[u8]) {
        match self {
            Conn::Ws(ws, Kind::Sockjs) => {
                let mut frame = [0u8; MSG_LEN + 4];
                frame[..2].copy_from_slice(b"[\"");
                frame[2..2 + msg.len()].copy_from_slice(msg);
                frame[2 + msg.len()..4 + msg.len()].copy_from_slice(b"\"]");
                ws.queue_text(&frame[..msg.len() + 4]);
            }
            Conn::Ws(ws, _) => ws.queue_text(msg),
            Conn::Xhr(x) => x.queue(msg),
        }
    }

    pub async fn flush(&mut self) -> Result<(), Error> {
        match self {
            Conn::Ws(ws, _) => ws.flush().await,
            Conn::Xhr(x) => x.flush().await,
        }
    }

    /// Waits for the next frame and appends its messages to `out` (ranges of
    /// [`Conn::data`], valid until the next call). The proxy may batch several
    /// messages into one SockJS `a[...]` frame: they are all appended.
    pub async fn recv(&mut self, out: &mut Vec<Range<usize>>) -> Result<(), Error> {
        match self {
            Conn::Ws(ws, kind) => loop {
                let Some(r) = ws.read_frame().await? else {
                    return Err("server closed the websocket".into());
                };
                if *kind != Kind::Sockjs {
                    out.push(r);
                    return Ok(());
                }
                let data = ws.data(r.clone());
                match data.first() {
                    Some(b'h') => continue,
                    Some(b'a') => return parse_array(ws_buf(ws, &r), r, out),
                    _ => {
                        return Err(format!(
                            "SockJS websocket: unexpected frame {:?}",
                            String::from_utf8_lossy(data)
                        )
                        .into());
                    }
                }
            },
            Conn::Xhr(x) => x.recv(out).await,
        }
    }

    /// Whether another frame is already buffered (so replies can be batched).
    pub fn has_buffered(&self) -> bool {
        match self {
            Conn::Ws(ws, _) => ws.has_buffered_frame(),
            Conn::Xhr(x) => x.has_buffered(),
        }
    }

    pub fn data(&self, r: Range<usize>) -> &[u8] {
        match self {
            Conn::Ws(ws, _) => ws.data(r),
            Conn::Xhr(x) => x.data(r),
        }
    }

    /// Ends the session politely (websocket close handshake).
    pub async fn close(self) -> Result<(), Error> {
        match self {
            Conn::Ws(ws, _) => ws.close().await,
            // Dropping both connections is how a browser leaves xhr-streaming.
            Conn::Xhr(_) => Ok(()),
        }
    }
}

/// The whole read buffer of `ws`, so that ranges into it stay absolute.
fn ws_buf<'a>(ws: &'a WsConn, r: &Range<usize>) -> &'a [u8] {
    // data(0..end) is the buffer prefix holding the frame.
    ws.data(0..r.end)
}

/// Parses a SockJS `a[...]` frame at `frame` inside `buf` into message ranges.
/// Our messages never contain a quote or backslash, so a backslash means a
/// message we did not send (it is reported, not unescaped).
pub fn parse_array(
    buf: &[u8],
    frame: Range<usize>,
    out: &mut Vec<Range<usize>>,
) -> Result<(), Error> {
    let f = &buf[frame.clone()];
    let bad =
        || -> Error { format!("bad SockJS array frame {:?}", String::from_utf8_lossy(f)).into() };
    if !f.starts_with(b"a[") || !f.ends_with(b"]") {
        return Err(bad());
    }
    let mut i = 2;
    let end = f.len() - 1;
    while i < end {
        if f[i] != b'"' {
            return Err(bad());
        }
        let close = f[i + 1..end]
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
            .ok_or_else(bad)?;
        if f[i + 1 + close] == b'\\' {
            return Err(bad());
        }
        out.push(frame.start + i + 1..frame.start + i + 1 + close);
        i += close + 2;
        if i < end {
            if f[i] != b',' {
                return Err(bad());
            }
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_32_alphanumeric_bytes() {
        let m = message(0xab, 42);
        assert_eq!(&m, b"000000ab000000000000000000000042");
    }

    #[test]
    fn arrays_split_into_messages() {
        let buf = b"xxa[\"ab\",\"c\"]";
        let mut out = Vec::new();
        parse_array(buf, 2..buf.len(), &mut out).unwrap();
        assert_eq!(out, vec![5..7, 10..11]);
        assert!(parse_array(b"a[\"a\\\"\"]", 0..8, &mut out).is_err());
    }
}
