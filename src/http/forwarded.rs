//! Who the client is when Herald sits behind reverse proxies: reads RFC 7239 `Forwarded` and
//! `X-Forwarded-For`, but only when the socket peer is a trusted proxy, and says whether a
//! trusted proxy reports that the client spoke HTTPS to it.
//!
//! Owns: parsing those headers (leniently: a malformed header means "use the peer address",
//! never an error) and walking the proxy chain right to left. Does not own: the list of
//! trusted proxies (`config`) or what the address is used for (the rate limits in `http`).
//! Pure: no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::{HeaderMap, HeaderName, header};
use ipnet::IpNet;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// One hop of a forwarding chain, as a proxy recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    /// An address.
    Addr(IpAddr),
    /// `unknown`, an obfuscated identifier (`_hidden`), or a `Forwarded` element without `for`.
    Unidentified,
}

/// Whether `ip` is inside one of the `trusted` ranges (IPv4-mapped IPv6 counts as IPv4).
pub fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client's address for a request that came from `peer`.
///
/// Only when `peer` is trusted are the forwarding headers read: `X-Forwarded-For` when present,
/// otherwise `Forwarded`. `X-Forwarded-For` comes first because it is what nginx, Caddy,
/// HAProxy and the common load balancers append to; they pass a client's own `Forwarded`
/// through untouched, so preferring it would let a visitor choose their address. The chain is walked from the right (the hop nearest to Herald):
/// the first address that is not a trusted proxy is the client; when every address is trusted,
/// the left-most one is. A hop recorded as `unknown` or obfuscated stops the walk at the nearest
/// known hop. An entry that cannot be read on the way gives the peer address.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(trusted, peer) {
        return peer;
    }
    let hops = if headers.contains_key(X_FORWARDED_FOR) {
        x_forwarded_for_hops(headers)
    } else if headers.contains_key(header::FORWARDED) {
        forwarded_hops(headers)
    } else {
        return peer;
    };
    match hops {
        Some(hops) => walk(peer, &hops, trusted),
        None => peer,
    }
}

/// Whether a trusted `peer` says the client reached it over HTTPS: the right-most
/// `X-Forwarded-Proto` value, or `proto=` of the right-most `Forwarded` element.
pub fn forwarded_https(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> bool {
    if !is_trusted(trusted, peer) {
        return false;
    }
    let is_https = |v: &str| v.trim().eq_ignore_ascii_case("https");
    let proto = headers
        .get_all(X_FORWARDED_PROTO)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(is_https);
    let forwarded = headers
        .get_all(header::FORWARDED)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(elements)
        .and_then(|elements| elements.into_iter().next_back())
        .and_then(|element| {
            element
                .into_iter()
                .find_map(|(name, value)| (name == "proto").then_some(value))
        })
        .is_some_and(|v| is_https(&v));
    proto || forwarded
}

/// Right to left: `None` in `hops` is an entry that could not be read.
fn walk(peer: IpAddr, hops: &[Option<Hop>], trusted: &[IpNet]) -> IpAddr {
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match hop {
            None => return peer,
            Some(Hop::Unidentified) => return nearest,
            Some(Hop::Addr(ip)) if is_trusted(trusted, *ip) => nearest = *ip,
            Some(Hop::Addr(ip)) => return *ip,
        }
    }
    nearest
}

/// Every `X-Forwarded-For` entry, in order; `None` when a value is not text.
fn x_forwarded_for_hops(headers: &HeaderMap) -> Option<Vec<Option<Hop>>> {
    let mut hops = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        hops.extend(value.to_str().ok()?.split(',').map(node));
    }
    Some(hops)
}

/// The `for=` of every `Forwarded` element, in order; `None` when the header cannot be split
/// into elements (a quote left open, a parameter without `=`).
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Option<Hop>>> {
    let mut hops = Vec::new();
    for value in headers.get_all(header::FORWARDED) {
        for element in elements(value.to_str().ok()?)? {
            let mut fors = element.iter().filter(|(name, _)| name == "for");
            hops.push(match (fors.next(), fors.next()) {
                (None, _) => Some(Hop::Unidentified),
                (Some((_, value)), None) => node(value),
                // A parameter given twice in one element is invalid (RFC 7239, section 4).
                (Some(_), Some(_)) => None,
            });
        }
    }
    Some(hops)
}

