//! The SockJS client-payload decoder on arbitrary bytes: it never panics, and
//! whatever it accepts is what serde_json reads as an array of strings or one
//! string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjsproxy::sockjs::frame::{PayloadError, decode_messages};

fuzz_target!(|data: &[u8]| {
    match decode_messages(data) {
        Ok(messages) => {
            let value: serde_json::Value =
                serde_json::from_slice(data).expect("accepted payload is JSON");
            let expected: Vec<String> = match value {
                serde_json::Value::String(s) => vec![s],
                other => serde_json::from_value(other).expect("accepted payload is strings"),
            };
            assert_eq!(messages, expected);
        }
        Err(PayloadError::Empty) => assert!(data.iter().all(u8::is_ascii_whitespace)),
        Err(PayloadError::BrokenJson) => {}
    }
});
