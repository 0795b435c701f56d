//! Every row of the IANA IPv4 and IPv6 Special-Purpose Address Registries, an address inside
//! it and what the filter says; then the embedded IPv4 forms, and public neighbours that must
//! stay allowed (a filter that refuses everything passes the first table alone).

use super::*;

/// (registry row, an address inside it, whether a webhook may reach it).
const IPV4_ROWS: &[(&str, &str, bool)] = &[
    ("0.0.0.0/8 this network", "0.1.2.3", false),
    ("0.0.0.0/32 this host", "0.0.0.0", false),
    ("10.0.0.0/8 private use", "10.200.3.4", false),
    (
        "100.64.0.0/10 shared address space",
        "100.127.255.254",
        false,
    ),
    ("127.0.0.0/8 loopback", "127.8.9.10", false),
    ("169.254.0.0/16 link local", "169.254.169.254", false),
    ("172.16.0.0/12 private use", "172.31.255.1", false),
    (
        "192.0.0.0/24 IETF protocol assignments",
        "192.0.0.77",
        false,
    ),
    ("192.0.0.0/29 IPv4 service continuity", "192.0.0.2", false),
    ("192.0.0.8/32 IPv4 dummy address", "192.0.0.8", false),
    ("192.0.0.9/32 PCP anycast", "192.0.0.9", false),
    ("192.0.0.10/32 TURN anycast", "192.0.0.10", false),
    ("192.0.0.170/32 NAT64/DNS64 discovery", "192.0.0.170", false),
    ("192.0.0.171/32 NAT64/DNS64 discovery", "192.0.0.171", false),
    ("192.0.2.0/24 TEST-NET-1", "192.0.2.1", false),
    ("192.31.196.0/24 AS112-v4", "192.31.196.1", false),
    ("192.52.193.0/24 AMT", "192.52.193.1", false),
    (
        "192.88.99.0/24 deprecated 6to4 relay anycast",
        "192.88.99.1",
        false,
    ),
    ("192.168.0.0/16 private use", "192.168.1.1", false),
    (
        "192.175.48.0/24 direct delegation AS112",
        "192.175.48.6",
        false,
    ),
    ("198.18.0.0/15 benchmarking", "198.19.255.255", false),
    ("198.51.100.0/24 TEST-NET-2", "198.51.100.7", false),
    ("203.0.113.0/24 TEST-NET-3", "203.0.113.9", false),
    ("240.0.0.0/4 reserved", "250.1.2.3", false),
    (
        "255.255.255.255/32 limited broadcast",
        "255.255.255.255",
        false,
    ),
    (
        "224.0.0.0/4 multicast (its own registry)",
        "239.255.255.250",
        false,
    ),
    // Neighbours just outside the blocks above: public, allowed.
    ("public, below 10/8", "9.255.255.255", true),
    ("public, above 100.64/10", "100.128.0.0", true),
    ("public, below 172.16/12", "172.15.255.255", true),
    ("public, above 172.16/12", "172.32.0.0", true),
    ("public, next to 192.0.0/24", "192.0.1.1", true),
    ("public, below 198.18/15", "198.17.255.255", true),
    ("public, above 198.18/15", "198.20.0.0", true),
    ("public, below multicast", "223.255.255.255", true),
    ("public", "93.184.215.14", true),
];

