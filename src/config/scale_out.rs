//! Scale-out mode's settings (`--connect`, `--instance-id`,
//! `--scaleout-heartbeat-ms`), read from the command line into
//! [`ScaleOutConfig`], the type `backend::topology` takes.

use std::time::Duration;

use super::ConfigError;
use crate::backend::topology::ScaleOutConfig;
use crate::cli::Cli;

/// Scale-out settings from the command line; `None` without `--connect`.
pub(super) fn from_cli(cli: &Cli, http_port: u16) -> Result<Option<ScaleOutConfig>, ConfigError> {
    if !cli.connect {
        return Ok(None);
    }
    let instance_id = match &cli.instance_id {
        Some(id) => id.clone(),
        // Host and port name one listener; a host name may hold dots, which
        // separate instance from counter in session ids.
        None => default_instance_id(&host_name(), http_port),
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if instance_id.is_empty() || instance_id.len() > 64 || !instance_id.chars().all(valid) {
        return Err(ConfigError::InstanceId(instance_id));
    }
    Ok(Some(ScaleOutConfig {
        instance_id,
        heartbeat: Duration::from_millis(cli.scaleout_heartbeat_ms),
    }))
}

fn default_instance_id(host: &str, http_port: u16) -> String {
    let host: String = host
        .chars()
        .take(48)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{host}-{http_port}")
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // or truncates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "proxy".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_instance_ids_keep_only_safe_characters() {
        assert_eq!(
            default_instance_id("web1.example.com", 8080),
            "web1-example-com-8080"
        );
    }
}
