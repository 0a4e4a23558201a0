//! `/metrics` and `/healthz`, on the main port or a separate one
//! (`--metrics-port`).
//!
//! The text is made by the `prometheus-client` crate, not by hand: each family
//! is one group (HELP, TYPE, then all its samples, every service's together)
//! and label values are escaped by construction. A scraper that asks for
//! OpenMetrics (`Accept: application/openmetrics-text`, as Prometheus does)
//! gets OpenMetrics 1.0 (`# EOF`, counter families named without `_total`);
//! anyone else (curl, Python's `prometheus_client.parser`) gets the Prometheus
//! text format 0.0.4, in which Python's parser reads a counter family as one
//! family only when its TYPE line carries the `_total` name.
//!
//! Checked by hand once: Prometheus 2.42 (Debian's) scrapes it as OpenMetrics,
//! target up, the escaped label read back as configured; `promtool check
//! metrics` finds nothing to say about the 0.0.4 text.
//!
//! Nothing is counted here: the counters live where the work is done (the
//! SockJS layer's `sockjs::metrics`, the backend's `Stats`, the native ZMTP
//! sockets' `Counters`, bridge mode's `bridge::stats`) and the collectors of
//! this module read them when scraped, so the hot paths pay only their atomic
//! adds. Families: [`service`] (per service), [`process`] (`process_*`, from
//! `/proc`), `sockjsproxy_build_info`, and bridge mode's.

mod process;
mod service;

use std::fmt;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

pub use service::Sources;

/// The OpenMetrics 1.0 content type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which text format a scrape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenMetrics 1.0, for scrapers that ask for it.
    OpenMetrics,
    /// The Prometheus text format 0.0.4, for everyone else.
    Prometheus,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it, else 0.0.4.
    pub(crate) fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// Every family the proxy exports, for these services.
pub(crate) fn registry(sources: Sources) -> Registry {
    let mut registry = Registry::default();
    process::register(registry.sub_registry_with_prefix("process"));
    let ours = registry.sub_registry_with_prefix("sockjsproxy");
    ours.register(
        "build",
        "The proxy's version; always 1",
        Info::new([("version", env!("CARGO_PKG_VERSION"))]),
    );
    ours.register_collector(Box::new(sources));
    ours.register_collector(Box::new(crate::bridge::stats::Collector));
    ours.register_collector(Box::new(crate::mongrel2::metrics::Collector));
    registry
}

/// The registry's text in `format`.
pub(crate) fn render(registry: &Registry, format: Format) -> String {
    let mut out = String::with_capacity(8192);
    let done = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        }
    };
    // Writing to a String fails only if a collector does, and ours do not.
    if let Err(e) = done {
        log::error!("/metrics: encoding failed: {e}");
    }
    out
}

/// Mounts `/metrics` and `/healthz`.
pub fn configure(sources: Sources) -> impl Fn(&mut web::ServiceConfig) + Clone {
    let registry = Arc::new(registry(sources));
    move |cfg: &mut web::ServiceConfig| {
        let registry = registry.clone();
        cfg.route(
            "/metrics",
            web::get().to(move |req: HttpRequest| {
                let accept = req.headers().get("accept").and_then(|v| v.to_str().ok());
                let format = Format::from_accept(accept);
                let text = render(&registry, format);
                async move {
                    HttpResponse::Ok()
                        .content_type(format.content_type())
                        .body(text)
                }
            }),
        );
    }
}

/// `GET /healthz`: `ok` while the server runs. Public wherever `/metrics` is.
pub fn health(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/healthz",
        web::get().to(|| async { HttpResponse::Ok().content_type("text/plain").body("ok\n") }),
    );
}

/// Writes one counter family: its descriptor, then a sample per label set.
/// `name` is without `_total`, which the encoder adds.
pub(crate) fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one gauge family, as [`counters`] does.
pub(crate) fn gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, i64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge of one unlabelled sample, in `unit` if given (the name then gets
/// the unit's suffix).
fn single_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> fmt::Result {
    let family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(family)
}

#[cfg(test)]
mod tests;
