//! The `connect` event's data, for Rust backends: empty (SockJSProxy 0.7's
//! protocol, and the proxy's default), or one JSON object when the service
//! has `connect_info` or authentication on (README, "Who is connected").
//! [`Who::parse`] reads it; every field is optional, so a backend works
//! whatever the service's options.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Who opened a session, as the proxy tells the backend.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Who {
    /// The client's address (through the trusted proxies).
    pub remote_addr: Option<String>,
    /// `websocket`, `xhr_streaming`, ..., `raw_websocket`.
    pub transport: Option<String>,
    pub prefix: Option<String>,
    /// The query string of the session's first request, undecoded.
    pub query: Option<String>,
    /// The allowed headers, by lower-case name.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The user an auth service or a JWT's `sub` named.
    pub user: Option<String>,
    /// What the auth service (`data`) or the JWT (listed claims) added.
    pub auth: Option<Value>,
}

impl Who {
    /// The data frame of a `connect` event: `Ok(None)` when empty (no
    /// connect info), an error when it is not the JSON object expected.
    pub fn parse(data: &[u8]) -> Result<Option<Who>, serde_json::Error> {
        if data.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(data).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_data_is_no_info_and_json_is_read_field_by_field() {
        assert_eq!(Who::parse(b"").unwrap(), None);
        let who = Who::parse(
            br#"{"remote_addr":"10.0.0.1","transport":"websocket","prefix":"/chat",
                "query":"a=1","headers":{"host":"x"},"user":"alice","auth":{"role":"admin"}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(who.user.as_deref(), Some("alice"));
        assert_eq!(who.headers["host"], "x");
        assert_eq!(who.auth.unwrap()["role"], "admin");
        let only_user = Who::parse(br#"{"user":"bob"}"#).unwrap().unwrap();
        assert_eq!(
            (only_user.user.as_deref(), only_user.transport),
            (Some("bob"), None)
        );
        assert!(Who::parse(b"not json").is_err());
        assert!(Who::parse(b"[1]").is_err());
    }
}
