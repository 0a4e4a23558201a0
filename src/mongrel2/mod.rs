//! Mongrel2 handlers behind the proxy: the protocol Mongrel2 speaks with its
//! handlers, so that handlers written for it (in any language) serve HTTP,
//! websockets and SockJS sessions through the proxy unmodified.
//!
//! The codecs here are sans-IO, one concept each:
//! - [`tnetstring`]: the typed netstrings of headers and bodies;
//! - [`request`]: the message to a handler, `UUID CONN_ID PATH HEADERS BODY`;
//! - [`reply`]: a handler's answer, `UUID SIZE:ID ID ID, BODY`;
//! - [`response`]: the raw HTTP response in those answers, read back;
//! - [`frames`]: the check of websocket frames a handler encodes.
//!
//! And the parts that serve them: [`link`] (the sockets to one route's
//! handlers, and each connection's inbox of replies, bounded), [`route`] (HTTP under a `[[mongrel2]]` route) and
//! [`websocket`] (websockets under it); and [`sessions`], SockJS sessions
//! served by Mongrel2 websocket handlers (`backend = "mongrel2"`); their
//! [`metrics`] per route.

pub mod frames;
mod inbox;
pub mod link;
pub(crate) mod metrics;
pub mod reply;
pub mod request;
pub mod response;
pub mod route;
pub mod sessions;
pub mod tnetstring;
mod websocket;
