//! The request message the proxy sends a handler, as Mongrel2 does:
//! `UUID CONN_ID PATH HEADERS BODY`, where UUID is the route's `send_ident`,
//! HEADERS a netstring of a JSON object (or, with `protocol = "tnetstring"`,
//! a tnetstring dictionary) and BODY a netstring.
//!
//! The headers are the request's own, names in lower case (a header sent
//! twice becomes a list), then Mongrel2's: `METHOD`, `VERSION`, `URI`,
//! `PATH`, `QUERY`, `PATTERN`, `URL_SCHEME`, `REMOTE_ADDR`, and for a
//! websocket frame `FLAGS`. [`decode`] reads the message back, for handlers
//! written in Rust (`examples/m2_echo.rs`) and the tests.

use serde_json::{Map, Value as Json};

use super::tnetstring::{self, Value};

/// How a route's handler wants its headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Json,
    Tnetstring,
}

/// One message for a handler, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The route's `send_ident`.
    pub uuid: String,
    pub conn_id: u64,
    /// The URL path (`@*` for the disconnect message).
    pub path: String,
    /// In order; names of the client's headers in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The body of the message that tells a handler a connection is gone.
pub const DISCONNECT_BODY: &[u8] = br#"{"type":"disconnect"}"#;

impl Request {
    /// Mongrel2's disconnect message: METHOD `JSON`, PATH `@*`.
    pub fn disconnect(uuid: &str, conn_id: u64) -> Request {
        Request {
            uuid: uuid.to_string(),
            conn_id,
            path: "@*".to_string(),
            headers: vec![("METHOD".to_string(), "JSON".to_string())],
            body: DISCONNECT_BODY.to_vec(),
        }
    }

    /// The message's bytes.
    pub fn encode(&self, protocol: Protocol) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        out.extend_from_slice(self.uuid.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.conn_id.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.path.as_bytes());
        out.push(b' ');
        let grouped = group(&self.headers);
        match protocol {
            Protocol::Json => {
                // Written by hand to keep the headers' order (serde_json's
                // map sorts its keys).
                let mut json = String::from("{");
                for (i, (k, vs)) in grouped.into_iter().enumerate() {
                    if i > 0 {
                        json.push(',');
                    }
                    json.push_str(&Json::String(k).to_string());
                    json.push(':');
                    let v = match <[String; 1]>::try_from(vs) {
                        Ok([one]) => Json::String(one),
                        Err(vs) => Json::Array(vs.into_iter().map(Json::String).collect()),
                    };
                    json.push_str(&v.to_string());
                }
                json.push('}');
                tnetstring::write_str(&mut out, json.as_bytes());
            }
            Protocol::Tnetstring => {
                let pairs = grouped
                    .into_iter()
                    .map(|(k, vs)| {
                        let v = match <[String; 1]>::try_from(vs) {
                            Ok([one]) => Value::Str(one.into_bytes()),
                            Err(vs) => Value::List(
                                vs.into_iter().map(|s| Value::Str(s.into_bytes())).collect(),
                            ),
                        };
                        (k.into_bytes(), v)
                    })
                    .collect();
                tnetstring::write(&mut out, &Value::Dict(pairs));
            }
        }
        tnetstring::write_str(&mut out, &self.body);
        out
    }
}

/// Headers in first-seen order, repeated names gathered.
fn group(headers: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in headers {
        match out.iter_mut().find(|(name, _)| name == k) {
            Some((_, vs)) => vs.push(v.clone()),
            None => out.push((k.clone(), vec![v.clone()])),
        }
    }
    out
}

/// A request as a handler reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub sender: String,
    pub conn_id: String,
    pub path: String,
    /// JSON headers as sent; tnetstring headers turned into the same shape.
    pub headers: Map<String, Json>,
    pub body: Vec<u8>,
}

impl Received {
    /// A header's value when it is one string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Json::as_str)
    }

    /// Whether this is the message saying the connection is gone.
    pub fn is_disconnect(&self) -> bool {
        self.header("METHOD") == Some("JSON")
            && serde_json::from_slice::<Json>(&self.body)
                .is_ok_and(|v| v.get("type").and_then(Json::as_str) == Some("disconnect"))
    }
}

