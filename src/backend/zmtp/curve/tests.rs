//! The server's handshake and MESSAGE boxes against the client of
//! [`super::client`], byte by byte: sizes and layouts of each command, and every
//! way a peer can fail: the wrong server key, an unknown client key, a
//! forged cookie or vouch, a tampered, replayed or reordered box.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use crypto_box::aead::OsRng;
use crypto_box::{PublicKey, SecretKey};

use super::client::Client;
use super::{CurveError, Done, Handshake, Keys};
use crate::backend::zmtp::decoder::{Decoder, Item, Limits};
use crate::backend::zmtp::wire::{self, SocketType};

/// A client for the server `keys`, with a long-term key of its own.
fn client_of(keys: &Keys) -> Client {
    Client::new(SecretKey::generate(&mut OsRng), keys.public.clone())
}

/// Reads WELCOME into `client`, checking its size first.
fn welcome(client: &mut Client, body: &[u8]) {
    assert_eq!(
        body.len(),
        168,
        "WELCOME is as long as HELLO's 200 less its padding"
    );
    client.welcome(body).expect("WELCOME opens");
}

fn server_keys(clients: Option<&[&PublicKey]>) -> Arc<Keys> {
    let clients = clients.map(|c| c.iter().map(|k| *k.as_bytes()).collect::<HashSet<_>>());
    Arc::new(Keys::new(SecretKey::generate(&mut OsRng), clients))
}

/// The one command frame in `out`, its body.
fn command(out: &mut BytesMut) -> Bytes {
    match Decoder::new(Limits::commands_only(4096)).decode(out) {
        Ok(Some(Item::Command(body))) if out.is_empty() => body,
        other => panic!("not one command: {other:?}"),
    }
}

/// A full handshake; the server's result and the client.
fn handshake(
    keys: &Arc<Keys>,
    client: &mut Client,
) -> (Result<Option<Done>, CurveError>, BytesMut) {
    let mut server = Handshake::new(keys.clone(), SocketType::Push);
    let mut out = BytesMut::new();
    assert!(
        server
            .on_command(&client.hello(), &mut out)
            .unwrap()
            .is_none()
    );
    welcome(client, &command(&mut out));
    let done = server.on_command(&client.initiate(SocketType::Pull).unwrap(), &mut out);
    (done, out)
}

#[test]
fn a_client_with_our_key_and_a_listed_key_completes_the_handshake_and_boxes_both_ways() {
    let long = SecretKey::generate(&mut OsRng);
    let keys = server_keys(Some(&[&long.public_key()]));
    let mut client = Client::new(long, keys.public.clone());
    let (done, mut out) = handshake(&keys, &mut client);
    let done = done.unwrap().expect("done after INITIATE");
    assert_eq!(done.socket_type.as_deref(), Some(&b"PULL"[..]));
    let ready = command(&mut out);
    // "\x05READY", counter, tag, and Socket-Type PUSH (20 bytes).
    assert_eq!(ready.len(), 6 + 8 + 16 + 20);
    let (mut ours, metadata) = client.ready(&ready).unwrap();
    assert_eq!(metadata, wire::socket_type_property(SocketType::Push));
    let mut server = done.session;

    // Server to client: a 3-part message and a PONG, each part its own box.
    let mut plain = BytesMut::new();
    wire::encode_message(&[b"message", b"17", &[b'x'; 300]], &mut plain);
    wire::encode_command("PONG", b"ctx", &mut plain);
    let mut boxed = BytesMut::new();
    server.seal(&plain, &mut boxed).unwrap();
    // Flags 0 and a short size for the first part: "\x07MESSAGE", the
    // counter 2 (READY had 1), tag, flags byte, 7 bytes.
    assert_eq!(&boxed[..2], &[0, 8 + 8 + 16 + 1 + 7]);
    assert_eq!(&boxed[2..10], b"\x07MESSAGE");
    assert_eq!(&boxed[10..18], &2u64.to_be_bytes());
    let mut outer = Decoder::new(Limits {
        frames: 1,
        bytes: 1000,
        command: 100,
    });
    let mut back = BytesMut::new();
    let mut raw = boxed.clone();
    while let Some(Item::Message(parts)) = outer.decode(&mut raw).unwrap() {
        assert_eq!(parts.len(), 1, "a MESSAGE is never MORE on the wire");
        ours.open(&parts[0], &mut back).unwrap();
    }
    assert!(raw.is_empty());
    assert_eq!(
        back, plain,
        "the frames come back as they were, flags and all"
    );

    // Client to server, and the server refuses the same box twice.
    let mut plain = BytesMut::new();
    wire::encode_message(&[b"a"], &mut plain);
    let mut boxed = BytesMut::new();
    ours.seal(&plain, &mut boxed).unwrap();
    let body = &boxed[2..];
    let mut back = BytesMut::new();
    server.open(body, &mut back).unwrap();
    assert_eq!(back, plain);
    assert_eq!(
        server.open(body, &mut back),
        Err(CurveError::Replayed {
            counter: 3,
            last: 3
        })
    );
    assert_eq!(back, plain, "nothing of a refused box is kept");
}

