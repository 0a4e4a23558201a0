//! NaCl boxes as CurveZMQ lays them out: the 16-byte Poly1305 tag first,
//! then the XSalsa20 ciphertext (libsodium's `crypto_box` with its zero
//! padding stripped), under a 24-byte nonce made of a fixed prefix naming
//! the command and a counter or random tail. The primitives are RustCrypto's
//! (`crypto_box::SalsaBox` for X25519 boxes, `crypto_secretbox` for the
//! cookie); nothing here is cryptography, only layout.
//!
//! [`PrefixBox`] is the one shortcut, for MESSAGE boxes, the bulk of CURVE's
//! work: XSalsa20 first derives a subkey from the key and the nonce's first
//! 16 bytes (HSalsa20), then runs Salsa20 under that subkey with the last 8
//! bytes. A connection's MESSAGE nonces in one direction all begin with the
//! same 16 bytes (`CurveZMQMESSAGES` or `...C`), so their subkey is one and
//! the same: derived once per connection with salsa20's own `hsalsa`, it is
//! handed to `crypto_secretbox`'s own construction, which then skips its
//! per-box derivation (its `Kdf` hook, here the identity). The boxes are
//! byte for byte `SalsaBox`'s (tested), and a quarter cheaper: HSalsa20 was
//! 23 % of a box's CPU time (perf, `curve_cost_per_round_trip`).

use crypto_box::aead::AeadInPlace;
use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::generic_array::typenum::{U8, U10, U16, U24, U32};
use crypto_box::{PublicKey, SecretKey};
use crypto_secretbox::cipher::{
    IvSizeUser, KeyIvInit, KeySizeUser, StreamCipher, StreamCipherError, inout::InOutBuf,
};
use crypto_secretbox::{Kdf, KeyInit, SecretBox};
use curve25519_dalek::MontgomeryPoint;
use salsa20::{Salsa20, hsalsa};
use zeroize::Zeroizing;

/// Bytes a box adds to what it holds.
pub const TAG_LEN: usize = 16;

/// A nonce: `prefix` followed by `tail`, 24 bytes in all.
pub fn nonce(prefix: &[u8], tail: &[u8]) -> [u8; 24] {
    debug_assert_eq!(prefix.len() + tail.len(), 24);
    let mut n = [0u8; 24];
    n[..prefix.len()].copy_from_slice(prefix);
    n[prefix.len()..].copy_from_slice(tail);
    n
}

/// `plain` boxed: tag, then ciphertext.
pub fn seal<A>(cipher: &A, nonce: &[u8; 24], plain: &[u8]) -> Vec<u8>
where
    A: AeadInPlace<NonceSize = U24, TagSize = U16>,
{
    let mut out = vec![0u8; TAG_LEN + plain.len()];
    out[TAG_LEN..].copy_from_slice(plain);
    seal_in_place(cipher, nonce, &mut out);
    out
}

/// Boxes `buf[TAG_LEN..]` in place and writes the tag to `buf[..TAG_LEN]`.
pub fn seal_in_place<A>(cipher: &A, nonce: &[u8; 24], buf: &mut [u8])
where
    A: AeadInPlace<NonceSize = U24, TagSize = U16>,
{
    let (tag_out, text) = buf.split_at_mut(TAG_LEN);
    let tag = cipher
        .encrypt_in_place_detached(GenericArray::from_slice(nonce), b"", text)
        // XSalsa20Poly1305 refuses only plaintexts of more than 256 GiB.
        .expect("a box of less than 256 GiB");
    tag_out.copy_from_slice(&tag);
}

/// What `boxed` holds, or `None` if it was not sealed with this key and
/// nonce (forged, tampered with, or meant for another).
pub fn open<A>(cipher: &A, nonce: &[u8; 24], boxed: &[u8]) -> Option<Vec<u8>>
where
    A: AeadInPlace<NonceSize = U24, TagSize = U16>,
{
    let (tag, text) = boxed.split_at_checked(TAG_LEN)?;
    let mut out = text.to_vec();
    open_in_place(cipher, nonce, tag, &mut out).then_some(out)
}

