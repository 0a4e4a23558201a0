//! sockjsproxy: a SockJS server whose sessions are served by 0MQ backends.
//!
//! - [`sockjs`]: the SockJS protocol on actix-web, with no 0MQ inside;
//! - [`backend`]: the PUSH/PULL sockets and their wire protocol;
//! - [`config`] and [`cli`]: what to serve; [`server`]: serving it.

pub mod backend;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod listen;
pub mod memory;
pub mod metrics;
pub(crate) mod ratelog;
pub mod server;
pub mod shutdown;
pub mod sockjs;
mod static_files;
pub mod tls;
pub mod upgrade;
pub mod websocket;
