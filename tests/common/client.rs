//! A SockJS client for tests through a load balancer: websocket, xhr-streaming
//! and xhr-polling sessions whose every failure is a [`Lost`] value rather than
//! a panic, because the scale-out test kills a proxy under its clients and
//! counts who noticed.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Websocket,
    XhrStreaming,
    XhrPolling,
}

#[derive(Debug)]
pub struct Lost(pub String);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

pub enum Session {
    Ws(Box<Ws>),
    /// The streaming response, what was read of it (raw, then de-chunked) but
    /// not parsed yet, and the session's base path.
    Streaming(TcpStream, Vec<u8>, Vec<u8>, String),
    Polling(String),
}

/// Takes complete chunks of a chunked body from `raw` into `body`; false at
/// the last chunk.
fn dechunk(raw: &mut Vec<u8>, body: &mut Vec<u8>) -> bool {
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return true;
        };
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            return false;
        }
        if raw.len() < eol + 2 + size + 2 {
            return true;
        }
        body.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw.drain(..eol + 2 + size + 2);
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`, so the
/// response ends with it): status, body.
pub async fn http1(port: u16, path: &str, body: &str) -> Result<(u16, String), Lost> {
    let lost = |e: std::io::Error| Lost(format!("{path}: {e}"));
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(lost)?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.map_err(lost)?;
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.map_err(lost)?;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut raw = out.get(split + 4..).unwrap_or_default().to_vec();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut body = Vec::new();
        dechunk(&mut raw, &mut body);
        String::from_utf8_lossy(&body).into_owned()
    } else {
        String::from_utf8_lossy(&raw).into_owned()
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Lost(format!("{path}: no status in {head:?}")))?;
    Ok((status, body.to_string()))
}

fn messages_of(frame: &str) -> Vec<String> {
    frame
        .strip_prefix('a')
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

impl Session {
    pub async fn open(port: u16, transport: Transport, id: &str) -> Result<Session, Lost> {
        let base = format!("/000/{id}");
        match transport {
            Transport::Websocket => {
                let url = format!("ws://127.0.0.1:{port}{base}/websocket");
                let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                    .await
                    .map_err(|e| Lost(format!("websocket: {e}")))?;
                let mut s = Session::Ws(Box::new(ws));
                match s.frame().await? {
                    f if f == "o" => Ok(s),
                    f => Err(Lost(format!("websocket opened with {f:?}"))),
                }
            }
            Transport::XhrStreaming => {
                let lost = |e: std::io::Error| Lost(format!("xhr_streaming: {e}"));
                let mut conn = TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map_err(lost)?;
                let req = format!(
                    "POST {base}/xhr_streaming HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
                );
                conn.write_all(req.as_bytes()).await.map_err(lost)?;
                let mut s = Session::Streaming(conn, Vec::new(), Vec::new(), base);
                match s.frame().await? {
                    f if f == "o" => Ok(s),
                    f => Err(Lost(format!("xhr_streaming opened with {f:?}"))),
                }
            }
            Transport::XhrPolling => match http1(port, &format!("{base}/xhr"), "").await? {
                (200, body) if body == "o\n" => Ok(Session::Polling(base)),
                other => Err(Lost(format!("xhr opened with {other:?}"))),
            },
        }
    }

    /// The next frame other than a heartbeat (streaming and websocket).
    pub async fn frame(&mut self) -> Result<String, Lost> {
        loop {
            let frame = match self {
                Session::Ws(ws) => match ws.next().await {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => return Err(Lost(format!("websocket: {other:?}"))),
                },
                Session::Streaming(conn, raw, buf, _) => loop {
                    // Skip the response head (the `h` prelude is skipped below).
                    let head = raw.starts_with(b"HTTP/");
                    if head && let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        raw.drain(..i + 4);
                        continue;
                    }
                    if !head && !dechunk(raw, buf) {
                        return Err(Lost("xhr_streaming: response ended".into()));
                    }
                    if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        break String::from_utf8_lossy(&line[..i]).into_owned();
                    }
                    let mut chunk = [0u8; 8192];
                    match conn.read(&mut chunk).await {
                        Ok(0) => return Err(Lost("xhr_streaming: connection closed".into())),
                        Ok(n) => raw.extend_from_slice(&chunk[..n]),
                        Err(e) => return Err(Lost(format!("xhr_streaming: {e}"))),
                    }
                },
                Session::Polling(_) => unreachable!("polling reads with requests"),
            };
            if frame.starts_with('c') {
                return Err(Lost(format!("closed: {frame}")));
            }
            if !frame.is_empty() && !frame.bytes().all(|b| b == b'h') {
                return Ok(frame);
            }
        }
    }

    /// Sends one message and waits for its echo.
    pub async fn echo(&mut self, port: u16, text: &str) -> Result<(), Lost> {
        let payload = serde_json::to_string(&[text]).unwrap();
        let got = match self {
            Session::Ws(ws) => {
                ws.send(Message::Text(payload))
                    .await
                    .map_err(|e| Lost(format!("websocket send: {e}")))?;
                messages_of(&self.frame().await?)
            }
            Session::Streaming(_, _, _, base) => {
                let send = format!("{base}/xhr_send");
                match http1(port, &send, &payload).await? {
                    (204, _) => messages_of(&self.frame().await?),
                    other => return Err(Lost(format!("xhr_send: {other:?}"))),
                }
            }
            Session::Polling(base) => {
                match http1(port, &format!("{base}/xhr_send"), &payload).await? {
                    (204, _) => {}
                    other => return Err(Lost(format!("xhr_send: {other:?}"))),
                }
                match http1(port, &format!("{base}/xhr"), "").await? {
                    (200, body) => messages_of(body.trim_end()),
                    other => return Err(Lost(format!("xhr: {other:?}"))),
                }
            }
        };
        if got == [text] {
            Ok(())
        } else {
            Err(Lost(format!("sent {text:?}, got {got:?}")))
        }
    }
}
