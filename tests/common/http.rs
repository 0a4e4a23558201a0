//! A small raw HTTP/1.1 client over TCP, so that tests see exactly what the
//! proxy sends: status, headers, and streaming bodies chunk by chunk as they
//! arrive. Also decoders for the SockJS frame wrappings of each HTTP transport.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::IO_LIMIT;

/// How the body of the current response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Chunked,
    Length(usize),
    UntilEof,
    Done,
}

/// One HTTP/1.1 connection; requests on it are sent and read one at a time.
pub struct Http {
    conn: BufReader<TcpStream>,
    port: u16,
    framing: Framing,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

/// A complete response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("response body is not UTF-8")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

async fn bounded_io<T>(what: &str, f: impl Future<Output = std::io::Result<T>>) -> T {
    match timeout(IO_LIMIT, f).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: no answer in {IO_LIMIT:?}"),
    }
}

impl Http {
    pub async fn connect(port: u16) -> Http {
        let stream = bounded_io("connect", TcpStream::connect(("127.0.0.1", port))).await;
        stream.set_nodelay(true).unwrap();
        Http {
            conn: BufReader::new(stream),
            port,
            framing: Framing::Done,
            status: 0,
            headers: Vec::new(),
        }
    }

    /// Sends a request and reads the response head; the body is read with
    /// [`Http::chunk`] or [`Http::body`].
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        assert_eq!(self.framing, Framing::Done, "previous body not read");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        bounded_io("send request", self.conn.get_mut().write_all(&bytes)).await;
        self.read_head(method).await;
    }

    async fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = bounded_io("read head", self.conn.read_line(&mut line)).await;
        assert!(n > 0, "connection closed in the response head");
        line.trim_end_matches(['\r', '\n']).to_string()
    }

    async fn read_head(&mut self, method: &str) {
        let status_line = self.read_line().await;
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        self.status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        self.headers.clear();
        loop {
            let line = self.read_line().await;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header line");
            self.headers
                .push((name.trim().to_string(), value.trim().to_string()));
        }
        let chunked = self
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length = self.header("content-length").map(|v| v.parse().unwrap());
        self.framing = if method == "HEAD" || self.status == 204 || self.status == 304 {
            Framing::Done
        } else if chunked {
            Framing::Chunked
        } else if let Some(0) = length {
            Framing::Done
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilEof
        };
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The next piece of the body as it was sent: one HTTP chunk of a chunked
    /// body (or what one read gives otherwise); `None` at the end of the body.
    pub async fn chunk(&mut self) -> Option<Vec<u8>> {
        match self.framing {
            Framing::Done => None,
            Framing::Length(n) => {
                let mut body = vec![0; n];
                bounded_io("read body", self.conn.read_exact(&mut body)).await;
                self.framing = Framing::Done;
                Some(body)
            }
            Framing::UntilEof => {
                let mut buf = vec![0; 64 * 1024];
                let n = bounded_io("read body", self.conn.read(&mut buf)).await;
                if n == 0 {
                    self.framing = Framing::Done;
                    return None;
                }
                buf.truncate(n);
                Some(buf)
            }
            Framing::Chunked => {
                let size_line = self.read_line().await;
                let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
                if size == 0 {
                    // Trailers, then the blank line that ends the body.
                    while !self.read_line().await.is_empty() {}
                    self.framing = Framing::Done;
                    return None;
                }
                let mut chunk = vec![0; size + 2];
                bounded_io("read chunk", self.conn.read_exact(&mut chunk)).await;
                assert!(chunk.ends_with(b"\r\n"), "chunk not followed by CRLF");
                chunk.truncate(size);
                Some(chunk)
            }
        }
    }

    /// The rest of the body.
    pub async fn body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await {
            body.extend_from_slice(&chunk);
        }
        body
    }

    /// Whether the response body ends (the server closed it) within `wait`.
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        timeout(wait, async { while self.chunk().await.is_some() {} })
            .await
            .is_ok()
    }
}

/// One request on a new connection, its whole response.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut http = Http::connect(port).await;
    http.request(method, path, headers, body).await;
    let body = http.body().await;
    Response {
        status: http.status,
        headers: http.headers,
        body,
    }
}

pub async fn post(port: u16, path: &str, body: &[u8]) -> Response {
    request(port, "POST", path, &[], body).await
}

pub async fn get(port: u16, path: &str) -> Response {
    request(port, "GET", path, &[], b"").await
}

