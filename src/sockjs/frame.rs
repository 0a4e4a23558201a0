//! SockJS frames: what a session writes to its receivers, and how client
//! payloads (`["msg", ...]`) are read.
//!
//! Server frames are `o` (open), `h` (heartbeat), `a[...]` (messages) and
//! `c[code,"reason"]` (close). Strings are JSON-quoted by hand rather than with
//! serde_json for two reasons: the protocol requires escaping characters that
//! JSON allows raw (U+2028 and friends break some browsers' JavaScript parsers),
//! and the hot path should not build a JSON value per message.

use std::fmt::Write;

/// A frame from server to client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    Open,
    Heartbeat,
    Messages(&'a [String]),
    Close { code: u16, reason: &'a str },
}

impl Frame<'_> {
    /// Appends the frame's text, without any transport wrapping.
    pub fn write_to(&self, out: &mut String) {
        match self {
            Frame::Open => out.push('o'),
            Frame::Heartbeat => out.push('h'),
            Frame::Messages(messages) => {
                out.push_str("a[");
                for (i, m) in messages.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    quote_into(m, out);
                }
                out.push(']');
            }
            Frame::Close { code, reason } => {
                let _ = write!(out, "c[{code},");
                quote_into(reason, out);
                out.push(']');
            }
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        self.write_to(&mut s);
        s
    }
}

/// Whether the protocol wants `c` written as `\uXXXX` although JSON allows it raw.
fn must_escape(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x1f | 0x7f..=0x9f | 0xad | 0x200c..=0x200f | 0x2028..=0x202f
        | 0x2060..=0x206f | 0xfeff | 0xfff0..=0xffff)
}

/// Appends `s` as a JSON string literal, escaping what the SockJS protocol asks
/// for (lowercase hex, as sockjs-node writes it).
pub fn quote_into(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut plain_from = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            _ if must_escape(c) => Some(""),
            _ => None,
        };
        if let Some(short) = escape {
            out.push_str(&s[plain_from..i]);
            if short.is_empty() {
                let _ = write!(out, "\\u{:04x}", c as u32);
            } else {
                out.push_str(short);
            }
            plain_from = i + c.len_utf8();
        }
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

/// `s` as a JSON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::new();
    quote_into(s, &mut out);
    out
}

/// Why a client payload was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("Payload expected.")]
    Empty,
    #[error("Broken JSON encoding.")]
    BrokenJson,
    #[error("more than {0} messages in one request")]
    TooMany(usize),
}

/// Reads a client payload: a JSON array of strings, or (websocket only, as
/// sockjs-node accepts it) one JSON string; at most `max` messages. The count
/// is checked while parsing, so a 1 MiB body of 349,000 empty strings costs
/// nothing beyond the first `max` (the untagged serde enum used before
/// buffered all of them twice before anything could count them).
pub fn decode_messages(payload: &[u8], max: usize) -> Result<Vec<String>, PayloadError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(PayloadError::Empty);
    }
    let mut de = serde_json::Deserializer::from_slice(payload);
    let messages =
        serde::Deserializer::deserialize_any(&mut de, Messages { max }).map_err(|e| {
            match e.to_string().starts_with(TOO_MANY) {
                true => PayloadError::TooMany(max),
                false => PayloadError::BrokenJson,
            }
        })?;
    de.end().map_err(|_| PayloadError::BrokenJson)?;
    Ok(messages)
}

/// The custom error a [`Messages`] visitor stops with.
const TOO_MANY: &str = "too many messages";

/// Visits one string or an array of at most `max` strings.
struct Messages {
    max: usize,
}

impl<'de> serde::de::Visitor<'de> for Messages {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string or an array of strings")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<String>, E> {
        Ok(vec![v.to_string()])
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut messages = Vec::new();
        while let Some(m) = seq.next_element::<String>()? {
            if messages.len() == self.max {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            messages.push(m);
        }
        Ok(messages)
    }
}

