//! The visitor's address, which the identity service throttles sign-ins and sign-ups by.
//!
//! It is the socket's peer address — unless the peer is one of the configured
//! [`TrustedProxies`] (a load balancer or TLS-terminating proxy in front of the web tier), in
//! which case it is what that proxy reports: the `X-Forwarded-For` list (or `Forwarded`'s
//! `for=` list when there is no `X-Forwarded-For`), read from the right, skipping the trusted
//! proxies themselves; the first address that is not one is the visitor. Anyone else's
//! forwarding headers are ignored, so a visitor cannot pick the address they are throttled by.
//!
//! Proxies append to `X-Forwarded-For`; one that writes only `Forwarded` must also remove an
//! `X-Forwarded-For` sent by the client, or the client's would be read.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use http::HeaderMap;
use http::request::Parts;
use ipnet::IpNet;

/// The proxies whose forwarding headers the web tier believes: addresses and CIDR ranges.
///
/// ```
/// use keel_start::TrustedProxies;
/// let proxies: TrustedProxies = "10.0.0.0/8, 127.0.0.1".parse().unwrap();
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(!proxies.contains("192.0.2.1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// An entry of a trusted-proxy list that is neither an IP address nor a CIDR range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or a CIDR range (e.g. `10.0.0.1`, `10.0.0.0/8`, `fd00::/8`)")]
pub struct InvalidTrustedProxy(pub String);

impl TrustedProxies {
    /// No trusted proxy: every visitor is the socket's peer (the default).
    pub fn none() -> TrustedProxies {
        TrustedProxies::default()
    }

    /// Whether `address` is one of the trusted proxies.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<TrustedProxies> for TrustedProxies {
    /// Every proxy of every list (`--trusted-proxy` given several times).
    fn from_iter<I: IntoIterator<Item = TrustedProxies>>(lists: I) -> TrustedProxies {
        TrustedProxies(lists.into_iter().flat_map(|list| list.0).collect())
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidTrustedProxy;

    /// A comma-separated list of addresses and CIDR ranges (`10.0.0.0/8, ::1`); empty entries
    /// are skipped.
    fn from_str(list: &str) -> Result<TrustedProxies, InvalidTrustedProxy> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => IpNet::from(
                    entry
                        .parse::<IpAddr>()
                        .map_err(|_| InvalidTrustedProxy(entry.to_owned()))?
                        .to_canonical(),
                ),
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }
}

/// The visitor's address as [`TrustedProxies`] allow it to be known: `peer` (the socket's
/// peer; `None` when the server was not given connection info) or what a trusted `peer`
/// reports.
pub(crate) fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    if !trusted.contains(peer) {
        return Some(peer);
    }
    // The nearest hop first; each trusted hop vouches for the one before it.
    let mut known = peer;
    for hop in forwarded_for(headers).into_iter().rev() {
        match hop {
            Some(address) if trusted.contains(address) => known = address,
            Some(address) => return Some(address),
            // An obfuscated or garbled hop (`unknown`, `_hidden`): nothing further is known.
            None => return Some(known),
        }
    }
    Some(known)
}

/// The hops a proxy reported, farthest first: `X-Forwarded-For`, else `Forwarded`'s `for=`.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let lines = |name: http::HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().map(str::to_owned).unwrap_or_default())
            .collect()
    };
    let x_forwarded_for = lines(http::HeaderName::from_static("x-forwarded-for"));
    if !x_forwarded_for.is_empty() {
        return x_forwarded_for
            .iter()
            .flat_map(|line| line.split(','))
            .map(node_address)
            .collect();
    }
    lines(http::header::FORWARDED)
        .iter()
        .flat_map(|line| line.split(','))
        .map(|element| {
            let node = element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then_some(value)
            });
            node.and_then(node_address)
        })
        .collect()
}

/// One hop: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `"[2001:db8::1]:4711"`.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    let bracketed = node.strip_prefix('[')?.split(']').next()?;
    bracketed.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// Extractor: the visitor's address (see the module docs); `None` when the server runs without
