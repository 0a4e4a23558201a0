//! The browser ↔ proxy wire format, kept byte-compatible with ZmqWebBridge:
//! every websocket text frame is a JSON object `{"identity", "msg_type",
//! "content"}` where `content` is a string, and a `connect` frame's content is
//! itself a JSON text (double encoding, as the original JS client sends it).
//!
//! Parsing never panics and never closes anything: whatever the client sends
//! becomes either a [`ClientFrame`] or a [`WireError`] that the session turns
//! into an error frame for the identity it could read, if any.

use serde::Serialize;
use serde_json::{Map, Value};

/// `socket_type` numbers are libzmq's, as in the original JS client.
pub const ZMQ_SUB: i64 = 2;
pub const ZMQ_REQ: i64 = 3;
pub const ZMQ_REP: i64 = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame is not valid JSON: {0}")]
    NotJson(String),
    #[error("frame must be a JSON object")]
    NotObject,
    #[error("frame has no string {0:?}")]
    Missing(&'static str),
    #[error("connect content is not a JSON object: {0}")]
    BadConnect(String),
    #[error("connect content has no string zmq_conn_string")]
    NoEndpoint,
    #[error("connect content has no integer socket_type")]
    NoSocketType,
    #[error("socket_type {0} is not supported: use 2 (SUB) or 3 (REQ)")]
    UnknownSocketType(i64),
    #[error("msgfilter must be a string")]
    BadFilter,
    #[error("msgfilter is only meaningful on SUB sockets")]
    FilterOnReq,
}

/// The two kinds of virtual socket a browser may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, Serialize)]
pub enum SocketKind {
    #[serde(rename = "REQ")]
    Req,
    #[serde(rename = "SUB")]
    Sub,
}

impl SocketKind {
    pub fn number(self) -> i64 {
        match self {
            SocketKind::Req => ZMQ_REQ,
            SocketKind::Sub => ZMQ_SUB,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SocketKind::Req => "REQ",
            SocketKind::Sub => "SUB",
        }
    }
}

/// One frame from the browser.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Connect {
        identity: String,
        request: Result<ConnectRequest, WireError>,
    },
    /// Any msg_type but `connect` (the original JS says `userlevel`, its
    /// tests `user`); the original only ever compared with `connect`.
    Data { identity: String, content: String },
}

/// A decoded `connect` content.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRequest {
    pub endpoint: String,
    pub kind: SocketKind,
    /// SUB prefix; empty means everything.
    pub filter: String,
    /// Everything else the client put in the content: its auth parameters.
    pub params: Map<String, Value>,
}

/// Parses one text frame. On error, the identity is returned when the frame
/// had a readable one, so that the error frame reaches the right socket.
pub fn parse_client(text: &str) -> Result<ClientFrame, (Option<String>, WireError)> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| (None, WireError::NotJson(e.to_string())))?;
    let Value::Object(mut object) = value else {
        return Err((None, WireError::NotObject));
    };
    let identity = match object.remove("identity") {
        Some(Value::String(s)) => s,
        _ => return Err((None, WireError::Missing("identity"))),
    };
    // A missing msg_type is data: there is nothing else it could mean.
    let msg_type = match object.remove("msg_type") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err((Some(identity), WireError::Missing("msg_type"))),
    };
    let content = object.remove("content");
    if msg_type == "connect" {
        let request = parse_connect(content);
        return Ok(ClientFrame::Connect { identity, request });
    }
    match content {
        Some(Value::String(content)) => Ok(ClientFrame::Data { identity, content }),
        _ => Err((Some(identity), WireError::Missing("content"))),
    }
}

/// The connect content is a JSON text; an object is accepted too, for
/// clients that do not double-encode.
fn parse_connect(content: Option<Value>) -> Result<ConnectRequest, WireError> {
    let mut params = match content {
        Some(Value::String(text)) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(WireError::BadConnect("not an object".into())),
            Err(e) => return Err(WireError::BadConnect(e.to_string())),
        },
        Some(Value::Object(map)) => map,
        _ => return Err(WireError::Missing("content")),
    };
    let endpoint = match params.remove("zmq_conn_string") {
        Some(Value::String(s)) => s,
        _ => return Err(WireError::NoEndpoint),
    };
    let number = match params.remove("socket_type") {
        Some(Value::Number(n)) => n.as_i64().ok_or(WireError::NoSocketType)?,
        _ => return Err(WireError::NoSocketType),
    };
    let kind = match number {
        ZMQ_SUB => SocketKind::Sub,
        ZMQ_REQ => SocketKind::Req,
        other => return Err(WireError::UnknownSocketType(other)),
    };
    let filter = match params.remove("msgfilter") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if kind == SocketKind::Sub => s,
        // The original JS always sends msgfilter, "" for REQ sockets.
        Some(Value::String(s)) if s.is_empty() => s,
        Some(Value::String(_)) => return Err(WireError::FilterOnReq),
        Some(_) => return Err(WireError::BadFilter),
    };
    Ok(ConnectRequest {
        endpoint,
        kind,
        filter,
        params,
    })
}

