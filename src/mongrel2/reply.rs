//! The reply message a handler publishes: `UUID SIZE:ID ID ID, BODY`.
//!
//! UUID is the `send_ident` of the request it answers (the proxy's SUB socket
//! is subscribed to it), then a netstring of up to [`MAX_IDS`] connection
//! ids separated by single spaces, one space, and the BODY: raw bytes for
//! every listed connection. An empty BODY closes those connections.

use super::tnetstring;

/// Most connections one reply may address (Mongrel2's limit).
pub const MAX_IDS: usize = 128;

/// A reply, parsed: the body is a sub-slice of the message.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    pub uuid: &'a [u8],
    pub ids: Vec<u64>,
    pub body: &'a [u8],
}

/// Why a message is not a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("no space after the sender uuid")]
    Uuid,
    #[error("bad length of the connection id list")]
    Length,
    #[error("connection id list truncated or not followed by ','")]
    Truncated,
    #[error("bad connection id list")]
    Ids,
    #[error("no connection ids")]
    NoIds,
    #[error("more than {MAX_IDS} connection ids")]
    TooManyIds,
    #[error("no space before the body")]
    Space,
}

/// Reads a reply message.
pub fn parse(msg: &[u8]) -> Result<Reply<'_>, ReplyError> {
    let space = msg
        .iter()
        .position(|&b| b == b' ')
        .ok_or(ReplyError::Uuid)?;
    let uuid = &msg[..space];
    if uuid.is_empty() || !uuid.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ReplyError::Uuid);
    }
    // `LEN:IDS,` is a netstring: a tnetstring whose type byte is `,`.
    let (kind, ids, rest) = tnetstring::split(&msg[space + 1..]).map_err(|e| match e {
        tnetstring::Error::Truncated => ReplyError::Truncated,
        _ => ReplyError::Length,
    })?;
    if kind != b',' {
        return Err(ReplyError::Truncated);
    }
    let ids = parse_ids(ids)?;
    match rest {
        [b' ', body @ ..] => Ok(Reply { uuid, ids, body }),
        _ => Err(ReplyError::Space),
    }
}

/// `ID ID ID`: decimal ids, one space between (a trailing one allowed, as
/// Mongrel2's grammar does).
fn parse_ids(list: &[u8]) -> Result<Vec<u64>, ReplyError> {
    let mut ids = Vec::new();
    let list = list.strip_suffix(b" ").unwrap_or(list);
    if list.is_empty() {
        return Err(ReplyError::NoIds);
    }
    for id in list.split(|&b| b == b' ') {
        if id.is_empty() || id.len() > 19 || !id.iter().all(u8::is_ascii_digit) {
            return Err(ReplyError::Ids);
        }
        if ids.len() == MAX_IDS {
            return Err(ReplyError::TooManyIds);
        }
        let id = std::str::from_utf8(id).ok().and_then(|s| s.parse().ok());
        ids.push(id.ok_or(ReplyError::Ids)?);
    }
    Ok(ids)
}

/// A reply's bytes, for handlers written in Rust.
pub fn encode(uuid: &str, ids: &[u64], body: &[u8]) -> Vec<u8> {
    let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    let mut out = Vec::with_capacity(uuid.len() + list.len() + body.len() + 16);
    out.extend_from_slice(uuid.as_bytes());
    out.push(b' ');
    super::tnetstring::write_str(&mut out, list.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_as_the_python_library_sends_it() {
        let r = parse(b"82209006-86FF 2:42, HTTP/1.1 200 OK\r\n").unwrap();
        assert_eq!(r.uuid, b"82209006-86FF");
        assert_eq!(r.ids, vec![42]);
        assert_eq!(r.body, b"HTTP/1.1 200 OK\r\n");
    }

    #[test]
    fn many_ids_and_an_empty_body() {
        let r = parse(b"u 8:1 22 333, ").unwrap();
        assert_eq!((r.ids, r.body), (vec![1, 22, 333], &b""[..]));
        assert_eq!(parse(b"u 2:1 , x").unwrap().ids, vec![1]);
    }

    #[test]
    fn encode_round_trips() {
        let bytes = encode("abc", &[5, 6], b"\x81\x02hi");
        assert_eq!(bytes, b"abc 3:5 6, \x81\x02hi");
        let r = parse(&bytes).unwrap();
        assert_eq!(
            (r.uuid, r.ids, r.body),
            (&b"abc"[..], vec![5, 6], &b"\x81\x02hi"[..])
        );
    }

    #[test]
    fn at_most_128_ids() {
        let ids: Vec<u64> = (0..MAX_IDS as u64).collect();
        assert_eq!(parse(&encode("u", &ids, b"x")).unwrap().ids.len(), MAX_IDS);
        let ids: Vec<u64> = (0..=MAX_IDS as u64).collect();
        assert_eq!(parse(&encode("u", &ids, b"x")), Err(ReplyError::TooManyIds));
    }

    #[test]
    fn malformed_replies_are_errors() {
        let cases: &[(&[u8], ReplyError)] = &[
            (b"", ReplyError::Uuid),
            (b"nospace", ReplyError::Uuid),
            (b" 1:1, x", ReplyError::Uuid),
            (b"u$ 1:1, x", ReplyError::Uuid),
            (b"u x:1, x", ReplyError::Length),
            (b"u 1, x", ReplyError::Length),
            (b"u 99999999999:1, x", ReplyError::Length),
            (b"u 3:1, x", ReplyError::Truncated),
            (b"u 1:12, x", ReplyError::Truncated),
            (b"u 0:, x", ReplyError::NoIds),
            (b"u 3:1  , x", ReplyError::Ids),
            (b"u 2:-1, x", ReplyError::Ids),
            (b"u 3:X 1, x", ReplyError::Ids),
            (b"u 20:99999999999999999999, x", ReplyError::Ids),
            (b"u 1:1,x", ReplyError::Space),
            (b"u 1:1,", ReplyError::Space),
        ];
        for (input, err) in cases {
            assert_eq!(
                parse(input),
                Err(*err),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic() {
        let bytes = encode("uuid", &[1, 2, 3], b"");
        for n in 0..bytes.len() {
            assert!(parse(&bytes[..n]).is_err(), "prefix {n}");
        }
    }
}
