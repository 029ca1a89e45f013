//! Webhook targets: URLs checked, and an HTTP client that connects only to global
//! unicast addresses. The check runs when a webhook is registered and again on every
//! connection: names through the resolver (so a name that resolves inward later, DNS
//! rebinding, is refused too), IP literals before connecting, and the peer address of
//! every new connection.
//!
//! The reference is IANA's IPv4 and IPv6 special-purpose address registries: every
//! special-purpose block is refused, and of IPv6 only `2000::/3` is global unicast.
//! Addresses that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//! `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`) are judged by that
//! IPv4 address.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioIo;
use ipnet::{Ipv4Net, Ipv6Net};
use tokio::net::TcpStream;

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// IANA IPv4 special-purpose blocks (and multicast, reserved, broadcast), most specific
/// first.
const SPECIAL_V4: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 8), "\"this network\""),
    (v4(10, 0, 0, 0, 8), "private-use"),
    (v4(100, 64, 0, 0, 10), "shared address space (carrier-grade NAT)"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (v4(169, 254, 0, 0, 16), "link-local"),
    (v4(172, 16, 0, 0, 12), "private-use"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (v4(192, 0, 2, 0, 24), "documentation (TEST-NET-1)"),
    (v4(192, 88, 99, 0, 24), "6to4 relay anycast"),
    (v4(192, 168, 0, 0, 16), "private-use"),
    (v4(198, 18, 0, 0, 15), "benchmarking"),
    (v4(198, 51, 100, 0, 24), "documentation (TEST-NET-2)"),
    (v4(203, 0, 113, 0, 24), "documentation (TEST-NET-3)"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(255, 255, 255, 255, 32), "limited broadcast"),
    (v4(240, 0, 0, 0, 4), "reserved"),
];

/// IANA IPv6 special-purpose blocks that lie inside `2000::/3` or are worth naming;
/// anything else outside `2000::/3` is refused as not global unicast.
const SPECIAL_V6: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "local-use IPv4/IPv6 translation",
    ),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "IETF protocol assignments (Teredo, ORCHID, ...)",
    ),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation"),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique local"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local (deprecated)"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

const GLOBAL_UNICAST_V6: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// Why an address is not a webhook destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The refused address.
    pub ip: IpAddr,
    /// The block it falls in, as `name (prefix)`.
    pub block: String,
    /// The IPv4 address it carries, when it was judged by that one.
    pub embedded: Option<(&'static str, Ipv4Addr)>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some((form, v4)) => write!(f, "{} ({form}) carries {v4}: {}", self.ip, self.block),
            None => write!(f, "{}: {}", self.ip, self.block),
        }
    }
}

/// IPv4 address carried by an IPv6 address in one of the forms judged as IPv4.
fn embedded_v4(ip: Ipv6Addr) -> Option<(&'static str, Ipv4Addr)> {
    let s = ip.segments();
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..5] == [0; 5] && s[5] == 0xffff {
        Some(("IPv4-mapped", tail))
    } else if s[..6] == [0; 6] && ip != Ipv6Addr::UNSPECIFIED && ip != Ipv6Addr::LOCALHOST {
        Some(("IPv4-compatible", tail))
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(("NAT64", tail))
    } else if s[0] == 0x2002 {
        Some(("6to4", Ipv4Addr::new(o[2], o[3], o[4], o[5])))
    } else {
        None
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<String> {
    SPECIAL_V4
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(net, name)| format!("{name} ({net})"))
}

/// `None` when `ip` is a global unicast address (a possible webhook destination), else
/// why not.
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    let refuse = |block: String, embedded| Refusal { ip, block, embedded };
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4).map(|b| refuse(b, None)),
        IpAddr::V6(v6) => {
            if let Some((form, inner)) = embedded_v4(v6) {
                return refusal_v4(inner).map(|b| refuse(b, Some((form, inner))));
            }
            if let Some((net, name)) = SPECIAL_V6.iter().find(|(net, _)| net.contains(&v6)) {
                return Some(refuse(format!("{name} ({net})"), None));
            }
            (!GLOBAL_UNICAST_V6.contains(&v6))
                .then(|| refuse(format!("not global unicast (outside {GLOBAL_UNICAST_V6})"), None))
        }
    }
}

