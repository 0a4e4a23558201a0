//! The TOML file's shape, as serde reads it: one struct per table, unknown
//! keys refused so that a typo is an error. `config` turns these into the
//! layers' settings; nothing else reads them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, auth, mongrel2};

/// The TOML file's shape. Unknown keys are errors, so typos do not pass silently.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) http_address: Option<String>,
    pub(super) http_port: Option<u16>,
    pub(super) workers: Option<usize>,
    pub(super) sockjs_url: Option<String>,
    pub(super) sockjs_client: Option<PathBuf>,
    #[serde(default)]
    pub(super) service: Vec<FileService>,
    #[serde(default)]
    pub(super) mongrel2: Vec<mongrel2::FileRoute>,
    #[serde(default, rename = "static")]
    pub(super) static_dirs: Vec<FileStatic>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileStatic {
    pub(super) url: String,
    pub(super) path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileService {
    pub(super) prefix: String,
    pub(super) push: Option<String>,
    pub(super) pull: Option<String>,
    /// `"zmq"` (the default) or `"mongrel2"`, with the keys below.
    pub(super) backend: Option<String>,
    pub(super) send_spec: Option<String>,
    pub(super) send_ident: Option<String>,
    pub(super) recv_spec: Option<String>,
    pub(super) recv_ident: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) handler_timeout_ms: Option<u64>,
    pub(super) websocket: Option<bool>,
    pub(super) cookie_needed: Option<bool>,
    pub(super) response_limit: Option<usize>,
    pub(super) heartbeat_delay_ms: Option<u64>,
    pub(super) disconnect_delay_ms: Option<u64>,
    pub(super) max_queue: Option<usize>,
    pub(super) max_queue_bytes: Option<usize>,
    pub(super) backend_queue_bytes: Option<usize>,
    pub(super) max_message_bytes: Option<usize>,
    pub(super) max_messages_per_send: Option<usize>,
    pub(super) body_timeout_ms: Option<u64>,
    pub(super) max_sessions: Option<usize>,
    pub(super) max_sessions_per_address: Option<usize>,
    pub(super) new_sessions_per_second: Option<usize>,
    pub(super) origins: Option<Vec<String>>,
    pub(super) sockjs_url: Option<String>,
    pub(super) allow_origins: Option<Vec<String>>,
    pub(super) websocket_ping_ms: Option<u64>,
    pub(super) poll_batch_ms: Option<u64>,
    pub(super) connect_info: Option<bool>,
    pub(super) connect_headers: Option<Vec<String>>,
    pub(super) auth: Option<String>,
    pub(super) auth_timeout_ms: Option<u64>,
    pub(super) auth_jwt: Option<auth::FileJwt>,
    pub(super) curve_secret_key: Option<PathBuf>,
    pub(super) curve_clients: Option<PathBuf>,
    pub(super) backend_allow: Option<Vec<String>>,
}

pub(super) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        // toml's message spans several lines; one line is what a terminal wants.
        message: e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    })
}