/// A `Forwarded` value split into elements (`,`) of parameters (`;`), names lower-cased,
/// quoted values unquoted; empty elements are dropped.
fn elements(value: &str) -> Option<Vec<Vec<(String, String)>>> {
    let mut elements = vec![Vec::new()];
    let mut rest = value.trim_start();
    while let Some(c) = rest.chars().next() {
        match c {
            ',' => elements.push(Vec::new()),
            ';' => {}
            _ => {
                let (name, after) = rest.split_once('=')?;
                let name = name.trim();
                if name.is_empty() || name.contains([',', ';', '"']) {
                    return None;
                }
                let (value, after) = parameter_value(after.trim_start())?;
                elements
                    .last_mut()?
                    .push((name.to_ascii_lowercase(), value));
                rest = after.trim_start();
                continue;
            }
        }
        rest = rest[1..].trim_start();
    }
    elements.retain(|e| !e.is_empty());
    Some(elements)
}

/// A token or a quoted string, and what follows it (which must start a new parameter or
/// element).
fn parameter_value(text: &str) -> Option<(String, &str)> {
    let (value, after) = match text.strip_prefix('"') {
        Some(quoted) => {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i + 1,
                    (_, '\\') => value.push(chars.next()?.1),
                    (_, c) => value.push(c),
                }
            };
            (value, &quoted[end..])
        }
        None => {
            let end = text.find([',', ';']).unwrap_or(text.len());
            (text[..end].trim_end().to_string(), &text[end..])
        }
    };
    let after = after.trim_start();
    if after.is_empty() || after.starts_with([',', ';']) {
        Some((value, after))
    } else {
        None
    }
}

/// One node (RFC 7239, section 6): `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]:4711`,
/// `unknown`, `_hidden`; a bare IPv6 address is accepted too. `None` when it is none of these.
fn node(text: &str) -> Option<Hop> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = addr.parse().ok()?;
        if !after.is_empty() && !port(after.strip_prefix(':')?) {
            return None;
        }
        return Some(Hop::Addr(IpAddr::V6(ip).to_canonical()));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(Hop::Addr(ip.to_canonical()));
    }
    let name = match text.split_once(':') {
        Some((name, p)) if port(p) => name,
        Some(_) => return None,
        None => text,
    };
    if name.eq_ignore_ascii_case("unknown") || obfuscated(name) {
        return Some(Hop::Unidentified);
    }
    name.parse::<Ipv4Addr>()
        .ok()
        .map(|ip| Hop::Addr(IpAddr::V4(ip)))
}

/// A port: up to five digits, or an obfuscated one (`_abc`).
fn port(text: &str) -> bool {
    (!text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit()))
        || obfuscated(text)
}

