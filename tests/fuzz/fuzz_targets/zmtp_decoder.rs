//! The ZMTP frame decoder (`decoder::Decoder`) on arbitrary bytes, under
//! limits the input picks (the proxy's own among them), fed whole and in
//! chunks of a size the input picks. Beyond "never panics": the chunks
//! change nothing (the same items, then the same error or none), and no
//! item breaks the limits.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sockjsproxy::backend::zmtp::decoder::{Decoder, Item, Limits};
use sockjsproxy::backend::zmtp::wire::WireError;

/// The command socket's limits (8 frames, 64 MiB, 4 KiB commands), the
/// event socket's (commands only), and small ones that the input breaks
/// easily.
fn limits(pick: &[u8]) -> Limits {
    match pick[0] % 4 {
        0 => Limits {
            frames: 8,
            bytes: 64 << 20,
            command: 4096,
        },
        1 => Limits::commands_only(4096),
        _ => Limits {
            frames: usize::from(pick[1] % 12),
            bytes: u64::from(u16::from_be_bytes([pick[2], pick[3]])),
            command: u64::from(pick[4]) * 4,
        },
    }
}

/// Everything the decoder makes of `stream` arriving `chunk` bytes at a
/// time: the items, and the error that ended the stream, if any.
fn decode(limits: Limits, stream: &[u8], chunk: usize) -> (Vec<Item>, Option<WireError>) {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Some(e)),
            }
        }
    }
    (items, None)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let limits = limits(&data[..5]);
    let chunk = usize::from(data[5] % 32) + 1;
    let stream = &data[6..];
    let whole = decode(limits, stream, stream.len());
    let chunked = decode(limits, stream, chunk);
    let bytewise = decode(limits, stream, 1);
    assert_eq!(whole, chunked, "chunks of {chunk} bytes");
    assert_eq!(whole, bytewise, "one byte at a time");
    for item in &whole.0 {
        match item {
            Item::Message(parts) => {
                assert!(!parts.is_empty() && parts.len() <= limits.frames);
                let size: usize = parts.iter().map(|p| p.len()).sum();
                assert!(size as u64 <= limits.bytes);
            }
            Item::Command(body) => assert!(body.len() as u64 <= limits.command),
        }
    }
});
