//! The client address behind a request: which forwarding headers are
//! believed, and how an address becomes the `ip` attribute.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv6Addr};

use http::HeaderMap;

use super::HttpRequestInfo;

/// Every `X-Forwarded-For` line of `headers`, in order, joined as one
/// comma-separated list (as if sent on one line). Bytes that are not UTF-8
/// become U+FFFD: such an entry is no address, but it keeps its place, so
/// a client's junk can neither hide the entry a trusted proxy appended to
/// the same line nor shift the count of hops. Borrowed when there is one
/// line of text.
pub fn forwarded_for(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    let mut lines = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()));
    let first = lines.next()?;
    let Some(second) = lines.next() else {
        return Some(first);
    };
    let mut joined = format!("{first}, {second}");
    for line in lines {
        joined.push_str(", ");
        joined.push_str(&line);
    }
    Some(Cow::Owned(joined))
}

/// The client address. With `trusted_proxies` = N > 0 the hops are the
/// `X-Forwarded-For` entries followed by `X-Real-IP` when there is one
/// (nginx sets it to the address it sees: the last hop), and the client is
/// the N-th hop from the right (the leftmost when there are fewer). With
/// N = 0 neither header is believed: the peer address. An entry that is not
/// an IP address is never used: the peer stands in.
pub fn client_ip(info: &HttpRequestInfo<'_>, trusted_proxies: u32) -> Option<IpAddr> {
    if trusted_proxies == 0 {
        return info.peer;
    }
    let mut hops: Vec<&str> = match info.forwarded_for.as_deref() {
        Some(xff) => xff.split(',').map(str::trim).collect(),
        None => Vec::new(),
    };
    hops.extend(info.real_ip);
    let index = hops.len().saturating_sub(trusted_proxies as usize);
    hops.get(index).copied().and_then(parse_ip).or(info.peer)
}

/// Parses `1.2.3.4`, `::1`, `[::1]`, `[::1]:80` or `1.2.3.4:80`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    text.rsplit_once(':')
        .filter(|(host, port)| !host.contains(':') && port.parse::<u16>().is_ok())
        .and_then(|(host, _)| host.parse().ok())
}

/// The `ip` attribute of a client address: an IPv4 address as is (an
/// IPv4-mapped IPv6 address as its IPv4 address); an IPv6 address as its
/// network with `ipv6_prefix` bits, like `2001:db8:0:100::/56`, so the
/// many addresses of one IPv6 host share one counter.
pub fn ip_attribute(ip: IpAddr, ipv6_prefix: u8) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = ipv6_prefix.clamp(1, 128);
                let mask = u128::MAX << (128 - u32::from(prefix));
                let network = Ipv6Addr::from(u128::from(v6) & mask);
                format!("{network}/{prefix}")
            }
        },
    }
}
