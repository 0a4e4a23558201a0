//! A minimal WebSocket client for the load generator, written by hand so that
//! the generator is cheap per message and is never the bottleneck: one read
//! buffer reused for the whole connection, frames parsed in place, replies
//! queued in one write buffer and sent with one `write_all`.
//!
//! It speaks only what the bench needs: text frames of any length, unfragmented
//! (the servers under test never fragment small messages; a fragment is
//! reported as an error rather than misparsed), ping → pong, close.

use std::ops::Range;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

pub struct WsConn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    wbuf: Vec<u8>,
    mask_state: u32,
}

/// Any fixed key is valid: the server does not check it, only that it is there.
const KEY_HEADER: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

impl WsConn {
    /// Opens `ws://127.0.0.1:port{path}` from the loopback address `from`
    /// and completes the upgrade.
    pub async fn connect(port: u16, path: &str, from: std::net::Ipv4Addr) -> Result<WsConn, Error> {
        let stream = crate::procs::dial(port, from, None).await?;
        let mut conn = WsConn {
            stream,
            rbuf: vec![0; 4096],
            start: 0,
            end: 0,
            wbuf: Vec::with_capacity(512),
            mask_state: 0x9E37_79B9 ^ u32::from(port),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\n{KEY_HEADER}Sec-WebSocket-Version: 13\r\n\r\n"
        );
        conn.stream.write_all(request.as_bytes()).await?;
        // Read the response head; bytes after it (a first frame) stay buffered.
        loop {
            if let Some(pos) = find(&conn.rbuf[..conn.end], b"\r\n\r\n") {
                let head = &conn.rbuf[..pos];
                if !head.starts_with(b"HTTP/1.1 101") {
                    let line =
                        String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or(b""));
                    return Err(format!("websocket upgrade of {path} refused: {line}").into());
                }
                conn.start = pos + 4;
                return Ok(conn);
            }
            if conn.end == conn.rbuf.len() {
                return Err("websocket response head too large".into());
            }
            let n = conn.stream.read(&mut conn.rbuf[conn.end..]).await?;
            if n == 0 {
                return Err(format!("connection closed during upgrade of {path}").into());
            }
            conn.end += n;
        }
    }

    /// Queues one masked text frame.
    pub fn queue_text(&mut self, payload: &[u8]) {
        self.queue_frame(0x1, payload);
    }

    fn queue_frame(&mut self, opcode: u8, payload: &[u8]) {
        let len = payload.len();
        self.wbuf.push(0x80 | opcode);
        if len < 126 {
            self.wbuf.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            self.wbuf.push(0x80 | 126);
            self.wbuf.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.wbuf.push(0x80 | 127);
            self.wbuf.extend_from_slice(&(len as u64).to_be_bytes());
        }
        // xorshift: cheap, and different per frame as RFC 6455 asks.
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        let mask = x.to_be_bytes();
        self.wbuf.extend_from_slice(&mask);
        self.wbuf
            .extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    }

    /// Queues a close frame (status 1000).
    pub fn queue_close(&mut self) {
        self.queue_frame(0x8, &1000u16.to_be_bytes());
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Whether a complete frame is already buffered (then the caller can
    /// handle it before flushing, and batch its replies).
    pub fn has_buffered_frame(&self) -> bool {
        matches!(parse_header(&self.rbuf[self.start..self.end]), Ok(Some((h, len))) if self.end - self.start >= h + len)
    }

    /// The next text/binary frame's payload as a range of [`WsConn::data`],
    /// valid until the next call; `None` when the server closed.
    pub async fn read_frame(&mut self) -> Result<Option<Range<usize>>, Error> {
        loop {
            let avail = &self.rbuf[self.start..self.end];
            if let Some((hlen, plen)) = parse_header(avail)? {
                let total = hlen + plen;
                if avail.len() >= total {
                    let b0 = avail[0];
                    let range = self.start + hlen..self.start + total;
                    self.start += total;
                    if b0 & 0x80 == 0 || b0 & 0x0F == 0 {
                        return Err(
                            "fragmented websocket frame (not supported by the bench)".into()
                        );
                    }
                    match b0 & 0x0F {
                        0x1 | 0x2 => return Ok(Some(range)),
                        0x8 => return Ok(None),
                        0x9 => {
                            let payload = self.rbuf[range].to_vec();
                            self.queue_frame(0xA, &payload);
                            self.flush().await?;
                        }
                        0xA => {}
                        op => return Err(format!("unknown websocket opcode {op}").into()),
                    }
                    continue;
                }
                if total > self.rbuf.len() {
                    self.rbuf.resize(total.next_power_of_two(), 0);
                }
            }
            // Need more bytes: make room at the end, then read.
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.end == self.rbuf.len() {
                self.rbuf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.stream.read(&mut self.rbuf[self.end..]).await?;
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
        }
    }

    pub fn data(&self, range: Range<usize>) -> &[u8] {
        &self.rbuf[range]
    }

    /// Sends a close frame and waits (bounded by the caller) for the server to
    /// answer or hang up, as a polite client does.
    pub async fn close(mut self) -> Result<(), Error> {
        self.queue_close();
        self.flush().await?;
        while self.read_frame().await?.is_some() {}
        Ok(())
    }
}

/// (header length, payload length) of the frame at the start of `buf`, or
/// `None` if the header is not complete yet.
fn parse_header(buf: &[u8]) -> Result<Option<(usize, usize)>, Error> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[1] & 0x80 != 0 {
        return Err("server sent a masked frame".into());
    }
    Ok(match buf[1] & 0x7F {
        126 if buf.len() >= 4 => Some((4, u16::from_be_bytes([buf[2], buf[3]]) as usize)),
        127 if buf.len() >= 10 => {
            let mut b = [0; 8];
            b.copy_from_slice(&buf[2..10]);
            Some((10, u64::from_be_bytes(b) as usize))
        }
        126 | 127 => None,
        n => Some((2, n as usize)),
    })
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
