//! Which IP addresses are public: the one rule the literal-address check of a target URL and
//! the resolver of device-chosen targets share.
//!
//! Guarantees: [`is_public`] is false for every range of the IANA IPv4 and IPv6
//! special-purpose address registries that is not globally reachable, for multicast, and for
//! IPv6 outside global unicast (`2000::/3`); an IPv6 address that embeds an IPv4 one
//! (IPv4-mapped, NAT64 `64:ff9b::/96`) is public only if the IPv4 address is. The deprecated
//! embeddings (IPv4-compatible `::/96`, IPv4-translated `::ffff:0:0:0/96`, 6to4, Teredo) and
//! site-local `fec0::/10` are never public. Two blocks are refused whole although a few
//! anycast services in them are globally reachable, none of them a push target:
//! `192.0.0.0/24` and `2001::/23`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 ranges that are not public: (network, prefix length, what it is).
const NOT_PUBLIC_V4: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "this network"),
    ([10, 0, 0, 0], 8, "private"),
    ([100, 64, 0, 0], 10, "shared address space (CGNAT)"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([172, 16, 0, 0], 12, "private"),
    ([192, 0, 0, 0], 24, "IETF protocol assignments"),
    ([192, 0, 2, 0], 24, "documentation (TEST-NET-1)"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast"),
    ([192, 168, 0, 0], 16, "private"),
    ([198, 18, 0, 0], 15, "benchmarking"),
    ([198, 51, 100, 0], 24, "documentation (TEST-NET-2)"),
    ([203, 0, 113, 0], 24, "documentation (TEST-NET-3)"),
    ([224, 0, 0, 0], 4, "multicast"),
    (
        [240, 0, 0, 0],
        4,
        "reserved (and the limited broadcast address)",
    ),
];

/// IPv6 ranges inside global unicast (`2000::/3`) that are not public.
const NOT_PUBLIC_V6: &[([u16; 8], u8, &str)] = &[
    (
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments (Teredo included)",
    ),
    ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
    ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4"),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation"),
];

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

/// Why an address is not public, or `None` when it is.
pub fn not_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => NOT_PUBLIC_V4
            .iter()
            .find(|(net, len, _)| in_v4(v4, *net, *len))
            .map(|(_, _, what)| *what),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return not_public(IpAddr::V4(v4));
            }
            if !in_v6(v6, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
                return Some("outside IPv6 global unicast");
            }
            NOT_PUBLIC_V6
                .iter()
                .find(|(net, len, _)| in_v6(v6, *net, *len))
                .map(|(_, _, what)| *what)
        }
    }
}

/// True for addresses on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    not_public(ip).is_none()
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`) or NAT64 (`64:ff9b::/96`)
/// address; those reach exactly that IPv4 address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let mapped = in_v6(v6, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96);
    let nat64 = in_v6(v6, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
    let o = v6.octets();
    (mapped || nat64).then(|| Ipv4Addr::new(o[12], o[13], o[14], o[15]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_are_routable_unicast_on_the_internet() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "192.31.196.1", // AS112, globally reachable
            "192.0.1.1",    // just past 192.0.0.0/24
            "100.128.0.1",  // just past the shared range
            "172.32.0.1",   // just past 172.16.0.0/12
            "198.20.0.1",   // just past benchmarking
            "223.255.255.254",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "2001:200::1",      // just past 2001::/23
            "2003::1",          // just past 6to4
            "::ffff:1.1.1.1",   // mapped public
            "64:ff9b::808:808", // NAT64 of 8.8.8.8
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(not_public(addr), None, "{ip}");
        }
    }

    #[test]
    fn every_special_purpose_range_and_every_ipv6_embedding_of_one_is_not_public() {
        for ip in [
            // IPv4 special-purpose registry
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.254",
            "192.0.0.8",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.0.1",
            "198.18.0.1",
            "198.19.255.254",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6 special-purpose registry
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::1",
            "100::1",
            "100:0:0:1::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "2001:db8::1",
            "2002:c0a8:0101::1", // 6to4 of 192.168.1.1
            "2002:0808:0808::1", // 6to4 of 8.8.8.8: still not direct
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
            "ff0e::1",
            // the deprecated embeddings
            "::127.0.0.1",        // IPv4-compatible
            "::8.8.8.8",          // IPv4-compatible, even of a public address
            "::ffff:0:127.0.0.1", // IPv4-translated
            "::ffff:0:8.8.8.8",
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert!(not_public(addr).is_some(), "{ip} must not be public");
        }
    }
}
