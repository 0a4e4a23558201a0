//! A client's payload (websocket message, `xhr_send` or `jsonp_send` body)
//! as the proxy reads it, on any bytes: the first byte is the message limit
//! (at least 1),
//! the second the size of the chunks the body streams in, the rest the body.
//!
//! * [`decode_messages`] never panics; what it accepts is what serde_json
//!   reads as one string or an array of strings, no more than the limit;
//!   it refuses with `TooMany` only an array with more strings than that.
//! * [`MessageCounter`], fed the body in chunks, agrees: on an array of
//!   strings it refuses exactly when the decoder says `TooMany`, and it
//!   never refuses a body the decoder accepts.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjsproxy::sockjs::frame::{MessageCounter, PayloadError, decode_messages};

fuzz_target!(|data: &[u8]| {
    let [max, chunk, body @ ..] = data else {
        return;
    };
    // The proxy's limit is at least 1 (config checks it).
    let (max, chunk) = ((*max as usize).max(1), (*chunk as usize).max(1));
    let decoded = decode_messages(body, max);
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let strings: Option<Vec<String>> = match &json {
        Some(serde_json::Value::String(s)) => Some(vec![s.clone()]),
        Some(v @ serde_json::Value::Array(_)) => serde_json::from_value(v.clone()).ok(),
        _ => None,
    };
    let array = matches!(json, Some(serde_json::Value::Array(_)));
    match &decoded {
        Ok(messages) => {
            assert!(messages.len() <= max);
            assert_eq!(Some(messages), strings.as_ref(), "accepted: {body:?}");
        }
        Err(PayloadError::Empty) => assert!(body.iter().all(u8::is_ascii_whitespace)),
        Err(PayloadError::TooMany(n)) => {
            assert_eq!(*n, max);
            if let Some(s) = &strings {
                assert!(array && s.len() > max);
            }
        }
        Err(PayloadError::BrokenJson) => assert!(strings.is_none(), "refused: {body:?}"),
    }
    let mut counter = MessageCounter::new(max);
    let counted = body.chunks(chunk).try_for_each(|c| counter.feed(c));
    if decoded.is_ok() {
        assert!(counted.is_ok(), "the counter refused what decodes: {body:?}");
    }
    if array && let Some(s) = &strings {
        assert_eq!(counted.is_err(), s.len() > max, "{body:?}");
    }
});
