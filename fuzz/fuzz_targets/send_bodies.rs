//! xhr_send and jsonp_send bodies: the first byte picks plain or form-encoded,
//! the rest is the body. Reading the payload out of the body and decoding it
//! never panics, and a form body whose `d` decodes gives the same messages as
//! that `d` sent as a plain body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjsproxy::sockjs::frame::{decode_messages, jsonp_send_payload};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let is_form = mode & 1 == 1;
    match jsonp_send_payload(body, is_form) {
        Ok(payload) => {
            let decoded = decode_messages(&payload);
            if !is_form {
                assert_eq!(payload, body);
            } else {
                // The same payload as a plain body decodes alike.
                let plain = jsonp_send_payload(&payload, false).expect("plain body");
                assert_eq!(decode_messages(&plain), decoded);
            }
        }
        Err(_) => assert!(is_form, "a plain body always has a payload"),
    }
});
