//! The text both formats make of a family with several label sets, one of
//! them needing escaping.

use super::*;

#[derive(Debug)]
struct TwoServices;

impl prometheus_client::collector::Collector for TwoServices {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let services = ["/a", "/q\"uo\\te\nx"];
        counters(
            &mut e,
            "messages",
            "Messages.",
            services.map(|s| ([("service", s)], 7)),
        )?;
        gauges(
            &mut e,
            "open",
            "Open.",
            services.map(|s| ([("service", s)], -1)),
        )
    }
}

fn registry() -> Registry {
    let mut r = Registry::default();
    r.sub_registry_with_prefix("sockjsproxy")
        .register_collector(Box::new(TwoServices));
    r
}

#[test]
fn prometheus_text_names_counter_families_with_total_and_escapes_labels() {
    assert_eq!(
        render(&registry(), Format::Prometheus),
        "# HELP sockjsproxy_messages_total Messages.\n\
         # TYPE sockjsproxy_messages_total counter\n\
         sockjsproxy_messages_total{service=\"/a\"} 7\n\
         sockjsproxy_messages_total{service=\"/q\\\"uo\\\\te\\nx\"} 7\n\
         # HELP sockjsproxy_open Open.\n\
         # TYPE sockjsproxy_open gauge\n\
         sockjsproxy_open{service=\"/a\"} -1\n\
         sockjsproxy_open{service=\"/q\\\"uo\\\\te\\nx\"} -1\n"
    );
}

#[test]
fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
    assert_eq!(
        render(&registry(), Format::OpenMetrics),
        "# HELP sockjsproxy_messages Messages.\n\
         # TYPE sockjsproxy_messages counter\n\
         sockjsproxy_messages_total{service=\"/a\"} 7\n\
         sockjsproxy_messages_total{service=\"/q\\\"uo\\\\te\\nx\"} 7\n\
         # HELP sockjsproxy_open Open.\n\
         # TYPE sockjsproxy_open gauge\n\
         sockjsproxy_open{service=\"/a\"} -1\n\
         sockjsproxy_open{service=\"/q\\\"uo\\\\te\\nx\"} -1\n\
         # EOF\n"
    );
}

#[test]
fn openmetrics_only_for_scrapers_that_ask_for_it() {
    let prometheus =
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3";
    assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
    assert_eq!(Format::from_accept(None), Format::Prometheus);
}
