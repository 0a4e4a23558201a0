//! A Mongrel2 handler in Rust, on the crate's Mongrel2 codecs: it answers
//! HTTP requests with what they sent (method, path, body) and echoes every
//! websocket message, as a handler behind Mongrel2 itself would. Run it
//! beside a proxy whose config has a `[[mongrel2]]` route with these specs:
//!
//! ```text
//! cargo run --release --example m2_echo -- tcp://127.0.0.1:9997 tcp://127.0.0.1:9996
//! ```
//!
//! The first endpoint is the route's `send_spec` (the handler's PULL
//! connects to it), the second its `recv_spec` (the handler's PUB).

use clap::Parser;
use sockjsproxy::mongrel2::{frames, reply, request};

#[derive(Parser)]
#[command(about = "An echo handler for Mongrel2 routes")]
struct Args {
    /// The route's send_spec: requests come from here.
    send_spec: String,
    /// The route's recv_spec: replies go here.
    recv_spec: String,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let ctx = zmq::Context::new();
    let connect = |kind, endpoint: &str| {
        let socket = ctx.socket(kind).expect("zmq socket");
        socket.connect(endpoint).unwrap_or_else(|e| {
            eprintln!("m2_echo: cannot connect to {endpoint}: {e}");
            std::process::exit(2)
        });
        socket
    };
    let requests = connect(zmq::PULL, &args.send_spec);
    let replies = connect(zmq::PUB, &args.recv_spec);
    log::info!(
        "m2_echo: requests from {}, replies to {}",
        args.send_spec,
        args.recv_spec
    );
    loop {
        let Ok(msg) = requests.recv_bytes(0) else {
            continue;
        };
        let req = match request::decode(&msg) {
            Ok(req) => req,
            Err(e) => {
                log::warn!("m2_echo: {e}");
                continue;
            }
        };
        let Ok(id) = req.conn_id.parse::<u64>() else {
            continue;
        };
        for body in answer(&req) {
            let _ = replies.send(reply::encode(&req.sender, &[id], &body), 0);
        }
    }
}

/// The reply bodies for one request.
fn answer(req: &request::Received) -> Vec<Vec<u8>> {
    if req.is_disconnect() {
        log::info!("m2_echo: connection {} is gone", req.conn_id);
        return Vec::new();
    }
    match req.header("METHOD") {
        Some("WEBSOCKET_HANDSHAKE") => {
            let accept = String::from_utf8_lossy(&req.body);
            vec![
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                )
                .into_bytes(),
            ]
        }
        Some("WEBSOCKET") => {
            let flags = req
                .header("FLAGS")
                .and_then(|f| u8::from_str_radix(f.trim_start_matches("0x"), 16).ok())
                .unwrap_or(0);
            match flags & 0x0F {
                // A close: answered, then the connection ends.
                0x8 => vec![frames::encode(0x8, &req.body), Vec::new()],
                0x9 => vec![frames::encode(0xA, &req.body)],
                0xA => Vec::new(),
                opcode => vec![frames::encode(opcode, &req.body)],
            }
        }
        method => {
            let mut body = format!(
                "{} {}\n",
                method.unwrap_or("?"),
                req.header("URI").unwrap_or(&req.path)
            )
            .into_bytes();
            body.extend_from_slice(&req.body);
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(&body);
            vec![out]
        }
    }
}
