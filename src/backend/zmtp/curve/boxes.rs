//! NaCl boxes as CurveZMQ lays them out: the 16-byte Poly1305 tag first,
//! then the XSalsa20 ciphertext (libsodium's `crypto_box` with its zero
//! padding stripped), under a 24-byte nonce made of a fixed prefix naming
//! the command and a counter or random tail. The primitives are RustCrypto's
//! (`crypto_box::SalsaBox` for X25519 boxes, `crypto_secretbox` for the
//! cookie); nothing here is cryptography, only layout.

use crypto_box::aead::AeadInPlace;
use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::generic_array::typenum::{U16, U24};

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
