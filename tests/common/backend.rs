//! A real 0MQ backend peer: a PULL connected to the proxy's PUSH endpoint and a
//! PUSH connected to its PULL endpoint, both owned by one task (tmq sockets are
//! `Send`, not `Sync`). The test reads every event the proxy sent and sends
//! commands through channels; in echo mode the task also answers each
//! `message` with the same message to the same session.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::{Endpoints, IO_LIMIT, Proxy};

/// One multipart message from the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub session: String,
    pub data: Vec<u8>,
    /// How many parts the message had (the protocol says 3).
    pub parts: usize,
}

pub struct Backend {
    events: mpsc::UnboundedReceiver<Event>,
    commands: mpsc::UnboundedSender<Vec<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl Backend {
    /// A backend of the proxy's first service that only records events and
    /// sends what the test says.
    pub fn connect(proxy: &Proxy) -> Backend {
        Backend::start(&proxy.services[0], false)
    }

    /// A backend of the proxy's first service that echoes every client
    /// message back to its session.
    pub fn echo(proxy: &Proxy) -> Backend {
        Backend::start(&proxy.services[0], true)
    }

    /// A backend of one service.
    pub fn start(service: &Endpoints, echo: bool) -> Backend {
        let zmq = tmq::Context::new();
        let mut pull = tmq::pull(&zmq)
            .set_linger(0)
            .connect(&service.push)
            .expect("connect PULL to the proxy's PUSH");
        let mut push = tmq::push(&zmq)
            .set_linger(0)
            .connect(&service.pull)
            .expect("connect PUSH to the proxy's PULL");
        let (event_tx, events) = mpsc::unbounded_channel();
        let (commands, mut command_rx) = mpsc::unbounded_channel::<Vec<Vec<u8>>>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = pull.next() => {
                        let Some(Ok(message)) = message else { break };
                        let parts: Vec<Vec<u8>> = message.iter().map(|m| m.to_vec()).collect();
                        let text = |i: usize| {
                            parts.get(i).map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default()
                        };
                        let event = Event {
                            kind: text(0),
                            session: text(1),
                            data: parts.get(2).cloned().unwrap_or_default(),
                            parts: parts.len(),
                        };
                        if echo && event.kind == "message" {
                            let reply = vec![b"message".to_vec(), parts[1].clone(), event.data.clone()];
                            if push.send(tmq::Multipart::from(reply)).await.is_err() {
                                break;
                            }
                        }
                        if event_tx.send(event).is_err() {
                            break;
                        }
                    }
                    command = command_rx.recv() => {
                        let Some(parts) = command else { break };
                        if push.send(tmq::Multipart::from(parts)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Backend {
            events,
            commands,
            task,
        }
    }

    /// The next event; panics if none comes within [`IO_LIMIT`].
    pub async fn next(&mut self) -> Event {
        match timeout(IO_LIMIT, self.events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("backend task ended"),
            Err(_) => panic!("backend got no event in {IO_LIMIT:?}"),
        }
    }

    /// The next event if one comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        timeout(wait, self.events.recv()).await.ok().flatten()
    }

    /// Asserts the next event is a well-formed `kind` and returns its session id.
    pub async fn expect(&mut self, kind: &str) -> String {
        let event = self.next().await;
        assert_eq!(event.kind, kind, "unexpected event {event:?}");
        assert_eq!(event.parts, 3, "event {event:?} must have 3 parts");
        assert!(
            !event.session.is_empty() && event.session.bytes().all(|b| b.is_ascii_digit()),
            "session id of {event:?} is not a decimal integer"
        );
        if kind != "message" {
            assert!(event.data.is_empty(), "{kind} carries data: {event:?}");
        }
        event.session
    }

    /// Asserts the next event is `connect` and returns the new session's id.
    pub async fn expect_connect(&mut self) -> String {
        self.expect("connect").await
    }

    /// Asserts the next event is `connect` with one JSON object as its data
    /// (connection info, authentication); returns the session id and it.
    pub async fn expect_connect_json(&mut self) -> (String, serde_json::Value) {
        let event = self.next().await;
        assert_eq!(event.kind, "connect", "unexpected event {event:?}");
        let data: serde_json::Value = serde_json::from_slice(&event.data)
            .unwrap_or_else(|e| panic!("connect data is not JSON ({e}): {event:?}"));
        assert!(data.is_object(), "connect data is not an object: {data}");
        (event.session, data)
    }

    /// Asserts the next event is `disconnect` of `session`.
    pub async fn expect_disconnect(&mut self, session: &str) {
        let id = self.expect("disconnect").await;
        assert_eq!(id, session, "disconnect of another session");
    }

    /// Asserts the next event is a `message` of `session` and returns its text.
    pub async fn expect_message(&mut self, session: &str) -> String {
        let event = self.next().await;
        assert_eq!(
            (event.kind.as_str(), event.session.as_str()),
            ("message", session),
            "unexpected event {event:?}"
        );
        String::from_utf8(event.data).expect("message data is not UTF-8")
    }

    /// Sends a raw multipart message to the proxy.
    pub fn send(&self, parts: &[&[u8]]) {
        let parts = parts.iter().map(|p| p.to_vec()).collect();
        self.commands.send(parts).expect("backend task ended");
    }

    pub fn send_message(&self, session: &str, text: &str) {
        self.send(&[b"message", session.as_bytes(), text.as_bytes()]);
    }

    pub fn disconnect(&self, session: &str) {
        self.send(&[b"disconnect", session.as_bytes(), b""]);
    }

    pub fn disconnect_all(&self) {
        self.send(&[b"disconnectall", b"", b""]);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens a raw websocket session on `/echo` and returns it with the id its
/// `connect` event carried to `backend`.
pub async fn raw_session(proxy: &super::Proxy, backend: &mut Backend) -> (super::ws::Ws, String) {
    let ws = super::ws::connect(proxy.http_port, "/echo/websocket").await;
    let id = backend.expect_connect().await;
    (ws, id)
}
