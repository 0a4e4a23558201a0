//! A websocket client written by hand over a plain TCP stream, for what
//! tungstenite does by itself and a test must control: it never answers a
//! ping, and it can send a close frame without reading the server's first
//! (to cross the two), or bytes that break the protocol.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawWs {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Connects and completes the RFC 6455 handshake.
    pub async fn connect(port: u16, path: &str) -> RawWs {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut ws = RawWs {
            tcp,
            buf: Vec::new(),
        };
        while !ws.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(ws.fill().await, "connection closed during the handshake");
        }
        let end = ws.buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&ws.buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        ws.buf.drain(..end);
        ws
    }

    /// Reads more; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(super::IO_LIMIT, self.tcp.read(&mut chunk));
        let n = read.await.expect("no data").unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next frame from the server (unmasked, short): opcode and payload.
    pub async fn frame(&mut self) -> (u8, Vec<u8>) {
        self.frame_or_end().await.expect("connection closed")
    }

    /// The next frame, or `None` once the server has closed the connection.
    pub async fn frame_or_end(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                let len = usize::from(self.buf[1] & 0x7f);
                assert!(len < 126, "long frames not expected");
                if self.buf.len() >= 2 + len {
                    let opcode = self.buf[0] & 0x0f;
                    let payload = self.buf[2..2 + len].to_vec();
                    self.buf.drain(..2 + len);
                    return Some((opcode, payload));
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Sends one masked frame, as a client must (up to 64 KiB).
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![0x80 | opcode];
        match u16::try_from(payload.len()).expect("a frame of at most 64 KiB") {
            n @ 0..126 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&out).await.unwrap();
    }

    /// Sends raw bytes (a frame header that lies, say).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tcp.write_all(bytes).await
    }
}
