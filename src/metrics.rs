//! `/metrics` in the Prometheus text format and `/healthz`, on the main port
//! or a separate one (`--metrics-port`).
//!
//! Everything here reads counters kept elsewhere (sockjs::metrics, the
//! backend's stats); rendering happens only when scraped.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};

use crate::backend::Backend;
use crate::sockjs::Service;
use crate::sockjs::metrics::{DropReason, Transport};

/// What the endpoints report on: each service with its backend.
#[derive(Clone, Default)]
pub struct Sources(pub Vec<(Arc<Service>, Arc<Backend>)>);

/// Mounts `/metrics` and `/healthz`.
pub fn configure(sources: Sources) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        let sources = sources.clone();
        cfg.route(
            "/metrics",
            web::get().to(move || {
                let text = render(&sources);
                async move {
                    HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4")
                        .body(text)
                }
            }),
        )
        .route(
            "/healthz",
            web::get().to(|| async { HttpResponse::Ok().content_type("text/plain").body("ok\n") }),
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        out,
        "# HELP sockjsproxy_{name} {help}\n# TYPE sockjsproxy_{name} {kind}"
    );
}

/// The Prometheus text for every service.
pub fn render(sources: &Sources) -> String {
    let mut out = String::new();
    let label = |s: &Service| {
        if s.prefix.is_empty() {
            "/".to_string()
        } else {
            s.prefix.clone()
        }
    };

    header(
        &mut out,
        "sessions_open",
        "gauge",
        "Sessions open now, by the transport that opened them.",
    );
    for (s, _) in &sources.0 {
        for t in Transport::ALL {
            let _ = writeln!(
                out,
                "sockjsproxy_sessions_open{{service=\"{}\",transport=\"{}\"}} {}",
                label(s),
                t.name(),
                s.metrics.open(t)
            );
        }
    }
    header(
        &mut out,
        "sessions_opened_total",
        "counter",
        "Sessions opened, by transport.",
    );
    for (s, _) in &sources.0 {
        for t in Transport::ALL {
            let _ = writeln!(
                out,
                "sockjsproxy_sessions_opened_total{{service=\"{}\",transport=\"{}\"}} {}",
                label(s),
                t.name(),
                s.metrics.opened(t)
            );
        }
    }
    header(
        &mut out,
        "sessions_refused_total",
        "counter",
        "New sessions refused by max_sessions.",
    );
    header(
        &mut out,
        "messages_total",
        "counter",
        "Messages, in (from clients) and out (to clients).",
    );
    header(
        &mut out,
        "bytes_total",
        "counter",
        "Message bytes, in and out.",
    );
    header(
        &mut out,
        "dropped_total",
        "counter",
        "Messages dropped, by reason.",
    );
    header(
        &mut out,
        "backend_queue_depth",
        "gauge",
        "Events waiting for the PUSH socket.",
    );
    header(
        &mut out,
        "backend_queue_bytes",
        "gauge",
        "Bytes of client messages held for the backend (budget: backend_queue_bytes).",
    );
    header(
        &mut out,
        "client_backpressure_total",
        "counter",
        "Times clients were held back because the backend queue's byte budget was spent.",
    );
    for (s, b) in &sources.0 {
        let m = &s.metrics;
        let l = label(s);
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "sockjsproxy_sessions_refused_total{{service=\"{l}\"}} {}",
            load(&m.sessions_refused)
        );
        for (dir, msgs, bytes) in [
            ("in", &m.messages_in, &m.bytes_in),
            ("out", &m.messages_out, &m.bytes_out),
        ] {
            let _ = writeln!(
                out,
                "sockjsproxy_messages_total{{service=\"{l}\",direction=\"{dir}\"}} {}",
                load(msgs)
            );
            let _ = writeln!(
                out,
                "sockjsproxy_bytes_total{{service=\"{l}\",direction=\"{dir}\"}} {}",
                load(bytes)
            );
        }
        for r in DropReason::ALL {
            let _ = writeln!(
                out,
                "sockjsproxy_dropped_total{{service=\"{l}\",reason=\"{}\"}} {}",
                r.name(),
                m.dropped(r)
            );
        }
        for (reason, c) in [
            ("backend_queue_full", &b.stats.events_dropped),
            ("bad_backend_message", &b.stats.bad_commands),
            ("unknown_session", &b.stats.unknown_sessions),
        ] {
            let _ = writeln!(
                out,
                "sockjsproxy_dropped_total{{service=\"{l}\",reason=\"{reason}\"}} {}",
                load(c)
            );
        }
        let _ = writeln!(
            out,
            "sockjsproxy_backend_queue_depth{{service=\"{l}\"}} {}",
            b.queue_depth()
        );
        let _ = writeln!(
            out,
            "sockjsproxy_backend_queue_bytes{{service=\"{l}\"}} {}",
            b.queue_bytes().0
        );
        let _ = writeln!(
            out,
            "sockjsproxy_client_backpressure_total{{service=\"{l}\"}} {}",
            b.backpressure_waits()
        );
    }
    backend_connections(&mut out, sources);
    crate::bridge::stats::render(&mut out);
    out
}

/// What the native ZMTP sockets count: backends refused for what they sent,
/// events lost with a broken connection.
fn backend_connections(out: &mut String, sources: &Sources) {
    header(
        out,
        "backend_disconnects_total",
        "counter",
        "Backend connections closed by the proxy for what the backend sent, by reason.",
    );
    header(
        out,
        "backend_unconfirmed_events_total",
        "counter",
        "Events written to a backend connection that broke before the backend's host acknowledged them.",
    );
    header(
        out,
        "backend_unconfirmed_bytes_total",
        "counter",
        "Bytes written to a backend connection that broke before the backend's host acknowledged them.",
    );
    for (s, b) in &sources.0 {
        let l = if s.prefix.is_empty() { "/" } else { &s.prefix };
        let n = &b.stats.native;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        for (reason, c) in [
            ("too_many_frames", &n.too_many_frames),
            ("message_too_large", &n.too_large),
            ("message_on_push", &n.message_on_push),
            ("bad_frame", &n.bad_frames),
        ] {
            let _ = writeln!(
                out,
                "sockjsproxy_backend_disconnects_total{{service=\"{l}\",reason=\"{reason}\"}} {}",
                load(c)
            );
        }
        for (unit, c) in [
            ("events", &n.unconfirmed_events),
            ("bytes", &n.unconfirmed_bytes),
        ] {
            let _ = writeln!(
                out,
                "sockjsproxy_backend_unconfirmed_{unit}_total{{service=\"{l}\"}} {}",
                load(c)
            );
        }
    }
}