/// connection info (`into_make_service_with_connect_info`).
pub(crate) struct ClientAddress(pub(crate) Option<IpAddr>);

impl<S> FromRequestParts<S> for ClientAddress
where
    S: Send + Sync,
    TrustedProxies: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<ClientAddress, Self::Rejection> {
        let peer = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .ok()
            .map(|ConnectInfo(address)| address.ip());
        Ok(ClientAddress(client_address(
            peer,
            &parts.headers,
            &TrustedProxies::from_ref(state),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn lists_parse_and_bad_entries_are_named() {
        let proxies: TrustedProxies = " 127.0.0.1 , 10.0.0.0/8,fd00::/8,".parse().unwrap();
        assert!(proxies.contains(ip("127.0.0.1")));
        assert!(proxies.contains(ip("::ffff:127.0.0.1")), "IPv4-mapped");
        assert!(proxies.contains(ip("10.255.0.1")));
        assert!(proxies.contains(ip("fd00::1")));
        assert!(!proxies.contains(ip("127.0.0.2")));
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        let joined: TrustedProxies = ["10.0.0.1", "::1"]
            .iter()
            .map(|l| l.parse::<TrustedProxies>().unwrap())
            .collect();
        assert!(joined.contains(ip("10.0.0.1")) && joined.contains(ip("::1")));
        for bad in ["localhost", "10.0.0.0/40", "1.2.3", "*"] {
            let error = bad.parse::<TrustedProxies>().unwrap_err();
            assert_eq!(error, InvalidTrustedProxy(bad.to_owned()));
        }
    }

    #[test]
    fn without_trusted_proxies_forwarding_headers_are_ignored() {
        let spoofed = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=198.51.100.1"),
        ]);
        let none = TrustedProxies::none();
        assert_eq!(
            client_address(Some(ip("192.0.2.7")), &spoofed, &none),
            Some(ip("192.0.2.7"))
        );
        // A proxy is trusted, but the request did not come through it.
        let proxies: TrustedProxies = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_address(Some(ip("192.0.2.7")), &spoofed, &proxies),
            Some(ip("192.0.2.7"))
        );
        assert_eq!(client_address(None, &spoofed, &proxies), None);
    }

    #[test]
    fn a_trusted_proxy_reports_the_visitor() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let proxy = Some(ip("10.0.0.1"));
        for (pairs, expected) in [
            (vec![("x-forwarded-for", "203.0.113.9")], "203.0.113.9"),
            // A client's own entry comes first; the proxy appended the real peer.
            (
                vec![("x-forwarded-for", "198.51.100.66, 203.0.113.9")],
                "203.0.113.9",
            ),
            // Two trusted hops, over two header lines.
            (
                vec![
                    ("x-forwarded-for", "198.51.100.66, 203.0.113.9"),
                    ("x-forwarded-for", "10.0.0.2"),
                ],
                "203.0.113.9",
            ),
            (vec![("x-forwarded-for", "203.0.113.9:4711")], "203.0.113.9"),
            (
                vec![(
                    "forwarded",
                    r#"for=198.51.100.66, for="[2001:db8::7]:4711";proto=https"#,
                )],
                "2001:db8::7",
            ),
            (
                vec![("forwarded", "For=203.0.113.9;by=10.0.0.1")],
                "203.0.113.9",
            ),
            // X-Forwarded-For wins over Forwarded.
            (
                vec![
                    ("forwarded", "for=198.51.100.66"),
                    ("x-forwarded-for", "203.0.113.9"),
                ],
                "203.0.113.9",
            ),
            // The proxy hides the client: the proxy is all that is known.
            (vec![("forwarded", "for=_hidden")], "10.0.0.1"),
            (vec![("x-forwarded-for", "10.0.0.3, garbage")], "10.0.0.1"),
            // Only trusted hops (the proxy's own health check): the farthest of them.
            (vec![("x-forwarded-for", "10.0.0.5")], "10.0.0.5"),
            (vec![], "10.0.0.1"),
        ] {
            assert_eq!(
                client_address(proxy, &headers(&pairs), &proxies),
                Some(ip(expected)),
                "{pairs:?}"
            );
        }
    }
}
