//! The access policy of `--bridge-policy FILE`: which endpoints a browser may
//! reach, with which socket types, and under which auth parameters.
//!
//! The original connected wherever a client asked unless a subclass said no.
//! Here nothing is reachable unless a rule allows it:
//!
//! ```toml
//! [[allow]]
//! endpoint = "tcp://127.0.0.1:10001"   # `*` matches any run of characters
//! socket_types = ["REQ"]
//!
//! [[allow]]
//! endpoint = "tcp://127.0.0.1:*"
//! socket_types = ["SUB"]
//! params = { username = "hugo" }       # the connect must carry these values
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

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
        problem: &'static str,
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
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse {
            path: PathBuf::new(),
            // toml's message spans lines; a start-up error is one line.
            message: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })?;
        for (index, rule) in policy.allow.iter().enumerate() {
            let problem = if rule.endpoint.is_empty() {
                Some("has an empty endpoint")
            } else if rule.socket_types.is_empty() {
                Some("allows no socket type")
            } else {
                None
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
        endpoint: &str,
        kind: SocketKind,
        params: &Map<String, Value>,
    ) -> Result<(), String> {
        let allowed = self.allow.iter().any(|rule| {
            rule.socket_types.contains(&kind)
                && glob_match(&rule.endpoint, endpoint)
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

/// `*` matches any run of characters (including none); everything else is
/// literal. Iterative with one backtrack point, so no pattern is slow.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
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

    fn params(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn deny_by_default() {
        let empty = Policy::parse("").unwrap();
        assert!(
            empty
                .check("tcp://127.0.0.1:1", SocketKind::Req, &Map::new())
                .is_err()
        );
    }

    #[test]
    fn rules_match_endpoint_type_and_params() {
        let p = Policy::parse(SAMPLE).unwrap();
        let none = Map::new();
        assert!(
            p.check("tcp://127.0.0.1:10001", SocketKind::Req, &none)
                .is_ok()
        );
        assert!(
            p.check("tcp://127.0.0.1:10001", SocketKind::Sub, &none)
                .is_err()
        );
        assert!(
            p.check("tcp://127.0.0.1:10002", SocketKind::Req, &none)
                .is_err()
        );
        let hugo = params(r#"{"username":"hugo"}"#);
        let eve = params(r#"{"username":"eve"}"#);
        assert!(
            p.check("tcp://127.0.0.1:10002", SocketKind::Sub, &hugo)
                .is_ok()
        );
        assert!(
            p.check("tcp://127.0.0.1:10002", SocketKind::Sub, &eve)
                .is_err()
        );
        assert!(
            p.check("tcp://10.0.0.1:10002", SocketKind::Sub, &hugo)
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
    fn globs() {
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*c", "abd"));
        assert!(glob_match("tcp://*:1*", "tcp://h:123"));
    }
}