/// An obfuscated identifier: `_` followed by letters, digits, `.`, `_` or `-`.
fn obfuscated(text: &str) -> bool {
    text.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// Header name and raw value pairs of a test request.
    type Headers<'a> = &'a [(&'a str, &'a [u8])];

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|n| n.parse().expect("test network"))
            .collect()
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_bytes(value).expect("value"),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    const PROXIES: &[&str] = &["127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"];

    #[test]
    fn client_address_table() {
        // (what, peer, headers, expected client)
        let cases: &[(&str, &str, Headers, &str)] = &[
            ("no headers", "127.0.0.1", &[], "127.0.0.1"),
            (
                "untrusted peer with forged XFF",
                "203.0.113.9",
                &[("x-forwarded-for", b"198.51.100.1")],
                "203.0.113.9",
            ),
            (
                "untrusted peer with forged Forwarded",
                "203.0.113.9",
                &[("forwarded", b"for=198.51.100.1")],
                "203.0.113.9",
            ),
            (
                "one hop",
                "127.0.0.1",
                &[("x-forwarded-for", b"198.51.100.1")],
                "198.51.100.1",
            ),
            (
                "spoofed left-most entries",
                "127.0.0.1",
                &[("x-forwarded-for", b"1.2.3.4, 5.6.7.8, 198.51.100.1")],
                "198.51.100.1",
            ),
            (
                "multiple trusted hops",
                "127.0.0.1",
                &[(
                    "x-forwarded-for",
                    b"6.6.6.6, 198.51.100.1, 10.1.2.3, 10.9.9.9",
                )],
                "198.51.100.1",
            ),
            (
                "every hop trusted: the left-most",
                "127.0.0.1",
                &[("x-forwarded-for", b"10.0.0.7, 10.1.2.3")],
                "10.0.0.7",
            ),
            (
                "headers repeated: read in order",
                "127.0.0.1",
                &[
                    ("x-forwarded-for", b"6.6.6.6"),
                    ("x-forwarded-for", b"198.51.100.1, 10.0.0.2"),
                ],
                "198.51.100.1",
            ),
            (
                "XFF with a port",
                "127.0.0.1",
                &[("x-forwarded-for", b"198.51.100.1:4711")],
                "198.51.100.1",
            ),
            (
                "XFF IPv6, bare and bracketed",
                "::1",
                &[("x-forwarded-for", b"2001:db8::2, [2001:db8::1]:80")],
                "2001:db8::1",
            ),
            (
                "IPv4-mapped peer counts as IPv4",
                "::ffff:127.0.0.1",
                &[("x-forwarded-for", b"198.51.100.1")],
                "198.51.100.1",
            ),
            (
                "IPv4-mapped client address is IPv4",
                "127.0.0.1",
                &[("x-forwarded-for", b"::ffff:198.51.100.1")],
                "198.51.100.1",
            ),
            (
                "garbage XFF",
                "127.0.0.1",
                &[("x-forwarded-for", b"<script>")],
                "127.0.0.1",
            ),
            (
                "garbage inside the trusted part",
                "127.0.0.1",
                &[("x-forwarded-for", b"198.51.100.1, nonsense, 10.0.0.1")],
                "127.0.0.1",
            ),
            (
                "garbage left of the client is the client's own business",
                "127.0.0.1",
                &[("x-forwarded-for", b"nonsense, 198.51.100.1")],
                "198.51.100.1",
            ),
            (
                "empty XFF entry",
                "127.0.0.1",
                &[("x-forwarded-for", b"198.51.100.1,,")],
                "127.0.0.1",
            ),
            (
                "empty XFF",
                "127.0.0.1",
                &[("x-forwarded-for", b"")],
                "127.0.0.1",
            ),
            (
                "XFF that is not text",
                "127.0.0.1",
                &[("x-forwarded-for", b"198.51.100.\xff")],
                "127.0.0.1",
            ),
            (
                "XFF zone id",
                "127.0.0.1",
                &[("x-forwarded-for", b"fe80::1%eth0")],
                "127.0.0.1",
            ),
            (
                "XFF leading zeros",
                "127.0.0.1",
                &[("x-forwarded-for", b"010.0.0.1")],
                "127.0.0.1",
            ),
            (
                "XFF unknown: the nearest known hop",
                "127.0.0.1",
                &[("x-forwarded-for", b"unknown, 10.0.0.5")],
                "10.0.0.5",
            ),
            (
                "Forwarded, one hop",
                "127.0.0.1",
                &[("forwarded", b"for=198.51.100.1;proto=https;by=10.0.0.1")],
                "198.51.100.1",
            ),
            (
                "Forwarded, quoted IPv6 with port",
                "127.0.0.1",
                &[("forwarded", b"for=\"[2001:db8::1]:4711\"")],
                "2001:db8::1",
            ),
            (
                "Forwarded, case and spaces",
                "127.0.0.1",
                &[("forwarded", b"For = \"198.51.100.1:80\" ; Proto=http")],
                "198.51.100.1",
            ),
            (
                "Forwarded, several elements and headers",
                "127.0.0.1",
                &[
                    ("forwarded", b"for=6.6.6.6, for=198.51.100.1"),
                    ("forwarded", b"for=\"10.0.0.3:1234\";by=_proxy"),
                ],
                "198.51.100.1",
            ),
            (
                "Forwarded, spoofed left-most element",
                "127.0.0.1",
                &[("forwarded", b"for=1.1.1.1;proto=https, for=198.51.100.1")],
                "198.51.100.1",
            ),
            (
                "Forwarded, every hop trusted",
                "::1",
                &[("forwarded", b"for=\"[fd00::7]\", for=10.0.0.1")],
                "fd00::7",
            ),
            (
                "Forwarded, unknown client: the proxy that says so",
                "127.0.0.1",
                &[("forwarded", b"for=unknown, for=10.0.0.9")],
                "10.0.0.9",
            ),
            (
                "Forwarded, obfuscated client",
                "127.0.0.1",
                &[("forwarded", b"for=_hidden:_port")],
                "127.0.0.1",
            ),
            (
                "Forwarded, element without for",
                "127.0.0.1",
                &[("forwarded", b"for=6.6.6.6, proto=https")],
                "127.0.0.1",
            ),
            (
                "Forwarded, quoted commas do not split",
                "127.0.0.1",
                &[("forwarded", b"for=198.51.100.1;x=\"a,for=6.6.6.6\"")],
                "198.51.100.1",
            ),
            (
                "Forwarded, escaped quote",
                "127.0.0.1",
                &[("forwarded", b"x=\"a\\\"b\";for=198.51.100.1")],
                "198.51.100.1",
            ),
            (
                "Forwarded, quote left open",
                "127.0.0.1",
                &[("forwarded", b"for=\"198.51.100.1")],
                "127.0.0.1",
            ),
            (
                "Forwarded, junk after a quoted value",
                "127.0.0.1",
                &[("forwarded", b"for=\"198.51.100.1\"junk")],
                "127.0.0.1",
            ),
            (
                "Forwarded, parameter without =",
                "127.0.0.1",
                &[("forwarded", b"for")],
                "127.0.0.1",
            ),
            (
                "Forwarded, for given twice",
                "127.0.0.1",
                &[("forwarded", b"for=6.6.6.6;for=198.51.100.1")],
                "127.0.0.1",
            ),
            (
                "Forwarded, unbracketed IPv6 with port",
                "127.0.0.1",
                &[("forwarded", b"for=\"2001:db8::1]:80\"")],
                "127.0.0.1",
            ),
            (
                "Forwarded, bad port",
                "127.0.0.1",
                &[("forwarded", b"for=\"198.51.100.1:123456\"")],
                "127.0.0.1",
            ),
            (
                "Forwarded, a host name is not an address",
                "127.0.0.1",
                &[("forwarded", b"for=example.org")],
                "127.0.0.1",
            ),
            (
                "Forwarded, empty",
                "127.0.0.1",
                &[("forwarded", b" , ")],
                "127.0.0.1",
            ),
            (
                "both headers: X-Forwarded-For wins (a client's own Forwarded passed through)",
                "127.0.0.1",
                &[
                    ("x-forwarded-for", b"198.51.100.2"),
                    ("forwarded", b"for=203.0.113.66"),
                ],
                "198.51.100.2",
            ),
            (
                "both headers, Forwarded malformed: X-Forwarded-For still read",
                "127.0.0.1",
                &[
                    ("x-forwarded-for", b"198.51.100.2"),
                    ("forwarded", b"for=\"open"),
                ],
                "198.51.100.2",
            ),
        ];
        let trusted = nets(PROXIES);
        for (what, peer, pairs, expected) in cases {
            assert_eq!(
                client_address(ip(peer), &headers(pairs), &trusted),
                ip(expected),
                "{what}"
            );
        }
    }

    #[test]
    fn nobody_is_trusted_by_default() {
        let map = headers(&[
            ("x-forwarded-for", b"198.51.100.1"),
            ("forwarded", b"for=198.51.100.2"),
        ]);
        assert_eq!(client_address(ip("127.0.0.1"), &map, &[]), ip("127.0.0.1"));
    }

    #[test]
    fn https_only_from_a_trusted_proxy() {
        let trusted = nets(PROXIES);
        let cases: &[(&str, Headers, bool)] = &[
            ("127.0.0.1", &[("x-forwarded-proto", b"https")], true),
            ("127.0.0.1", &[("x-forwarded-proto", b"HTTPS")], true),
            ("127.0.0.1", &[("x-forwarded-proto", b"http")], false),
            ("127.0.0.1", &[("x-forwarded-proto", b"https, http")], false),
            (
                "127.0.0.1",
                &[("forwarded", b"for=1.2.3.4;proto=https")],
                true,
            ),
            (
                "127.0.0.1",
                &[("forwarded", b"for=1.2.3.4;proto=https, for=5.6.7.8")],
                false,
            ),
            ("127.0.0.1", &[("forwarded", b"proto=\"https")], false),
            ("127.0.0.1", &[], false),
            ("203.0.113.9", &[("x-forwarded-proto", b"https")], false),
        ];
        for (peer, pairs, expected) in cases {
            assert_eq!(
                forwarded_https(ip(peer), &headers(pairs), &trusted),
                *expected,
                "{peer} {pairs:?}"
            );
        }
    }
}
