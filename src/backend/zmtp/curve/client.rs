//! The client's side of the CURVE handshake (RFC 26), as a backend's libzmq
//! plays it against the proxy: HELLO, then WELCOME opened, INITIATE with
//! the vouch, READY opened into a [`Session`]. Sans-IO like the server's
//! [`Handshake`](super::Handshake): it makes and reads command bodies only.
//!
//! The proxy itself is never a CURVE client (its backends connect to it).
//! This is the other end for what must play one without libzmq, whose
//! bundled copy has no CURVE: the unit tests of the server's handshake,
//! the fuzz targets that need a valid handshake to reach the MESSAGE
//! parser (`tests/fuzz/`), and the benchmark's CURVE echo backend
//! (`examples/bench/zmtp_echo.rs`). Same primitives as the server
//! ([`super::boxes`]); every nonce is a counter or random.

use crypto_box::aead::{OsRng, rand_core::RngCore};
use crypto_box::{PublicKey, SalsaBox, SecretKey};

use super::boxes::{nonce, open, seal};
use super::{CurveError, KEY_LEN, Session, name};
use crate::backend::zmtp::wire::{self, SocketType};

/// The counters of HELLO and INITIATE; the first MESSAGE takes the next.
const HELLO_COUNTER: u64 = 1;
const INITIATE_COUNTER: u64 = 2;

/// One client handshake: our long-term key pair, a transient one for
/// this connection, and the server's long-term public key.
pub struct Client {
    long: SecretKey,
    transient: SecretKey,
    server: PublicKey,
    /// The server's transient key S' and its cookie, from WELCOME.
    welcome: Option<(PublicKey, Vec<u8>)>,
}

impl Client {
    /// A client with the long-term secret key `long`, for the server whose
    /// long-term public key is `server`.
    pub fn new(long: SecretKey, server: PublicKey) -> Client {
        Client {
            long,
            transient: SecretKey::generate(&mut OsRng),
            server,
            welcome: None,
        }
    }

    /// Our long-term public key, as the server's client list holds it.
    pub fn public(&self) -> PublicKey {
        self.long.public_key()
    }

    /// The HELLO command's body (200 bytes): version 1.0, the padding, C',
    /// and a box of 64 zero bytes from C' to S.
    pub fn hello(&self) -> Vec<u8> {
        let mut body = b"\x05HELLO\x01\x00".to_vec();
        body.extend_from_slice(&[0; 72]);
        body.extend_from_slice(self.transient.public_key().as_bytes());
        body.extend_from_slice(&HELLO_COUNTER.to_be_bytes());
        let b = SalsaBox::new(&self.server, &self.transient);
        body.extend_from_slice(&seal(
            &b,
            &nonce(b"CurveZMQHELLO---", &HELLO_COUNTER.to_be_bytes()),
            &[0; 64],
        ));
        body
    }

    /// Reads WELCOME's body: the server's transient key and cookie.
    pub fn welcome(&mut self, body: &[u8]) -> Result<(), CurveError> {
        if !body.starts_with(b"\x07WELCOME") {
            return Err(CurveError::Unexpected(name(body), "WELCOME"));
        }
        if body.len() != 8 + 16 + 16 + KEY_LEN + 96 {
            return Err(CurveError::Malformed("WELCOME"));
        }
        let b = SalsaBox::new(&self.server, &self.transient);
        let plain = open(&b, &nonce(b"WELCOME-", &body[8..24]), &body[24..])
            .ok_or(CurveError::BadBox("WELCOME"))?;
        let s_prime = PublicKey::from(<[u8; KEY_LEN]>::try_from(&plain[..KEY_LEN]).expect("32"));
        self.welcome = Some((s_prime, plain[KEY_LEN..].to_vec()));
        Ok(())
    }

    /// The INITIATE command's body, announcing `ours` as our socket type
    /// (the peer of the server's), after [`Client::welcome`].
    pub fn initiate(&self, ours: SocketType) -> Result<Vec<u8>, CurveError> {
        self.initiate_with(&wire::socket_type_property(ours), &self.server)
    }

    /// INITIATE with `metadata` (a property list) and a vouch that names
    /// `server` as the server's key: the real one in [`Client::initiate`];
    /// others to see the server refuse them.
    pub fn initiate_with(
        &self,
        metadata: &[u8],
        server: &PublicKey,
    ) -> Result<Vec<u8>, CurveError> {
        let (s_prime, cookie) = self
            .welcome
            .as_ref()
            .ok_or(CurveError::Unexpected("no WELCOME".into(), "WELCOME"))?;
        let mut vouch_plain = self.transient.public_key().as_bytes().to_vec();
        vouch_plain.extend_from_slice(server.as_bytes());
        let mut vouch_nonce = [0u8; 16];
        OsRng.fill_bytes(&mut vouch_nonce);
        let vouch = seal(
            &SalsaBox::new(s_prime, &self.long),
            &nonce(b"VOUCH---", &vouch_nonce),
            &vouch_plain,
        );
        let mut plain = self.long.public_key().as_bytes().to_vec();
        plain.extend_from_slice(&vouch_nonce);
        plain.extend_from_slice(&vouch);
        plain.extend_from_slice(metadata);
        let mut body = b"\x08INITIATE".to_vec();
        body.extend_from_slice(cookie);
        body.extend_from_slice(&INITIATE_COUNTER.to_be_bytes());
        body.extend_from_slice(&seal(
            &SalsaBox::new(s_prime, &self.transient),
            &nonce(b"CurveZMQINITIATE", &INITIATE_COUNTER.to_be_bytes()),
            &plain,
        ));
        Ok(body)
    }

    /// Opens READY's body: the session from here on, and the server's
    /// metadata (its property list).
    pub fn ready(&self, body: &[u8]) -> Result<(Session, Vec<u8>), CurveError> {
        let (s_prime, _) = self
            .welcome
            .as_ref()
            .ok_or(CurveError::Unexpected(name(body), "WELCOME"))?;
        if !body.starts_with(b"\x05READY") {
            return Err(CurveError::Unexpected(name(body), "READY"));
        }
        if body.len() < 6 + 8 + 16 {
            return Err(CurveError::Malformed("READY"));
        }
        let b = SalsaBox::new(s_prime, &self.transient);
        let counter = u64::from_be_bytes(body[6..14].try_into().expect("8 bytes"));
        let metadata = open(&b, &nonce(b"CurveZMQREADY---", &body[6..14]), &body[14..])
            .ok_or(CurveError::BadBox("READY"))?;
        Ok((
            Session::client(s_prime, &self.transient, INITIATE_COUNTER + 1, counter),
            metadata,
        ))
    }
}
