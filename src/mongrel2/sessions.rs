//! SockJS for Mongrel2 handlers: a `[[service]]` with `backend = "mongrel2"`
//! presents each SockJS session, whatever its transport, to the handler as a
//! websocket connection, so an unmodified Mongrel2 websocket handler serves
//! every SockJS transport. This is the SockJS layer's application seam
//! ([`Application`]), implemented a second time beside [`crate::backend`];
//! the SockJS layer learns nothing of Mongrel2.
//!
//! - a session opens: a `WEBSOCKET_HANDSHAKE` request; the handler's `101`
//!   is awaited (within `handler_timeout_ms`) before its frames count;
//! - a client message: a `WEBSOCKET` request, `FLAGS` `0x81`, the text;
//! - the handler's text (or binary, read as UTF-8) messages, fragments put
//!   together, become SockJS messages; its pings are answered with pongs on
//!   the client's behalf (a SockJS client cannot); its close frame or empty
//!   reply closes the session;
//! - the session closes, for any reason: Mongrel2's disconnect message;
//!   at shutdown every session is closed (`c[1001,"Server shutting down"]`).
//!
//! A frame that is malformed, or text that is not UTF-8, is refused, counted
//! and logged, never passed on.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::frames::{self, FrameChecker};
use super::link::{Conn, Link};
use super::response::{Part, ResponseParser};
use crate::sockjs::admission::Connected;
use crate::sockjs::budget::Held;
use crate::sockjs::{Application, SessionHandle, SessionKey};

static REFUSED: crate::ratelog::Throttle =
    crate::ratelog::Throttle::new("mongrel2 frames refused for SockJS sessions");
static UNSENT: crate::ratelog::Throttle =
    crate::ratelog::Throttle::new("mongrel2 SockJS messages not sent, no handler");

/// One SockJS service's sessions, each a websocket connection to handlers.
pub struct Sessions {
    link: Arc<Link>,
    open: Mutex<HashMap<SessionKey, Open>>,
}

/// What the service keeps of an open session.
struct Open {
    conn_id: u64,
    handle: SessionHandle,
    /// Dropped when the session closes: its task ends, and the handler
    /// hears the disconnect.
    _closed: oneshot::Sender<()>,
}

impl Sessions {
    pub fn new(link: Arc<Link>) -> Sessions {
        Sessions {
            link,
            open: Mutex::default(),
        }
    }

    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    fn open(&self) -> MutexGuard<'_, HashMap<SessionKey, Open>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request headers of one session's websocket requests.
    fn headers(&self, who: &Connected, method: &str) -> Vec<(String, String)> {
        let settings = self.link.settings();
        let path = format!("{}/websocket", settings.route);
        let mut h = vec![("PATH".to_string(), path.clone())];
        if let Some(info) = &who.info {
            for (k, v) in &info.headers {
                h.push((k.clone(), v.clone()));
            }
        }
        h.push(("upgrade".into(), "websocket".into()));
        h.push(("connection".into(), "Upgrade".into()));
        h.push(("METHOD".into(), method.into()));
        h.push(("VERSION".into(), "HTTP/1.1".into()));
        h.push(("URI".into(), path));
        h.push(("PATTERN".into(), format!("{}/", settings.route)));
        h.push(("URL_SCHEME".into(), "http".into()));
        if let Some(addr) = who.info.as_ref().and_then(|i| i.remote_addr) {
            h.push(("REMOTE_ADDR".into(), addr.to_string()));
        }
        if let Some(user) = &who.user {
            h.push(("x-sockjs-user".into(), user.clone()));
        }
        h
    }
}

impl Application for Sessions {
    fn on_open(&self, key: SessionKey, handle: SessionHandle, who: &Connected) {
        let conn = self.link.open();
        let (closed_tx, closed_rx) = oneshot::channel();
        self.open().insert(
            key,
            Open {
                conn_id: conn.id,
                handle: handle.clone(),
                _closed: closed_tx,
            },
        );
        let headers = self.headers(who, "WEBSOCKET_HANDSHAKE");
        let path = headers[0].1.clone();
        // The handler echoes this in its 101; a SockJS session has no key,
        // so the value of a fixed one stands in.
        let accept = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_vec();
        if conn.send(&path, headers, accept).is_err() {
            log::warn!(
                "mongrel2 service {}: no handler for a new session",
                self.link.name()
            );
            handle.close(1011, "No handler");
            return;
        }
        let mut ws_headers = self.headers(who, "WEBSOCKET");
        ws_headers.push(("FLAGS".into(), "0x8A".into()));
        actix_web::rt::spawn(run(conn, handle, closed_rx, path, ws_headers));
    }

