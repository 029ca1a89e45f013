//! Webhook targets: URLs checked, and an HTTP client whose resolver refuses loopback,
//! private, link-local and other internal addresses at connect time (so a name that
//! resolves inward later, DNS rebinding, is refused too).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;

/// Whether `ip` is inside the network the gateway sits in (or otherwise not public).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || v4.octets()[0] == 0
                // 100.64.0.0/10 (carrier-grade NAT) and 198.18.0.0/15 (benchmarking)
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
                || (v4.octets()[0] == 198 && (v4.octets()[1] & 0xfe) == 18)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
        }
    }
}

/// Checks a webhook URL's shape; with `allow_internal` false, also refuses literal
/// internal addresses and `localhost`.
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
    let internal = match url.host() {
        None => return Err("no host".into()),
        Some(url::Host::Ipv4(ip)) => is_internal(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_internal(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost") || d.ends_with(".internal") || d.ends_with(".local")
        }
    };
    if internal && !allow_internal {
        return Err("targets on loopback, private or link-local addresses are refused (WEBHOOK_ALLOW_PRIVATE)".into());
    }
    Ok(url)
}

/// A DNS resolver that drops internal addresses unless allowed.
#[derive(Clone, Copy, Debug)]
pub struct GuardedResolver {
    /// Let internal addresses through (tests, or a deliberately internal receiver).
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
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow || !is_internal(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{} resolves only to internal addresses", name.as_str()),
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// An HTTP(S) connector using [`GuardedResolver`].
pub fn connector(allow_internal: bool) -> Result<hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>, String> {
    let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_internal });
    http.enforce_http(false);
    http.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "http://0.0.0.0/",
            "http://metadata.google.internal/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad} accepted");
            assert!(check_url(bad, true).is_ok(), "{bad} refused even when allowed");
        }
        for bad in ["ftp://example.com/", "https://user:pw@example.com/", "not a url"] {
            assert!(check_url(bad, true).is_err(), "{bad} accepted");
        }
        assert!(check_url("https://hooks.example.com/eb", false).is_ok());
    }
}