#[test]
fn tampered_and_reordered_boxes_are_refused() {
    let keys = server_keys(None);
    let mut client = client_of(&keys);
    let (done, mut out) = handshake(&keys, &mut client);
    let mut server = done.unwrap().unwrap().session;
    let (mut ours, _) = client.ready(&command(&mut out)).unwrap();
    let mut first = BytesMut::new();
    let mut second = BytesMut::new();
    let mut plain = BytesMut::new();
    wire::encode_message(&[b"hello"], &mut plain);
    ours.seal(&plain, &mut first).unwrap();
    ours.seal(&plain, &mut second).unwrap();
    let mut back = BytesMut::new();
    // Every byte of the box, flipped, fails it (the counter's bytes too:
    // the nonce changes).
    for i in 10..first.len() {
        let mut bad = first[2..].to_vec();
        bad[i - 2] ^= 0x20;
        assert!(server.open(&bad, &mut back).is_err(), "byte {i}");
    }
    assert!(back.is_empty());
    // The second before the first: then the first is out of order.
    server.open(&second[2..], &mut back).unwrap();
    assert_eq!(
        server.open(&first[2..], &mut back),
        Err(CurveError::Replayed {
            counter: 3,
            last: 4
        })
    );
    assert_eq!(
        server.open(b"\x07MESSAGE", &mut back),
        Err(CurveError::NotMessage)
    );
}

#[test]
fn a_client_with_the_wrong_server_key_is_refused_at_hello_with_no_answer() {
    let keys = server_keys(None);
    let client = Client::new(
        SecretKey::generate(&mut OsRng),
        SecretKey::generate(&mut OsRng).public_key(),
    );
    let mut server = Handshake::new(keys, SocketType::Pull);
    let mut out = BytesMut::new();
    assert_eq!(
        server.on_command(&client.hello(), &mut out).unwrap_err(),
        CurveError::WrongServerKey
    );
    assert!(out.is_empty());
    // And a HELLO of the wrong size or version is malformed.
    let keys = server_keys(None);
    let client = client_of(&keys);
    for bad in [
        &client.hello()[..199],
        &[&client.hello()[..6], &[2, 0], &client.hello()[8..]].concat(),
    ] {
        let mut server = Handshake::new(keys.clone(), SocketType::Pull);
        assert_eq!(
            server.on_command(bad, &mut out).unwrap_err(),
            CurveError::Malformed("HELLO")
        );
    }
    let mut server = Handshake::new(keys, SocketType::Pull);
    assert!(matches!(
        server.on_command(b"\x05READY", &mut out),
        Err(CurveError::Unexpected(name, "HELLO")) if name == "READY"
    ));
}

#[test]
fn an_unknown_client_key_gets_error_400_and_no_session() {
    let listed = SecretKey::generate(&mut OsRng).public_key();
    let keys = server_keys(Some(&[&listed]));
    let mut client = client_of(&keys);
    let (done, mut out) = handshake(&keys, &mut client);
    assert!(matches!(done, Err(CurveError::UnknownClient(_))));
    assert_eq!(&command(&mut out)[..], b"\x05ERROR\x03400");
}

#[test]
fn a_forged_cookie_or_a_vouch_for_another_server_is_refused() {
    let keys = server_keys(None);
    let mut client = client_of(&keys);
    let mut server = Handshake::new(keys.clone(), SocketType::Push);
    let mut out = BytesMut::new();
    server.on_command(&client.hello(), &mut out).unwrap();
    welcome(&mut client, &command(&mut out));
    let mut initiate = client.initiate(SocketType::Pull).unwrap();
    initiate[20] ^= 1;
    assert_eq!(
        server.on_command(&initiate, &mut out).unwrap_err(),
        CurveError::BadBox("cookie")
    );

    let mut server = Handshake::new(keys.clone(), SocketType::Push);
    server.on_command(&client.hello(), &mut out).unwrap();
    welcome(&mut client, &command(&mut out));
    let other = SecretKey::generate(&mut OsRng).public_key();
    assert_eq!(
        server
            .on_command(
                &client
                    .initiate_with(&wire::socket_type_property(SocketType::Pull), &other)
                    .unwrap(),
                &mut out
            )
            .unwrap_err(),
        CurveError::BadVouch
    );
    assert!(out.is_empty());
}

