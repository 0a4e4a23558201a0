//! The JWT check from the attacker's side: forged, expired, early, for
//! another audience or issuer, another algorithm, missing.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderName, HeaderValue};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use super::*;
use crate::sockjs::metrics::Transport;

const SECRET: &[u8] = b"a secret of the tests, long enough";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A key file of its own for each call: tests run in parallel, and one
/// rewriting a shared file while another reads it made them fail at random.
fn key_file(name: &str, bytes: &[u8]) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sockjsproxy-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{n}-{name}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn hs256(settings: impl FnOnce(&mut JwtSettings)) -> JwtChecker {
    let mut s = JwtSettings::new(Alg::Hs256, key_file("secret", &[SECRET, b"\n"].concat()));
    settings(&mut s);
    JwtChecker::new(&s).unwrap()
}

fn sign(claims: serde_json::Value, secret: &[u8]) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn info(query: &str) -> ConnectInfo {
    ConnectInfo {
        remote_addr: None,
        transport: Transport::Websocket,
        prefix: String::new(),
        query: query.into(),
        headers: Vec::new(),
    }
}

fn check_query(checker: &JwtChecker, token: &str) -> Decision {
    checker.check(&info(&format!("x=1&token={token}")), &HeaderMap::new())
}

fn label(d: &Decision) -> &'static str {
    match d {
        Decision::Deny { label, .. } => label,
        Decision::Allow { .. } => "allowed",
    }
}

#[test]
fn a_good_token_gets_in_with_its_subject_and_listed_claims() {
    let checker = hs256(|s| s.claims = vec!["role".into(), "absent".into()]);
    let token = sign(
        json!({"sub": "alice", "exp": now() + 60, "role": "admin", "secret": "no"}),
        SECRET,
    );
    assert_eq!(
        check_query(&checker, &token),
        Decision::Allow {
            user: Some("alice".into()),
            auth: Some(json!({"role": "admin"}))
        }
    );
}

