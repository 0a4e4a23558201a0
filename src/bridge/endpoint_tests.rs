//! Unit tests of [`super`]: every way libzmq could read an endpoint other
//! than the policy does is refused, and patterns match parts.

use super::*;

fn ok(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap_or_else(|e| panic!("{text:?} refused: {e}"))
}

fn refused(text: &str) -> &'static str {
    match Endpoint::parse(text) {
        Ok(e) => panic!("{text:?} accepted as {e:?}"),
        Err(e) => e.reason,
    }
}

fn pattern(text: &str) -> EndpointPattern {
    EndpointPattern::parse(text).unwrap_or_else(|e| panic!("pattern {text:?} refused: {e}"))
}

fn allows(pattern_text: &str, endpoint: &str) -> bool {
    pattern(pattern_text).matches(&ok(endpoint))
}

#[test]
fn the_source_address_syntax_is_refused() {
    for bypass in [
        "tcp://127.0.0.1:21319;127.0.0.1:21350",
        "tcp://127.0.0.1:21319;127.0.0.1:21319",
        "tcp://lo:0;127.0.0.1:21350",
        "tcp://eth0;127.0.0.1:21350",
        "tcp://;127.0.0.1:21350",
        "tcp://[::1]:1;[::1]:21350",
    ] {
        let reason = refused(bypass);
        assert!(reason.contains("source"), "{bypass}: {reason}");
    }
}

#[test]
fn ports_are_plain_decimal_in_range() {
    assert_eq!(
        ok("tcp://127.0.0.1:21350"),
        Endpoint::Tcp {
            host: Host::V4(Ipv4Addr::LOCALHOST),
            port: 21350
        }
    );
    assert_eq!(
        ok("tcp://127.0.0.1:65535").to_string(),
        "tcp://127.0.0.1:65535"
    );
    // atoi would read each of these as 21350 (86886 wraps around u16).
    for bad in [
        "tcp://127.0.0.1:21350abc",
        "tcp://127.0.0.1:+21350",
        "tcp://127.0.0.1:021350",
        "tcp://127.0.0.1:86886",
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:*",
        "tcp://127.0.0.1:",
        "tcp://127.0.0.1:-1",
        "tcp://127.0.0.1:65536",
        "tcp://127.0.0.1:2131*",
        "tcp://127.0.0.1",
    ] {
        refused(bad);
    }
}

#[test]
fn hosts_that_getaddrinfo_reads_as_numbers_must_be_dotted_quads() {
    for bad in [
        "tcp://127.1:1",
        "tcp://0x7f.0.0.1:1",
        "tcp://0177.0.0.1:1",
        "tcp://2130706433:1",
        "tcp://127.0.0.01:1",
        "tcp://1.2.3.4.5:1",
        "tcp://example.0x10:1",
        "tcp://256.0.0.1:1",
    ] {
        assert!(refused(bad).contains("numeric"), "{bad}");
    }
    assert_eq!(
        ok("tcp://LocalHost:1"),
        Endpoint::Tcp {
            host: Host::Name("localhost".into()),
            port: 1
        }
    );
    ok("tcp://0x7f.example.com:1");
}

#[test]
fn wildcards_interfaces_zones_and_odd_characters_are_refused() {
    for bad in [
        "tcp://*:1",
        "tcp://127.0.0.*:1",
        "tcp://[fe80::1%eth0]:1",
        "tcp://[fe80::1%251]:1",
        "tcp://127.0.0.1:1/path",
        "tcp://user@127.0.0.1:1",
        "tcp://127.0.0.1 :1",
        "tcp:// 127.0.0.1:1",
        "tcp://127.0.0.1:1 ",
        "tcp://127.0.0.1:\t1",
        "tcp://127.0.0.1:1\n",
        "tcp://h\u{e9}:1",
        "tcp://under_score:1",
        "tcp://-lead:1",
        "tcp://a..b:1",
        "tcp://trailing.dot.:1",
        "tcp://:1",
        "tcp://",
        "TCP://127.0.0.1:1",
        "ws://127.0.0.1:1",
        "udp://127.0.0.1:1",
        "pgm://eth0;239.192.1.1:5555",
        "ipc://*",
        "ipc:///tmp/../etc/sock",
        "inproc://",
        "127.0.0.1:1",
    ] {
        refused(bad);
    }
}

