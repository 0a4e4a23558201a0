//! The frame encoder's escaper: for any string, `quote` gives a JSON string
//! literal that reads back as the input, with no raw character the protocol
//! wants escaped; a whole `a[...]` frame reads back as its messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjsproxy::sockjs::frame::{Frame, quote};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let quoted = quote(&text);
    let back: String = serde_json::from_str(&quoted).expect("quote output is JSON");
    assert_eq!(back, text);
    assert!(
        !quoted
            .chars()
            .any(|c| matches!(c as u32, 0..=0x1f | 0x7f..=0x9f | 0x2028 | 0x2029)),
        "raw control or line separator in {quoted:?}"
    );
    // Split the input into messages at NUL bytes and frame them.
    let messages: Vec<String> = text.split('\0').map(str::to_string).collect();
    let frame = Frame::Messages(&messages).to_text();
    let array = frame
        .strip_prefix('a')
        .expect("message frame starts with a");
    let back: Vec<String> = serde_json::from_str(array).expect("frame is a JSON array");
    assert_eq!(back, messages);
});