#[test]
fn a_forged_token_is_denied() {
    let checker = hs256(|_| {});
    let forged = sign(
        json!({"sub": "mallory", "exp": now() + 60}),
        b"another secret",
    );
    assert_eq!(label(&check_query(&checker, &forged)), "token_invalid");
    // A good token whose payload was changed keeps its signature: refused.
    let good = sign(json!({"sub": "alice", "exp": now() + 60}), SECRET);
    let parts: Vec<&str> = good.split('.').collect();
    let payload = base64_url(&json!({"sub": "admin", "exp": now() + 60}).to_string());
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
    assert_eq!(label(&check_query(&checker, &tampered)), "token_invalid");
    // alg "none", unsigned.
    let none = format!(
        "{}.{}.",
        base64_url(r#"{"alg":"none","typ":"JWT"}"#),
        payload
    );
    assert_eq!(label(&check_query(&checker, &none)), "token_invalid");
    assert_eq!(label(&check_query(&checker, "garbage")), "token_invalid");
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[test]
fn expired_and_early_tokens_are_denied_with_their_reason() {
    let checker = hs256(|s| s.leeway = 0);
    let expired = sign(json!({"sub": "a", "exp": now() - 10}), SECRET);
    let d = check_query(&checker, &expired);
    assert_eq!(d, Decision::deny("token_expired", "token expired"));
    let early = sign(
        json!({"sub": "a", "exp": now() + 600, "nbf": now() + 300}),
        SECRET,
    );
    assert_eq!(label(&check_query(&checker, &early)), "token_not_yet_valid");
    let no_exp = sign(json!({"sub": "a"}), SECRET);
    assert_eq!(label(&check_query(&checker, &no_exp)), "token_invalid");
}

#[test]
fn audience_and_issuer_must_match_when_set() {
    let checker = hs256(|s| {
        s.audience = Some("chat".into());
        s.issuer = Some("https://id.example".into());
    });
    let claims =
        |aud: &str, iss: &str| json!({"sub": "a", "exp": now() + 60, "aud": aud, "iss": iss});
    let good = sign(claims("chat", "https://id.example"), SECRET);
    assert_eq!(label(&check_query(&checker, &good)), "allowed");
    let other_aud = sign(claims("billing", "https://id.example"), SECRET);
    assert_eq!(label(&check_query(&checker, &other_aud)), "token_audience");
    let other_iss = sign(claims("chat", "https://evil.example"), SECRET);
    assert_eq!(label(&check_query(&checker, &other_iss)), "token_issuer");
}

#[test]
fn a_missing_token_is_denied() {
    let checker = hs256(|_| {});
    let d = checker.check(&info("x=1"), &HeaderMap::new());
    assert_eq!(d, Decision::deny("token_missing", "token missing"));
    assert_eq!(
        label(&checker.check(&info("token="), &HeaderMap::new())),
        "token_missing"
    );
}

#[test]
fn the_token_may_come_from_a_header_or_a_cookie() {
    let checker = hs256(|s| {
        s.query_param = None;
        s.header = Some("authorization".into());
        s.cookie = Some("jwt".into());
    });
    let token = sign(json!({"sub": "alice", "exp": now() + 60}), SECRET);
    let mut headers = HeaderMap::new();
    let value = |v: String| HeaderValue::from_str(&v).unwrap();
    headers.insert(
        HeaderName::from_static("authorization"),
        value(format!("Bearer {token}")),
    );
    assert_eq!(label(&checker.check(&info(""), &headers)), "allowed");
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, value(format!("a=b; jwt={token}; c=d")));
    assert_eq!(label(&checker.check(&info(""), &headers)), "allowed");
    // The query parameter is not looked at when not configured.
    let d = checker.check(&info(&format!("token={token}")), &HeaderMap::new());
    assert_eq!(label(&d), "token_missing");
}

/// An EC key pair made by openssl, as PEM (private, public).
fn ec_keys(dir_name: &str) -> (Vec<u8>, PathBuf) {
    let private = key_file(&format!("{dir_name}-private.pem"), b"");
    let public = key_file(&format!("{dir_name}-public.pem"), b"");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&private)
        .status()
        .unwrap()
        .success()
        && std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .status()
            .unwrap()
            .success();
    assert!(ok, "openssl makes the test keys");
    (std::fs::read(private).unwrap(), public)
}

#[test]
fn es256_tokens_check_with_the_public_key_and_other_algorithms_are_refused() {
    let (private, public) = ec_keys("es256");
    let checker = JwtChecker::new(&JwtSettings::new(Alg::Es256, public.clone())).unwrap();
    let claims = json!({"sub": "bob", "exp": now() + 60});
    let es = encode(
        &Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(&private).unwrap(),
    )
    .unwrap();
    assert_eq!(label(&check_query(&checker, &es)), "allowed");
    // Key confusion: an HS256 token "signed" with the public key's bytes.
    let confused = sign(claims, &std::fs::read(&public).unwrap());
    assert_eq!(label(&check_query(&checker, &confused)), "token_invalid");
    // A key of another pair does not verify.
    let (other, _) = ec_keys("es256-other");
    let forged = encode(
        &Header::new(jsonwebtoken::Algorithm::ES256),
        &json!({"sub": "bob", "exp": now() + 60}),
        &EncodingKey::from_ec_pem(&other).unwrap(),
    )
    .unwrap();
    assert_eq!(label(&check_query(&checker, &forged)), "token_invalid");
}

#[test]
fn bad_key_files_are_errors_at_start() {
    let empty = JwtSettings::new(Alg::Hs256, key_file("empty", b"\n"));
    assert!(matches!(JwtChecker::new(&empty), Err(JwtError::Empty(_))));
    let missing = JwtSettings::new(Alg::Rs256, "/nonexistent/key.pem".into());
    assert!(matches!(JwtChecker::new(&missing), Err(JwtError::Read(..))));
    let not_pem = JwtSettings::new(Alg::Es256, key_file("notpem", b"hello"));
    assert!(matches!(JwtChecker::new(&not_pem), Err(JwtError::Key(..))));
}
