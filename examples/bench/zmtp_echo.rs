//! The echo backend of the CURVE measurement (`--curve`), run as a child of
//! the bench (`bench --zmtp-echo PUSH,PULL[,SECRET,SERVER]`) and pinned to
//! core 1 like the zmq echo backend.
//!
//! Why not `examples/echo.rs`: the `zmq` crate's bundled libzmq has no CURVE,
//! and a pyzmq backend (which has) would be the bottleneck at the proxy's
//! rates. So this is a ZMTP 3.1 client on the crate's own codecs
//! (`backend::zmtp::wire`, `decoder`, `link`) and CURVE client
//! (`curve::client`), one current-thread runtime, two connections (a PULL to
//! the proxy's PUSH, a PUSH to its PULL), and the same code with and
//! without CURVE, so that the two runs differ by CURVE only. It echoes each
//! `message` event as it came (it is already the command that echoes it),
//! everything read at once answered in one write, as `echo.rs` does.

use std::path::Path;

use bytes::BytesMut;
use crypto_box::{PublicKey, SecretKey};
use sockjsproxy::backend::zmtp::curve::cert;
use sockjsproxy::backend::zmtp::curve::client::Client;
use sockjsproxy::backend::zmtp::decoder::{Decoder, Item, Limits};
use sockjsproxy::backend::zmtp::link::Link;
use sockjsproxy::backend::zmtp::wire::{self, Command, GREETING_LEN, Mechanism, SocketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// What the proxy's PUSH sends: 3-part events, commands of up to 4 KiB.
const EVENT_LIMITS: Limits = Limits {
    frames: 3,
    bytes: 64 << 20,
    command: 4096,
};

/// The backend's keys: its own secret, the proxy's public key.
struct Keys {
    secret: SecretKey,
    server: PublicKey,
}

/// `PUSH,PULL[,SECRET,SERVER]`: the proxy's PUSH and PULL ports, and for
/// CURVE this backend's secret certificate and the proxy's public one.
pub fn spec(push: u16, pull: u16, curve: Option<(&Path, &Path)>) -> String {
    match curve {
        None => format!("{push},{pull}"),
        Some((secret, server)) => {
            format!("{push},{pull},{},{}", secret.display(), server.display())
        }
    }
}

pub fn run(spec: &str) -> ! {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(serve(spec));
    eprintln!("zmtp echo: {result:?}");
    std::process::exit(i32::from(result.is_err()));
}

async fn serve(spec: &str) -> Result<(), Error> {
    let fields: Vec<&str> = spec.split(',').collect();
    let (push, pull, keys) = match fields[..] {
        [push, pull] => (push.parse::<u16>()?, pull.parse::<u16>()?, None),
        [push, pull, secret, server] => (push.parse()?, pull.parse()?, Some(keys(secret, server)?)),
        _ => return Err(format!("bad --zmtp-echo {spec:?}").into()),
    };
    let (mut events, mut raw, mut event_link) =
        connect(push, SocketType::Pull, keys.as_ref(), EVENT_LIMITS).await?;
    let (mut commands, _, mut command_link) = connect(
        pull,
        SocketType::Push,
        keys.as_ref(),
        Limits::commands_only(4096),
    )
    .await?;
    let mut decoder = Decoder::new(EVENT_LIMITS);
    loop {
        let mut replies = BytesMut::new();
        while let Some(item) = event_link.decode(&mut decoder, &mut raw)? {
            if let Item::Message(parts) = item
                && parts.len() == 3
                && parts[0] == b"message"[..]
            {
                wire::encode_message(&[&parts[0], &parts[1], &parts[2]], &mut replies);
            }
        }
        if !replies.is_empty() {
            commands.write_all(&command_link.seal(replies)?).await?;
        }
        if events.read_buf(&mut raw).await? == 0 {
            return Ok(());
        }
    }
}

fn keys(secret: &str, server: &str) -> Result<Keys, Error> {
    let read = |path: &str| -> Result<cert::Certificate, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        Ok(cert::parse(&text).map_err(|e| format!("{path}: {e}"))?)
    };
    Ok(Keys {
        secret: read(secret)?
            .secret
            .ok_or_else(|| format!("{secret}: no secret-key"))?,
        server: read(server)?.public,
    })
}

/// A connection to the proxy as `ours`, past its handshake: the stream,
/// the bytes that came after the handshake, and the link.
async fn connect(
    port: u16,
    ours: SocketType,
    keys: Option<&Keys>,
    limits: Limits,
) -> Result<(TcpStream, BytesMut, Link), Error> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let mechanism = if keys.is_some() {
        Mechanism::Curve
    } else {
        Mechanism::Null
    };
    let mut greeting = wire::greeting(mechanism);
    // We are the client (as-server 0); the proxy is CURVE's server.
    greeting[32] = 0;
    stream.write_all(&greeting).await?;
    let mut buf = BytesMut::with_capacity(64 << 10);
    while buf.len() < GREETING_LEN {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(format!("port {port}: closed in the greeting").into());
        }
    }
    wire::check_greeting(&buf.split_to(GREETING_LEN), mechanism)?;
    let mut commands = Decoder::new(Limits::commands_only(4096));
    let Some(keys) = keys else {
        let mut ready = BytesMut::new();
        wire::encode_ready(ours, &mut ready);
        stream.write_all(&ready).await?;
        let body = command(&mut stream, &mut commands, &mut buf).await?;
        return match wire::parse_command(&body)? {
            Command::Ready { .. } => Ok((stream, buf, Link::Null)),
            other => Err(format!("port {port}: {other:?} where READY was due").into()),
        };
    };
    let mut client = Client::new(keys.secret.clone(), keys.server.clone());
    let mut out = BytesMut::new();
    wire::encode_command("HELLO", &client.hello()[6..], &mut out);
    stream.write_all(&out).await?;
    client.welcome(&command(&mut stream, &mut commands, &mut buf).await?)?;
    out.clear();
    wire::encode_command("INITIATE", &client.initiate(ours)?[9..], &mut out);
    stream.write_all(&out).await?;
    let (session, _) = client.ready(&command(&mut stream, &mut commands, &mut buf).await?)?;
    Ok((stream, buf, Link::curve(session, limits)))
}

/// The next command the proxy sends during the handshake, its body.
async fn command(
    stream: &mut TcpStream,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
) -> Result<Vec<u8>, Error> {
    loop {
        match decoder.decode(buf)? {
            Some(Item::Command(body)) => return Ok(body.to_vec()),
            Some(Item::Message(_)) => return Err("a message during the handshake".into()),
            None => {
                if stream.read_buf(buf).await? == 0 {
                    return Err("closed during the handshake".into());
                }
            }
        }
    }
}
