//! The hostile clients of `--hostile` (issue 11), one per attack kind, each
//! looping until the run ends: when the proxy closes or answers it, it starts
//! over on a new connection. Hand-written over raw sockets, because a
//! well-behaved client library will not send a frame longer than its limit
//! nor write without reading.
//!
//! a. websocket frame header saying 2^40 bytes, then data (SockJS, raw and
//!    bridge websockets in turn);
//! b. hixie-76 `0x00` then data without `0xff`;
//! c. 1 MiB messages by `xhr_send` (even clients) and websocket (odd) to a
//!    service with no backend connected (`/dark`);
//! d. SockJS websockets that send a 1 MiB message a second, which the echo
//!    backend sends back, and never read (small receive buffer);
//! e. 1 MiB `xhr_send` bodies of empty messages (`["","",…]`);
//! f. `xhr_send` POSTs announcing 100,000 bytes and sending 4.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::watch;

use crate::Error;
use crate::procs::PREFIX;
use crate::wsclient::find;

pub const MIB: usize = 1 << 20;
/// The service with no backend (kind c).
pub const DARK: &str = "/dark";
/// Bridge mode's websocket path.
pub const BRIDGE: &str = "/data";
pub const KINDS: &str = "abcdef";
/// Where every attacker connects from: one machine, as an attack from
/// one host would (the healthy sessions each have an address of their own).
pub const ADDRESS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 2);

/// What one kind's clients did, summed.
#[derive(Default)]
pub struct Tally {
    pub connections: AtomicU64,
    pub bytes: AtomicU64,
    /// How attempts ended: "close 1009", "closed", "408", "204", ...
    pub ends: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn end(&self, how: impl Into<String>) {
        *self.ends.lock().unwrap().entry(how.into()).or_default() += 1;
    }

