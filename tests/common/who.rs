//! For the "who is connected" tests: a real auth service (a libzmq ROUTER on
//! its own thread, answering like a REP service, each answer when the test
//! says) and one client per SockJS transport that reads frames until a close.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::http::{self, Frames, Wire};
use super::{PREFIX, ws};

/// An auth service on loopback. It answers by the `who` query parameter of
/// the session: `deny` → denied ("banned"), `garbage` → not JSON, `slow` →
/// allowed after 5 s, `later` → allowed after 300 ms, `silent` → never,
/// any other name → allowed as that user with `{"role": "user"}`.
pub struct AuthService {
    pub endpoint: String,
    /// Every question received, in order.
    pub questions: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuthService {
    pub fn start() -> AuthService {
        let ctx = zmq::Context::new();
        let socket = ctx.socket(zmq::ROUTER).unwrap();
        socket.set_linger(0).unwrap();
        socket.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = socket.get_last_endpoint().unwrap().unwrap();
        let questions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (questions, stop) = (questions.clone(), stop.clone());
            move || serve(&socket, &questions, &stop)
        });
        AuthService {
            endpoint,
            questions,
            stop,
            thread: Some(thread),
        }
    }

    pub fn question_count(&self) -> usize {
        self.questions.lock().unwrap().len()
    }
}

impl Drop for AuthService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(socket: &zmq::Socket, questions: &Mutex<Vec<Value>>, stop: &AtomicBool) {
    let mut due: Vec<(Instant, Vec<Vec<u8>>)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if socket.poll(zmq::POLLIN, 20).unwrap_or(0) > 0 {
            let mut parts = socket.recv_multipart(0).unwrap();
            let body = parts.pop().unwrap();
            let question: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let query = question["query"].as_str().unwrap_or("").to_string();
            questions.lock().unwrap().push(question);
            let who = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("who="))
                .unwrap_or("")
                .to_string();
            let allow = |user: &str| json!({"allow": true, "user": user, "data": {"role": "user"}});
            let (delay, answer) = match who.as_str() {
                "deny" => (0, json!({"allow": false, "reason": "banned"}).to_string()),
                "garbage" => (0, "not json".to_string()),
                "slow" => (5000, allow("slow").to_string()),
                "later" => (300, allow("later").to_string()),
                "silent" => continue,
                name => (0, allow(name).to_string()),
            };
            parts.push(answer.into_bytes());
            due.push((Instant::now() + Duration::from_millis(delay), parts));
        }
        let now = Instant::now();
        let (ready, waiting): (Vec<_>, Vec<_>) = due.drain(..).partition(|(at, _)| *at <= now);
        due = waiting;
        for (_, parts) in ready {
            let _ = socket.send_multipart(parts, 0);
        }
    }
}

/// Every transport a session can open with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Websocket,
    XhrStreaming,
    Xhr,
    EventSource,
    HtmlFile,
    Jsonp,
}

impl Transport {
    pub const ALL: [Transport; 6] = [
        Transport::Websocket,
        Transport::XhrStreaming,
        Transport::Xhr,
        Transport::EventSource,
        Transport::HtmlFile,
        Transport::Jsonp,
    ];

    /// The name in the connect JSON.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::XhrStreaming => "xhr_streaming",
            Transport::Xhr => "xhr",
            Transport::EventSource => "eventsource",
            Transport::HtmlFile => "htmlfile",
            Transport::Jsonp => "jsonp",
        }
    }
}

/// One SockJS session's client, on any transport.
pub enum Client {
    Ws(Box<ws::Ws>),
    /// The response, the session's base path and the query.
    Streaming(Box<Frames>, String, String),
    Polling(Transport, String, String),
}

impl Client {
    /// Opens session `id` with `query` on every request (as sockjs-client
    /// does with the query of its URL).
    pub async fn open(port: u16, transport: Transport, id: &str, query: &str) -> Client {
        let base = format!("{PREFIX}/000/{id}");
        let q = |extra: &str| {
            let all: Vec<&str> = [extra, query]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            format!("?{}", all.join("&"))
        };
        match transport {
            Transport::Websocket => Client::Ws(Box::new(
                ws::connect(port, &format!("{base}/websocket{}", q(""))).await,
            )),
            Transport::XhrStreaming => {
                let path = format!("{base}/xhr_streaming{}", q(""));
                let mut f = Frames::open(port, "POST", &path, Wire::Newline).await;
                f.prelude(2049).await;
                Client::Streaming(Box::new(f), base, query.into())
            }
            Transport::EventSource => {
                let path = format!("{base}/eventsource{}", q(""));
                let mut f = Frames::open(port, "GET", &path, Wire::EventSource).await;
                f.prelude(2).await;
                Client::Streaming(Box::new(f), base, query.into())
            }
            Transport::HtmlFile => {
                let path = format!("{base}/htmlfile{}", q("c=cb"));
                let mut f = Frames::open(port, "GET", &path, Wire::HtmlFile).await;
                f.until(b"\r\n\r\n").await;
                Client::Streaming(Box::new(f), base, query.into())
            }
            Transport::Xhr | Transport::Jsonp => Client::Polling(transport, base, query.into()),
        }
    }

    /// The next frame other than a heartbeat; polling transports poll.
    pub async fn next(&mut self, port: u16) -> String {
        loop {
            let frame = match self {
                Client::Ws(w) => ws::text(w).await,
                Client::Streaming(f, _, _) => f.next().await,
                Client::Polling(Transport::Jsonp, base, query) => {
                    let r = http::get(port, &format!("{base}/jsonp?c=cb&{query}")).await;
                    http::jsonp_frame(&r.text(), "cb")
                }
                Client::Polling(_, base, query) => {
                    let r = http::post(port, &format!("{base}/xhr?{query}"), b"").await;
                    r.text().trim_end().to_string()
                }
            };
            if frame != "h" {
                return frame;
            }
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, port: u16, text: &str) {
        let payload = super::payload(&[text]);
        match self {
            Client::Ws(w) => w.send(Message::Text(payload)).await.expect("send"),
            Client::Polling(Transport::Jsonp, base, query) => {
                let r = http::post(
                    port,
                    &format!("{base}/jsonp_send?{query}"),
                    payload.as_bytes(),
                )
                .await;
                assert_eq!(r.status, 200);
            }
            Client::Streaming(_, base, query) | Client::Polling(_, base, query) => {
                let r = http::post(
                    port,
                    &format!("{base}/xhr_send?{query}"),
                    payload.as_bytes(),
                )
                .await;
                assert_eq!(r.status, 204);
            }
        }
    }
}
