//! A service's CURVE keys on disk: `curve_secret_key = "FILE"` (the proxy's
//! secret certificate) and `curve_clients = "DIR"` (a certificate per
//! backend allowed), flags `--curve-secret-key` and `--curve-clients` for
//! the default service; read and checked here into the
//! [`Keys`](crate::backend::zmtp::curve::Keys) the backend takes. Also
//! `sockjsproxy keygen DIR`, which writes a key pair as pyzmq's
//! `zmq.auth.create_certificates` does: `NAME.key` (public, for backends)
//! and `NAME.key_secret` (for the proxy, readable by its owner only).
//!
//! Also `backend_allow = ["10.0.0.0/8", "127.0.0.1"]` (`--backend-allow`,
//! repeatable): the networks backends may connect from.
//!
//! libzmq, as bundled, has no CURVE: a CURVE setting or an allowlist with
//! `--zmq-engine libzmq` or `--connect` is a start-up error, never silently
//! ignored.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ConfigError;
use crate::backend::zmtp::curve::{Keys, cert};

fn bad(message: String) -> ConfigError {
    ConfigError::Curve(message)
}

/// The keys of a service: `None` without a secret key file.
pub(super) fn keys(
    secret_file: Option<&Path>,
    clients_dir: Option<&Path>,
) -> Result<Option<Arc<Keys>>, ConfigError> {
    let Some(secret_file) = secret_file else {
        return match clients_dir {
            Some(dir) => Err(bad(format!(
                "curve_clients {} needs curve_secret_key",
                dir.display()
            ))),
            None => Ok(None),
        };
    };
    let cert = read_cert(secret_file)?;
    let Some(secret) = cert.secret else {
        return Err(bad(format!(
            "curve_secret_key {} has no secret-key: it is a public certificate",
            secret_file.display()
        )));
    };
    warn_if_others_read(secret_file);
    let clients = match clients_dir {
        None => None,
        Some(dir) => Some(client_keys(dir)?),
    };
    Ok(Some(Arc::new(Keys::new(secret, clients))))
}

/// A secret certificate others may read is a key others may have: said at
/// start-up (as ssh says of a private key), not refused, since the file's
/// owner may have reasons (a group the proxy runs in).
fn warn_if_others_read(secret_file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(secret_file) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            log::warn!(
                "curve_secret_key {} is readable by others (mode {mode:03o}): anyone who reads it can pose as this proxy; `chmod 600` it",
                secret_file.display()
            );
        }
    }
}

/// The networks of `backend_allow`: CIDR blocks, or addresses (one host).
pub(super) fn allow(list: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.iter()
        .map(|entry| {
            let entry = entry.trim();
            entry
                .parse::<ipnet::IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    bad(format!(
                        "backend_allow {entry:?} is neither a network (10.0.0.0/8) nor an address"
                    ))
                })
        })
        .collect()
}

/// CURVE and allowlists live in the native ZMTP engine: a service asking
/// for either where libzmq carries the sockets is an error, never ignored.
pub(super) fn check_engine(
    services: &[super::ServiceConfig],
    connect: bool,
    engine: crate::backend::Engine,
) -> Result<(), ConfigError> {
    let secured =
        |s: &&super::ServiceConfig| s.backend.curve.is_some() || !s.backend.allow.is_empty();
    let Some(s) = services.iter().find(secured) else {
        return Ok(());
    };
    let name = if s.prefix.is_empty() { "/" } else { &s.prefix };
    let why = match (connect, engine) {
        (true, _) => "--connect (scale-out mode)",
        (false, crate::backend::Engine::Libzmq) => "--zmq-engine libzmq",
        (false, crate::backend::Engine::Native) => return Ok(()),
    };
    Err(ConfigError::Curve(format!(
        "service {name}: CURVE and backend_allow need the native ZMTP engine; with \
         {why} libzmq carries its sockets, and libzmq here has neither"
    )))
}

fn read_cert(path: &Path) -> Result<cert::Certificate, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        bad(format!(
            "cannot read CURVE certificate {}: {e}",
            path.display()
        ))
    })?;
    cert::parse(&text).map_err(|e| bad(format!("CURVE certificate {}: {e}", path.display())))
}

/// The public keys of every certificate in `dir` (secret certificates,
/// `*_secret`, and hidden files are passed over, as czmq and pyzmq do).
fn client_keys(dir: &Path) -> Result<HashSet<[u8; cert::KEY_LEN]>, ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| bad(format!("cannot read curve_clients {}: {e}", dir.display())))?;
    let mut keys = HashSet::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| bad(format!("cannot read curve_clients {}: {e}", dir.display())))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.ends_with("_secret") || !entry.path().is_file() {
            continue;
        }
        keys.insert(*read_cert(&entry.path())?.public.as_bytes());
    }
    if keys.is_empty() {
        return Err(bad(format!(
            "curve_clients {} holds no certificate: no backend could connect",
            dir.display()
        )));
    }
    Ok(keys)
}

/// Writes a new key pair to `dir` as `NAME.key` and `NAME.key_secret`;
/// never replaces a file.
pub fn keygen(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    use crypto_box::SecretKey;
    use crypto_box::aead::OsRng;
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(format!("bad key name {name:?}"));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let secret = SecretKey::generate(&mut OsRng);
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    let public_path = dir.join(format!("{name}.key"));
    let secret_path = dir.join(format!("{name}.key_secret"));
    write_new(&secret_path, &cert::secret_text(&secret, &now), 0o600)?;
    write_new(
        &public_path,
        &cert::public_text(&secret.public_key(), &now),
        0o644,
    )?;
    Ok((public_path, secret_path))
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
