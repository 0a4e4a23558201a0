//! `xhr_send` and `jsonp_send` bodies: the first byte picks plain or
//! form-encoded, the rest is the body. Taking the payload out of the body
//! and decoding it never panics; a plain body is its own payload, and a form
//! body's `d` decodes as the same messages sent as a plain body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjsproxy::sockjs::frame::{decode_messages, jsonp_send_payload};

const MAX: usize = 10_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let is_form = mode & 1 == 1;
    match jsonp_send_payload(body, is_form) {
        Ok(payload) => {
            let decoded = decode_messages(&payload, MAX);
            if is_form {
                let plain = jsonp_send_payload(&payload, false).expect("a plain body");
                assert_eq!(decode_messages(&plain, MAX), decoded);
            } else {
                assert_eq!(payload, body);
            }
        }
        Err(_) => assert!(is_form, "a plain body always has a payload"),
    }
});