/// Why bytes are not a Mongrel2 request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("mongrel2 request: missing {0}")]
    Missing(&'static str),
    #[error(transparent)]
    Netstring(#[from] tnetstring::Error),
    #[error("mongrel2 request: headers are neither a JSON object nor a dictionary")]
    Headers,
    #[error("mongrel2 request: the body is not a netstring")]
    Body,
}

/// Reads a request message (either protocol).
pub fn decode(msg: &[u8]) -> Result<Received, DecodeError> {
    let mut parts = msg.splitn(4, |&b| b == b' ');
    let mut word = |what| {
        parts
            .next()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .ok_or(DecodeError::Missing(what))
    };
    let (sender, conn_id, path) = (word("sender")?, word("connection id")?, word("path")?);
    let rest = parts.next().ok_or(DecodeError::Missing("headers"))?;
    let (headers, rest) = tnetstring::parse(rest)?;
    let headers = match headers {
        Value::Str(json) => match serde_json::from_slice(&json) {
            Ok(Json::Object(map)) => map,
            _ => return Err(DecodeError::Headers),
        },
        Value::Dict(pairs) => pairs
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), to_json(v)))
            .collect(),
        _ => return Err(DecodeError::Headers),
    };
    let body = match tnetstring::parse(rest)? {
        (Value::Str(body), _) => body,
        _ => return Err(DecodeError::Body),
    };
    Ok(Received {
        sender,
        conn_id,
        path,
        headers,
        body,
    })
}

fn to_json(v: Value) -> Json {
    match v {
        Value::Str(s) => Json::String(String::from_utf8_lossy(&s).into_owned()),
        Value::Int(i) => Json::from(i),
        Value::Float(f) => Json::from(f),
        Value::Bool(b) => Json::Bool(b),
        Value::Null => Json::Null,
        Value::List(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Value::Dict(pairs) => Json::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get() -> Request {
        Request {
            uuid: "54c6755b-9628-40a4-9a2d-cc82a816345e".into(),
            conn_id: 7,
            path: "/handlertest".into(),
            headers: vec![
                ("host".into(), "localhost".into()),
                ("accept".into(), "a".into()),
                ("accept".into(), "b".into()),
                ("METHOD".into(), "GET".into()),
            ],
            body: b"hi".to_vec(),
        }
    }

    #[test]
    fn json_request_byte_for_byte() {
        let json = r#"{"host":"localhost","accept":["a","b"],"METHOD":"GET"}"#;
        let expected = format!(
            "54c6755b-9628-40a4-9a2d-cc82a816345e 7 /handlertest {}:{json},2:hi,",
            json.len()
        );
        assert_eq!(
            String::from_utf8(get().encode(Protocol::Json)).unwrap(),
            expected
        );
    }

    #[test]
    fn tnetstring_request_byte_for_byte() {
        let dict = "4:host,9:localhost,6:accept,8:1:a,1:b,]6:METHOD,3:GET,";
        let expected = format!(
            "54c6755b-9628-40a4-9a2d-cc82a816345e 7 /handlertest {}:{dict}}}2:hi,",
            dict.len()
        );
        let bytes = get().encode(Protocol::Tnetstring);
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    }

    #[test]
    fn disconnect_matches_mongrel2_in_both_protocols() {
        let d = Request::disconnect("ID", 12);
        assert_eq!(
            d.encode(Protocol::Json),
            br#"ID 12 @* 17:{"METHOD":"JSON"},21:{"type":"disconnect"},"#
        );
        assert_eq!(
            d.encode(Protocol::Tnetstring),
            br#"ID 12 @* 16:6:METHOD,4:JSON,}21:{"type":"disconnect"},"#
        );
        assert!(decode(&d.encode(Protocol::Json)).unwrap().is_disconnect());
    }

    #[test]
    fn decodes_both_protocols_alike() {
        for p in [Protocol::Json, Protocol::Tnetstring] {
            let r = decode(&get().encode(p)).unwrap();
            assert_eq!(r.sender, "54c6755b-9628-40a4-9a2d-cc82a816345e");
            assert_eq!((r.conn_id.as_str(), r.path.as_str()), ("7", "/handlertest"));
            assert_eq!(r.header("METHOD"), Some("GET"));
            assert_eq!(r.headers["accept"], serde_json::json!(["a", "b"]));
            assert_eq!(r.body, b"hi");
            assert!(!r.is_disconnect());
        }
    }

    #[test]
    fn binary_bodies_pass_untouched() {
        let mut r = get();
        r.body = (0..=255u8).collect();
        assert_eq!(decode(&r.encode(Protocol::Json)).unwrap().body, r.body);
    }

    #[test]
    fn malformed_requests_are_errors() {
        assert_eq!(decode(b"a b").unwrap_err(), DecodeError::Missing("path"));
        assert_eq!(
            decode(b"a b c").unwrap_err(),
            DecodeError::Missing("headers")
        );
        assert_eq!(decode(b"a b c 2:[],0:,").unwrap_err(), DecodeError::Headers);
        assert_eq!(
            decode(b"a b c 2:{},x").unwrap_err(),
            DecodeError::Netstring(tnetstring::Error::Length)
        );
        assert_eq!(decode(b"a b c 2:{},1:1#").unwrap_err(), DecodeError::Body);
        let bytes = get().encode(Protocol::Json);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix {n}");
        }
    }
}
