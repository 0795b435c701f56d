//! Which addresses a webhook may reach: a pure function over the IANA special-purpose address
//! registries (RFC 6890 and its successors), so that a brand cannot point the vault at the
//! self-hoster's machine, network, or any address with a special meaning.
//!
//! The rule:
//! - IPv4: refused if in any row of the IANA IPv4 Special-Purpose Address Registry, or multicast
//!   (`224.0.0.0/4`, its own registry). Rows marked "globally reachable" (the PCP and TURN
//!   anycast addresses, AS112, AMT) are refused too: they are protocol services, never a
//!   brand's webhook endpoint.
//! - IPv6: only global unicast (`2000::/3`) is allowed, which leaves out loopback, unspecified,
//!   unique-local, link-local, the deprecated site-local `fec0::/10`, multicast, the discard and
//!   dummy prefixes and SRv6 SIDs; inside it, every row of the IANA IPv6 Special-Purpose Address
//!   Registry is refused.
//! - IPv6 addresses that carry an IPv4 address are judged by that IPv4 address: IPv4-mapped
//!   (`::ffff:0:0/96`, as the OS connects to them), IPv4-compatible (`::/96`, deprecated),
//!   the NAT64 well-known prefix (`64:ff9b::/96`), 6to4 (`2002::/16`) and Teredo (`2001::/32`:
//!   both its server and its client address must be allowed). The local-use NAT64 prefix
//!   `64:ff9b:1::/48` is refused whole: it translates to whatever the local network decides.
//!
//! Loopback (`127.0.0.0/8`, `::1`, and IPv4-mapped loopback) is allowed only when the vault runs
//! with `--allow-loopback-webhooks`, for brands developing locally.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IANA IPv4 Special-Purpose Address Registry (as of 2024), plus multicast: every block a
/// webhook may not reach. Loopback is handled apart (it has an exception).
const IPV4_REFUSED: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\""),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private use"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space (CGNAT)",
    ),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private use"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "documentation (TEST-NET-1)",
    ),
    (Ipv4Addr::new(192, 31, 196, 0), 24, "AS112-v4"),
    (Ipv4Addr::new(192, 52, 193, 0), 24, "AMT"),
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "deprecated 6to4 relay anycast",
    ),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private use"),
    (
        Ipv4Addr::new(192, 175, 48, 0),
        24,
        "direct delegation AS112",
    ),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation (TEST-NET-2)",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation (TEST-NET-3)",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        "reserved, and limited broadcast",
    ),
];

/// IPv4 loopback, allowed only for local testing.
const IPV4_LOOPBACK: (Ipv4Addr, u8) = (Ipv4Addr::new(127, 0, 0, 0), 8);

/// IPv6 global unicast: nothing outside it is a webhook target (but see the embedded forms).
const IPV6_GLOBAL_UNICAST: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// The rows of the IANA IPv6 Special-Purpose Address Registry (as of 2024) inside global
/// unicast, refused; Teredo (`2001::/32`) and 6to4 are judged by their IPv4 addresses first.
const IPV6_REFUSED: &[(Ipv6Addr, u8, &str)] = &[
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments (PCP, TURN and DNS-SD anycast, benchmarking, AMT, AS112, ORCHID, DETs)",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0),
        48,
        "direct delegation AS112",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
];

/// Whether a webhook may be sent to `ip` (see the module docs for the rule).
pub fn allowed_ip(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => allowed_v4(v4, allow_loopback),
        IpAddr::V6(v6) => allowed_v6(v6, allow_loopback),
    }
}

fn allowed_v4(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    if in_v4(ip, IPV4_LOOPBACK) {
        return allow_loopback;
    }
    !IPV4_REFUSED
        .iter()
        .any(|&(net, bits, _)| in_v4(ip, (net, bits)))
}

fn allowed_v6(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    if ip == Ipv6Addr::LOCALHOST {
        return allow_loopback;
    }
    if let Some(embedded) = embedded_v4(ip) {
        // Only the mapped form is the very address the OS connects to; through a translator or
        // a tunnel, loopback is somebody else's.
        let mapped = ip.to_ipv4_mapped().is_some();
        return embedded
            .iter()
            .all(|v4| allowed_v4(*v4, allow_loopback && mapped));
    }
    in_v6(ip, IPV6_GLOBAL_UNICAST)
        && !IPV6_REFUSED
            .iter()
            .any(|&(net, bits, _)| in_v6(ip, (net, bits)))
}

/// The IPv4 addresses an IPv6 address carries, for the forms that carry one; `None` otherwise.
/// The unspecified address and loopback are not IPv4-compatible addresses (`::` and `::1`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Vec<Ipv4Addr>> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from(bits as u32);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(vec![v4]);
    }
    if in_v6(ip, (Ipv6Addr::UNSPECIFIED, 96)) && bits > 1 {
        return Some(vec![low]);
    }
    if in_v6(ip, (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96)) {
        return Some(vec![low]);
    }
    if in_v6(ip, (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16)) {
        return Some(vec![Ipv4Addr::from((bits >> 80) as u32)]);
    }
    if in_v6(ip, (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32)) {
        // Teredo: the server's address in bits 32..64, the client's, inverted, in the last 32.
        let server = Ipv4Addr::from((bits >> 64) as u32);
        let client = Ipv4Addr::from(!(bits as u32));
        return Some(vec![server, client]);
    }
    None
}

fn in_v4(ip: Ipv4Addr, (net, bits): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, (net, bits): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