/// Opens `text` in place given its `tag`; false (and `text` garbage) if it
/// does not authenticate.
pub fn open_in_place<A>(cipher: &A, nonce: &[u8; 24], tag: &[u8], text: &mut [u8]) -> bool
where
    A: AeadInPlace<NonceSize = U24, TagSize = U16>,
{
    tag.len() == TAG_LEN
        && cipher
            .decrypt_in_place_detached(
                GenericArray::from_slice(nonce),
                b"",
                text,
                GenericArray::from_slice(tag),
            )
            .is_ok()
}

/// XSalsa20Poly1305 boxes between two keys (as `SalsaBox` makes them) whose
/// nonces all begin with one 16-byte prefix, so the subkey XSalsa20 derives
/// from that prefix is derived once, here (see the module doc).
pub(crate) struct PrefixBox {
    secretbox: SecretBox<Subkeyed>,
    prefix: [u8; 16],
}

impl PrefixBox {
    /// Boxes from `secret` to `public` (or back), one with nonces
    /// `prefixes[0] ‖ tail`, one with `prefixes[1] ‖ tail`: a connection's
    /// two directions, from one key agreement.
    pub fn pair(
        public: &PublicKey,
        secret: &SecretKey,
        prefixes: [&[u8; 16]; 2],
    ) -> [PrefixBox; 2] {
        // X25519, then HSalsa20 with a zero input: NaCl's crypto_box_beforenm,
        // which is what SalsaBox::new keeps.
        let shared =
            Zeroizing::new(MontgomeryPoint(public.to_bytes()).mul_clamped(secret.to_bytes()));
        let key = Zeroizing::new(hsalsa::<U10>(
            GenericArray::from_slice(shared.as_bytes()),
            &GenericArray::default(),
        ));
        prefixes.map(|prefix| {
            // XSalsa20's own first step for nonces that begin with `prefix`.
            let subkey = Zeroizing::new(hsalsa::<U10>(&key, GenericArray::from_slice(prefix)));
            PrefixBox {
                secretbox: SecretBox::new(&subkey),
                prefix: *prefix,
            }
        })
    }

    /// The whole nonce of the box whose nonce ends in `tail`.
    fn nonce(&self, tail: u64) -> [u8; 24] {
        nonce(&self.prefix, &tail.to_be_bytes())
    }

    /// As [`seal_in_place`], for the nonce `prefix ‖ tail`.
    pub fn seal_in_place(&self, tail: u64, buf: &mut [u8]) {
        seal_in_place(&self.secretbox, &self.nonce(tail), buf)
    }

    /// As [`open_in_place`], for the nonce `prefix ‖ tail`.
    pub fn open_in_place(&self, tail: u64, tag: &[u8], text: &mut [u8]) -> bool {
        open_in_place(&self.secretbox, &self.nonce(tail), tag, text)
    }
}

/// Salsa20 for `crypto_secretbox`'s construction when the key it is given
/// is already XSalsa20's subkey for the nonce's prefix: its key derivation
/// is the identity, and everything else is salsa20's `Salsa20`. Private to
/// this module, so only [`PrefixBox`], which derives that subkey, uses it.
struct Subkeyed(Salsa20);

impl KeySizeUser for Subkeyed {
    type KeySize = U32;
}

impl IvSizeUser for Subkeyed {
    type IvSize = U8;
}

impl KeyIvInit for Subkeyed {
    fn new(key: &GenericArray<u8, U32>, iv: &GenericArray<u8, U8>) -> Self {
        Subkeyed(Salsa20::new(key, iv))
    }
}

impl StreamCipher for Subkeyed {
    fn try_apply_keystream_inout(
        &mut self,
        buf: InOutBuf<'_, '_, u8>,
    ) -> Result<(), StreamCipherError> {
        self.0.try_apply_keystream_inout(buf)
    }
}

impl Kdf for Subkeyed {
    fn kdf(key: &GenericArray<u8, U32>, _prefix: &GenericArray<u8, U16>) -> GenericArray<u8, U32> {
        *key
    }
}
