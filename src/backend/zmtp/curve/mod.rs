//! CURVE (RFC 26, CurveZMQ) as a ZMTP server: backends prove who they are
//! with a long-term key pair, and everything after the handshake is boxed
//! (X25519, XSalsa20, Poly1305), so that a backend on another host is safe
//! on a network the proxy does not trust. The proxy is always the server
//! (`as-server` 1 in its greeting) on both of its bound sockets; backends
//! are clients and need the proxy's public key.
//!
//! The handshake, after the greetings (client → server, server → client):
//!
//! * HELLO (200 bytes): the client's transient key C' and a box of 64 zero
//!   bytes from C' to our long-term key S: only a client that knows S can
//!   make one, so a backend given the wrong server key fails here.
//! * WELCOME (168 bytes): our transient key S' and a *cookie*, boxed to C'.
//!   The cookie is C' and our transient secret s' in a secretbox under a key
//!   of this connection only.
//! * INITIATE: the cookie back, and boxed from C' to S' the client's
//!   long-term key C, its *vouch* (C' and S boxed from C to S': proof that
//!   the holder of C speaks through C'), and its metadata (Socket-Type).
//!   With a client list, a C not in it is refused here, with ZAP's ERROR
//!   "400" as libzmq sends.
//! * READY: our metadata, boxed from S' to C'.
//!
//! Then every frame travels in a MESSAGE box ([`session`]). Nonces: each
//! box's nonce is a 16-byte prefix naming its command and direction and an
//! 8-byte counter (or, for WELCOME, the cookie and the vouch, 16 random
//! bytes after an 8-byte prefix), so no nonce repeats under one key.
//!
//! [`Handshake`] is a sans-IO state machine: it takes the peer's command
//! bodies and writes ours to a buffer; `super::handshake` does the I/O.
//! Keys come from certificate files ([`cert`]) that `config` reads; the
//! primitives are RustCrypto's (see [`boxes`]).
//!
//! Cost: a few X25519 key agreements and boxes per connection; per frame,
//! one XSalsa20Poly1305 box (33 more bytes on the wire) and a copy, so a
//! round trip (3 frames out, 3 in) is six boxes for the proxy. A small box
//! is mostly fixed cost: poly1305's AVX2 backend tripled it (it prepares
//! four powers of each box's one-time key), so the build selects its
//! portable backend (`.cargo/config.toml`); XSalsa20's subkey for a
//! connection's MESSAGE nonces is derived once ([`boxes::PrefixBox`]), 20 %
//! off each box. `bench --curve` measures CURVE off and on (about a fifth
//! of the throughput of the cheapest path); the figures are in README.rst,
//! "Securing the backend link"; `curve_cost_per_round_trip` in `tests.rs`
//! times the boxes alone (1.9 µs per round trip).

mod boxes;
pub mod cert;
pub mod client;
pub mod session;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::BytesMut;
use crypto_box::aead::{KeyInit, OsRng, rand_core::RngCore};
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use crypto_secretbox::XSalsa20Poly1305;

use super::wire::{self, SocketType};
use boxes::{nonce, open, seal};
pub use cert::KEY_LEN;
pub use session::Session;

/// The server's side of CURVE for one service: its long-term key pair and
/// the clients it takes.
pub struct Keys {
    pub secret: SecretKey,
    pub public: PublicKey,
    /// Long-term public keys of the backends that may connect; `None`:
    /// any backend that knows our public key.
    pub clients: Option<HashSet<[u8; KEY_LEN]>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("public", &cert::z85_key(self.public.as_bytes()))
            .field("clients", &self.clients.as_ref().map(HashSet::len))
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys from our secret key, taking the clients of `clients`.
    pub fn new(secret: SecretKey, clients: Option<HashSet<[u8; KEY_LEN]>>) -> Keys {
        Keys {
            public: secret.public_key(),
            secret,
            clients,
        }
    }
}

