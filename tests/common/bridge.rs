//! Real parts for the bridge tests: the proxy (the one launcher,
//! [`super::Proxy`]) with bridge mode at `/data`, a websocket client speaking
//! the bridge's JSON frames, and 0MQ REP and PUB peers. Every wait is bounded.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected frame may take.
pub const FRAME_WAIT: Duration = Duration::from_secs(5);

pub fn endpoint() -> String {
    format!("tcp://127.0.0.1:{}", super::free_port())
}

/// A policy file in the temp dir; removed with the proxy.
pub fn policy_file(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "bridge-policy-{}-{}.toml",
        std::process::id(),
        super::free_port()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// The proxy with bridge mode at `/data`.
pub struct BridgeProxy(pub super::Proxy);

impl BridgeProxy {
    pub async fn start(bridge_args: &[&str]) -> BridgeProxy {
        let args: Vec<String> = ["--bridge", "/data"]
            .iter()
            .chain(bridge_args)
            .map(|s| s.to_string())
            .collect();
        BridgeProxy(super::Proxy::with_args("", move || args.clone(), "info").await)
    }

    pub fn port(&self) -> u16 {
        self.0.http_port
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/data", self.port())
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url(), &[])
            .await
            .expect("websocket upgrade")
    }
}

/// A browser stand-in.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(
        url: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let (ws, _) = tokio::time::timeout(FRAME_WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("upgrade timed out")?;
        Ok(Client { ws })
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// The next text frame, as JSON; panics after [`FRAME_WAIT`].
    pub async fn recv(&mut self) -> Value {
        self.recv_within(FRAME_WAIT)
            .await
            .expect("no frame in time")
    }

    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let next = tokio::time::timeout(wait, self.ws.next()).await.ok()??;
            match next.expect("websocket error") {
                Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Sends a connect the way zmq-bridge.js does (double-encoded content).
    pub async fn connect_socket(
        &mut self,
        identity: &str,
        endpoint: &str,
        socket_type: i64,
        extra: Value,
    ) -> Value {
        let mut content = extra;
        content["zmq_conn_string"] = json!(endpoint);
        content["socket_type"] = json!(socket_type);
        self.send(
            json!({"identity": identity, "msg_type": "connect", "content": content.to_string()}),
        )
        .await;
        self.recv().await
    }

    pub async fn send_data(&mut self, identity: &str, content: &str) {
        self.send(json!({"identity": identity, "msg_type": "userlevel", "content": content}))
            .await;
    }
}

/// The status of a connection_reply or error frame.
pub fn status(frame: &Value) -> (String, String) {
    let content: Value = serde_json::from_str(frame["content"].as_str().unwrap()).unwrap();
    (
        content["status"].as_str().unwrap_or_default().to_string(),
        content["error"].as_str().unwrap_or_default().to_string(),
    )
}

pub fn assert_connected(frame: &Value, identity: &str) {
    assert_eq!(frame["identity"], identity, "{frame}");
    assert_eq!(frame["msg_type"], "connection_reply", "{frame}");
    assert_eq!(status(frame).0, "success", "{frame}");
}

/// Asserts an error frame (msg_type `msg_type`) whose error text contains `needle`.
pub fn assert_error(frame: &Value, identity: &str, msg_type: &str, needle: &str) {
    assert_eq!(frame["identity"], identity, "{frame}");
    assert_eq!(frame["msg_type"], msg_type, "{frame}");
    let (status, error) = status(frame);
    assert_eq!(status, "error", "{frame}");
    assert!(error.contains(needle), "{error:?} lacks {needle:?}");
}

/// A REP backend: `answer` gives the delay and the reply for each request.
/// Returns the log of requests it received.
pub fn rep_peer(
    endpoint: &str,
    answer: impl Fn(&str) -> (Duration, String) + Send + 'static,
) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut receiver = tmq::reply(&tmq::Context::new())
        .set_linger(0)
        .bind(endpoint)
        .unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((request, sender)) = receiver.recv().await else {
                break;
            };
            let parts: Vec<String> = request
                .iter()
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .collect();
            let text = parts.join("|");
            log.lock().unwrap().push(text.clone());
            let (delay, reply) = answer(&text);
            tokio::time::sleep(delay).await;
            let msg = tmq::Multipart::from(vec![tmq::Message::from(reply.as_bytes())]);
            match sender.send(msg).await {
                Ok(r) => receiver = r,
                Err(_) => break,
            }
        }
    });
    seen
}

/// A PUB backend sending `messages()` in turn every `every`, until dropped.
pub fn pub_peer(
    endpoint: &str,
    every: Duration,
    messages: Vec<String>,
) -> tokio::task::JoinHandle<()> {
    let mut socket = tmq::publish(&tmq::Context::new())
        .set_linger(0)
        .bind(endpoint)
        .unwrap();
    tokio::spawn(async move {
        for message in messages.iter().cycle() {
            let msg = tmq::Multipart::from(vec![tmq::Message::from(message.as_bytes())]);
            if socket.send(msg).await.is_err() {
                break;
            }
            tokio::time::sleep(every).await;
        }
    })
}

pub fn echo(prefix: &'static str) -> impl Fn(&str) -> (Duration, String) + Send + 'static {
    move |m| (Duration::ZERO, format!("{prefix}{m}"))
}
