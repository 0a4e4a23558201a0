//! The JWT check of `auth_jwt`: a token the proxy verifies itself, with the
//! `jsonwebtoken` crate (signatures by `ring`, as rustls's), no round trip.
//!
//! The token comes from the query parameter `token` (sockjs-client repeats
//! the query of `new SockJS(url)` on every request, websocket included), or
//! a named header (`Authorization: Bearer <token>` works), or a named
//! cookie, looked for in that order. HS256 checks with a shared secret read
//! from a file; RS256 and ES256 with a PEM public key file. `exp` is
//! required, `nbf` is checked when present, `aud` and `iss` when set; only
//! the configured algorithm is accepted (no `alg: none`, no HS256 token
//! signed with an RSA public key taken for a secret). `sub` becomes the
//! session's `user`; the listed claims go into its `auth` object.
//!
//! Each denial has a short reason for the client and a metrics label.

use std::path::PathBuf;

use actix_web::http::header::{COOKIE, HeaderMap};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::sockjs::admission::{ConnectInfo, Decision};

/// Which signatures a service accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Rs256,
    Es256,
}

impl Alg {
    pub fn parse(name: &str) -> Option<Alg> {
        match name.to_ascii_uppercase().as_str() {
            "HS256" => Some(Alg::Hs256),
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }
}

/// `auth_jwt`'s settings, as read from the command line or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub algorithm: Alg,
    /// The HS256 secret, or the RS256/ES256 public key (PEM).
    pub key_file: PathBuf,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    /// Where the token is looked for, in this order; `None`: not there.
    pub query_param: Option<String>,
    pub header: Option<String>,
    pub cookie: Option<String>,
    /// Claims copied into the session's `auth` object.
    pub claims: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway: u64,
}

impl JwtSettings {
    /// The defaults, for a key file and algorithm.
    pub fn new(algorithm: Alg, key_file: PathBuf) -> JwtSettings {
        JwtSettings {
            algorithm,
            key_file,
            audience: None,
            issuer: None,
            query_param: Some("token".into()),
            header: None,
            cookie: None,
            claims: Vec::new(),
            leeway: 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("cannot read JWT key file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("bad JWT key in {0}: {1}")]
    Key(PathBuf, jsonwebtoken::errors::Error),
    #[error("JWT secret in {0} is empty")]
    Empty(PathBuf),
}

/// A service's token checker: the key, parsed once.
pub struct JwtChecker {
    key: DecodingKey,
    validation: Validation,
    settings: JwtSettings,
}

impl JwtChecker {
    pub fn new(settings: &JwtSettings) -> Result<JwtChecker, JwtError> {
        let path = &settings.key_file;
        let bytes = std::fs::read(path).map_err(|e| JwtError::Read(path.clone(), e))?;
        let key_error = |e| JwtError::Key(path.clone(), e);
        let (key, algorithm) = match settings.algorithm {
            Alg::Hs256 => {
                // A trailing newline is the file's, not the secret's.
                let secret = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
                let secret = secret.strip_suffix(b"\r").unwrap_or(secret);
                if secret.is_empty() {
                    return Err(JwtError::Empty(path.clone()));
                }
                (DecodingKey::from_secret(secret), Algorithm::HS256)
            }
            Alg::Rs256 => (
                DecodingKey::from_rsa_pem(&bytes).map_err(key_error)?,
                Algorithm::RS256,
            ),
            Alg::Es256 => (
                DecodingKey::from_ec_pem(&bytes).map_err(key_error)?,
                Algorithm::ES256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = settings.leeway;
        validation.validate_nbf = true;
        match &settings.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &settings.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(JwtChecker {
            key,
            validation,
            settings: settings.clone(),
        })
    }

    /// The token of a new session, where the settings say to look.
    fn token(&self, info: &ConnectInfo, headers: &HeaderMap) -> Option<String> {
        let s = &self.settings;
        let from_query = s.query_param.as_ref().and_then(|name| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(&info.query)
                .ok()?
                .into_iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
        });
        let from_header = || {
            let value = headers.get(s.header.as_ref()?.as_str())?.to_str().ok()?;
            let value = value.trim();
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or(value);
            Some(token.trim().to_string())
        };
        let from_cookie = || {
            let name = s.cookie.as_ref()?;
            headers
                .get_all(COOKIE)
                .filter_map(|h| h.to_str().ok())
                .flat_map(|h| h.split(';'))
                .filter_map(|c| c.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_string())
        };
        from_query
            .or_else(from_header)
            .or_else(from_cookie)
            .filter(|t| !t.is_empty())
    }

    /// Checks a new session's token.
    pub fn check(&self, info: &ConnectInfo, headers: &HeaderMap) -> Decision {
        let Some(token) = self.token(info, headers) else {
            return Decision::deny("token_missing", "token missing");
        };
        let claims =
            match jsonwebtoken::decode::<Map<String, Value>>(&token, &self.key, &self.validation) {
                Ok(data) => data.claims,
                Err(e) => {
                    let (label, reason) = match e.kind() {
                        ErrorKind::ExpiredSignature => ("token_expired", "token expired"),
                        ErrorKind::ImmatureSignature => {
                            ("token_not_yet_valid", "token not yet valid")
                        }
                        ErrorKind::InvalidAudience => {
                            ("token_audience", "token for another audience")
                        }
                        ErrorKind::InvalidIssuer => ("token_issuer", "token from another issuer"),
                        ErrorKind::MissingRequiredClaim(_) => {
                            ("token_invalid", "token without a required claim")
                        }
                        ErrorKind::InvalidSignature => ("token_invalid", "token signature invalid"),
                        ErrorKind::InvalidAlgorithm => ("token_invalid", "token algorithm refused"),
                        _ => ("token_invalid", "token malformed"),
                    };
                    return Decision::deny(label, reason);
                }
            };
        let user = claims.get("sub").and_then(|s| match s {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let listed: Map<String, Value> = self
            .settings
            .claims
            .iter()
            .filter_map(|c| Some((c.clone(), claims.get(c)?.clone())))
            .collect();
        Decision::Allow {
            user,
            auth: (!listed.is_empty()).then_some(Value::Object(listed)),
        }
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
