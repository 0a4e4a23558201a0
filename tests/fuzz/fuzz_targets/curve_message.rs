//! CURVE MESSAGE boxes on the server's side, as the proxy reads them: a
//! real handshake with the crate's `curve::client`, then the input as what
//! the client sends, through the engine's `Link` (each MESSAGE opened by
//! `curve::Session`, what it held decoded under the command socket's
//! limits). The first byte picks the shape:
//!
//! * even: the input is the raw stream after the handshake (forged boxes);
//! * odd: the input is a script for the client: messages and commands it
//!   seals properly (which must come out as they went in, limits allowing),
//!   an earlier box replayed, a box with one byte flipped, or raw bytes.
//!   A replayed or changed box must end the connection, and nothing of it
//!   may come out.

#![no_main]

use std::sync::Arc;

use bytes::BytesMut;
use crypto_box::SecretKey;
use libfuzzer_sys::fuzz_target;
use sockjsproxy::backend::zmtp::curve::client::Client;
use sockjsproxy::backend::zmtp::curve::{Handshake, Keys, Session};
use sockjsproxy::backend::zmtp::decoder::{Decoder, Item, Limits};
use sockjsproxy::backend::zmtp::link::Link;
use sockjsproxy::backend::zmtp::wire::{self, SocketType};

/// The proxy's command (PULL) socket: 8 frames, 64 MiB, 4 KiB commands.
const LIMITS: Limits = Limits {
    frames: 8,
    bytes: 64 << 20,
    command: 4096,
};

/// A finished handshake: the server's link and the client's session.
fn connected() -> (Link, Session) {
    let keys = Arc::new(Keys::new(SecretKey::from([1; 32]), None));
    let mut server = Handshake::new(keys.clone(), SocketType::Pull);
    let mut client = Client::new(SecretKey::from([2; 32]), keys.public.clone());
    let mut out = BytesMut::new();
    let mut commands = Decoder::new(Limits::commands_only(4096));
    assert!(matches!(
        server.on_command(&client.hello(), &mut out),
        Ok(None)
    ));
    let Ok(Some(Item::Command(welcome))) = commands.decode(&mut out) else {
        panic!("no WELCOME");
    };
    client.welcome(&welcome).unwrap();
    let done = server
        .on_command(&client.initiate(SocketType::Push).unwrap(), &mut out)
        .unwrap()
        .expect("done");
    let Ok(Some(Item::Command(ready))) = commands.decode(&mut out) else {
        panic!("no READY");
    };
    let (session, _) = client.ready(&ready).unwrap();
    (Link::curve(done.session, LIMITS), session)
}

/// Everything the link makes of `raw` until it needs more bytes; the
/// error that ends the connection, if one does.
fn drain(
    link: &mut Link,
    decoder: &mut Decoder,
    raw: &mut BytesMut,
    items: &mut Vec<Item>,
) -> Result<(), ()> {
    loop {
        match link.decode(decoder, raw) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return Ok(()),
            Err(_) => return Err(()),
        }
    }
}

fn raw_stream(stream: &[u8]) {
    let (mut link, _) = connected();
    let mut decoder = Decoder::new(LIMITS);
    let mut raw = BytesMut::from(stream);
    let mut items = Vec::new();
    let _ = drain(&mut link, &mut decoder, &mut raw, &mut items);
    assert!(items.is_empty(), "a forged box came through: {items:?}");
}

fn script(mut input: &[u8]) {
    let (mut link, mut client) = connected();
    let mut decoder = Decoder::new(LIMITS);
    let mut raw = BytesMut::new();
    let mut last_box = BytesMut::new();
    // What must come out, while the client has sent only proper boxes.
    let mut expected: Vec<Item> = Vec::new();
    let mut honest = true;
    let mut items = Vec::new();
    while let [op, len, rest @ ..] = input {
        let len = usize::from(*len).min(rest.len());
        let (data, tail) = rest.split_at(len);
        input = tail;
        let mut plain = BytesMut::new();
        match op % 6 {
            // A message of up to 10 parts (its first byte says how many).
            0 | 1 => {
                let n = data.first().map_or(1, |b| usize::from(b % 10) + 1);
                let parts: Vec<&[u8]> = (0..n)
                    .map(|i| &data[data.len() * i / n..data.len() * (i + 1) / n])
                    .collect();
                wire::encode_message(&parts, &mut plain);
                if n <= LIMITS.frames {
                    expected.push(Item::Message(
                        parts
                            .iter()
                            .map(|p| bytes::Bytes::copy_from_slice(p))
                            .collect(),
                    ));
                } else {
                    honest = false;
                }
            }
            // A command: PING, or any other name.
            2 => {
                let name = if data.first().is_some_and(|b| b % 2 == 0) {
                    "PING"
                } else {
                    "X"
                };
                wire::encode_command(name, data, &mut plain);
                let mut body = vec![name.len() as u8];
                body.extend_from_slice(name.as_bytes());
                body.extend_from_slice(data);
                expected.push(Item::Command(body.into()));
            }
            // The last box again.
            3 => {
                raw.extend_from_slice(&last_box);
                honest &= last_box.is_empty();
                continue;
            }
            // A box of one frame with a byte flipped.
            4 => {
                wire::encode_message(&[data], &mut plain);
                let mut boxed = BytesMut::new();
                client.seal(&plain, &mut boxed).unwrap();
                let at = data.first().map_or(0, |&b| usize::from(b)) % boxed.len();
                boxed[at] ^= data.get(1).copied().unwrap_or(1) | 1;
                raw.extend_from_slice(&boxed);
                honest = false;
                continue;
            }
            // Raw bytes.
            _ => {
                raw.extend_from_slice(data);
                honest &= data.is_empty();
                continue;
            }
        }
        last_box.clear();
        client.seal(&plain, &mut last_box).unwrap();
        raw.extend_from_slice(&last_box);
        if drain(&mut link, &mut decoder, &mut raw, &mut items).is_err() {
            assert!(!honest, "proper boxes refused");
            return;
        }
        if honest {
            assert_eq!(items, expected);
        }
    }
    let ended = drain(&mut link, &mut decoder, &mut raw, &mut items).is_err();
    if honest {
        assert!(!ended, "proper boxes refused");
        assert_eq!(items, expected);
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => script(rest),
        Some((_, rest)) => raw_stream(rest),
        None => {}
    }
});