    fn on_message(&self, key: SessionKey, message: String, _held: Held) {
        let Some(conn_id) = self.open().get(&key).map(|o| o.conn_id) else {
            return;
        };
        let settings = self.link.settings();
        let path = format!("{}/websocket", settings.route);
        let headers = vec![
            ("PATH".to_string(), path.clone()),
            ("METHOD".to_string(), "WEBSOCKET".to_string()),
            ("FLAGS".to_string(), "0x81".to_string()),
        ];
        let request = super::request::Request {
            uuid: settings.send_ident.clone(),
            conn_id,
            path,
            headers,
            body: message.into_bytes(),
        };
        if let Err(e) = self.link.send(&request) {
            UNSENT.warn(format_args!("service {}: {e}", self.link.name()));
        }
    }

    fn on_close(&self, key: SessionKey) {
        self.open().remove(&key);
    }
}

/// At shutdown every session closes; each one's end is told to the handler.
impl crate::shutdown::Closing for Sessions {
    fn close_all(&self, code: u16, reason: &'static str) -> usize {
        let all: Vec<SessionHandle> = self.open().values().map(|o| o.handle.clone()).collect();
        for handle in &all {
            handle.close(code, reason);
        }
        all.len()
    }

    fn settled(&self) -> bool {
        self.open().is_empty() && self.link.connections() == 0
    }
}

/// One session's replies: the handshake, then frames, until the session
/// closes or the handler closes it.
async fn run(
    mut conn: Conn,
    handle: SessionHandle,
    mut closed: oneshot::Receiver<()>,
    path: String,
    pong_headers: Vec<(String, String)>,
) {
    let link = conn.link().clone();
    let refuse = |what: std::fmt::Arguments<'_>| {
        let n = link.stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
        REFUSED.warn(format_args!("service {}: {what} ({n} so far)", link.name()));
    };
    // The handshake's answer.
    let mut parser = ResponseParser::new(false, super::route::MAX_HEAD_BYTES);
    let mut parts = Vec::new();
    let upgraded = loop {
        let reply = tokio::select! {
            reply = conn.recv_timeout() => reply,
            _ = &mut closed => return,
        };
        let Ok(Some(reply)) = reply else { break false };
        if parser.feed(&reply, &mut parts).is_err() {
            break false;
        }
        if let Some(Part::Head(head)) = parts.first() {
            break head.status == 101;
        }
    };
    if !upgraded {
        refuse(format_args!(
            "no 101 answer to the handshake of connection {}",
            conn.id
        ));
        handle.close(1011, "Handler refused");
        return;
    }
    let mut checker = FrameChecker::default();
    let mut message: Vec<u8> = Vec::new();
    loop {
        let reply = tokio::select! {
            reply = conn.recv() => reply,
            _ = &mut closed => return,
        };
        let Some(reply) = reply else {
            handle.close(1011, "Handler link overflowed");
            return;
        };
        if reply.is_empty() {
            handle.close(3000, "Go away!");
            return;
        }
        if let Err(e) = checker.check(&reply) {
            refuse(format_args!("connection {}: {e}", conn.id));
            continue;
        }
        for (fin, opcode, payload) in frames::each(&reply) {
            match opcode {
                0x0..=0x2 => {
                    if message.len() + payload.len() > link.settings().max_message_bytes {
                        refuse(format_args!("connection {}: message too long", conn.id));
                        handle.close(1009, "Message too big");
                        return;
                    }
                    message.extend_from_slice(payload);
                    if fin {
                        match String::from_utf8(std::mem::take(&mut message)) {
                            Ok(text) => handle.send(text),
                            Err(_) => refuse(format_args!("connection {}: not UTF-8", conn.id)),
                        }
                    }
                }
                0x8 => {
                    handle.close(3000, "Go away!");
                    return;
                }
                0x9 => {
                    let _ = conn.send(&path, pong_headers.clone(), payload.to_vec());
                }
                _ => {} // a pong: nothing to do
            }
        }
    }
}
