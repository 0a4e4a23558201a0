//! A hand-written HTTP/1.1 client for SockJS xhr-streaming + xhr_send: one
//! streaming `POST .../xhr_streaming` per session, read chunk by chunk, and
//! one keep-alive connection that POSTs `.../xhr_send`.
//!
//! Hand-written because the bench must check the protocol's exact bytes (the
//! 2048-`h` prelude, `o\n`, `a[...]\n` frames) and must stay cheap; an HTTP
//! client library would hide the first and cost the second.

use std::ops::Range;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;
use crate::wsclient::find;

/// How the streaming response's body is delimited.
enum Body {
    /// `Transfer-Encoding: chunked`: bytes left in the current chunk, or
    /// `None` when a size line comes next.
    Chunked(Option<usize>),
    /// Read until the server closes (HTTP/1.0 style).
    UntilClose,
}

pub struct XhrConn {
    port: u16,
    base: String,
    stream: TcpStream,
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
    framing: Body,
    /// De-chunked body; complete lines are parsed out of it.
    body: Vec<u8>,
    body_start: usize,
    sender: Option<TcpStream>,
    send_buf: Vec<u8>,
    /// The JSON array being built for the next xhr_send.
    pending: Vec<u8>,
}

impl XhrConn {
    /// Opens the streaming response of session `id` and reads up to `o`.
    pub async fn open(port: u16, prefix: &str, id: &str) -> Result<XhrConn, Error> {
        let base = format!("{prefix}/000/{id}");
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let mut conn = XhrConn {
            port,
            base,
            stream,
            raw: vec![0; 8192],
            raw_start: 0,
            raw_end: 0,
            framing: Body::UntilClose,
            body: Vec::with_capacity(4096),
            body_start: 0,
            sender: None,
            send_buf: Vec::with_capacity(512),
            pending: Vec::with_capacity(512),
        };
        let req = format!(
            "POST {}/xhr_streaming HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n",
            conn.base
        );
        conn.stream.write_all(req.as_bytes()).await?;
        let head_end = loop {
            if let Some(pos) = find(&conn.raw[..conn.raw_end], b"\r\n\r\n") {
                break pos;
            }
            if !conn.read_raw().await? {
                return Err("xhr_streaming: closed before the response head".into());
            }
        };
        let head = String::from_utf8_lossy(&conn.raw[..head_end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return Err(format!("xhr_streaming: {}", head.lines().next().unwrap_or("")).into());
        }
        if head.contains("transfer-encoding: chunked") {
            conn.framing = Body::Chunked(None);
        }
        conn.raw_start = head_end + 4;
        let prelude = conn.line().await?;
        if prelude.len() != 2048 || conn.body[prelude].iter().any(|&b| b != b'h') {
            return Err("xhr_streaming: prelude is not 2048 'h'".into());
        }
        let open = conn.line().await?;
        if &conn.body[open] != b"o" {
            return Err("xhr_streaming: expected an 'o' frame".into());
        }
        Ok(conn)
    }

    /// Adds one message to the next xhr_send.
    pub fn queue(&mut self, msg: &[u8]) {
        self.pending
            .push(if self.pending.is_empty() { b'[' } else { b',' });
        self.pending.push(b'"');
        self.pending.extend_from_slice(msg);
        self.pending.push(b'"');
    }

    /// POSTs the queued messages as one xhr_send and checks the 204.
    pub async fn flush(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending.push(b']');
        if self.sender.is_none() {
            let s = TcpStream::connect(("127.0.0.1", self.port)).await?;
            s.set_nodelay(true)?;
            self.sender = Some(s);
        }
        let sender = self.sender.as_mut().expect("just set");
        self.send_buf.clear();
        self.send_buf.extend_from_slice(
            format!(
                "POST {}/xhr_send HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                self.base,
                self.port,
                self.pending.len()
            )
            .as_bytes(),
        );
        self.send_buf.extend_from_slice(&self.pending);
        self.pending.clear();
        sender.write_all(&self.send_buf).await?;
        // Read the response head (and its body, if it has one) into send_buf.
        self.send_buf.clear();
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(pos) = find(&self.send_buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.send_buf[..pos]).to_ascii_lowercase();
                if !head.starts_with("http/1.1 204") && !head.starts_with("http/1.1 200") {
                    return Err(format!("xhr_send: {}", head.lines().next().unwrap_or("")).into());
                }
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(Ok(0), |v| v.trim().parse::<usize>())
                    .map_err(|_| "xhr_send: bad content-length")?;
                if self.send_buf.len() >= pos + 4 + len {
                    if self.send_buf.len() > pos + 4 + len {
                        return Err("xhr_send: unexpected bytes after the response".into());
                    }
                    return Ok(());
                }
            }
            let n = sender.read(&mut chunk).await?;
            if n == 0 {
                return Err("xhr_send: connection closed".into());
            }
            self.send_buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Appends the messages of the next `a[...]` frame to `out` (ranges of
    /// [`XhrConn::data`]); heartbeats are skipped, a close frame is an error.
    pub async fn recv(&mut self, out: &mut Vec<Range<usize>>) -> Result<(), Error> {
        loop {
            let line = self.line().await?;
            match self.body[line.clone()].first() {
                Some(b'h') => continue,
                Some(b'a') => return crate::conn::parse_array(&self.body, line, out),
                _ => {
                    let text = String::from_utf8_lossy(&self.body[line]).into_owned();
                    return Err(format!("xhr_streaming: unexpected frame {text:?}").into());
                }
            }
        }
    }

    /// Whether another complete line is already buffered.
    pub fn has_buffered(&self) -> bool {
        self.body[self.body_start..].contains(&b'\n')
    }

    pub fn data(&self, r: Range<usize>) -> &[u8] {
        &self.body[r]
    }

    /// The next body line (without `\n`) as a range of `body`.
    async fn line(&mut self) -> Result<Range<usize>, Error> {
        loop {
            if let Some(pos) = self.body[self.body_start..]
                .iter()
                .position(|&b| b == b'\n')
            {
                let r = self.body_start..self.body_start + pos;
                self.body_start += pos + 1;
                return Ok(r);
            }
            // Drop consumed lines before adding more, so the body stays small.
            if self.body_start > 0 {
                self.body.drain(..self.body_start);
                self.body_start = 0;
            }
            self.dechunk()?;
            if self.body[self.body_start..].contains(&b'\n') {
                continue;
            }
            if !self.read_raw().await? {
                return Err("xhr_streaming: response ended".into());
            }
        }
    }

    /// Moves what is buffered in `raw` into `body`, removing chunk framing.
    fn dechunk(&mut self) -> Result<(), Error> {
        loop {
            let avail = &self.raw[self.raw_start..self.raw_end];
            if avail.is_empty() {
                return Ok(());
            }
            match self.framing {
                Body::UntilClose => {
                    self.body.extend_from_slice(avail);
                    self.raw_start = self.raw_end;
                }
                Body::Chunked(None) => {
                    // "\r\n" ending the previous chunk, then "<hex>\r\n".
                    let skip = if avail.starts_with(b"\r\n") { 2 } else { 0 };
                    let Some(pos) = find(&avail[skip..], b"\r\n") else {
                        return Ok(());
                    };
                    let line = std::str::from_utf8(&avail[skip..skip + pos])
                        .map_err(|_| "bad chunk size")?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(hex, 16)
                        .map_err(|_| format!("bad chunk size {line:?}"))?;
                    if size == 0 {
                        return Err("xhr_streaming: response ended (last chunk)".into());
                    }
                    self.raw_start += skip + pos + 2;
                    self.framing = Body::Chunked(Some(size));
                }
                Body::Chunked(Some(left)) => {
                    let n = left.min(avail.len());
                    self.body.extend_from_slice(&avail[..n]);
                    self.raw_start += n;
                    self.framing = Body::Chunked(if n == left { None } else { Some(left - n) });
                }
            }
        }
    }

    /// Reads more raw bytes; false at EOF.
    async fn read_raw(&mut self) -> Result<bool, Error> {
        if self.raw_start == self.raw_end {
            self.raw_start = 0;
            self.raw_end = 0;
        } else if self.raw_end == self.raw.len() {
            self.raw.copy_within(self.raw_start..self.raw_end, 0);
            self.raw_end -= self.raw_start;
            self.raw_start = 0;
        }
        let n = self.stream.read(&mut self.raw[self.raw_end..]).await?;
        self.raw_end += n;
        Ok(n > 0)
    }
}
