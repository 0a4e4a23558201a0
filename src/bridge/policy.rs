//! The access policy of `--bridge-policy FILE`: which endpoints a browser may
//! reach, with which socket types, and under which auth parameters.
//!
//! The original connected wherever a client asked unless a subclass said no.
//! Here nothing is reachable unless a rule allows it:
//!
//! ```toml
//! [[allow]]
//! endpoint = "tcp://127.0.0.1:10001"
//! socket_types = ["REQ"]
//!
//! [[allow]]
//! endpoint = "tcp://127.0.0.1:*"
//! socket_types = ["SUB"]
//! params = { username = "hugo" }       # the connect must carry these values
//! ```
//!
//! Endpoint patterns match the parts of a parsed [`Endpoint`] (host pattern
//! against the host, port pattern against the port), never the raw string:
//! see [`super::endpoint`] for the pattern syntax and for why.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::endpoint::{Endpoint, EndpointPattern};
use super::wire::SocketKind;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read bridge policy {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad bridge policy {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("bad bridge policy {path}: rule {index} {problem}")]
    Rule {
        path: PathBuf,
        index: usize,
        problem: String,
    },
}

/// A list of allow rules; the empty policy allows nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    allow: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    endpoint: String,
    /// `endpoint`, parsed by [`Policy::parse`].
    #[serde(skip)]
    pattern: Option<EndpointPattern>,
    socket_types: Vec<SocketKind>,
    /// Auth parameters that must be present with exactly these values.
    #[serde(default)]
    params: toml::Table,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text).map_err(|e| match e {
            PolicyError::Parse { message, .. } => PolicyError::Parse {
                path: path.to_path_buf(),
                message,
            },
            PolicyError::Rule { index, problem, .. } => PolicyError::Rule {
                path: path.to_path_buf(),
                index,
                problem,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse {
            path: PathBuf::new(),
            // toml's message spans lines; a start-up error is one line.
            message: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })?;
        for (index, rule) in policy.allow.iter_mut().enumerate() {
            let problem = if rule.endpoint.is_empty() {
                Some("has an empty endpoint".to_string())
            } else if rule.socket_types.is_empty() {
                Some("allows no socket type".to_string())
            } else {
                match EndpointPattern::parse(&rule.endpoint) {
                    Ok(pattern) => {
                        rule.pattern = Some(pattern);
                        None
                    }
                    Err(e) => Some(format!("has a {e}")),
                }
            };
            if let Some(problem) = problem {
                return Err(PolicyError::Rule {
                    path: PathBuf::new(),
                    index: index + 1,
                    problem,
                });
            }
        }
        Ok(policy)
    }

    /// Whether some rule allows this connect; the error says why not.
    pub fn check(
        &self,
        endpoint: &Endpoint,
        kind: SocketKind,
        params: &Map<String, Value>,
    ) -> Result<(), String> {
        let allowed = self.allow.iter().any(|rule| {
            rule.socket_types.contains(&kind)
                && rule.pattern.as_ref().is_some_and(|p| p.matches(endpoint))
                && rule.params.iter().all(|(key, wanted)| {
                    let wanted = serde_json::to_value(wanted).unwrap_or(Value::Null);
                    params.get(key) == Some(&wanted)
                })
        });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "denied by policy: no rule allows {} to {endpoint}",
                kind.name()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        [[allow]]
        endpoint = "tcp://127.0.0.1:10001"
        socket_types = ["REQ"]

        [[allow]]
        endpoint = "tcp://127.0.0.1:*"
        socket_types = ["SUB"]
        params = { username = "hugo" }
    "#;

    fn ep(text: &str) -> Endpoint {
        Endpoint::parse(text).unwrap()
    }

    fn params(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn deny_by_default() {
        let empty = Policy::parse("").unwrap();
        assert!(
            empty
                .check(&ep("tcp://127.0.0.1:1"), SocketKind::Req, &Map::new())
                .is_err()
        );
    }

    #[test]
    fn rules_match_endpoint_type_and_params() {
        let p = Policy::parse(SAMPLE).unwrap();
        let none = Map::new();
        assert!(
            p.check(&ep("tcp://127.0.0.1:10001"), SocketKind::Req, &none)
                .is_ok()
        );
        assert!(
            p.check(&ep("tcp://127.0.0.1:10001"), SocketKind::Sub, &none)
                .is_err()
        );
        assert!(
            p.check(&ep("tcp://127.0.0.1:10002"), SocketKind::Req, &none)
                .is_err()
        );
        let hugo = params(r#"{"username":"hugo"}"#);
        let eve = params(r#"{"username":"eve"}"#);
        assert!(
            p.check(&ep("tcp://127.0.0.1:10002"), SocketKind::Sub, &hugo)
                .is_ok()
        );
        assert!(
            p.check(&ep("tcp://127.0.0.1:10002"), SocketKind::Sub, &eve)
                .is_err()
        );
        assert!(
            p.check(&ep("tcp://10.0.0.1:10002"), SocketKind::Sub, &hugo)
                .is_err()
        );
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(Policy::parse("[[allow]]\nendpoint = \"x\"\nsocket_types = [\"REP\"]").is_err());
        assert!(Policy::parse("[[allow]]\nendpoint = \"x\"\nsocket_types = []").is_err());
        assert!(Policy::parse("[[allo]]").is_err());
    }

    #[test]
    fn a_port_pattern_does_not_admit_a_source_address_trick() {
        let p = Policy::parse(
            "[[allow]]\nendpoint = \"tcp://127.0.0.1:2131*\"\nsocket_types = [\"REQ\"]",
        )
        .unwrap();
        let none = Map::new();
        assert!(
            p.check(&ep("tcp://127.0.0.1:21319"), SocketKind::Req, &none)
                .is_ok()
        );
        assert!(
            p.check(&ep("tcp://127.0.0.1:21350"), SocketKind::Req, &none)
                .is_err()
        );
        assert!(Endpoint::parse("tcp://127.0.0.1:21319;127.0.0.1:21350").is_err());
    }

    #[test]
    fn a_bad_pattern_names_its_rule() {
        let e = Policy::parse("[[allow]]\nendpoint = \"tcp://a;b:1\"\nsocket_types = [\"REQ\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rule 1") && e.contains("source"), "{e}");
    }
}