#[test]
fn ipv6_needs_brackets_and_brackets_need_ipv6() {
    assert_eq!(ok("tcp://[::1]:5").to_string(), "tcp://[::1]:5");
    assert_eq!(ok("tcp://[0:0:0:0:0:0:0:1]:5").to_string(), "tcp://[::1]:5");
    for bad in [
        "tcp://::1:5",
        "tcp://[127.0.0.1]:5",
        "tcp://[localhost]:5",
        "tcp://[::1]5",
        "tcp://[::1:5",
        "tcp://[::1]:5]",
        "tcp://[]:5",
    ] {
        refused(bad);
    }
}

#[test]
fn ipc_and_inproc_parse_and_print_back() {
    assert_eq!(ok("ipc:///tmp/a.sock").to_string(), "ipc:///tmp/a.sock");
    assert_eq!(ok("inproc://name").to_string(), "inproc://name");
}

#[test]
fn a_port_glob_matches_the_port_and_never_the_destination_after_a_semicolon() {
    // The reported bypass: the pattern admitted the raw string.
    assert!(glob_match(
        "tcp://127.0.0.1:2131*",
        "tcp://127.0.0.1:21319;127.0.0.1:21350"
    ));
    // Parsed, the string is refused before any pattern sees it...
    assert!(Endpoint::parse("tcp://127.0.0.1:21319;127.0.0.1:21350").is_err());
    // ...and the pattern matches the port only.
    assert!(allows("tcp://127.0.0.1:2131*", "tcp://127.0.0.1:21319"));
    assert!(allows("tcp://127.0.0.1:2131*", "tcp://127.0.0.1:2131"));
    assert!(!allows("tcp://127.0.0.1:2131*", "tcp://127.0.0.1:21350"));
    assert!(!allows("tcp://127.0.0.1:2131*", "tcp://127.0.0.12:21319"));
}

#[test]
fn host_patterns_match_whole_labels() {
    assert!(allows("tcp://*:*", "tcp://example.com:80"));
    assert!(allows("tcp://*:*", "tcp://[::1]:80"));
    assert!(allows("tcp://10.0.*.*:1", "tcp://10.0.3.44:1"));
    assert!(!allows("tcp://10.0.*.*:1", "tcp://10.1.3.44:1"));
    assert!(allows("tcp://127.0.0.1*:1", "tcp://127.0.0.10:1"));
    // An IPv4 pattern matches addresses only, never a name built to look alike.
    assert!(!allows("tcp://127.0.0.*:1", "tcp://127.0.0.evil.com:1"));
    assert!(allows("tcp://*.example.com:1", "tcp://api.example.com:1"));
    assert!(allows("tcp://*.Example.COM:1", "tcp://API.example.com:1"));
    assert!(!allows("tcp://*.example.com:1", "tcp://a.b.example.com:1"));
    assert!(!allows(
        "tcp://*.example.com:1",
        "tcp://example.com.evil.net:1"
    ));
    assert!(!allows("tcp://localhost:1", "tcp://127.0.0.1:1"));
    assert!(allows("tcp://[::1]:1", "tcp://[0::1]:1"));
    assert!(!allows("tcp://[::1]:1", "tcp://127.0.0.1:1"));
}

#[test]
fn port_patterns_take_ranges_and_digit_globs() {
    assert!(allows("tcp://h:100-200", "tcp://h:100"));
    assert!(allows("tcp://h:100-200", "tcp://h:200"));
    assert!(!allows("tcp://h:100-200", "tcp://h:201"));
    assert!(allows("tcp://h:*", "tcp://h:65535"));
    assert!(!allows("tcp://h:5", "tcp://h:55"));
}

#[test]
fn transports_match_only_their_own_kind() {
    assert!(!allows("tcp://*:*", "ipc:///tmp/a"));
    assert!(!allows("tcp://*:*", "inproc://a"));
    assert!(allows("ipc:///tmp/*", "ipc:///tmp/a"));
    assert!(!allows("ipc:///tmp/*", "ipc:///tmp/a/b"));
    assert!(allows("inproc://svc-*", "inproc://svc-1"));
    assert!(!allows("inproc://*", "ipc:///x"));
}

#[test]
fn bad_patterns_are_refused() {
    for bad in [
        "tcp://127.0.0.1:2131*;127.0.0.1:*",
        "tcp://10.*:1",
        "tcp://[127.0.0.1]:1",
        "tcp://h:0",
        "tcp://h:200-100",
        "tcp://h:1x*",
        "tcp://h",
        "tcp://a b:1",
        "tcp://:1",
        "udp://*:1",
        "tcp://under_score:1",
    ] {
        assert!(EndpointPattern::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn globs() {
    assert!(glob_match("a*c", "abbbc"));
    assert!(glob_match("*", ""));
    assert!(!glob_match("a*c", "abd"));
    assert!(glob_match("tcp://*:1*", "tcp://h:123"));
}