#[derive(Serialize)]
struct Out<'a> {
    identity: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg_type: Option<&'a str>,
    content: &'a str,
}

fn encode(identity: &str, msg_type: Option<&str>, content: &str) -> String {
    let out = Out {
        identity,
        msg_type,
        content,
    };
    serde_json::to_string(&out).expect("strings always serialize")
}

/// `{"identity", "msg_type": "connection_reply", "content": "{\"status\":\"success\"}"}`.
pub fn connection_ok(identity: &str) -> String {
    encode(
        identity,
        Some("connection_reply"),
        r#"{"status":"success"}"#,
    )
}

/// A refused connect: status `error` and the reason, as the original's
/// connection_reply plus an `error` text it lacked.
pub fn connection_error(identity: &str, error: &str) -> String {
    encode(identity, Some("connection_reply"), &error_content(error))
}

/// A data frame: `{"identity", "content"}`, no msg_type, as the original.
pub fn data(identity: &str, content: &str) -> String {
    encode(identity, None, content)
}

/// The error frame the original lacked: msg_type `error`, content
/// `{"status":"error","error":..}` like a refused connect.
pub fn error(identity: &str, error: &str) -> String {
    encode(identity, Some("error"), &error_content(error))
}

fn error_content(error: &str) -> String {
    serde_json::json!({"status": "error", "error": error}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_frames_parse() {
        let connect = r#"{"identity":"9F3A","msg_type":"connect","content":"{\"username\":\"hugo\",\"zmq_conn_string\":\"tcp://127.0.0.1:10001\",\"socket_type\":3,\"msgfilter\":\"\"}"}"#;
        let ClientFrame::Connect { identity, request } = parse_client(connect).unwrap() else {
            panic!("not a connect")
        };
        let request = request.unwrap();
        assert_eq!(identity, "9F3A");
        assert_eq!(request.endpoint, "tcp://127.0.0.1:10001");
        assert_eq!(request.kind, SocketKind::Req);
        assert_eq!(request.params["username"], "hugo");
        assert!(!request.params.contains_key("socket_type"));

        let data = r#"{"identity":"9F3A","msg_type":"userlevel","content":"hello"}"#;
        assert_eq!(
            parse_client(data).unwrap(),
            ClientFrame::Data {
                identity: "9F3A".into(),
                content: "hello".into()
            }
        );
    }

    #[test]
    fn bad_frames_keep_their_identity_when_they_have_one() {
        assert!(matches!(
            parse_client("{"),
            Err((None, WireError::NotJson(_)))
        ));
        assert_eq!(
            parse_client("[]").unwrap_err(),
            (None, WireError::NotObject)
        );
        let no_content = r#"{"identity":"A","msg_type":"user"}"#;
        assert_eq!(
            parse_client(no_content).unwrap_err(),
            (Some("A".into()), WireError::Missing("content"))
        );
        let rep = r#"{"identity":"A","msg_type":"connect","content":"{\"zmq_conn_string\":\"tcp://a:1\",\"socket_type\":4}"}"#;
        let Ok(ClientFrame::Connect { request, .. }) = parse_client(rep) else {
            panic!()
        };
        assert_eq!(request, Err(WireError::UnknownSocketType(ZMQ_REP)));
    }

    #[test]
    fn replies_match_the_originals_shape() {
        let ok: Value = serde_json::from_str(&connection_ok("X")).unwrap();
        assert_eq!(ok["msg_type"], "connection_reply");
        let content: Value = serde_json::from_str(ok["content"].as_str().unwrap()).unwrap();
        assert_eq!(content["status"], "success");
        let d: Value = serde_json::from_str(&data("X", "world")).unwrap();
        assert_eq!(d, serde_json::json!({"identity": "X", "content": "world"}));
    }
}
