//! Who is connected: a service's `connect_info`, `connect_headers`, `auth`,
//! `auth_timeout_ms` and `[service.auth_jwt]` (flags `--connect-info`,
//! `--connect-header`, `--auth`, `--auth-timeout-ms`, `--auth-jwt-*` for the
//! default service), checked and turned into [`crate::auth::Settings`].
//! A JWT key file is read and parsed here, so that a bad key stops the start.
//!
//! Services of a `--config` file take `connect_info` and `connect_headers`
//! from the flags as defaults, like every SockJS option, but not `auth`:
//! which services check whom is said per service, in the file.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::auth::Settings;
use crate::auth::jwt::{Alg, JwtChecker, JwtSettings};
use crate::auth::service::ServiceSettings;
use crate::backend::endpoint;
use crate::cli::WhoArgs;
use crate::sockjs::admission;

/// How long an auth service has to answer by default.
pub const AUTH_TIMEOUT: Duration = Duration::from_millis(2000);

/// `[service.auth_jwt]` in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileJwt {
    key_file: PathBuf,
    algorithm: Option<String>,
    audience: Option<String>,
    issuer: Option<String>,
    /// `""` turns the query parameter off.
    query_param: Option<String>,
    header: Option<String>,
    cookie: Option<String>,
    #[serde(default)]
    claims: Vec<String>,
    leeway_s: Option<u64>,
}

fn bad(message: impl Into<String>) -> ConfigError {
    ConfigError::Auth(message.into())
}

/// The connect options the flags set for every service.
pub(super) fn connect_from_cli(who: &WhoArgs, d: &crate::sockjs::Options) -> (bool, Vec<String>) {
    let headers = if who.connect_headers.is_empty() {
        d.connect_headers.clone()
    } else {
        admission::header_names(&who.connect_headers)
    };
    (who.connect_info, headers)
}

/// The default service's authentication, from the flags.
pub(super) fn auth_from_cli(who: &WhoArgs) -> Result<Settings, ConfigError> {
    let jwt = who.auth_jwt_key.as_ref().map(|key_file| FileJwt {
        key_file: key_file.clone(),
        algorithm: who.auth_jwt_algorithm.clone(),
        audience: who.auth_jwt_audience.clone(),
        issuer: who.auth_jwt_issuer.clone(),
        query_param: who.auth_jwt_query_param.clone(),
        header: who.auth_jwt_header.clone(),
        cookie: who.auth_jwt_cookie.clone(),
        claims: who.auth_jwt_claims.clone(),
        leeway_s: None,
    });
    settings(who.auth.as_deref(), who.auth_timeout_ms, jwt.as_ref())
}

/// A file service's authentication.
pub(super) fn auth_from_file(
    auth: Option<&str>,
    timeout_ms: Option<u64>,
    jwt: Option<&FileJwt>,
) -> Result<Settings, ConfigError> {
    settings(auth, timeout_ms, jwt)
}

fn settings(
    auth: Option<&str>,
    timeout_ms: Option<u64>,
    jwt: Option<&FileJwt>,
) -> Result<Settings, ConfigError> {
    if auth.is_none() && timeout_ms.is_some() {
        return Err(bad("auth_timeout_ms is set but no auth service is"));
    }
    let service = match auth {
        None => None,
        Some(endpoint) => Some(ServiceSettings {
            endpoint: endpoint::check(endpoint)?,
            timeout: match timeout_ms {
                None => AUTH_TIMEOUT,
                Some(ms) if (1..=60_000).contains(&ms) => Duration::from_millis(ms),
                Some(ms) => {
                    return Err(ConfigError::Range {
                        name: "auth_timeout_ms",
                        rule: "1 to 60000",
                        value: ms,
                    });
                }
            },
        }),
    };
    let jwt = jwt.map(jwt_settings).transpose()?;
    Ok(Settings { service, jwt })
}

fn jwt_settings(f: &FileJwt) -> Result<JwtSettings, ConfigError> {
    let algorithm = match &f.algorithm {
        None => Alg::Hs256,
        Some(name) => Alg::parse(name).ok_or_else(|| {
            bad(format!(
                "JWT algorithm {name:?}: expected HS256, RS256 or ES256"
            ))
        })?,
    };
    let mut s = JwtSettings::new(algorithm, f.key_file.clone());
    s.audience = f.audience.clone();
    s.issuer = f.issuer.clone();
    if let Some(q) = &f.query_param {
        s.query_param = (!q.is_empty()).then(|| q.clone());
    }
    s.header = f.header.as_ref().map(|h| h.to_ascii_lowercase());
    s.cookie = f.cookie.clone();
    s.claims = f.claims.clone();
    if let Some(leeway) = f.leeway_s {
        s.leeway = leeway;
    }
    if s.query_param.is_none() && s.header.is_none() && s.cookie.is_none() {
        return Err(bad(
            "auth_jwt: no query parameter, header or cookie to find the token in",
        ));
    }
    // Read and parse the key now: a bad one is an error at start.
    JwtChecker::new(&s).map_err(|e| bad(e.to_string()))?;
    Ok(s)
}