/// What CURVE costs the proxy per round trip: boxing one event (three
/// frames, a 32-byte message) and opening one reply, the proxy's side
/// only. A measurement, not a check: `cargo test --release --lib
/// curve_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn curve_cost_per_round_trip() {
    let keys = server_keys(None);
    let mut client = client_of(&keys);
    let (done, mut out) = handshake(&keys, &mut client);
    let mut server = done.unwrap().unwrap().session;
    let (mut ours, _) = client.ready(&command(&mut out)).unwrap();
    let text = [b'x'; 32];
    let mut event = BytesMut::new();
    wire::encode_message(&[b"message", b"17", &text], &mut event);
    let mut outer = Decoder::new(Limits {
        frames: 1,
        bytes: 1000,
        command: 100,
    });
    let rounds = 200_000;
    let mut spent = std::time::Duration::ZERO;
    let cpu_start = thread_cpu();
    for _ in 0..rounds {
        let start = std::time::Instant::now();
        let mut boxed = BytesMut::new();
        server.seal(&event, &mut boxed).unwrap();
        spent += start.elapsed();
        // The backend opens the event and boxes the same reply.
        let mut plain = BytesMut::new();
        while let Some(Item::Message(parts)) = outer.decode(&mut boxed).unwrap() {
            ours.open(&parts[0], &mut plain).unwrap();
        }
        let mut reply = BytesMut::new();
        ours.seal(&plain, &mut reply).unwrap();
        let start = std::time::Instant::now();
        let mut back = BytesMut::new();
        while let Some(Item::Message(parts)) = outer.decode(&mut reply).unwrap() {
            server.open(&parts[0], &mut back).unwrap();
        }
        spent += start.elapsed();
        assert_eq!(back, event);
    }
    println!(
        "CURVE, proxy side: {:.2} µs wall per round trip (seal 3 frames + open 3 frames, \
         32-byte message); this thread's CPU time for both sides: {:.2} µs per round trip",
        spent.as_secs_f64() * 1e6 / rounds as f64,
        (thread_cpu() - cpu_start).as_secs_f64() * 1e6 / rounds as f64
    );
}

#[test]
fn a_prefix_box_seals_and_opens_exactly_what_salsa_box_does_for_its_prefix() {
    use super::boxes::{PrefixBox, TAG_LEN, nonce, open, seal};
    use crypto_box::SalsaBox;
    for _ in 0..8 {
        let (a, b) = (
            SecretKey::generate(&mut OsRng),
            SecretKey::generate(&mut OsRng),
        );
        let reference = SalsaBox::new(&b.public_key(), &a);
        let prefixes = [b"CurveZMQMESSAGES", b"CurveZMQMESSAGEC"];
        let [ours, other_prefix] = PrefixBox::pair(&b.public_key(), &a, prefixes);
        // The other side of the same pair derives the same key.
        let [theirs, _] = PrefixBox::pair(&a.public_key(), &b, prefixes);
        for (tail, len) in [
            (0u64, 0usize),
            (1, 1),
            (2, 31),
            (3, 32),
            (4, 33),
            (77, 64),
            (u64::MAX, 200),
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 + tail as usize) as u8).collect();
            let expected = seal(
                &reference,
                &nonce(b"CurveZMQMESSAGES", &tail.to_be_bytes()),
                &plain,
            );
            let mut boxed = vec![0u8; TAG_LEN + len];
            boxed[TAG_LEN..].copy_from_slice(&plain);
            ours.seal_in_place(tail, &mut boxed);
            assert_eq!(boxed, expected, "tail {tail}, {len} bytes");
            let (tag, text) = boxed.split_at(TAG_LEN);
            let mut opened = text.to_vec();
            assert!(theirs.open_in_place(tail, tag, &mut opened));
            assert_eq!(opened, plain);
            // Another counter or the other direction's prefix: not this box.
            let mut wrong = text.to_vec();
            assert!(!theirs.open_in_place(tail.wrapping_add(1), tag, &mut wrong));
            let mut wrong = text.to_vec();
            assert!(!other_prefix.open_in_place(tail, tag, &mut wrong));
            let mut flipped = text.to_vec();
            if let Some(byte) = flipped.last_mut() {
                *byte ^= 1;
                assert!(!theirs.open_in_place(tail, tag, &mut flipped));
            }
            assert_eq!(
                open(
                    &reference,
                    &nonce(b"CurveZMQMESSAGES", &tail.to_be_bytes()),
                    &boxed
                ),
                Some(plain)
            );
        }
    }
}

/// CPU time of this thread (wall time counts a busy machine's other work).
fn thread_cpu() -> std::time::Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec to a local that outlives the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
