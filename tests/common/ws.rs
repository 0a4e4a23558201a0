//! Websocket client helpers on tokio-tungstenite: connect, read the next text
//! message, read until the close frame, each bounded in time.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::IO_LIMIT;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a websocket to `path` on the proxy.
pub async fn connect(port: u16, path: &str) -> Ws {
    let url = format!("ws://127.0.0.1:{port}{path}");
    match timeout(IO_LIMIT, tokio_tungstenite::connect_async(url.as_str())).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => panic!("websocket {url}: {e}"),
        Err(_) => panic!("websocket {url}: no handshake in {IO_LIMIT:?}"),
    }
}

/// The handshake error for `path` (the proxy must refuse it).
pub async fn refused(port: u16, path: &str) -> tokio_tungstenite::tungstenite::Error {
    let url = format!("ws://127.0.0.1:{port}{path}");
    match timeout(IO_LIMIT, tokio_tungstenite::connect_async(url.as_str())).await {
        Ok(Ok(_)) => panic!("websocket {url} was accepted"),
        Ok(Err(e)) => e,
        Err(_) => panic!("websocket {url}: no handshake in {IO_LIMIT:?}"),
    }
}

/// The next message other than ping and pong.
pub async fn next(ws: &mut Ws) -> Message {
    loop {
        match timeout(IO_LIMIT, ws.next()).await {
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(message))) => return message,
            Ok(Some(Err(e))) => panic!("websocket read failed: {e}"),
            Ok(None) => panic!("websocket ended"),
            Err(_) => panic!("no websocket message in {IO_LIMIT:?}"),
        }
    }
}

/// The next message, which must be text.
pub async fn text(ws: &mut Ws) -> String {
    match next(ws).await {
        Message::Text(text) => text,
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The next message if one comes within `wait`.
pub async fn next_within(ws: &mut Ws, wait: Duration) -> Option<Message> {
    timeout(wait, next(ws)).await.ok()
}

/// Sends one text message.
pub async fn send(ws: &mut Ws, text: &str) {
    timeout(IO_LIMIT, ws.send(Message::Text(text.to_string())))
        .await
        .expect("websocket send timed out")
        .expect("websocket send failed");
}

/// Reads until the close frame and returns its code and reason; panics on any
/// other message.
pub async fn close_frame(ws: &mut Ws) -> (u16, String) {
    match next(ws).await {
        Message::Close(Some(CloseFrame { code, reason })) => (u16::from(code), reason.into_owned()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Reads SockJS frames until `count` messages came, skipping heartbeats.
pub async fn messages(ws: &mut Ws, count: usize) -> Vec<String> {
    let mut all = Vec::new();
    while all.len() < count {
        let frame = text(ws).await;
        if frame != "h" {
            all.extend(super::messages(&frame));
        }
    }
    all
}
