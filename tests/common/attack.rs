//! Hostile clients for the attack tests of issue 11 ("No single client can
//! take the proxy down"): each speaks just enough of its protocol by hand, over
//! a real socket, to do what a hostile user would (a websocket frame header
//! that promises 2^40 bytes, a hixie-76 frame that never ends, 1 MiB bodies as
//! fast as the proxy takes them, request bodies that never arrive), and stops
//! when its [`Stop`] fires. The well-behaved side is in [`super::bystanders`].
//!
//! Hand-written rather than tokio-tungstenite because a well-behaved client
//! library refuses to do these things (it will not send a frame longer than
//! its limit, nor write without reading).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use super::meter::Stop;

/// The default `max_message_bytes`.
pub const MIB: usize = 1 << 20;

/// Attack tests run one at a time within a test binary: each measures one
/// proxy's CPU and memory, and two floods side by side on a 2-core machine
/// would measure each other.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// How one streaming attack ended.
#[derive(Debug, Clone)]
pub struct Streamed {
    /// Bytes the attacker wrote after the handshake.
    pub sent: u64,
    /// The websocket close code the proxy sent, if it sent one.
    pub close_code: Option<u16>,
    /// Whether the proxy closed the connection (close frame, EOF or reset).
    pub closed: bool,
    /// From the start of the attack to the proxy's close.
    pub closed_after: Option<Duration>,
}

/// Opens a TCP connection and sends `head`; returns the stream once the
/// response head (up to the blank line) has been read, with the bytes after it.
async fn handshake(port: u16, head: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the proxy");
    stream.set_nodelay(true).unwrap();
    stream.write_all(head).await.expect("send the handshake");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let status = String::from_utf8_lossy(&buf[..i]).into_owned();
            assert!(
                status.starts_with("HTTP/1.1 101"),
                "upgrade refused: {status}"
            );
            return (stream, buf.split_off(i + 4));
        }
        let n = tokio::time::timeout(super::IO_LIMIT, stream.read(&mut chunk))
            .await
            .expect("no upgrade answer in time")
            .expect("read the upgrade answer");
        assert!(n > 0, "connection closed during the upgrade");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// An RFC 6455 websocket to `path`, upgraded by hand.
pub async fn ws_upgrade(port: u16, path: &str) -> (TcpStream, Vec<u8>) {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    handshake(port, head.as_bytes()).await
}

/// A hixie-76 websocket to `path` (the keys of the draft's own example);
/// returns the stream after the response head and the 16-byte answer.
pub async fn hixie_upgrade(port: u16, path: &str) -> (TcpStream, Vec<u8>) {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: WebSocket\r\n\
         Connection: Upgrade\r\nOrigin: http://127.0.0.1\r\n\
         Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n\
         Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n^n:ds[4U"
    );
    let (mut stream, mut rest) = handshake(port, head.as_bytes()).await;
    while rest.len() < 16 {
        let mut chunk = [0u8; 64];
        let n = tokio::time::timeout(super::IO_LIMIT, stream.read(&mut chunk))
            .await
            .expect("no hixie-76 challenge answer in time")
            .expect("read the challenge answer");
        assert!(n > 0, "closed before the challenge answer");
        rest.extend_from_slice(&chunk[..n]);
    }
    (stream, rest.split_off(16))
}

