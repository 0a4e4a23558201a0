//! ZeroMQ certificate files: the text czmq's `zcert` and pyzmq's
//! `zmq.auth.create_certificates` write for a CURVE key pair, read and
//! written without I/O (the caller owns the files).
//!
//! A certificate is ZPL text (ZeroMQ's property language): `#` comments,
//! sections named at the left margin, `name = "value"` entries indented
//! under them. The keys live in the `curve` section as Z85 text (40
//! characters for 32 bytes); a `metadata` section may hold anything.
//!
//! ```text
//! metadata
//!     name = "backend-1"
//! curve
//!     public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
//!     secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
//! ```
//!
//! A *public* certificate (`NAME.key`) has only the public key; the
//! *secret* one (`NAME.key_secret`) both. A secret key file whose public key
//! is not the one its secret key makes is refused: it was edited or mixed up.

use crypto_box::{PublicKey, SecretKey};

/// Bytes of a CURVE key.
pub const KEY_LEN: usize = 32;

/// What a certificate file holds.
#[derive(Clone)]
pub struct Certificate {
    pub public: PublicKey,
    /// Only in a secret certificate.
    pub secret: Option<SecretKey>,
    /// The `metadata` section's entries, in order.
    pub metadata: Vec<(String, String)>,
}

impl std::fmt::Debug for Certificate {
    // Never prints the secret key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("public", &z85_key(self.public.as_bytes()))
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// Why a certificate's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("line {0}: not a `name = value` entry or a section name")]
    Syntax(usize),
    #[error("no public-key in its curve section")]
    NoPublicKey,
    #[error("{0} is not 40 characters of Z85 (32 bytes)")]
    BadKey(&'static str),
    #[error("its public-key is not the public key of its secret-key")]
    Mismatch,
}

/// A key as Z85 text (40 characters).
pub fn z85_key(key: &[u8; KEY_LEN]) -> String {
    z85::encode(key)
}

/// A 32-byte key from its Z85 text.
pub fn parse_key(text: &str, what: &'static str) -> Result<[u8; KEY_LEN], CertError> {
    if text.len() != 40 {
        return Err(CertError::BadKey(what));
    }
    let bytes = z85::decode(text).map_err(|_| CertError::BadKey(what))?;
    bytes.try_into().map_err(|_| CertError::BadKey(what))
}

/// Reads a certificate's text.
pub fn parse(text: &str) -> Result<Certificate, CertError> {
    let mut section = String::new();
    let mut public = None;
    let mut secret = None;
    let mut metadata = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indented = content.len() < line.len();
        let Some((name, value)) = content.split_once('=') else {
            // A section name, at the left margin (ZPL also allows children
            // of sections; certificates have none).
            if indented {
                return Err(CertError::Syntax(n + 1));
            }
            section = content.to_string();
            continue;
        };
        let name = name.trim();
        let value = unquote(value.trim());
        match (section.as_str(), name) {
            ("curve", "public-key") => public = Some(parse_key(value, "public-key")?),
            ("curve", "secret-key") => secret = Some(parse_key(value, "secret-key")?),
            ("metadata", _) => metadata.push((name.to_string(), value.to_string())),
            _ => {}
        }
    }
    let public = PublicKey::from(public.ok_or(CertError::NoPublicKey)?);
    let secret = secret.map(SecretKey::from);
    if let Some(s) = &secret
        && s.public_key() != public
    {
        return Err(CertError::Mismatch);
    }
    Ok(Certificate {
        public,
        secret,
        metadata,
    })
}

/// A value without its quotes (ZPL allows `"..."`, `'...'` or none).
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

/// The text of a public certificate (`NAME.key`) as pyzmq writes it.
pub fn public_text(public: &PublicKey, generated: &str) -> String {
    format!(
        "#   ****  Generated on {generated} by sockjsproxy  ****\n\
         #   ZeroMQ CURVE Public Certificate\n\
         #   Exchange securely, or use a secure mechanism to verify the contents\n\
         #   of this file after exchange.\n\n\
         metadata\n\
         curve\n    public-key = \"{}\"\n",
        z85_key(public.as_bytes())
    )
}