/// Whether `ip` may receive webhooks when internal targets are not allowed.
pub fn is_global(ip: IpAddr) -> bool {
    refusal(ip).is_none()
}

const ALLOW_HINT: &str = "only global unicast addresses are accepted unless WEBHOOK_ALLOW_PRIVATE=true";

/// Checks a webhook URL's shape; with `allow_internal` false, also refuses IP literals
/// that are not global unicast, and `localhost` and the `.internal`/`.local` names.
/// Returns the URL as parsed: send to that (its host is what was checked).
pub fn check_url(raw: &str, allow_internal: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be http or https".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not accepted; verify the signature instead".into());
    }
    if raw.len() > 2000 {
        return Err("at most 2,000 characters".into());
    }
    let refused = match url.host() {
        None => return Err("no host".into()),
        Some(url::Host::Ipv4(ip)) => refusal(IpAddr::V4(ip)).map(|r| r.to_string()),
        Some(url::Host::Ipv6(ip)) => refusal(IpAddr::V6(ip)).map(|r| r.to_string()),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            (d == "localhost" || d.ends_with(".localhost") || d.ends_with(".internal") || d.ends_with(".local"))
                .then(|| format!("{d} is an internal name"))
        }
    };
    match refused {
        Some(why) if !allow_internal => Err(format!("refused target {why}; {ALLOW_HINT}")),
        _ => Ok(url),
    }
}

fn refused_io(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, format!("refused target {why}"))
}

/// A DNS resolver that drops addresses that are not global unicast, unless allowed.
#[derive(Clone, Copy, Debug)]
pub struct GuardedResolver {
    /// Let every address through (tests, or a deliberately internal receiver).
    pub allow_internal: bool,
}

type Addrs = std::vec::IntoIter<SocketAddr>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = Addrs;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow = self.allow_internal;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
                found.into_iter().partition(|a| allow || is_global(a.ip()));
            if allowed.is_empty() {
                let why: Vec<String> = refused
                    .iter()
                    .filter_map(|a| refusal(a.ip()))
                    .map(|r| r.to_string())
                    .collect();
                return Err(refused_io(format!(
                    "{} (it resolves only to refused addresses: {})",
                    name.as_str(),
                    why.join("; ")
                )));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// The TCP connector of webhook deliveries: names go through [`GuardedResolver`]; IP
/// literals (which the resolver never sees) are checked before connecting, and the peer
/// of every new connection after.
#[derive(Clone, Debug)]
pub struct GuardedConnector {
    inner: HttpConnector<GuardedResolver>,
    allow_internal: bool,
}

impl GuardedConnector {
    fn check(&self, ip: IpAddr) -> Result<(), std::io::Error> {
        match refusal(ip) {
            Some(r) if !self.allow_internal => Err(refused_io(format!("{r}; {ALLOW_HINT}"))),
            _ => Ok(()),
        }
    }
}

/// The literal address in a URI's host, read as hyper's connector reads it (brackets
/// stripped, then an IPv4 or IPv6 address); `None` for a name.
fn literal(uri: &hyper::Uri) -> Option<IpAddr> {
    let host = uri.host()?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .or_else(|_| host.parse::<Ipv6Addr>().map(IpAddr::V6))
        .ok()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<hyper::Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let this = self.clone();
        let mut inner = self.inner.clone();
        Box::pin(async move {
            if let Some(ip) = literal(&uri) {
                this.check(ip)?;
            }
            let io = inner.call(uri).await?;
            this.check(io.inner().peer_addr()?.ip())?;
            Ok(io)
        })
    }
}

/// An HTTP(S) connector using [`GuardedConnector`].
pub fn connector(allow_internal: bool) -> Result<hyper_rustls::HttpsConnector<GuardedConnector>, String> {
    let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_internal });
    http.enforce_http(false);
    http.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(GuardedConnector {
            inner: http,
            allow_internal,
        }))
}

