//! Which address a request is attributed to: the TCP peer, or, behind a trusted
//! proxy, the client named in its forwarding header ([`resolve_peer`]); and the one
//! CIDR type, [`IpNet`] (from the `ipnet` crate), with the parsing rules of
//! `--trusted-proxy` and `[xmlrpc_server] trusted_proxies` ([`parse_net`]).

use std::net::{IpAddr, SocketAddr};

use hyper::header::{HeaderMap, FORWARDED};

pub use ipnet::IpNet;

/// Which proxy header carries the client address when the TCP peer is a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

/// Why a trusted-proxy network could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("invalid IP address {0:?}")]
    Address(String),
    /// The prefix length is not a number or is too long for the address family.
    #[error("invalid prefix length {0:?}")]
    PrefixLen(String),
}

/// Parses a network of trusted proxies: `addr` (one address) or `addr/prefix`, e.g.
/// `10.0.0.0/8`, `::1` or `fd00::/8`. An IPv4-mapped IPv6 address counts as IPv4, and
/// host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_net(text: &str) -> Result<IpNet, IpNetError> {
    let text = text.trim();
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = addr
        .parse::<IpAddr>()
        .map_err(|_| IpNetError::Address(addr.to_owned()))?
        .to_canonical();
    let host_len = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => host_len,
        Some(p) => p
            .parse::<u8>()
            .map_err(|_| IpNetError::PrefixLen(p.to_owned()))?,
    };
    IpNet::new(ip, len)
        .map(|net| net.trunc())
        .map_err(|_| IpNetError::PrefixLen(len.to_string()))
}

/// True when `ip` is in `net`; an IPv4-mapped IPv6 address counts as IPv4.
pub fn net_contains(net: &IpNet, ip: IpAddr) -> bool {
    net.contains(&ip.to_canonical())
}

