//! The server's CURVE handshake (`curve::Handshake`: HELLO, INITIATE and
//! its vouch, cookie and metadata) fed what a hostile client could send
//! after a valid greeting, split into commands by the decoder as the
//! handshake does. The first byte picks how far a real client (the crate's
//! `curve::client`) goes first:
//!
//! * 0: nothing; the input is the whole command stream;
//! * 1: a valid HELLO; the input is the rest of the stream;
//! * 2: a valid HELLO and INITIATE, the INITIATE changed as the input says
//!   (a byte flipped, cut short, bytes added): refused, or accepted only
//!   unchanged;
//! * 3: a valid handshake whose INITIATE metadata is the input: accepted,
//!   or refused as malformed metadata and nothing else.

#![no_main]

use std::collections::HashSet;
use std::sync::Arc;

use bytes::BytesMut;
use crypto_box::SecretKey;
use libfuzzer_sys::fuzz_target;
use sockjsproxy::backend::zmtp::curve::client::Client;
use sockjsproxy::backend::zmtp::curve::{CurveError, Handshake, Keys};
use sockjsproxy::backend::zmtp::decoder::{Decoder, Item, Limits};
use sockjsproxy::backend::zmtp::wire::{self, Command, SocketType};

/// The largest command the handshake takes (`handshake.rs`).
const MAX_HANDSHAKE_FRAME: u64 = 4096;

fn client_secret() -> SecretKey {
    SecretKey::from([2; 32])
}

/// The server's keys, with the client's key listed.
fn keys() -> Arc<Keys> {
    let clients = HashSet::from([*client_secret().public_key().as_bytes()]);
    Arc::new(Keys::new(SecretKey::from([1; 32]), Some(clients)))
}

/// The one command frame in `out`, its body.
fn command(out: &mut BytesMut) -> Vec<u8> {
    match Decoder::new(Limits::commands_only(MAX_HANDSHAKE_FRAME)).decode(out) {
        Ok(Some(Item::Command(body))) if out.is_empty() => body.to_vec(),
        other => panic!("the server did not answer with one command: {other:?}"),
    }
}

/// The handshake's loop without its I/O: commands out of `stream`, each
/// to the server, until it refuses one, is done, or the stream ends.
fn feed(server: &mut Handshake, stream: &[u8]) {
    let mut decoder = Decoder::new(Limits::commands_only(MAX_HANDSHAKE_FRAME));
    let mut buf = BytesMut::from(stream);
    while let Ok(Some(Item::Command(body))) = decoder.decode(&mut buf) {
        if let Ok(Command::Error(_)) = wire::parse_command(&body) {
            return;
        }
        let mut out = BytesMut::new();
        match server.on_command(&body, &mut out) {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => return,
        }
    }
}

/// A server and a client past HELLO and WELCOME.
fn welcomed(keys: &Arc<Keys>) -> (Handshake, Client) {
    let mut server = Handshake::new(keys.clone(), SocketType::Push);
    let mut client = Client::new(client_secret(), keys.public.clone());
    let mut out = BytesMut::new();
    let step = server.on_command(&client.hello(), &mut out);
    assert!(matches!(step, Ok(None)), "a valid HELLO: {step:?}");
    client
        .welcome(&command(&mut out))
        .expect("the client opens WELCOME");
    (server, client)
}

fn changed_initiate(keys: &Arc<Keys>, change: &[u8]) {
    let (mut server, client) = welcomed(keys);
    let valid = client.initiate(SocketType::Pull).unwrap();
    let mut initiate = valid.clone();
    if let [op, a, b, value, more @ ..] = change {
        let at = usize::from(u16::from_be_bytes([*a, *b])) % initiate.len();
        match op % 3 {
            0 => initiate[at] ^= value,
            1 => initiate.truncate(at),
            _ => initiate.extend_from_slice(more),
        }
    }
    let mut out = BytesMut::new();
    let step = server.on_command(&initiate, &mut out);
    if initiate == valid {
        let done = step.expect("a valid INITIATE").expect("done");
        assert_eq!(done.socket_type.as_deref(), Some(&b"PULL"[..]));
        client
            .ready(&command(&mut out))
            .expect("the client opens READY");
    } else {
        assert!(step.is_err(), "a changed INITIATE was taken");
        assert!(out.is_empty(), "a refused INITIATE was answered");
    }
}

fn metadata(keys: &Arc<Keys>, metadata: &[u8]) {
    let (mut server, client) = welcomed(keys);
    let initiate = client.initiate_with(metadata, &keys.public).unwrap();
    let mut out = BytesMut::new();
    match server.on_command(&initiate, &mut out) {
        Ok(Some(_)) => {
            client
                .ready(&command(&mut out))
                .expect("the client opens READY");
        }
        Err(CurveError::Malformed("INITIATE metadata")) => assert!(out.is_empty()),
        other => panic!("valid INITIATE boxes refused for their metadata: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = keys();
    match mode % 4 {
        0 => feed(&mut Handshake::new(keys, SocketType::Pull), rest),
        1 => feed(&mut welcomed(&keys).0, rest),
        2 => changed_initiate(&keys, rest),
        _ => metadata(&keys, rest),
    }
});
