//! The ZMTP greeting check (`wire::check_greeting`) on arbitrary bytes, as
//! the handshake runs it: on every prefix as it arrives, for both
//! mechanisms. Beyond "never panics": a prefix refused stays refused as
//! more bytes come (the handshake turns a peer away on the first refusal),
//! and a whole greeting that passes is ZMTP 3 with our mechanism.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjsproxy::backend::zmtp::wire::{GREETING_LEN, Mechanism, check_greeting, greeting};

fuzz_target!(|data: &[u8]| {
    for ours in [Mechanism::Null, Mechanism::Curve] {
        let mut refused = false;
        for end in 0..=data.len().min(GREETING_LEN) {
            let verdict = check_greeting(&data[..end], ours);
            assert!(
                !refused || verdict.is_err(),
                "a refused prefix passed with {end} bytes"
            );
            refused = verdict.is_err();
        }
        if data.len() >= GREETING_LEN && !refused {
            let g = &data[..GREETING_LEN];
            assert_eq!(g[0], 0xFF);
            assert_eq!(g[9] & 1, 1);
            assert!(g[10] >= 3, "ZMTP 3 or later");
            let name = ours.name().as_bytes();
            assert_eq!(&g[12..12 + name.len()], name);
            assert!(g[12 + name.len()..32].first().is_none_or(|&b| b == 0));
        }
        // Longer input than a greeting is never read as one, but must not
        // trouble the check either.
        let _ = check_greeting(data, ours);
        // Ours, whatever comes after it, passes.
        assert!(check_greeting(&greeting(ours), ours).is_ok());
    }
});