/// The header of a masked client frame (`opcode`, `len` payload bytes) and
/// its mask. The mask is all zeros so that the payload goes out as it is.
pub fn client_frame_header(opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
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

/// One whole masked text frame.
pub fn client_text_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = client_frame_header(0x1, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

/// How the proxy's side of a connection is framed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Rfc6455,
    Hixie76,
}

/// Reads what the proxy sends until it closes: `Some(code)` for an RFC 6455
/// close frame (0 if it had no code), `None` for a hixie-76 close or the end
/// of the connection. Other frames are skipped.
async fn read_until_close(mut read: OwnedReadHalf, mut buf: Vec<u8>, wire: Wire) -> Option<u16> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        loop {
            match wire {
                Wire::Rfc6455 => {
                    if buf.len() < 2 {
                        break;
                    }
                    let (hlen, plen) = match buf[1] & 0x7F {
                        126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
                        127 if buf.len() >= 10 => (
                            10,
                            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                        ),
                        126 | 127 => break,
                        n => (2, n as usize),
                    };
                    if buf.len() < hlen + plen {
                        break;
                    }
                    if buf[0] & 0x0F == 0x8 {
                        let p = &buf[hlen..hlen + plen];
                        return Some(if p.len() >= 2 {
                            u16::from_be_bytes([p[0], p[1]])
                        } else {
                            0
                        });
                    }
                    buf.drain(..hlen + plen);
                }
                Wire::Hixie76 => match buf.first() {
                    None => break,
                    Some(0x00) => match buf.iter().position(|&b| b == 0xFF) {
                        Some(end) => {
                            buf.drain(..=end);
                        }
                        None => break,
                    },
                    Some(_) => return None,
                },
            }
        }
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Writes `prefix`, then `chunk` over and over, until the proxy closes the
/// connection or `stop` fires; reads the proxy's side all the while.
pub async fn stream_until_closed(
    stream: TcpStream,
    already_read: Vec<u8>,
    wire: Wire,
    prefix: &[u8],
    chunk: &[u8],
    stop: &Stop,
) -> Streamed {
    let start = Instant::now();
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::spawn(read_until_close(read, already_read, wire));
    let mut sent = 0u64;
    let mut ended = None;
    let mut first = Some(prefix);
    loop {
        let piece = first.take().unwrap_or(chunk);
        tokio::select! {
            r = &mut reader => {
                ended = Some((r.unwrap_or(None), start.elapsed()));
                break;
            }
            w = write.write_all(piece) => {
                if w.is_err() {
                    break;
                }
                sent += piece.len() as u64;
            }
            _ = stop.wait() => break,
        }
    }
    if ended.is_none() {
        // The close may be on its way (a write failed because of it).
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(500), &mut reader).await {
            ended = Some((r.unwrap_or(None), start.elapsed()));
        } else {
            reader.abort();
        }
    }
    Streamed {
        sent,
        close_code: ended.and_then(|(code, _)| code),
        closed: ended.is_some(),
        closed_after: ended.map(|(_, at)| at),
    }
}

/// A minimal keep-alive HTTP/1.1 client for floods: one request at a time,
/// the answer's status, the body skipped (by `Content-Length`).
pub struct Conn {
    stream: TcpStream,
    port: u16,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(port: u16) -> std::io::Result<Conn> {
        Conn::open_from(port, [127, 0, 0, 1]).await
    }

    /// A connection to the proxy (on 127.0.0.1) from another loopback
    /// address, which the proxy sees as another client.
    pub async fn open_from(port: u16, source: [u8; 4]) -> std::io::Result<Conn> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((source, 0).into())?;
        let stream = socket.connect(([127, 0, 0, 1], port).into()).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            port,
            buf: Vec::new(),
        })
    }

    /// Sends one POST and returns the status and body of its answer. An
    /// answer without `Content-Length` ends the connection (an error next time).
    pub async fn post(&mut self, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Content-Type: text/plain\r\n\r\n",
            self.port,
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await?;
        self.stream.write_all(body).await?;
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad answer {head:?}")))?;
        let length = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        match length {
            Some(length) => {
                while self.buf.len() < length {
                    self.fill().await?;
                }
                Ok((status, self.buf.drain(..length).collect()))
            }
            None if chunked => Ok((status, self.chunked_body().await?)),
            None => {
                self.stream.shutdown().await.ok();
                Ok((status, std::mem::take(&mut self.buf)))
            }
        }
    }

    /// A chunked body, up to its last (empty) chunk.
    async fn chunked_body(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let eol = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                self.fill().await?;
            };
            let size = std::str::from_utf8(&self.buf[..eol])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
                .ok_or_else(|| std::io::Error::other("bad chunk size"))?;
            while self.buf.len() < eol + 2 + size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[eol + 2..eol + 2 + size]);
            self.buf.drain(..eol + 2 + size + 2);
            if size == 0 {
                return Ok(body);
            }
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// A SockJS payload of one message of `n` bytes of `x` (`["xxx…"]`).
pub fn one_big_message(n: usize) -> Vec<u8> {
    let mut p = b"[\"".to_vec();
    p.resize(2 + n, b'x');
    p.extend_from_slice(b"\"]");
    p
}

