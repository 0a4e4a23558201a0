//! Tnetstrings, the typed netstrings Mongrel2 uses for request headers when a
//! handler asks for `protocol = "tnetstring"` (and for every body, as plain
//! netstrings): `LENGTH:DATA` and one type byte, `,` string, `#` integer,
//! `^` float, `!` boolean, `~` null, `}` dictionary, `]` list.
//!
//! The format is tiny, so this is our own: an encoder for the values the proxy
//! sends and a decoder, bounded in length and nesting, that returns an error
//! for any input it cannot read and never panics.

/// Longest payload a tnetstring may announce (the format's own limit: nine digits).
const MAX_DIGITS: usize = 9;
/// Deepest nesting the decoder follows.
const MAX_DEPTH: usize = 32;

/// One tnetstring value. Dictionaries keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Dict(Vec<(Vec<u8>, Value)>),
    List(Vec<Value>),
}

/// Why bytes are not a tnetstring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("tnetstring: no length prefix")]
    Length,
    #[error("tnetstring: truncated")]
    Truncated,
    #[error("tnetstring: unknown type byte {0:?}")]
    Type(char),
    #[error("tnetstring: bad {0} payload")]
    Payload(&'static str),
    #[error("tnetstring: nested deeper than {MAX_DEPTH}")]
    Depth,
}

/// Appends `LEN:DATA,` (a netstring: the body of every Mongrel2 request).
pub fn write_str(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(data);
    out.push(b',');
}

/// Appends the encoding of `value`.
pub fn write(out: &mut Vec<u8>, value: &Value) {
    let (payload, tag) = match value {
        Value::Str(s) => return write_str(out, s),
        Value::Int(i) => (i.to_string().into_bytes(), b'#'),
        Value::Float(f) => (format!("{f:?}").into_bytes(), b'^'),
        Value::Bool(b) => (b.to_string().into_bytes(), b'!'),
        Value::Null => (Vec::new(), b'~'),
        Value::Dict(pairs) => {
            let mut p = Vec::new();
            for (k, v) in pairs {
                write_str(&mut p, k);
                write(&mut p, v);
            }
            (p, b'}')
        }
        Value::List(items) => {
            let mut p = Vec::new();
            for v in items {
                write(&mut p, v);
            }
            (p, b']')
        }
    };
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(&payload);
    out.push(tag);
}

/// Reads one value from the front of `input`; the value and what follows it.
pub fn parse(input: &[u8]) -> Result<(Value, &[u8]), Error> {
    parse_at(input, 0)
}

/// Splits `LEN:DATA T` off the front: (type byte, payload, rest).
pub fn split(input: &[u8]) -> Result<(u8, &[u8], &[u8]), Error> {
    let colon = input
        .iter()
        .take(MAX_DIGITS + 1)
        .position(|&b| b == b':')
        .ok_or(Error::Length)?;
    let digits = &input[..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::Length);
    }
    // At most nine ASCII digits: always fits.
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or(Error::Length)?;
    let rest = &input[colon + 1..];
    if rest.len() <= len {
        return Err(Error::Truncated);
    }
    Ok((rest[len], &rest[..len], &rest[len + 1..]))
}

fn parse_at(input: &[u8], depth: usize) -> Result<(Value, &[u8]), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::Depth);
    }
    let (tag, payload, rest) = split(input)?;
    let text = |what| std::str::from_utf8(payload).map_err(|_| Error::Payload(what));
    let value = match tag {
        b',' => Value::Str(payload.to_vec()),
        b'#' => Value::Int(
            text("integer")?
                .parse()
                .map_err(|_| Error::Payload("integer"))?,
        ),
        b'^' => Value::Float(
            text("float")?
                .parse()
                .map_err(|_| Error::Payload("float"))?,
        ),
        b'!' => match payload {
            b"true" => Value::Bool(true),
            b"false" => Value::Bool(false),
            _ => return Err(Error::Payload("boolean")),
        },
        b'~' if payload.is_empty() => Value::Null,
        b'~' => return Err(Error::Payload("null")),
        b'}' => {
            let mut pairs = Vec::new();
            let mut p = payload;
            while !p.is_empty() {
                let (key, after) = parse_at(p, depth + 1)?;
                let Value::Str(key) = key else {
                    return Err(Error::Payload("dictionary key"));
                };
                let (value, after) = parse_at(after, depth + 1)?;
                pairs.push((key, value));
                p = after;
            }
            Value::Dict(pairs)
        }
        b']' => {
            let mut items = Vec::new();
            let mut p = payload;
            while !p.is_empty() {
                let (value, after) = parse_at(p, depth + 1)?;
                items.push(value);
                p = after;
            }
            Value::List(items)
        }
        other => return Err(Error::Type(other as char)),
    };
    Ok((value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, v);
        out
    }

    #[test]
    fn encodes_every_type_byte_for_byte() {
        assert_eq!(enc(&Value::Str(b"hello".to_vec())), b"5:hello,");
        assert_eq!(enc(&Value::Str(Vec::new())), b"0:,");
        assert_eq!(enc(&Value::Int(-42)), b"3:-42#");
        assert_eq!(enc(&Value::Float(1.5)), b"3:1.5^");
        assert_eq!(enc(&Value::Bool(true)), b"4:true!");
        assert_eq!(enc(&Value::Null), b"0:~");
        let dict = Value::Dict(vec![(b"METHOD".to_vec(), Value::Str(b"JSON".to_vec()))]);
        // Mongrel2's own disconnect header, from its handler.c.
        assert_eq!(enc(&dict), b"16:6:METHOD,4:JSON,}");
        let list = Value::List(vec![Value::Int(1), Value::Str(b"a".to_vec())]);
        assert_eq!(enc(&list), b"8:1:1#1:a,]");
    }

    #[test]
    fn decodes_what_it_encodes() {
        let v = Value::Dict(vec![
            (
                b"a".to_vec(),
                Value::List(vec![Value::Null, Value::Bool(false)]),
            ),
            (b"b".to_vec(), Value::Float(-0.25)),
            (b"c".to_vec(), Value::Dict(Vec::new())),
        ]);
        let mut bytes = enc(&v);
        bytes.extend_from_slice(b"rest");
        assert_eq!(parse(&bytes).unwrap(), (v, &b"rest"[..]));
    }

    #[test]
    fn refuses_malformed_input_without_panicking() {
        let cases: &[(&[u8], Error)] = &[
            (b"", Error::Length),
            (b":x,", Error::Length),
            (b"x:", Error::Length),
            (b"1234567890:", Error::Length),
            (b"5:abc,", Error::Truncated),
            (b"5:abcde", Error::Truncated),
            (b"1:a?", Error::Type('?')),
            (b"2:1x#", Error::Payload("integer")),
            (b"3:yes!", Error::Payload("boolean")),
            (b"1:x~", Error::Payload("null")),
            (b"4:1:1#}", Error::Payload("dictionary key")),
            (b"6:1:a,1:}", Error::Truncated),
        ];
        for (input, err) in cases {
            assert_eq!(
                parse(input).unwrap_err(),
                *err,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn every_prefix_of_a_value_is_an_error_not_a_panic() {
        let v = Value::Dict(vec![(b"k".to_vec(), Value::List(vec![Value::Int(7)]))]);
        let bytes = enc(&v);
        for n in 0..bytes.len() {
            assert!(parse(&bytes[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut v = Value::Null;
        for _ in 0..=MAX_DEPTH + 1 {
            v = Value::List(vec![v]);
        }
        assert_eq!(parse(&enc(&v)).unwrap_err(), Error::Depth);
    }
}