/// Why a delivery's connection failed: the error and its causes, outermost first.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Every block of the IANA special-purpose registries (and the IPv6 space outside
    /// `2000::/3`), by its first address, one inside and its last, as a literal URL:
    /// refused unless internal targets are allowed.
    #[test]
    fn every_special_purpose_block_is_refused() {
        let blocks: &[(&str, &[&str])] = &[
            ("0.0.0.0/8", &["0.0.0.0", "0.1.2.3", "0.255.255.255"]),
            ("10.0.0.0/8", &["10.0.0.0", "10.1.2.3", "10.255.255.255"]),
            ("100.64.0.0/10", &["100.64.0.0", "100.100.1.1", "100.127.255.255"]),
            ("127.0.0.0/8", &["127.0.0.0", "127.0.0.1", "127.255.255.255"]),
            ("169.254.0.0/16", &["169.254.0.0", "169.254.169.254", "169.254.255.255"]),
            ("172.16.0.0/12", &["172.16.0.0", "172.20.1.1", "172.31.255.255"]),
            ("192.0.0.0/24", &["192.0.0.0", "192.0.0.170", "192.0.0.255"]),
            ("192.0.2.0/24", &["192.0.2.0", "192.0.2.1", "192.0.2.255"]),
            ("192.88.99.0/24", &["192.88.99.0", "192.88.99.1", "192.88.99.255"]),
            ("192.168.0.0/16", &["192.168.0.0", "192.168.1.1", "192.168.255.255"]),
            ("198.18.0.0/15", &["198.18.0.0", "198.19.1.1", "198.19.255.255"]),
            ("198.51.100.0/24", &["198.51.100.0", "198.51.100.7", "198.51.100.255"]),
            ("203.0.113.0/24", &["203.0.113.0", "203.0.113.9", "203.0.113.255"]),
            ("224.0.0.0/4", &["224.0.0.0", "239.1.2.3", "239.255.255.255"]),
            ("240.0.0.0/4", &["240.0.0.0", "250.1.2.3", "255.255.255.254"]),
            ("255.255.255.255/32", &["255.255.255.255"]),
            ("::/128", &["::"]),
            ("::1/128", &["::1"]),
            (
                "::ffff:0:0/96",
                &[
                    "::ffff:0.0.0.0",
                    "::ffff:127.0.0.1",
                    "::ffff:10.0.0.1",
                    "::ffff:192.0.0.170",
                ],
            ),
            (
                "::/96",
                &["::0.0.0.2", "::127.0.0.1", "::10.1.2.3", "::169.254.169.254"],
            ),
            (
                "64:ff9b::/96",
                &[
                    "64:ff9b::",
                    "64:ff9b::127.0.0.1",
                    "64:ff9b::192.168.1.1",
                    "64:ff9b::192.0.0.170",
                ],
            ),
            (
                "64:ff9b:1::/48",
                &[
                    "64:ff9b:1::",
                    "64:ff9b:1::808:808",
                    "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
                ],
            ),
            ("100::/64", &["100::", "100::1", "100::ffff:ffff:ffff:ffff"]),
            (
                "2001::/23",
                &["2001::", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:1ff:ffff::1"],
            ),
            (
                "2001:db8::/32",
                &["2001:db8::", "2001:db8::1", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"],
            ),
            (
                "2002::/16",
                &["2002::", "2002:7f00:1::1", "2002:c0a8:101::", "2002:a9fe:a9fe::1"],
            ),
            ("3fff::/20", &["3fff::", "3fff:fff:ffff::1"]),
            (
                "fc00::/7",
                &["fc00::", "fd00::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
            ),
            (
                "fe80::/10",
                &["fe80::", "fe80::1", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
            ),
            (
                "fec0::/10",
                &["fec0::", "fec0::1", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
            ),
            (
                "ff00::/8",
                &["ff00::", "ff02::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
            ),
            (
                "outside 2000::/3",
                &["::2:0:0:1", "1::", "1fff:ffff::1", "4000::1", "5f00::1", "e000::1"],
            ),
        ];
        for (block, addresses) in blocks {
            for a in *addresses {
                let ip: IpAddr = a.parse().unwrap();
                let why = refusal(ip).unwrap_or_else(|| panic!("{a} ({block}) is accepted"));
                assert!(!is_global(ip));
                let url = match ip {
                    IpAddr::V4(_) => format!("http://{a}:8080/hook"),
                    IpAddr::V6(_) => format!("https://[{a}]/hook"),
                };
                let err = check_url(&url, false).expect_err(&url);
                assert!(err.contains("refused target"), "{url}: {err}");
                assert!(check_url(&url, true).is_ok(), "{url} refused even when allowed");
                assert!(!why.block.is_empty(), "{why:?}");
            }
        }
    }

    #[test]
    fn refusals_name_the_block_and_the_embedded_address() {
        let r = refusal("::ffff:127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            r.to_string(),
            "::ffff:127.0.0.1 (IPv4-mapped) carries 127.0.0.1: loopback (127.0.0.0/8)"
        );
        let r = refusal("2002:a00:1::".parse().unwrap()).unwrap();
        assert_eq!(r.embedded, Some(("6to4", Ipv4Addr::new(10, 0, 0, 1))));
        let r = refusal("192.0.0.170".parse().unwrap()).unwrap();
        assert_eq!(r.block, "IETF protocol assignments (192.0.0.0/24)");
        let r = refusal("fec0::1".parse().unwrap()).unwrap();
        assert_eq!(r.block, "site-local (deprecated) (fec0::/10)");
    }

    #[test]
    fn global_unicast_is_accepted() {
        for ok in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80e::200e",
            "2001:200::1",
            "3ffe::1",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = ok.parse().unwrap();
            assert_eq!(refusal(ip), None, "{ok}");
        }
        assert!(check_url("https://hooks.example.com/eb", false).is_ok());
        assert!(check_url("http://8.8.8.8/eb", false).is_ok());
        assert!(check_url("http://[2606:4700:4700::1111]:8443/eb", false).is_ok());
    }

    #[test]
    fn internal_targets_are_refused() {
        for bad in [
            "http://127.0.0.1/x",
            "http://localhost:8080/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.5.4/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://0.0.0.0/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://127.0.0.1./",
            "http://metadata.google.internal/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad} accepted");
            assert!(check_url(bad, true).is_ok(), "{bad} refused even when allowed");
        }
        for bad in ["ftp://example.com/", "https://user:pw@example.com/", "not a url"] {
            assert!(check_url(bad, true).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn literals_are_read_as_the_connector_reads_them() {
        let uri = |s: &str| s.parse::<hyper::Uri>().unwrap();
        assert_eq!(
            literal(&uri("http://127.0.0.1:80/x")),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            literal(&uri("http://[::ffff:127.0.0.1]/x")),
            Some("::ffff:7f00:1".parse().unwrap())
        );
        assert_eq!(literal(&uri("http://hooks.example.com/x")), None);
    }

    #[tokio::test]
    async fn literals_and_peers_are_checked_when_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
        let mut strict = connector(false).unwrap();
        for target in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
        ] {
            let err = tower_service::Service::call(&mut strict, target.parse().unwrap())
                .await
                .err()
                .unwrap_or_else(|| panic!("{target} connected"));
            assert!(describe(&*err).contains("loopback"), "{target}: {}", describe(&*err));
        }
        let err = tower_service::Service::call(&mut strict, format!("http://localhost:{port}/").parse().unwrap())
            .await
            .err()
            .unwrap();
        assert!(
            describe(&*err).contains("resolves only to refused addresses"),
            "{}",
            describe(&*err)
        );
        assert!(!accepted.is_finished(), "nothing reached the listener");
        let mut open = connector(true).unwrap();
        assert!(
            tower_service::Service::call(&mut open, format!("http://127.0.0.1:{port}/").parse().unwrap())
                .await
                .is_ok()
        );
        assert!(accepted.await.unwrap());
    }
}