    pub fn summary(&self) -> String {
        let ends: Vec<String> = self
            .ends
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "{} connections, {:.0} MiB written; {}",
            self.connections.load(Relaxed),
            self.bytes.load(Relaxed) as f64 / MIB as f64,
            ends.join(", ")
        )
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn session_path(prefix: &str, transport: &str) -> String {
    format!(
        "{prefix}/000/hostile{}/{transport}",
        NEXT_ID.fetch_add(1, Relaxed)
    )
}

/// Client `i` of `kind` until `stop` turns true.
pub async fn run(kind: char, i: usize, port: u16, mut stop: watch::Receiver<bool>, t: Arc<Tally>) {
    let work = async {
        loop {
            t.connections.fetch_add(1, Relaxed);
            let round = match kind {
                'a' => huge_frame(i, port, &t).await,
                'b' => endless_hixie(port, &t).await,
                'c' if i.is_multiple_of(2) => {
                    xhr_flood(port, DARK, one_big_message(MIB - 16), &t).await
                }
                'c' => ws_flood(port, &t).await,
                'd' => deaf(port, &t).await,
                'e' => xhr_flood(port, PREFIX, empty_messages(MIB - 16), &t).await,
                'f' => slow_body(port, &t).await,
                _ => Err(format!("no attack kind {kind:?}").into()),
            };
            if let Err(e) = round {
                t.end(format!(
                    "error: {}",
                    e.to_string().chars().take(40).collect::<String>()
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    tokio::select! {
        () = work => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// An upgrade by hand; the stream and what came after the response head.
async fn upgrade(
    port: u16,
    head: String,
    rcvbuf: Option<u32>,
) -> Result<(TcpStream, Vec<u8>), Error> {
    let mut s = crate::procs::dial(port, ADDRESS, rcvbuf).await?;
    s.write_all(head.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 101") {
                let line = String::from_utf8_lossy(&buf[..buf.len().min(12)]).into_owned();
                return Err(format!("upgrade refused: {line}").into());
            }
            return Ok((s, buf.split_off(i + 4)));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err("closed during the upgrade".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn ws_head(port: u16, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A masked client frame header (mask 0, so the payload goes out as is).
fn frame_header(len: u64) -> Vec<u8> {
    let mut h = vec![0x81];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&[0; 4]);
    h
}

fn one_big_message(n: usize) -> Vec<u8> {
    let mut p = b"[\"".to_vec();
    p.resize(2 + n, b'x');
    p.extend_from_slice(b"\"]");
    p
}

fn empty_messages(bytes: usize) -> Vec<u8> {
    let mut p = b"[\"\"".to_vec();
    while p.len() + 4 <= bytes {
        p.extend_from_slice(b",\"\"");
    }
    p.push(b']');
    p
}

/// Reads the proxy's side until it closes; the websocket close code if any
/// (`hixie`: frames are `0x00 … 0xff`, anything else is its close).
async fn read_until_close(mut r: OwnedReadHalf, mut buf: Vec<u8>, hixie: bool) -> Option<u16> {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        loop {
            if hixie {
                match buf.first() {
                    Some(0) => match buf.iter().position(|&b| b == 0xFF) {
                        Some(end) => {
                            buf.drain(..=end);
                        }
                        None => break,
                    },
                    Some(_) => return None,
                    None => break,
                }
                continue;
            }
            if buf.len() < 2 {
                break;
            }
            let (h, n) = match buf[1] & 0x7F {
                126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
                127 if buf.len() >= 10 => (
                    10,
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                ),
                126 | 127 => break,
                n => (2, n as usize),
            };
            if buf.len() < h + n {
                break;
            }
            if buf[0] & 0x0F == 8 {
                return Some(if n >= 2 {
                    u16::from_be_bytes([buf[h], buf[h + 1]])
                } else {
                    0
                });
            }
            buf.drain(..h + n);
        }
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Writes `first`, then `rest` over and over, until the proxy closes.
async fn stream(
    s: TcpStream,
    pre: Vec<u8>,
    hixie: bool,
    first: &[u8],
    rest: &[u8],
    t: &Tally,
) -> Result<(), Error> {
    let (r, mut w) = s.into_split();
    let mut reader = tokio::spawn(read_until_close(r, pre, hixie));
    let mut piece = first;
    loop {
        tokio::select! {
            code = &mut reader => {
                t.end(match code? {
                    Some(c) => format!("close {c}"),
                    None => "closed".to_string(),
                });
                return Ok(());
            }
            res = w.write_all(piece) => {
                if res.is_err() {
                    let code = tokio::time::timeout(Duration::from_secs(1), reader).await;
                    t.end(match code {
                        Ok(Ok(Some(c))) => format!("close {c}"),
                        _ => "closed".to_string(),
                    });
                    return Ok(());
                }
                t.bytes.fetch_add(piece.len() as u64, Relaxed);
                piece = rest;
            }
        }
    }
}

async fn huge_frame(i: usize, port: u16, t: &Tally) -> Result<(), Error> {
    let path = match i % 3 {
        0 => session_path(PREFIX, "websocket"),
        1 => format!("{PREFIX}/websocket"),
        _ => BRIDGE.to_string(),
    };
    let (s, pre) = upgrade(port, ws_head(port, &path), None).await?;
    stream(s, pre, false, &frame_header(1 << 40), &[b'x'; 64 * 1024], t).await
}

async fn endless_hixie(port: u16, t: &Tally) -> Result<(), Error> {
    let path = session_path(PREFIX, "websocket");
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: WebSocket\r\n\
         Connection: Upgrade\r\nOrigin: http://127.0.0.1\r\n\
         Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n\
         Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n^n:ds[4U"
    );
    let (mut s, mut pre) = upgrade(port, head, None).await?;
    while pre.len() < 16 {
        let mut c = [0u8; 64];
        let n = s.read(&mut c).await?;
        if n == 0 {
            return Err("closed before the hixie-76 answer".into());
        }
        pre.extend_from_slice(&c[..n]);
    }
    stream(s, pre.split_off(16), true, &[0], &[b'x'; 64 * 1024], t).await
}

async fn ws_flood(port: u16, t: &Tally) -> Result<(), Error> {
    let path = session_path(DARK, "websocket");
    let (s, pre) = upgrade(port, ws_head(port, &path), None).await?;
    let payload = one_big_message(MIB - 16);
    let mut frame = frame_header(payload.len() as u64);
    frame.extend_from_slice(&payload);
    stream(s, pre, false, &frame, &frame, t).await
}

async fn deaf(port: u16, t: &Tally) -> Result<(), Error> {
    let path = session_path(PREFIX, "websocket");
    let (mut s, _) = upgrade(port, ws_head(port, &path), Some(4096)).await?;
    let payload = one_big_message(MIB - 16);
    let mut frame = frame_header(payload.len() as u64);
    frame.extend_from_slice(&payload);
    // One message a second, whose echo it never reads: enough to fill any
    // bound within seconds. Only a failed write shows that the proxy closed.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if s.write_all(&frame).await.is_err() {
            t.end("closed");
            return Ok(());
        }
        t.bytes.fetch_add(frame.len() as u64, Relaxed);
    }
}

/// POSTs and reads the answer's status (the body skipped); keep-alive.
async fn post(s: &mut TcpStream, buf: &mut Vec<u8>, path: &str, body: &[u8]) -> Result<u16, Error> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    buf.drain(..end + 4);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad answer")?;
    let chunked = head.contains("transfer-encoding: chunked");
    let done = |buf: &[u8]| -> Option<usize> {
        if let Some(len) = head.lines().find_map(|l| l.strip_prefix("content-length:")) {
            let len: usize = len.trim().parse().ok()?;
            return (buf.len() >= len).then_some(len);
        }
        if !chunked {
            // 204, or a body up to the close that nothing here reads.
            return Some(0);
        }
        // Chunked: the body ends with the empty last chunk.
        find(buf, b"0\r\n\r\n").map(|i| i + 5)
    };
    loop {
        if let Some(n) = done(buf) {
            buf.drain(..n);
            return Ok(status);
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One session's worth of an `xhr_send` flood: opens a session, then posts
/// `body` until an answer is not 204.
async fn xhr_flood(port: u16, prefix: &str, body: Vec<u8>, t: &Tally) -> Result<(), Error> {
    let mut s = crate::procs::dial(port, ADDRESS, None).await?;
    let mut buf = Vec::new();
    let base = session_path(prefix, "");
    let base = base.trim_end_matches('/');
    let status = post(&mut s, &mut buf, &format!("{base}/xhr"), b"").await?;
    if status != 200 {
        t.end(format!("open {status}"));
        return Ok(());
    }
    loop {
        let status = post(&mut s, &mut buf, &format!("{base}/xhr_send"), &body).await?;
        if status == 204 {
            t.bytes.fetch_add(body.len() as u64, Relaxed);
            t.end("204");
        } else {
            t.end(status.to_string());
            return Ok(());
        }
    }
}

async fn slow_body(port: u16, t: &Tally) -> Result<(), Error> {
    let mut s = crate::procs::dial(port, ADDRESS, None).await?;
    let mut buf = Vec::new();
    let base = session_path(PREFIX, "");
    let base = base.trim_end_matches('/');
    let status = post(&mut s, &mut buf, &format!("{base}/xhr"), b"").await?;
    if status != 200 {
        t.end(format!("open {status}"));
        return Ok(());
    }
    let head = format!(
        "POST {base}/xhr_send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n[\"ab"
    );
    s.write_all(head.as_bytes()).await?;
    let mut chunk = [0u8; 1024];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                t.end("closed");
                return Ok(());
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = find(&buf, b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..i]).into_owned();
            t.end(line.split(' ').nth(1).unwrap_or("?").to_string());
            return Ok(());
        }
    }
}
