//! The parser of backends' commands (`message`, `disconnect`,
//! `disconnectall`) on any multipart message: the input is split into parts
//! at 0xff bytes (never in UTF-8, so the split hides nothing the parser must
//! see). It never panics, refuses any part count but 3, and what it accepts
//! reads back as the same command.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjsproxy::backend::event::{Command, CommandError};

fuzz_target!(|data: &[u8]| {
    let parts: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    match Command::parse(&parts) {
        Ok(command) => {
            assert_eq!(parts.len(), 3);
            let again = match &command {
                Command::Message(key, text) => {
                    let key = key.to_string();
                    Command::parse(&[&b"message"[..], key.as_bytes(), text.as_bytes()])
                }
                Command::Disconnect(key) => {
                    let key = key.to_string();
                    Command::parse(&[&b"disconnect"[..], key.as_bytes(), b""])
                }
                Command::DisconnectAll => Command::parse(&[&b"disconnectall"[..], b"", b""]),
            };
            assert_eq!(again.as_ref(), Ok(&command));
        }
        Err(CommandError::PartCount(n)) => assert_eq!(n, parts.len()),
        Err(_) => assert_eq!(parts.len(), 3),
    }
});
