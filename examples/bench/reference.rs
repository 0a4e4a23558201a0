//! The yardstick: a bare WebSocket echo server with no zmq hop, run as a
//! subprocess of the bench (`bench --reference-server PORT`) so that it is
//! pinned, measured (RSS) and killed exactly like the proxy.
//!
//! tokio-tungstenite 0.24 on a current-thread runtime, like the one-worker
//! proxy. Its read buffer is tungstenite's fixed 4 KiB chunk
//! (`READ_BUFFER_CHUNK_SIZE`; 0.24 has no `read_buffer_size` knob); the write
//! buffer is a `Vec` that grows only as far as what is queued. Replies to
//! messages that arrived together are flushed together, which is what any
//! reasonable echo server does and what the proxy is allowed to do too.

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub fn run(port: u16) -> ! {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result: std::io::Result<()> = rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            // Same as actix: Nagle off, so small echoes are not delayed.
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream));
        }
    });
    eprintln!("reference server: {result:?}");
    std::process::exit(1);
}

async fn serve(stream: TcpStream) {
    let config = WebSocketConfig::default();
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if !echo(&mut ws, msg).await {
            return;
        }
        // Queue the replies of everything already read, then flush once.
        loop {
            match ws.next().now_or_never() {
                Some(Some(Ok(msg))) => {
                    if !echo(&mut ws, msg).await {
                        return;
                    }
                }
                Some(_) => return,
                None => break,
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

/// Queues the reply to one message; false when the connection is done.
async fn echo(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>, msg: Message) -> bool {
    match msg {
        Message::Text(_) | Message::Binary(_) => ws.feed(msg).await.is_ok(),
        // Pings are answered and closes completed by tungstenite itself, on
        // the next read, which then ends the stream.
        _ => true,
    }
}