/// The address a request is attributed to: the TCP peer, unless that peer is a trusted
/// proxy, in which case the rightmost address of the forwarding header that is not a
/// trusted proxy (or the leftmost one, when all of them are trusted).
///
/// Walking from the right stops at an entry that is not an address (`unknown`,
/// obfuscated identifiers, garbage): everything left of it is unverifiable, so the last
/// trusted hop is used. A header that is not ASCII is ignored as a whole. Addresses
/// without a port get port 0.
pub fn resolve_peer(
    tcp_peer: SocketAddr,
    headers: &HeaderMap,
    trusted_proxies: &[IpNet],
    forwarded_header: ForwardedHeader,
) -> SocketAddr {
    let is_trusted = |ip: IpAddr| trusted_proxies.iter().any(|net| net_contains(net, ip));
    if !is_trusted(tcp_peer.ip()) {
        return tcp_peer;
    }
    let Some(hops) = forwarded_hops(headers, forwarded_header) else {
        return tcp_peer;
    };
    let mut client = tcp_peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(addr) => {
                client = *addr;
                if !is_trusted(addr.ip()) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The hops listed in the chosen header, left to right (`None` for an entry that is not
/// an address); `None` when a header value is not ASCII.
fn forwarded_hops(headers: &HeaderMap, which: ForwardedHeader) -> Option<Vec<Option<SocketAddr>>> {
    let mut hops = Vec::new();
    match which {
        ForwardedHeader::XForwardedFor => {
            for value in headers.get_all("x-forwarded-for") {
                let value = value.to_str().ok()?;
                hops.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(parse_node),
                );
            }
        }
        ForwardedHeader::Forwarded => {
            for value in headers.get_all(FORWARDED) {
                let value = value.to_str().ok()?;
                for element in split_unquoted(value, ',') {
                    if element.trim().is_empty() {
                        continue;
                    }
                    let node = split_unquoted(element, ';').find_map(|pair| {
                        let (key, val) = pair.split_once('=')?;
                        key.trim().eq_ignore_ascii_case("for").then_some(val)
                    });
                    hops.push(node.and_then(parse_node));
                }
            }
        }
    }
    Some(hops)
}

/// Splits `s` on `sep` outside double-quoted strings (RFC 7239 values may be quoted).
fn split_unquoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quotes && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if c == sep && !in_quotes {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

/// Parses one node: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`, optionally
/// double-quoted; an obfuscated port (`1.2.3.4:_x`) is dropped. Anything else is `None`.
fn parse_node(node: &str) -> Option<SocketAddr> {
    let node = node.trim();
    let node = node
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(node);
    let canonical = |addr: SocketAddr| SocketAddr::new(addr.ip().to_canonical(), addr.port());
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(canonical(addr));
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(SocketAddr::new(ip, 0)));
    }
    let host = match node.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => node.split_once(':')?.0,
    };
    let ip: IpAddr = host.parse().ok()?;
    Some(canonical(SocketAddr::new(ip, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn net(s: &str) -> IpNet {
        parse_net(s).unwrap()
    }

    fn has(net: IpNet, ip: &str) -> bool {
        net_contains(&net, ip.parse().unwrap())
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn resolve(
        peer: &str,
        pairs: &[(&'static str, &'static str)],
        which: ForwardedHeader,
    ) -> SocketAddr {
        let trusted = [net("10.0.0.0/8"), net("::1"), net("192.168.1.1")];
        resolve_peer(addr(peer), &headers(pairs), &trusted, which)
    }

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;
    const FWD: ForwardedHeader = ForwardedHeader::Forwarded;

    #[test]
    fn ipnet_parsing_and_membership() {
        let n = net("10.1.2.3/8");
        assert_eq!(n.to_string(), "10.0.0.0/8");
        assert!(has(n, "10.255.0.1"));
        assert!(!has(n, "11.0.0.1"));
        assert!(has(n, "::ffff:10.0.0.7"), "v4-mapped counts as v4");
        assert!(has(net("0.0.0.0/0"), "1.2.3.4"));
        assert!(!has(net("0.0.0.0/0"), "::2"));
        assert!(has(net("::/0"), "::2"));
        assert!(has(net("fd00::/8"), "fd12::1"));
        assert!(!has(net("fd00::/8"), "fe80::1"));
        assert!(has(net("127.0.0.1"), "127.0.0.1"));
        assert!(!has(net("127.0.0.1"), "127.0.0.2"));
        assert_eq!(net("::ffff:10.0.0.1"), net("10.0.0.1/32"));
        assert_eq!(net(" ::1 ").to_string(), "::1/128");
        assert_eq!(
            parse_net("1.2.3.4/33"),
            Err(IpNetError::PrefixLen("33".into()))
        );
        assert_eq!(
            parse_net("::1/129"),
            Err(IpNetError::PrefixLen("129".into()))
        );
        assert_eq!(
            parse_net("1.2.3/8"),
            Err(IpNetError::Address("1.2.3".into()))
        );
        assert_eq!(
            parse_net("1.2.3.4/x"),
            Err(IpNetError::PrefixLen("x".into()))
        );
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let got = resolve("8.8.8.8:1000", &[("x-forwarded-for", "1.1.1.1")], XFF);
        assert_eq!(got, addr("8.8.8.8:1000"));
        let got = resolve("8.8.8.8:1000", &[("forwarded", "for=1.1.1.1")], FWD);
        assert_eq!(got, addr("8.8.8.8:1000"));
    }

    #[test]
    fn trusted_peer_without_header_is_the_peer() {
        assert_eq!(resolve("10.0.0.1:5", &[], XFF), addr("10.0.0.1:5"));
    }

    #[test]
    fn xff_rightmost_untrusted_wins() {
        let got = resolve(
            "10.0.0.1:5",
            &[("x-forwarded-for", "6.6.6.6, 2.2.2.2, 10.0.0.9")],
            XFF,
        );
        assert_eq!(got, addr("2.2.2.2:0"));
        // Several header lines are one list, in order.
        let got = resolve(
            "10.0.0.1:5",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "3.3.3.3:4711, 192.168.1.1"),
            ],
            XFF,
        );
        assert_eq!(got, addr("3.3.3.3:4711"));
    }

    #[test]
    fn xff_all_trusted_gives_leftmost() {
        let got = resolve("[::1]:5", &[("x-forwarded-for", "10.1.1.1, 10.2.2.2")], XFF);
        assert_eq!(got, addr("10.1.1.1:0"));
    }

    #[test]
    fn xff_garbage_stops_at_last_trusted_hop() {
        let got = resolve(
            "10.0.0.1:5",
            &[("x-forwarded-for", "1.1.1.1, unknown, 10.0.0.2")],
            XFF,
        );
        assert_eq!(got, addr("10.0.0.2:0"));
        let got = resolve("10.0.0.1:5", &[("x-forwarded-for", "nonsense")], XFF);
        assert_eq!(got, addr("10.0.0.1:5"));
    }

    #[test]
    fn xff_ipv6_forms() {
        let got = resolve("10.0.0.1:5", &[("x-forwarded-for", "2001:db8::1")], XFF);
        assert_eq!(got, addr("[2001:db8::1]:0"));
        let got = resolve(
            "10.0.0.1:5",
            &[("x-forwarded-for", "[2001:db8::2]:99")],
            XFF,
        );
        assert_eq!(got, addr("[2001:db8::2]:99"));
        let got = resolve("10.0.0.1:5", &[("x-forwarded-for", "::ffff:5.5.5.5")], XFF);
        assert_eq!(got, addr("5.5.5.5:0"));
    }

    #[test]
    fn wrong_header_kind_is_ignored() {
        let got = resolve("10.0.0.1:5", &[("forwarded", "for=1.1.1.1")], XFF);
        assert_eq!(got, addr("10.0.0.1:5"));
        let got = resolve("10.0.0.1:5", &[("x-forwarded-for", "1.1.1.1")], FWD);
        assert_eq!(got, addr("10.0.0.1:5"));
    }

    #[test]
    fn forwarded_header_forms() {
        let got = resolve(
            "10.0.0.1:5",
            &[(
                "forwarded",
                "for=6.6.6.6;proto=http, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1, for=10.9.9.9",
            )],
            FWD,
        );
        assert_eq!(got, addr("[2001:db8:cafe::17]:4711"));
        let got = resolve(
            "10.0.0.1:5",
            &[("forwarded", "for=\"4.4.4.4:_hidden\";host=\"a,b\"")],
            FWD,
        );
        assert_eq!(got, addr("4.4.4.4:0"));
        let got = resolve(
            "10.0.0.1:5",
            &[("forwarded", "for=6.6.6.6, for=_hidden, for=10.0.0.3")],
            FWD,
        );
        assert_eq!(got, addr("10.0.0.3:0"));
        // An element without for= is not an address either.
        let got = resolve(
            "10.0.0.1:5",
            &[("forwarded", "for=6.6.6.6, proto=https")],
            FWD,
        );
        assert_eq!(got, addr("10.0.0.1:5"));
    }

    #[test]
    fn non_ascii_header_is_ignored() {
        let mut map = HeaderMap::new();
        map.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.1.1.1\xff").unwrap(),
        );
        let got = resolve_peer(addr("10.0.0.1:5"), &map, &[net("10.0.0.0/8")], XFF);
        assert_eq!(got, addr("10.0.0.1:5"));
    }

    #[test]
    fn split_unquoted_respects_quotes() {
        let parts: Vec<&str> = split_unquoted("a=\"x,y\",b=\"q\\\"\",c", ',').collect();
        assert_eq!(parts, ["a=\"x,y\"", "b=\"q\\\"\"", "c"]);
    }
}
