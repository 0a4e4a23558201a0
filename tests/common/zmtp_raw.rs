//! Raw ZMTP peers for the native engine's tests: a TCP stream that speaks the
//! greeting and READY byte for byte and then sends whatever a test needs
//! (frames no libzmq socket would send, or messages it would refuse to),
//! and a reader that takes what the proxy sends until it closes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::IO_LIMIT;

/// Everything the proxy sends on `stream` until it closes the connection
/// (a reset counts as closed); panics if it is still open after `limit`.
pub async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| panic!("the proxy kept the connection open for {limit:?}"));
    got
}

/// A ZMTP 3.1 greeting (NULL mechanism) and READY naming `socket_type`, byte
/// for byte as RFC 37 has them: a peer type libzmq itself would refuse to
/// pair, so that only the proxy's own check stands between it and events.
pub fn zmtp_hello(socket_type: &str) -> Vec<u8> {
    let mut hello = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 1];
    hello.extend_from_slice(b"NULL");
    hello.resize(64, 0);
    let mut ready = vec![5];
    ready.extend_from_slice(b"READY");
    ready.push(11);
    ready.extend_from_slice(b"Socket-Type");
    ready.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    ready.extend_from_slice(socket_type.as_bytes());
    hello.extend_from_slice(&[0x04, ready.len() as u8]);
    hello.extend_from_slice(&ready);
    hello
}

/// Length of the proxy's greeting and READY (its socket type has 4 letters).
pub const PROXY_HELLO_LEN: usize = 64 + 2 + 26;

/// A TCP connection to the proxy's socket at `endpoint` (`tcp://...`) that
/// has done the handshake as a `socket_type` peer and read the proxy's.
pub async fn handshaken(endpoint: &str, socket_type: &str) -> TcpStream {
    let mut stream = TcpStream::connect(endpoint.trim_start_matches("tcp://"))
        .await
        .expect("connect to the proxy");
    stream.write_all(&zmtp_hello(socket_type)).await.unwrap();
    let mut hello = [0u8; PROXY_HELLO_LEN];
    tokio::time::timeout(IO_LIMIT, stream.read_exact(&mut hello))
        .await
        .expect("the proxy's greeting in time")
        .expect("the proxy's greeting and READY");
    stream
}

/// A frame header: flags (MORE `0x01`, LONG added when needed) and body size.
pub fn frame_header(more: bool, size: u64) -> Vec<u8> {
    let more = u8::from(more);
    if size > 255 {
        let mut header = vec![more | 0x02];
        header.extend_from_slice(&size.to_be_bytes());
        header
    } else {
        vec![more, size as u8]
    }
}