/// How a streaming HTTP transport wraps each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `frame\n` (xhr, xhr_streaming).
    Newline,
    /// `data: frame\r\n\r\n`.
    EventSource,
    /// `<script>\np("frame");\n</script>\r\n`.
    HtmlFile,
}

/// Reads the frames of a streaming response, whatever its chunking.
pub struct Frames {
    pub http: Http,
    wire: Wire,
    buf: Vec<u8>,
}

impl Frames {
    /// Opens a streaming receiver: the request must be answered with 200.
    pub async fn open(port: u16, method: &str, path: &str, wire: Wire) -> Frames {
        let mut http = Http::connect(port).await;
        http.request(method, path, &[], b"").await;
        assert_eq!(http.status, 200, "{method} {path}");
        Frames {
            http,
            wire,
            buf: Vec::new(),
        }
    }

    async fn fill(&mut self) {
        match self.http.chunk().await {
            Some(chunk) => self.buf.extend_from_slice(&chunk),
            None => panic!(
                "response ended; unread: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// The first `n` bytes of the body: the transport's prelude.
    pub async fn prelude(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            self.fill().await;
        }
        self.buf.drain(..n).collect()
    }

    /// The body up to and including the first `delimiter`: a prelude whose
    /// length is not fixed.
    pub async fn until(&mut self, delimiter: &[u8]) -> Vec<u8> {
        loop {
            if let Some(i) = self
                .buf
                .windows(delimiter.len())
                .position(|w| w == delimiter)
            {
                return self.buf.drain(..i + delimiter.len()).collect();
            }
            self.fill().await;
        }
    }

    /// The next frame, or `None` if the response ends first.
    pub async fn next_or_end(&mut self) -> Option<String> {
        loop {
            if let Some(frame) = self.take_frame() {
                return Some(frame);
            }
            match self.http.chunk().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => {
                    assert!(self.buf.is_empty(), "response ended inside a frame");
                    return None;
                }
            }
        }
    }

    /// The next frame, unwrapped (`o`, `h`, `a[...]`, `c[...]`).
    pub async fn next(&mut self) -> String {
        loop {
            if let Some(frame) = self.take_frame() {
                return frame;
            }
            self.fill().await;
        }
    }

    /// The next frame that is not a heartbeat.
    pub async fn next_skipping_heartbeats(&mut self) -> String {
        loop {
            let frame = self.next().await;
            if frame != "h" {
                return frame;
            }
        }
    }

    /// A whole frame from the buffer, if there is one.
    fn take_frame(&mut self) -> Option<String> {
        let end: &[u8] = match self.wire {
            Wire::Newline => b"\n",
            Wire::EventSource => b"\r\n\r\n",
            Wire::HtmlFile => b"</script>\r\n",
        };
        let i = self.buf.windows(end.len()).position(|w| w == end)?;
        let item: Vec<u8> = self.buf.drain(..i + end.len()).collect();
        let item = String::from_utf8(item[..i].to_vec()).expect("frame is not UTF-8");
        Some(match self.wire {
            Wire::Newline => item,
            Wire::EventSource => item
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event without data: {item:?}"))
                .to_string(),
            Wire::HtmlFile => {
                let quoted = item
                    .strip_prefix("<script>\np(")
                    .and_then(|s| s.strip_suffix(");\n"))
                    .unwrap_or_else(|| panic!("bad htmlfile script {item:?}"));
                unquote(quoted)
            }
        })
    }

    /// Reads frames until `count` messages came, skipping heartbeats.
    pub async fn messages(&mut self, count: usize) -> Vec<String> {
        let mut all = Vec::new();
        while all.len() < count {
            let frame = self.next().await;
            if frame != "h" {
                all.extend(super::messages(&frame));
            }
        }
        all
    }
}

/// A JSON string literal's value; asserts that no character the protocol
/// escapes (U+2028) travels raw.
pub fn unquote(quoted: &str) -> String {
    assert!(!quoted.contains('\u{2028}'), "raw U+2028 in {quoted:?}");
    serde_json::from_str(quoted).unwrap_or_else(|e| panic!("bad JSON string {quoted:?}: {e}"))
}

/// The frame of a jsonp-polling response `/**/callback("frame");\r\n`.
pub fn jsonp_frame(body: &str, callback: &str) -> String {
    let quoted = body
        .strip_prefix(&format!("/**/{callback}("))
        .and_then(|s| s.strip_suffix(");\r\n"))
        .unwrap_or_else(|| panic!("bad jsonp body {body:?}"));
    unquote(quoted)
}

/// Percent-encodes a form value (`application/x-www-form-urlencoded`).
pub fn form_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