/// The text of a secret certificate (`NAME.key_secret`) as pyzmq writes it.
pub fn secret_text(secret: &SecretKey, generated: &str) -> String {
    format!(
        "#   ****  Generated on {generated} by sockjsproxy  ****\n\
         #   ZeroMQ CURVE **Secret** Certificate\n\
         #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n\
         metadata\n\
         curve\n    public-key = \"{}\"\n    secret-key = \"{}\"\n",
        z85_key(secret.public_key().as_bytes()),
        z85_key(&secret.to_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 32's test vector: these 32 bytes are "HelloWorld" in Z85.
    #[test]
    fn z85_is_zeromqs_encoding() {
        assert_eq!(
            z85::encode([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]),
            "HelloWorld"
        );
        let key = [7u8; KEY_LEN];
        assert_eq!(parse_key(&z85_key(&key), "k"), Ok(key));
        assert_eq!(parse_key("short", "k"), Err(CertError::BadKey("k")));
        // 40 characters, one of them outside Z85's alphabet.
        let bad = format!("{}~", &z85_key(&key)[..39]);
        assert_eq!(parse_key(&bad, "k"), Err(CertError::BadKey("k")));
    }

    #[test]
    fn what_we_write_reads_back_and_the_public_file_has_no_secret() {
        let secret = SecretKey::from([9u8; KEY_LEN]);
        let both = parse(&secret_text(&secret, "now")).unwrap();
        assert_eq!(both.public, secret.public_key());
        assert_eq!(both.secret.unwrap().to_bytes(), secret.to_bytes());
        let public = parse(&public_text(&secret.public_key(), "now")).unwrap();
        assert_eq!(public.public, secret.public_key());
        assert!(public.secret.is_none());
        assert!(!public_text(&secret.public_key(), "now").contains("secret-key"));
    }

    #[test]
    fn metadata_and_comments_are_read_and_a_broken_file_is_refused() {
        let secret = SecretKey::from([3u8; KEY_LEN]);
        let text = format!(
            "# comment\n\nmetadata\n    name = \"backend 1\"\n    site = 'x'\ncurve\n    public-key = \"{}\"\n",
            z85_key(secret.public_key().as_bytes())
        );
        let cert = parse(&text).unwrap();
        assert_eq!(
            cert.metadata,
            vec![
                ("name".to_string(), "backend 1".to_string()),
                ("site".to_string(), "x".to_string())
            ]
        );
        assert_eq!(parse("curve\n").unwrap_err(), CertError::NoPublicKey);
        assert_eq!(
            parse("curve\n    oops\n").unwrap_err(),
            CertError::Syntax(2)
        );
        let other = SecretKey::from([4u8; KEY_LEN]);
        let mixed = format!(
            "curve\n    public-key = \"{}\"\n    secret-key = \"{}\"\n",
            z85_key(secret.public_key().as_bytes()),
            z85_key(&other.to_bytes())
        );
        assert_eq!(parse(&mixed).unwrap_err(), CertError::Mismatch);
    }

    /// What pyzmq's `zmq.auth.create_certificates` writes (needs python3 with
    /// pyzmq, which tests/all.sh installs) reads here, with the keys
    /// pyzmq printed.
    #[test]
    fn certificates_pyzmq_writes_are_read() {
        let dir = std::env::temp_dir().join(format!("sjp-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = "import sys, zmq.auth\n\
            pub, sec = zmq.auth.create_certificates(sys.argv[1], 'backend', metadata={'site': 'test'})\n\
            p, s = zmq.auth.load_certificate(sec)\n\
            print(p.decode(), s.decode())";
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&dir)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "pyzmq could not write certificates (is it installed?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8(out.stdout).unwrap();
        let (public, secret) = printed.trim().split_once(' ').unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let secret_cert = parse(&read("backend.key_secret")).unwrap();
        let public_cert = parse(&read("backend.key")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(z85_key(secret_cert.public.as_bytes()), public);
        assert_eq!(z85_key(&secret_cert.secret.unwrap().to_bytes()), secret);
        assert_eq!(secret_cert.metadata, vec![("site".into(), "test".into())]);
        assert_eq!(z85_key(public_cert.public.as_bytes()), public);
        assert!(public_cert.secret.is_none());
    }
}
