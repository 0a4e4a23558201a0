//! ZeroMQ certificate files and Z85 keys (`curve::cert`), as `config`
//! reads them, on arbitrary text. Beyond "never panics": a key that parses
//! prints back to the same text and parses again to the same key, and a
//! certificate that parses comes back the same from what `keygen` would
//! write for it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjsproxy::backend::zmtp::curve::cert::{
    parse, parse_key, public_text, secret_text, z85_key,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = parse_key(text, "key") {
        assert_eq!(z85_key(&key), text);
    }
    if let Ok(cert) = parse(text) {
        let again = parse(&public_text(&cert.public, "now")).expect("our public text");
        assert_eq!(again.public, cert.public);
        assert!(again.secret.is_none());
        if let Some(secret) = &cert.secret {
            let again = parse(&secret_text(secret, "now")).expect("our secret text");
            assert_eq!(again.public, cert.public);
            assert_eq!(again.secret.map(|s| s.to_bytes()), Some(secret.to_bytes()));
        }
    }
});
