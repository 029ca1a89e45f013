//! The client's address behind trusted proxies. One header is believed, `X-Forwarded-For`,
//! and only when the direct peer is one of `TRUSTED_PROXIES`: the address is the
//! right-most one in the chain that is not itself a trusted proxy (each proxy appends the
//! peer it saw, so everything left of that is whatever the client chose to send).
//! `Forwarded` (RFC 7239) is never read: a proxy that appends to one header and passes
//! the other through untouched would let a client pick its own address there.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// The client's address: the peer, or (when the peer is a trusted proxy) the right-most
/// address of `X-Forwarded-For` (all its lines, in order) that is not a trusted proxy.
/// Walking stops at the first entry that is not an address: what stands left of it was
/// not written by a proxy we trust, so the last trusted hop is the answer.
pub fn client_ip(req: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip())?;
    if !trusted(trusted_proxies, peer) {
        return Some(peer);
    }
    let chain: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in chain.into_iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !trusted(trusted_proxies, ip) {
            break;
        }
    }
    Some(client)
}

/// Middleware: a request body that sends nothing for `BODY_IDLE_TIMEOUT_SECS` fails with
/// a timeout, so a client that announces a body and stalls (slowloris on the body)
/// cannot hold a connection and a worker's attention. Bodies that keep flowing, such as
/// long uploads, are not limited, except on routes that read their (small) body before
/// any key is checked: there the whole body must arrive within `PUBLIC_BODY_TIMEOUT_SECS`,
/// so a client trickling a byte now and then cannot hold connections without a key.
pub async fn body_idle_timeout<B: actix_web::body::MessageBody>(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<B>, actix_web::Error> {
    use futures_util::StreamExt;
    use tokio::time::Instant;
    let (idle, total) = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map_or((Duration::from_secs(30), Duration::from_secs(10)), |s| {
            (s.config.body_idle_timeout, s.config.public_body_timeout)
        });
    let deadline = reads_body_unauthenticated(&req).then(|| Instant::now() + total);
    let payload = actix_web::HttpMessage::take_payload(&mut req);
    let guarded = futures_util::stream::unfold(Some(payload), move |state| async move {
        let mut payload = state?;
        let until = Instant::now() + idle;
        let (until, why) = match deadline {
            Some(d) if d < until => (
                d,
                format!("the request body did not arrive within {} s", total.as_secs()),
            ),
            _ => (until, format!("the request body sent nothing for {} s", idle.as_secs())),
        };
        match tokio::time::timeout_at(until, payload.next()).await {
            Ok(Some(item)) => Some((item, Some(payload))),
            Ok(None) => None,
            Err(_) => Some((
                Err(actix_web::error::PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    why,
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

/// True for a request whose body is read before any API key is checked: a route the
/// OpenAPI document puts behind no key (licence-holder calls, SNS notifications, unknown
/// paths), except storage URLs the gateway signed (checked before their body is read,
/// and as large as uploads).
fn reads_body_unauthenticated(req: &actix_web::dev::ServiceRequest) -> bool {
    let Some(routes) = req.app_data::<actix_web::web::Data<crate::http::RouteTable>>() else {
        return false;
    };
    routes.scopes(req.method(), req.path()).is_none() && !crate::http::is_signed_storage_url(req.request())
}

/// Open connections per peer address, so one client cannot take every connection slot
/// (`MAX_CONNECTIONS`) however slowly it talks. Trusted proxies are not counted (their
/// connections carry many clients; limit those at the proxy, as `deploy/nginx.conf`
/// does).
pub struct ConnectionLimiter {
    open: Mutex<HashMap<IpAddr, usize>>,
    per_address: usize,
    trusted: Vec<IpNet>,
    refused: prometheus::IntCounter,
}

/// Held in a connection's data for as long as it is open.
struct ConnectionSlot {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.limiter.open.lock()
            && let Some(n) = open.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimiter {
    /// At most `per_address` connections per address not in `trusted`.
    pub fn new(per_address: usize, trusted: Vec<IpNet>) -> Result<Arc<Self>, prometheus::Error> {
        Ok(Arc::new(Self {
            open: Mutex::new(HashMap::new()),
            per_address,
            trusted,
            refused: prometheus::IntCounter::new(
                "event_bridge_connections_refused_total",
                "Connections closed at once because their address held MAX_CONNECTIONS_PER_ADDRESS",
            )?,
        }))
    }

    /// The refused-connections counter, for the metrics registry.
    pub fn refused_counter(&self) -> prometheus::IntCounter {
        self.refused.clone()
    }

    /// Actix's `on_connect` hook: counts the new connection, or shuts it down at once
    /// (the client reads an end of stream; nothing is parsed) when its address already
    /// holds its share.
    pub fn on_connect(self: &Arc<Self>, io: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
        let Some(stream) = io.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let Ok(ip) = stream.peer_addr().map(|a| a.ip()) else {
            return;
        };
        if trusted(&self.trusted, ip) {
            return;
        }
        let admitted = match self.open.lock() {
            Ok(mut open) => {
                let n = open.entry(ip).or_insert(0);
                if *n < self.per_address {
                    *n += 1;
                    true
                } else {
                    false
                }
            }
            Err(_) => true,
        };
        if admitted {
            data.insert(ConnectionSlot {
                limiter: Arc::clone(self),
                ip,
            });
        } else {
            self.refused.inc();
            tracing::debug!(%ip, limit = self.per_address, "connection refused: too many open from this address");
            let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
        }
    }

    /// Connections open from `ip` now (for tests and metrics).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.open.lock().ok().and_then(|o| o.get(&ip).copied()).unwrap_or(0)
    }
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
        // Several lines are one chain, in order.
        let r = req(
            "10.1.2.3:5000",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "2001:db8::1, 10.0.0.2"),
            ],
        );
        assert_eq!(client_ip(&r, &proxies), ip("2001:db8::1"));
        // Garbage stops the walk at the last trusted hop instead of skipping to the left.
        let r = req("10.1.2.3:5000", &[("x-forwarded-for", "6.6.6.6, junk, 10.0.0.7")]);
        assert_eq!(client_ip(&r, &proxies), ip("10.0.0.7"));
        // A trusted peer without headers is the client.
        assert_eq!(client_ip(&req("10.0.0.1:1", &[]), &proxies), ip("10.0.0.1"));
        assert!(parse_trusted("10.0.0.0/33").is_err() && parse_trusted("proxy").is_err());
        assert_eq!(parse_trusted("").unwrap(), vec![]);
    }

    /// `Forwarded` is not believed, even from a trusted proxy and even alone: a client
    /// could otherwise rotate `for=` through a proxy that passes it on.
    #[test]
    fn forwarded_is_never_believed() {
        let proxies = parse_trusted("10.0.0.0/8").unwrap();
        let spoofed = [("forwarded", "for=198.51.100.8"), ("x-forwarded-for", "203.0.113.5")];
        assert_eq!(
            client_ip(&req("10.0.0.9:1", &spoofed), &proxies),
            Some("203.0.113.5".parse().unwrap())
        );
        let alone = [("forwarded", "for=198.51.100.8")];
        assert_eq!(
            client_ip(&req("10.0.0.9:1", &alone), &proxies),
            Some("10.0.0.9".parse().unwrap())
        );
    }
}