/// A SockJS payload of as many empty messages (`["","",…]`) as fit in `bytes`.
pub fn empty_messages(bytes: usize) -> Vec<u8> {
    let count = (bytes - 1) / 3;
    let mut p = Vec::with_capacity(bytes);
    p.push(b'[');
    for i in 0..count {
        if i > 0 {
            p.push(b',');
        }
        p.extend_from_slice(b"\"\"");
    }
    p.push(b']');
    p
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(0);

/// A fresh SockJS session id.
pub fn session_id(tag: &str) -> String {
    format!("{tag}{}", NEXT_SESSION.fetch_add(1, Ordering::Relaxed))
}

/// What an `xhr_send` flooder got through.
#[derive(Debug, Default, Clone, Copy)]
pub struct Flooded {
    /// Bodies answered 204 (taken by the proxy).
    pub accepted: u64,
    /// Other answers (404 for a session the proxy closed, 413, 503, ...).
    pub refused: u64,
    /// Sessions opened (a new one after each refusal).
    pub sessions: u64,
}

/// Posts `body` to `xhr_send` of an xhr session over and over, one at a time
/// on one keep-alive connection, as fast as the proxy answers, until `stop`;
/// opens a new session whenever one is refused, and a new connection when
/// one breaks.
pub async fn xhr_send_flood(port: u16, prefix: &str, body: Arc<Vec<u8>>, stop: Stop) -> Flooded {
    let mut out = Flooded::default();
    let work = async {
        loop {
            let Ok(mut conn) = Conn::open(port).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            'session: loop {
                let base = format!("{prefix}/000/{}", session_id("flood"));
                match conn.post(&format!("{base}/xhr"), b"").await {
                    Ok((200, _)) => out.sessions += 1,
                    Ok(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue 'session;
                    }
                    Err(_) => break 'session,
                }
                loop {
                    match conn.post(&format!("{base}/xhr_send"), &body).await {
                        Ok((204, _)) => out.accepted += 1,
                        Ok(_) => {
                            out.refused += 1;
                            continue 'session;
                        }
                        Err(_) => break 'session,
                    }
                }
            }
        }
    };
    stop.until(work).await;
    out
}

/// Sends `frame` (whole websocket frames) over a SockJS websocket as fast as
/// the proxy reads them, until `stop` or the proxy closes; returns the
/// bytes written.
pub async fn ws_flood(port: u16, prefix: &str, frame: Arc<Vec<u8>>, stop: Stop) -> u64 {
    let path = format!("{prefix}/000/{}/websocket", session_id("wsflood"));
    let (stream, rest) = ws_upgrade(port, &path).await;
    let chunk = frame.as_slice();
    stream_until_closed(stream, rest, Wire::Rfc6455, chunk, chunk, &stop)
        .await
        .sent
}

/// The answer to a request whose body never arrives.
#[derive(Debug, Clone, Copy)]
pub enum SlowAnswer {
    /// An HTTP status (408 is the expected one).
    Status(u16, Duration),
    /// The proxy closed the connection without an answer.
    Closed(Duration),
    /// Nothing within the wait.
    Nothing,
}

/// POSTs to `path` a head announcing `announced` body bytes, sends 4 of them,
/// and waits up to `wait` for the proxy to answer or hang up.
pub async fn slow_body(port: u16, path: &str, announced: usize, wait: Duration) -> SlowAnswer {
    let start = Instant::now();
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return SlowAnswer::Closed(start.elapsed());
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {announced}\r\n\
         Content-Type: text/plain\r\n\r\n[\"ab"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return SlowAnswer::Closed(start.elapsed());
    }
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
                return line.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok());
            }
        }
    };
    match tokio::time::timeout(wait, read).await {
        Ok(Some(status)) => SlowAnswer::Status(status, start.elapsed()),
        Ok(None) => SlowAnswer::Closed(start.elapsed()),
        Err(_) => SlowAnswer::Nothing,
    }
}