const IPV6_ROWS: &[(&str, &str, bool)] = &[
    ("::1/128 loopback", "::1", false),
    ("::/128 unspecified", "::", false),
    (
        "::ffff:0:0/96 IPv4-mapped, private",
        "::ffff:192.168.1.1",
        false,
    ),
    (
        "::ffff:0:0/96 IPv4-mapped, loopback",
        "::ffff:127.0.0.1",
        false,
    ),
    (
        "::ffff:0:0/96 IPv4-mapped, public",
        "::ffff:93.184.215.14",
        true,
    ),
    ("64:ff9b::/96 NAT64, metadata", "64:ff9b::a9fe:a9fe", false),
    ("64:ff9b::/96 NAT64, private", "64:ff9b::10.0.0.1", false),
    ("64:ff9b::/96 NAT64, loopback", "64:ff9b::127.0.0.1", false),
    ("64:ff9b::/96 NAT64, public", "64:ff9b::93.184.215.14", true),
    (
        "64:ff9b:1::/48 local-use NAT64",
        "64:ff9b:1::5db8:d70e",
        false,
    ),
    ("100::/64 discard-only", "100::1", false),
    ("100:0:0:1::/64 dummy prefix", "100:0:0:1::1", false),
    ("2001::/23 IETF protocol assignments", "2001:1ff::1", false),
    (
        "2001::/32 Teredo, private client",
        "2001:0:5db8:d70e::3f57:fefe",
        false,
    ),
    (
        "2001::/32 Teredo, private server",
        "2001:0:a00:1::6c47:28f1",
        false,
    ),
    (
        "2001::/32 Teredo, public both",
        "2001:0:5db8:d70e::6c47:28f1",
        true,
    ),
    ("2001:1::1/128 PCP anycast", "2001:1::1", false),
    ("2001:1::2/128 TURN anycast", "2001:1::2", false),
    ("2001:1::3/128 DNS-SD SRP anycast", "2001:1::3", false),
    ("2001:2::/48 benchmarking", "2001:2::1", false),
    ("2001:3::/32 AMT", "2001:3::1", false),
    ("2001:4:112::/48 AS112-v6", "2001:4:112::1", false),
    ("2001:10::/28 deprecated ORCHID", "2001:10::1", false),
    ("2001:20::/28 ORCHIDv2", "2001:20::1", false),
    ("2001:30::/28 drone remote ID DETs", "2001:30::1", false),
    ("2001:db8::/32 documentation", "2001:db8::1", false),
    ("2002::/16 6to4, private", "2002:c0a8:101::1", false),
    ("2002::/16 6to4, loopback", "2002:7f00:1::1", false),
    ("2002::/16 6to4, public", "2002:5db8:d70e::1", true),
    (
        "2620:4f:8000::/48 direct delegation AS112",
        "2620:4f:8000::42",
        false,
    ),
    ("3fff::/20 documentation", "3fff:fff::1", false),
    ("5f00::/16 SRv6 SIDs", "5f00::1", false),
    ("fc00::/7 unique local", "fd12:3456::1", false),
    ("fe80::/10 link local", "fe80::1", false),
    // Outside the special registry, still never a webhook target.
    (
        "::/96 IPv4-compatible, private (deprecated)",
        "::10.0.0.1",
        false,
    ),
    (
        "::/96 IPv4-compatible, loopback (deprecated)",
        "::127.0.0.1",
        false,
    ),
    (
        "::/96 IPv4-compatible, public (deprecated)",
        "::93.184.215.14",
        true,
    ),
    ("fec0::/10 site local (deprecated)", "fec0::1", false),
    ("ff00::/8 multicast", "ff02::1", false),
    ("4000::/3 reserved by the IETF", "4000::1", false),
    // Global unicast neighbours of the refused rows: allowed.
    ("public, next to 2001::/23", "2001:200::1", true),
    ("public, next to 2001:db8::/32", "2001:db9::1", true),
    ("public, next to 2620:4f:8000::/48", "2620:4f:8001::1", true),
    ("public, next to 3fff::/20", "3fff:1000::1", true),
    ("public", "2a00:1450:4007::1", true),
];

#[test]
fn every_special_purpose_row_is_judged() {
    for (row, text, expected) in IPV4_ROWS.iter().chain(IPV6_ROWS) {
        let ip: IpAddr = text.parse().unwrap();
        assert_eq!(allowed_ip(ip, false), *expected, "{row}: {text}");
    }
}

#[test]
fn loopback_is_allowed_only_when_asked_and_only_as_itself() {
    for text in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"] {
        let ip: IpAddr = text.parse().unwrap();
        assert!(allowed_ip(ip, true), "{text}");
        assert!(!allowed_ip(ip, false), "{text}");
    }
    // Loopback inside a translator's or a tunnel's address is not this machine's.
    for text in ["64:ff9b::127.0.0.1", "2002:7f00:1::1", "::127.0.0.1"] {
        let ip: IpAddr = text.parse().unwrap();
        assert!(!allowed_ip(ip, true), "{text}");
    }
    // The exception is loopback only.
    for text in ["10.0.0.1", "::ffff:10.0.0.1", "fe80::1", "0.0.0.0", "::"] {
        let ip: IpAddr = text.parse().unwrap();
        assert!(!allowed_ip(ip, true), "{text}");
    }
}

#[test]
fn the_tables_are_well_formed() {
    for &(net, bits, name) in IPV4_REFUSED {
        assert!(bits <= 32, "{name}");
        assert!(in_v4(net, (net, bits)) && !allowed_v4(net, true), "{name}");
    }
    for &(net, bits, name) in IPV6_REFUSED {
        assert!(bits <= 128 && in_v6(net, IPV6_GLOBAL_UNICAST), "{name}");
    }
}
