//! Byte-by-byte tests of the handler response parser.

use super::*;

/// Feeds `msgs` (one reply message each; empty: the handler closes) and
/// returns the head, the body put together, and whether it ended.
fn run(head_request: bool, msgs: &[&[u8]]) -> Result<(Head, Vec<u8>, bool), ResponseError> {
    let mut p = ResponseParser::new(head_request, 8192);
    let mut parts = Vec::new();
    for m in msgs {
        if m.is_empty() {
            p.close(&mut parts)?;
        } else {
            p.feed(m, &mut parts)?;
        }
    }
    let mut head = None;
    let mut body = Vec::new();
    let mut ended = false;
    for part in parts {
        assert!(!ended, "nothing after End");
        match part {
            Part::Head(h) => {
                assert!(head.is_none() && body.is_empty());
                head = Some(h);
            }
            Part::Body(b) => body.extend_from_slice(&b),
            Part::End => ended = true,
        }
    }
    Ok((head.expect("a head"), body, ended))
}

/// The same bytes one at a time, each its own message.
fn bytewise(head_request: bool, bytes: &[u8]) -> Result<(Head, Vec<u8>, bool), ResponseError> {
    let msgs: Vec<&[u8]> = bytes.chunks(1).collect();
    run(head_request, &msgs)
}

/// What Mongrel2's python library's `http_response` makes.
const PYTHON: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn content_length_response_whole_and_byte_by_byte() {
    for result in [run(false, &[PYTHON]), bytewise(false, PYTHON)] {
        let (head, body, ended) = result.unwrap();
        assert_eq!((head.status, head.reason.as_str()), (200, "OK"));
        assert_eq!(head.framing, Framing::Length(5));
        assert_eq!(head.header("content-type"), Some(&b"text/plain"[..]));
        assert!(!head.close);
        assert_eq!((body.as_slice(), ended), (&b"hello"[..], true));
    }
}

#[test]
fn chunked_response_at_every_split_point() {
    let bytes: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n";
    let expected = b"helloabcdefghijklmnopqrstuvwxyz".to_vec();
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        let msgs: Vec<&[u8]> = [a, b].into_iter().filter(|m| !m.is_empty()).collect();
        let (head, body, ended) = run(false, &msgs).unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(
            (body.clone(), ended),
            (expected.clone(), true),
            "cut at {cut}"
        );
    }
    let (_, body, ended) = bytewise(false, bytes).unwrap();
    assert_eq!((body, ended), (expected, true));
}

#[test]
fn close_delimited_body_ends_with_the_empty_message() {
    let (head, body, ended) = run(
        false,
        &[
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ",
            b"part two",
            b"",
        ],
    )
    .unwrap();
    assert_eq!((head.framing, head.close), (Framing::Close, true));
    assert_eq!((body.as_slice(), ended), (&b"part one, part two"[..], true));
}

#[test]
fn a_response_in_several_messages() {
    let (_, body, ended) = run(
        false,
        &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n",
            b"\r\n01234",
            b"56789",
        ],
    )
    .unwrap();
    assert_eq!((body.as_slice(), ended), (&b"0123456789"[..], true));
}

#[test]
fn no_body_for_head_204_304_and_101() {
    let (head, body, ended) =
        run(true, &[b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"]).unwrap();
    assert_eq!((head.framing, body.len(), ended), (Framing::None, 0, true));
    for status in [
        "204 No Content",
        "304 Not Modified",
        "101 Switching Protocols",
    ] {
        let msg = format!("HTTP/1.1 {status}\r\nUpgrade: websocket\r\n\r\n");
        let (head, body, ended) = run(false, &[msg.as_bytes()]).unwrap();
        assert_eq!((head.framing, body.len(), ended), (Framing::None, 0, true));
    }
}

#[test]
fn http_1_0_closes_unless_kept_alive() {
    let (head, ..) = run(false, &[b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"]).unwrap();
    assert!(head.close);
    let ka = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
    assert!(!run(false, &[ka]).unwrap().0.close);
}

#[test]
fn malformed_responses_are_errors() {
    let err = |msgs: &[&[u8]]| run(false, msgs).unwrap_err();
    assert!(matches!(
        err(&[b"HTTP/1.1 abc OK\r\n\r\n"]),
        ResponseError::Head(_)
    ));
    assert!(matches!(
        err(&[b"hello world\r\n\r\n"]),
        ResponseError::Head(_)
    ));
    assert_eq!(
        err(&[b"HTTP/1.1 100 Continue\r\n\r\n"]),
        ResponseError::Interim(100)
    );
    assert_eq!(
        err(&[b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"]),
        ResponseError::ContentLength
    );
    assert_eq!(
        err(&[b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"]),
        ResponseError::ContentLength
    );
    assert_eq!(
        err(&[b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"]),
        ResponseError::Ambiguous
    );
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        err(&[chunked, b"zz\r\n"]),
        ResponseError::Chunked("bad chunk size")
    );
    assert_eq!(
        err(&[chunked, b"1\r\nab"]),
        ResponseError::Chunked("no CRLF after chunk data")
    );
    assert_eq!(
        err(&[chunked, b"fffffffffffffffff\r\n"]),
        ResponseError::Chunked("bad chunk size")
    );
    assert_eq!(
        err(&[chunked, &[b'1'; 2000]]),
        ResponseError::Chunked("chunk-size line too long")
    );
    assert_eq!(
        err(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", b""]),
        ResponseError::Incomplete
    );
    assert_eq!(
        err(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc"]),
        ResponseError::Extra
    );
    assert_eq!(
        err(&[b"HTTP/1.1 200 OK\r\n", b""]),
        ResponseError::Incomplete
    );
}

#[test]
fn the_head_is_bounded() {
    let mut p = ResponseParser::new(false, 64);
    let mut parts = Vec::new();
    let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(100));
    assert_eq!(
        p.feed(long.as_bytes(), &mut parts),
        Err(ResponseError::HeadTooLong(64))
    );
    assert!(parts.is_empty());
    // After an error, the parser takes nothing more.
    assert!(p.feed(b"\r\n", &mut parts).is_err());
}

#[test]
fn garbage_never_panics() {
    // Deterministic pseudo-random bytes, cut into messages at random.
    let mut x: u32 = 12345;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let alphabet = b"HTTP/1.1 200 OK\r\n:;0123456789abcdefTransfer-Encoding chunked Content-Length";
    for _ in 0..2000 {
        let mut p = ResponseParser::new(next() % 4 == 0, 256);
        let mut parts = Vec::new();
        let mut msg = b"HTTP/1.1 200 OK\r\n".to_vec();
        for _ in 0..(next() % 200) {
            msg.push(alphabet[(next() as usize) % alphabet.len()]);
        }
        for piece in msg.chunks(1 + (next() as usize) % 7) {
            let _ = p.feed(piece, &mut parts);
        }
        let _ = p.close(&mut parts);
    }
}
