//! The frame encoder's escaper on any text: `quote` gives a JSON string
//! literal that reads back as the input, with none of the raw characters
//! SockJS wants escaped; an `a[...]` frame reads back as its messages.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjsproxy::sockjs::frame::{Frame, quote};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let quoted = quote(&text);
    let back: String = serde_json::from_str(&quoted).expect("quote gives JSON");
    assert_eq!(back, text);
    assert!(
        !quoted
            .chars()
            .any(|c| matches!(c as u32, 0..=0x1f | 0x7f..=0x9f | 0x2028 | 0x2029)),
        "raw control or line separator in {quoted:?}"
    );
    // The input split into messages at NUL bytes, framed.
    let messages: Vec<String> = text.split('\0').map(str::to_string).collect();
    let frame = Frame::Messages(&messages).to_text();
    let array = frame.strip_prefix('a').expect("a message frame starts with a");
    let back: Vec<String> = serde_json::from_str(array).expect("the frame is a JSON array");
    assert_eq!(back, messages);
});