/// Why a CURVE peer was refused or cut off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurveError {
    #[error("malformed {0} command")]
    Malformed(&'static str),
    #[error("{0} command where the CURVE handshake expects {1}")]
    Unexpected(String, &'static str),
    #[error("HELLO does not open with our key: the backend has the wrong server key")]
    WrongServerKey,
    #[error("{0} box does not open: forged or tampered with")]
    BadBox(&'static str),
    #[error("its vouch does not name its transient key and our key")]
    BadVouch,
    #[error("client key {0} has no certificate in curve_clients")]
    UnknownClient(String),
    #[error("MESSAGE counter {counter} after {last}: replayed or reordered")]
    Replayed { counter: u64, last: u64 },
    #[error("a frame that is not a CURVE MESSAGE after the handshake")]
    NotMessage,
    #[error("MESSAGE flags {0:#04x} are not valid")]
    BadFlags(u8),
    #[error("this connection has used all its nonces")]
    NoncesSpent,
}

/// What the handshake tells when done.
#[derive(Debug)]
pub struct Done {
    pub session: Session,
    /// The client's Socket-Type, if its metadata had one.
    pub socket_type: Option<Vec<u8>>,
    /// The client's long-term public key (Z85), for logs.
    pub client: String,
}

/// The server's handshake on one connection.
pub struct Handshake {
    keys: Arc<Keys>,
    ours: SocketType,
    state: State,
}

enum State {
    Hello,
    Initiate {
        /// The client's transient public key C'.
        client: PublicKey,
        /// Our transient secret s' (S' was in WELCOME).
        transient: SecretKey,
        /// What the cookie must hold, and its key.
        cookie_key: XSalsa20Poly1305,
    },
    Over,
}

const HELLO_LEN: usize = 200;
const COOKIE_LEN: usize = 16 + 80;
/// `\x08INITIATE`, the cookie, the counter, then a box of at least C, the
/// vouch nonce and the vouch box.
const INITIATE_MIN: usize = 9 + COOKIE_LEN + 8 + 16 + 32 + 16 + 80;

impl Handshake {
    pub fn new(keys: Arc<Keys>, ours: SocketType) -> Handshake {
        Handshake {
            keys,
            ours,
            state: State::Hello,
        }
    }

    /// Takes the body of a command the peer sent; appends our answer to
    /// `out` (in ZMTP command frames). `Some` when the handshake is over.
    pub fn on_command(
        &mut self,
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<Option<Done>, CurveError> {
        match std::mem::replace(&mut self.state, State::Over) {
            State::Hello => {
                let welcome = self.hello(body)?;
                out.extend_from_slice(&welcome.0);
                self.state = welcome.1;
                Ok(None)
            }
            State::Initiate {
                client,
                transient,
                cookie_key,
            } => self
                .initiate(body, &client, &transient, &cookie_key, out)
                .map(Some),
            State::Over => Err(CurveError::Unexpected(name(body), "nothing")),
        }
    }

    /// Checks HELLO; returns WELCOME and the next state.
    fn hello(&self, body: &[u8]) -> Result<(BytesMut, State), CurveError> {
        if !body.starts_with(b"\x05HELLO") {
            return Err(CurveError::Unexpected(name(body), "HELLO"));
        }
        // Version 1.0; the padding makes HELLO as long as WELCOME, so that
        // a server never answers with more than it was sent.
        if body.len() != HELLO_LEN || body[6..8] != [1, 0] {
            return Err(CurveError::Malformed("HELLO"));
        }
        let client = PublicKey::from(<[u8; 32]>::try_from(&body[80..112]).expect("32 bytes"));
        let hello_box = SalsaBox::new(&client, &self.keys.secret);
        let n = nonce(b"CurveZMQHELLO---", &body[112..120]);
        open(&hello_box, &n, &body[120..200]).ok_or(CurveError::WrongServerKey)?;

        let transient = SecretKey::generate(&mut OsRng);
        let cookie_key = XSalsa20Poly1305::new(&XSalsa20Poly1305::generate_key(&mut OsRng));
        let mut cookie_nonce = [0u8; 16];
        OsRng.fill_bytes(&mut cookie_nonce);
        let mut cookie_plain = [0u8; 64];
        cookie_plain[..32].copy_from_slice(client.as_bytes());
        cookie_plain[32..].copy_from_slice(&transient.to_bytes());
        let cookie_box = seal(
            &cookie_key,
            &nonce(b"COOKIE--", &cookie_nonce),
            &cookie_plain,
        );

        let mut welcome_plain = Vec::with_capacity(32 + COOKIE_LEN);
        welcome_plain.extend_from_slice(transient.public_key().as_bytes());
        welcome_plain.extend_from_slice(&cookie_nonce);
        welcome_plain.extend_from_slice(&cookie_box);
        let mut welcome_nonce = [0u8; 16];
        OsRng.fill_bytes(&mut welcome_nonce);
        let sealed = seal(
            &hello_box,
            &nonce(b"WELCOME-", &welcome_nonce),
            &welcome_plain,
        );
        let mut data = Vec::with_capacity(16 + sealed.len());
        data.extend_from_slice(&welcome_nonce);
        data.extend_from_slice(&sealed);
        let mut out = BytesMut::new();
        wire::encode_command("WELCOME", &data, &mut out);
        Ok((
            out,
            State::Initiate {
                client,
                transient,
                cookie_key,
            },
        ))
    }

    /// Checks INITIATE (cookie, vouch, client key); appends READY.
    fn initiate(
        &self,
        body: &[u8],
        client: &PublicKey,
        transient: &SecretKey,
        cookie_key: &XSalsa20Poly1305,
        out: &mut BytesMut,
    ) -> Result<Done, CurveError> {
        if !body.starts_with(b"\x08INITIATE") {
            return Err(CurveError::Unexpected(name(body), "INITIATE"));
        }
        if body.len() < INITIATE_MIN {
            return Err(CurveError::Malformed("INITIATE"));
        }
        let cookie = &body[9..9 + COOKIE_LEN];
        let cookie_plain = open(
            cookie_key,
            &nonce(b"COOKIE--", &cookie[..16]),
            &cookie[16..],
        )
        .ok_or(CurveError::BadBox("cookie"))?;
        // Our own state says the same; the cookie must agree with it.
        if cookie_plain[..32] != client.as_bytes()[..] || cookie_plain[32..] != transient.to_bytes()
        {
            return Err(CurveError::BadBox("cookie"));
        }
        let counter_bytes = &body[105..113];
        let counter = u64::from_be_bytes(counter_bytes.try_into().expect("8 bytes"));
        let session_box = SalsaBox::new(client, transient);
        let plain = open(
            &session_box,
            &nonce(b"CurveZMQINITIATE", counter_bytes),
            &body[113..],
        )
        .ok_or(CurveError::BadBox("INITIATE"))?;
        let long_term = PublicKey::from(<[u8; 32]>::try_from(&plain[..32]).expect("32 bytes"));
        let vouch_box = SalsaBox::new(&long_term, transient);
        let vouch = open(
            &vouch_box,
            &nonce(b"VOUCH---", &plain[32..48]),
            &plain[48..128],
        )
        .ok_or(CurveError::BadBox("vouch"))?;
        if vouch[..32] != client.as_bytes()[..] || vouch[32..] != self.keys.public.as_bytes()[..] {
            return Err(CurveError::BadVouch);
        }
        let client_z85 = cert::z85_key(long_term.as_bytes());
        if let Some(allowed) = &self.keys.clients
            && !allowed.contains(long_term.as_bytes())
        {
            // As libzmq answers a ZAP denial: ERROR with status code 400.
            wire::encode_command("ERROR", b"\x03400", out);
            return Err(CurveError::UnknownClient(client_z85));
        }
        let socket_type = wire::property(&plain[128..], b"Socket-Type")
            .map_err(|_| CurveError::Malformed("INITIATE metadata"))?
            .map(<[u8]>::to_vec);

        let ready_counter = 1u64;
        let metadata = wire::socket_type_property(self.ours);
        let sealed = seal(
            &session_box,
            &nonce(b"CurveZMQREADY---", &ready_counter.to_be_bytes()),
            &metadata,
        );
        let mut data = Vec::with_capacity(8 + sealed.len());
        data.extend_from_slice(&ready_counter.to_be_bytes());
        data.extend_from_slice(&sealed);
        wire::encode_command("READY", &data, out);
        Ok(Done {
            session: Session::server(client, transient, ready_counter + 1, counter),
            socket_type,
            client: client_z85,
        })
    }
}

/// A command's name, for errors.
fn name(body: &[u8]) -> String {
    match body.split_first() {
        Some((&n, rest)) if rest.len() >= n as usize => {
            String::from_utf8_lossy(&rest[..n as usize]).into_owned()
        }
        _ => "a malformed".into(),
    }
}