/// The client payload inside a `jsonp_send` body: the form field `d` of a
/// form-encoded body (an empty or missing `d` is no payload), else the whole body.
pub fn jsonp_send_payload(body: &[u8], is_form: bool) -> Result<Vec<u8>, PayloadError> {
    if !is_form {
        return Ok(body.to_vec());
    }
    let form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_bytes(body).unwrap_or_default();
    match form.get("d").filter(|d| !d.is_empty()) {
        Some(d) => Ok(d.clone().into_bytes()),
        None => Err(PayloadError::Empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_refused_as_soon_as_it_holds_more_than_max_messages() {
        assert_eq!(decode_messages(br#"["","",""]"#, 3).unwrap().len(), 3);
        assert_eq!(
            decode_messages(br#"["","","",""]"#, 3),
            Err(PayloadError::TooMany(3))
        );
        // Counted before the rest is even parsed: broken JSON after the
        // limit is still "too many".
        assert_eq!(
            decode_messages(br#"["","","","",x"#, 3),
            Err(PayloadError::TooMany(3))
        );
    }

    #[test]
    fn frames_are_written_as_the_protocol_spells_them() {
        assert_eq!(Frame::Open.to_text(), "o");
        assert_eq!(Frame::Heartbeat.to_text(), "h");
        let msgs = vec!["a".to_string(), "b\"c".to_string()];
        assert_eq!(Frame::Messages(&msgs).to_text(), r#"a["a","b\"c"]"#);
        assert_eq!(
            Frame::Close {
                code: 3000,
                reason: "Go away!"
            }
            .to_text(),
            r#"c[3000,"Go away!"]"#
        );
    }

    #[test]
    fn control_characters_use_short_escapes_where_json_has_them() {
        assert_eq!(quote("  \u{0}\n\r "), r#""  \u0000\n\r ""#);
        assert_eq!(quote("\\/"), r#""\\/""#);
    }

    #[test]
    fn characters_that_break_javascript_parsers_are_escaped_in_lowercase_hex() {
        assert_eq!(
            quote("\u{2028}\u{2029}\u{200c}\u{206f}\u{fff0}\u{ffff}"),
            r#""\u2028\u2029\u200c\u206f\ufff0\uffff""#
        );
        assert_eq!(quote("é中文😀"), "\"é中文😀\"");
    }

    #[test]
    fn escaped_text_reads_back_as_the_original() {
        let all: String = (0u32..0x11000).filter_map(char::from_u32).collect();
        let back: String = serde_json::from_str(&quote(&all)).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn jsonp_send_takes_the_form_field_d_or_the_whole_plain_body() {
        assert_eq!(
            jsonp_send_payload(b"d=%5B%22a%22%5D", true).unwrap(),
            br#"["a"]"#
        );
        assert_eq!(jsonp_send_payload(b"d=", true), Err(PayloadError::Empty));
        assert_eq!(jsonp_send_payload(b"%zz", true), Err(PayloadError::Empty));
        assert_eq!(jsonp_send_payload(b"d=x", false).unwrap(), b"d=x");
    }

    #[test]
    fn payloads_are_arrays_of_strings_or_one_string() {
        assert_eq!(
            decode_messages(br#"["a","b"]"#, 10).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(decode_messages(br#""a""#, 10).unwrap(), vec!["a"]);
        assert_eq!(decode_messages(b"[]", 10).unwrap(), Vec::<String>::new());
        assert_eq!(decode_messages(b"", 10), Err(PayloadError::Empty));
        assert_eq!(
            decode_messages(br#"["a"#, 10),
            Err(PayloadError::BrokenJson)
        );
        assert_eq!(decode_messages(b"[1]", 10), Err(PayloadError::BrokenJson));
        assert_eq!(
            decode_messages(br#"["a"] x"#, 10),
            Err(PayloadError::BrokenJson)
        );
        assert_eq!(
            decode_messages(br#"{"a":1}"#, 10),
            Err(PayloadError::BrokenJson)
        );
    }
}
