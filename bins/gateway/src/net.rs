//! The client's address behind trusted proxies: `X-Forwarded-For` and `Forwarded` are
//! believed only when the direct peer is one of `TRUSTED_PROXIES`; then the address is
//! the right-most one in the chain that is not itself a trusted proxy.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// Parses `TRUSTED_PROXIES`: comma-separated addresses or CIDR blocks.
pub fn parse_trusted(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{s}` is not an address or CIDR block"))
        })
        .collect()
}

fn trusted(list: &[IpNet], ip: IpAddr) -> bool {
    list.iter().any(|net| net.contains(&ip))
}

/// Addresses a `Forwarded` header lists in `for=`, in order.
fn forwarded_for(value: &str) -> Vec<IpAddr> {
    value
        .split(',')
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            if !k.trim().eq_ignore_ascii_case("for") {
                return None;
            }
            let v = v.trim().trim_matches('"');
            let host = match v.strip_prefix('[') {
                Some(rest) => rest.split(']').next()?,
                None => v
                    .rsplit_once(':')
                    .filter(|(h, _)| !h.contains(':'))
                    .map_or(v, |(h, _)| h),
            };
            host.parse().ok()
        })
        .collect()
}

/// The client's address: the peer, or (when the peer is a trusted proxy) the right-most
/// untrusted address of `Forwarded`, else of `X-Forwarded-For`.
pub fn client_ip(req: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip())?;
    if !trusted(trusted_proxies, peer) {
        return Some(peer);
    }
    let headers = req.headers();
    let chain: Vec<IpAddr> = if let Some(f) = headers.get("forwarded").and_then(|v| v.to_str().ok()) {
        forwarded_for(f)
    } else {
        headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    };
    Some(
        chain
            .into_iter()
            .rev()
            .find(|ip| !trusted(trusted_proxies, *ip))
            .unwrap_or(peer),
    )
}

/// Middleware: a request body that sends nothing for `BODY_IDLE_TIMEOUT_SECS` fails with
/// a timeout, so a client that announces a body and stalls (slowloris on the body)
/// cannot hold a connection and a worker's attention. Bodies that keep flowing, such as
/// long uploads, are not limited.
pub async fn body_idle_timeout<B: actix_web::body::MessageBody>(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<B>, actix_web::Error> {
    use futures_util::StreamExt;
    let idle = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map(|s| s.config.body_idle_timeout)
        .unwrap_or(std::time::Duration::from_secs(30));
    let payload = actix_web::HttpMessage::take_payload(&mut req);
    let guarded = futures_util::stream::unfold(Some(payload), move |state| async move {
        let mut payload = state?;
        match tokio::time::timeout(idle, payload.next()).await {
            Ok(Some(item)) => Some((item, Some(payload))),
            Ok(None) => None,
            Err(_) => Some((
                Err(actix_web::error::PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the request body sent nothing for {} s", idle.as_secs()),
                ))),
                None,
            )),
        }
    });
    // Fused: some readers (multipart) poll again after the end.
    req.set_payload(actix_web::dev::Payload::from(
        Box::pin(guarded.fuse()) as std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>>
    ));
    next.call(req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use actix_web::test::TestRequest;

    use super::*;

    fn req(peer: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(peer.parse().unwrap());
        for (k, v) in headers {
            r = r.insert_header((*k, *v));
        }
        r.to_http_request()
    }

    #[test]
    fn headers_count_only_from_trusted_proxies() {
        let proxies = parse_trusted("10.0.0.0/8, 192.168.1.5").unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // An untrusted peer cannot claim another address.
        assert_eq!(
            client_ip(&req("203.0.113.9:5000", &[("x-forwarded-for", "1.2.3.4")]), &proxies),
            ip("203.0.113.9")
        );
        // Through a trusted proxy: the right-most untrusted hop (a spoofed left part is ignored).
        let r = req(
            "10.1.2.3:5000",
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.9.9.9")],
        );
        assert_eq!(client_ip(&r, &proxies), ip("198.51.100.7"));
        let r = req(
            "192.168.1.5:443",
            &[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.2")],
        );
        assert_eq!(client_ip(&r, &proxies), ip("2001:db8::1"));
        let r = req("192.168.1.5:443", &[("forwarded", "for=198.51.100.8:1234")]);
        assert_eq!(client_ip(&r, &proxies), ip("198.51.100.8"));
        // A trusted peer without headers is the client.
        assert_eq!(client_ip(&req("10.0.0.1:1", &[]), &proxies), ip("10.0.0.1"));
        assert!(parse_trusted("10.0.0.0/33").is_err() && parse_trusted("proxy").is_err());
        assert_eq!(parse_trusted("").unwrap(), vec![]);
    }
}
