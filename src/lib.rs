//! sockjsproxy: a SockJS server whose sessions are served by 0MQ backends.
//!
//! - [`sockjs`]: the SockJS protocol on actix-web, with no 0MQ inside;
//! - [`backend`]: the PUSH/PULL sockets and their wire protocol;
//! - [`bridge`]: bridge mode, and [`bridge::rpc`] for its Rust backends;
//! - [`mongrel2`]: Mongrel2 handlers, for HTTP routes and SockJS services;
//! - [`config`] and [`cli`]: what to serve; [`server`]: serving it.
//!
//! Public is what the binary, Rust backends (`backend::peer`,
//! `bridge::rpc`, the protocol types) and the tests use; the HTTP server's
//! plumbing (`listen`, `upgrade`, `websocket`, `tls`, `metrics`, `shutdown`)
//! is the crate's own.

pub mod auth;
pub mod backend;
pub mod bridge;
pub mod cli;
pub mod config;
pub(crate) mod listen;
pub mod memory;
pub(crate) mod metrics;
pub mod mongrel2;
pub(crate) mod ratelog;
pub(crate) mod reqrep;
pub mod server;
pub(crate) mod shutdown;
pub mod sockjs;
mod static_files;
pub(crate) mod tls;
pub(crate) mod upgrade;
pub(crate) mod websocket;
