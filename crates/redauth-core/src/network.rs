//! Which network a client is in, as far as limits and bindings are concerned.
//!
//! One IPv4 address is one client; one IPv6 *prefix* is (default /64): a single host
//! or home network is handed a whole /64 and can pick a fresh address for every request,
//! so keying a limit by the full IPv6 address would let one client bypass it.

use std::net::{IpAddr, Ipv6Addr};

/// The default IPv6 prefix length that counts as one client (RFC 6177: a /64 per
/// subnet, often per customer).
pub const DEFAULT_IPV6_PREFIX_LEN: u8 = 64;

/// `ip` as a network: an IPv4 address as is (also when written IPv4-mapped in IPv6),
/// an IPv6 address masked to its first `ipv6_prefix_len` bits, as `addr/len`. `None`
/// when `ip` is not an address.
pub fn client_network(ip: &str, ipv6_prefix_len: u8) -> Option<String> {
    Some(match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let len = u32::from(ipv6_prefix_len.min(128));
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                format!("{}/{len}", Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_keyed_by_its_prefix_and_ipv4_by_its_address() {
        let n = |ip| client_network(ip, 64).unwrap();
        assert_eq!(n("2001:db8:1:2::1"), n("2001:db8:1:2:ffff:eeee:dddd:cccc"));
        assert_eq!(n("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(n("2001:db8:1:2::1"), n("2001:db8:1:3::1"));
        assert_eq!(n("::ffff:192.0.2.1"), "192.0.2.1");
        assert_ne!(n("192.0.2.1"), n("192.0.2.2"));
        assert_eq!(
            client_network("2001:db8:1:2::1", 48).unwrap(),
            "2001:db8:1::/48"
        );
        assert_eq!(
            client_network("2001:db8::1", 128).unwrap(),
            "2001:db8::1/128"
        );
        assert_eq!(client_network("2001:db8::1", 0).unwrap(), "::/0");
        assert_eq!(client_network("not an ip", 64), None);
    }
}
