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

/// Counts a client payload's messages while its body streams in, so that a
/// body holding more than `max` is refused at message `max + 1` without the
/// rest being read. A 1 MiB `xhr_send` body of 349,000 empty strings, posted
/// in a loop, cost the proxy most of a core when each was read whole before
/// [`decode_messages`] refused it: reading, copying and faulting in 1 MiB per
/// request, then parsing 10,000 strings (issue 11, kind e of the bench's
/// `--hostile`). Stopping after the first ~30 KB costs a thirtieth of that.
///
/// It counts the strings opened directly inside the top-level array, one
/// byte at a time and never looking back (a body is scanned once, whatever
/// its chunks); it does not validate: [`decode_messages`] does that once the
/// body is whole, and counts again.
#[derive(Debug)]
pub struct MessageCounter {
    max: usize,
    count: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl MessageCounter {
    pub fn new(max: usize) -> Self {
        MessageCounter {
            max,
            count: 0,
            depth: 0,
            in_string: false,
            escaped: false,
        }
    }

    /// The next bytes of the body; `TooMany` once it has passed `max`.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), PayloadError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    rest = &rest[1..];
                    continue;
                }
                // Skip the string's content up to its next quote or escape.
                let Some(at) = rest.iter().position(|&b| b == b'"' || b == b'\\') else {
                    return Ok(());
                };
                match rest[at] {
                    b'"' => self.in_string = false,
                    _ => self.escaped = true,
                }
                rest = &rest[at + 1..];
                continue;
            }
            match rest[0] {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 {
                        self.count += 1;
                        if self.count > self.max {
                            return Err(PayloadError::TooMany(self.max));
                        }
                    }
                }
                b'[' | b'{' => self.depth += 1,
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
            rest = &rest[1..];
        }
        Ok(())
    }
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

    /// Feeds `body` in chunks of `size` bytes.
    fn count_in_chunks(body: &[u8], max: usize, size: usize) -> Result<(), PayloadError> {
        let mut counter = MessageCounter::new(max);
        body.chunks(size).try_for_each(|c| counter.feed(c))
    }

    #[test]
    fn a_streamed_body_is_refused_at_message_max_plus_one_whatever_its_chunks() {
        let four = br#"["a","b\"c","d\\","[e]"]"#;
        for size in 1..=four.len() {
            assert_eq!(count_in_chunks(four, 4, size), Ok(()), "chunks of {size}");
            assert_eq!(
                count_in_chunks(four, 3, size),
                Err(PayloadError::TooMany(3)),
                "chunks of {size}"
            );
        }
        // The refusal comes as the third message opens, before the rest.
        let mut counter = MessageCounter::new(2);
        assert_eq!(counter.feed(b"[\"a\",\"b\""), Ok(()));
        assert_eq!(counter.feed(b","), Ok(()));
        assert_eq!(counter.feed(b"\""), Err(PayloadError::TooMany(2)));
    }

    #[test]
    fn only_strings_directly_inside_the_array_count_as_messages() {
        // One string alone, strings in nested values, and quotes, brackets
        // and escapes inside strings are not messages of their own.
        assert_eq!(count_in_chunks(br#""a","b","c""#, 0, 3), Ok(()));
        assert_eq!(
            count_in_chunks(br#"[{"k":"v","w":["x","y"]}]"#, 0, 5),
            Ok(())
        );
        assert_eq!(count_in_chunks(br#"["\"],[\"\\"]"#, 1, 2), Ok(()));
        assert_eq!(
            count_in_chunks(br#"["\"],[\"\\",""]"#, 1, 2),
            Err(PayloadError::TooMany(1))
        );
    }

    #[test]
    fn the_counter_agrees_with_the_decoder_on_valid_payloads() {
        let body: Vec<u8> =
            serde_json::to_vec(&(0..50).map(|i| "\"[]\\".repeat(i)).collect::<Vec<_>>()).unwrap();
        for max in [0, 1, 49, 50, 51] {
            let decoded = decode_messages(&body, max).map(|_| ());
            assert_eq!(count_in_chunks(&body, max, 7), decoded, "max {max}");
        }
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
