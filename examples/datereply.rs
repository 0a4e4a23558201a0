//! The "date reply" sample backend of the original SockJSProxy: it answers each
//! client message with `The time now is: <now>` and then disconnects that
//! session, so the browser sees one reply and a close (code 3000).
//!
//! It takes the proxy's own flags, so one command line describes both:
//!
//! ```text
//! target/release/sockjsproxy --samples samples --verbose &
//! target/release/examples/datereply        # then visit http://localhost:8080/samples/
//! ```
//!
//! With `--config FILE` it serves every service of that file. It prints one
//! line per backend event on stdout, `connect <session>`, `message <session>
//! <json text>` and `disconnect <session>`, flushed at once (the browser tests
//! read them). When the service gives connection info (`--connect-info`, or
//! authentication), it greets each new session by its user's name, or by
//! its address.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use sockjsproxy::backend::peer::{Who, connect_services};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // A second of linger, so that the last reply goes out before an exit.
    let endpoints = sockjsproxy::config::peer_endpoints("datereply");
    let (_zmq, services) = connect_services("datereply", endpoints, 1000);
    let mut tasks = Vec::new();
    for service in services {
        tasks.push(tokio::spawn(serve(service.events, service.commands)));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// One line per event on stdout, flushed so that a reader sees it at once.
fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn serve(mut events: tmq::pull::Pull, mut commands: tmq::push::Push) {
    while let Some(Ok(event)) = events.next().await {
        let parts: Vec<Vec<u8>> = event.iter().map(|m| m.to_vec()).collect();
        let [kind, session, data] = parts.as_slice() else {
            log::warn!("event with {} parts ignored", parts.len());
            continue;
        };
        let id = String::from_utf8_lossy(session).into_owned();
        match kind.as_slice() {
            b"connect" => {
                report(&format!("connect {id}"));
                if let Some(greeting) = greeting(data)
                    && !send(&mut commands, &[b"message", session, greeting.as_bytes()]).await
                {
                    return;
                }
            }
            b"disconnect" => report(&format!("disconnect {id}")),
            b"message" => {
                let text = String::from_utf8_lossy(data);
                report(&format!(
                    "message {id} {}",
                    serde_json::Value::from(text.as_ref())
                ));
                let reply = format!("The time now is: {}", now_utc());
                for command in [
                    [&b"message"[..], session, reply.as_bytes()],
                    [&b"disconnect"[..], session, &b""[..]],
                ] {
                    if !send(&mut commands, &command).await {
                        return;
                    }
                }
            }
            other => log::warn!("unknown event {:?} ignored", String::from_utf8_lossy(other)),
        }
    }
}

async fn send(commands: &mut tmq::push::Push, parts: &[&[u8]; 3]) -> bool {
    let msg: Vec<tmq::Message> = parts.iter().map(|p| tmq::Message::from(*p)).collect();
    commands.send(tmq::Multipart::from(msg)).await.is_ok()
}

/// `Hello, alice!` when the connect data names a user (or an address).
fn greeting(data: &[u8]) -> Option<String> {
    let who = match Who::parse(data) {
        Ok(who) => who?,
        Err(e) => {
            log::warn!("connect data not understood: {e}");
            return None;
        }
    };
    let name = who.user.or(who.remote_addr)?;
    Some(format!("Hello, {name}!"))
}

/// The current time as `YYYY-MM-DD HH:MM:SS UTC`, with no date crate: the
/// civil-from-days conversion of the proleptic Gregorian calendar.
fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
