//! The client's address behind trusted proxies. One header is believed, `X-Forwarded-For`,
//! and only when the direct peer is one of `TRUSTED_PROXIES`: the address is the
//! right-most one in the chain that is not itself a trusted proxy (each proxy appends the
//! peer it saw, so everything left of that is whatever the client chose to send).
//! `Forwarded` (RFC 7239) is never read: a proxy that appends to one header and passes
//! the other through untouched would let a client pick its own address there.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::ServiceRequest;
use actix_web::{HttpRequest, web};
use ipnet::IpNet;
use tokio::time::Instant;

/// The proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`), as app data for
/// the middlewares that log the client's address ([`crate::telemetry::request_id`]).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

/// The timeouts of [`body_idle_timeout`], as app data: without it, 30 s idle and no
/// whole-body deadline.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeouts {
    /// How long a body may send nothing (`BODY_IDLE_TIMEOUT_SECS`).
    pub idle: Duration,
    /// How long a body read before any key is checked may take in all
    /// (`PUBLIC_BODY_TIMEOUT_SECS`).
    pub total: Duration,
    /// True for a request whose body is read before any key is checked.
    pub unauthenticated: fn(&ServiceRequest) -> bool,
}

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
/// not written by a proxy we trust, so the last trusted hop is the answer. Entries are
/// split on the raw bytes, so one undecodable entry a client sent cannot hide the
/// entries a proxy appended after it. IPv4-mapped IPv6 addresses (a dual-stack
/// listener's view of IPv4 peers) count as the IPv4 address they carry.
pub fn client_ip(req: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip().to_canonical())?;
    if !trusted(trusted_proxies, peer) {
        return Some(peer);
    }
    let chain: Vec<&[u8]> = req
        .headers()
        .get_all("x-forwarded-for")
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .collect();
    let mut client = peer;
    for hop in chain.into_iter().rev() {
        let Some(ip) = std::str::from_utf8(hop)
            .ok()
            .and_then(|h| h.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
        else {
            break;
        };
        client = ip;
        if !trusted(trusted_proxies, ip) {
            break;
        }
    }
    Some(client)
}

/// The key under which limits count an address: an IPv4 address itself, an IPv6 address
/// by its /64 prefix (one subscriber's network: anyone with one has 2^64 addresses).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Middleware: a request body that sends nothing for `BODY_IDLE_TIMEOUT_SECS` fails with
/// a timeout, so a client that announces a body and stalls (slowloris on the body)
/// cannot hold a connection and a worker's attention. Bodies that keep flowing, such as
/// long uploads, are not limited, except on routes that read their (small) body before
/// any key is checked: there the whole body must arrive within `PUBLIC_BODY_TIMEOUT_SECS`,
/// so a client trickling a byte now and then cannot hold connections without a key.
///
/// The response keeps the request's payload alive until it is sent ([`KeepRequestBody`]):
/// a body nobody read (refused before reading, or cut off by a deadline) then closes the
/// connection after the answer. Were the payload dropped instead, actix would keep a
/// chunked request's connection open to drain the rest, with no timer at all.
pub async fn body_idle_timeout<B: MessageBody>(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<KeepRequestBody<B>>, actix_web::Error> {
    let (idle, total, deadline) = match req.app_data::<web::Data<BodyTimeouts>>() {
        Some(t) => (
            t.idle,
            t.total,
            (t.unauthenticated)(&req).then(|| Instant::now() + t.total),
        ),
        None => (Duration::from_secs(30), Duration::from_secs(10), None),
    };
    let payload: SharedPayload = Rc::new(RefCell::new(Some(actix_web::HttpMessage::take_payload(&mut req))));
    let guarded = GuardedBody {
        payload: Rc::clone(&payload),
        idle,
        total,
        deadline,
        timer: None,
        done: false,
    };
    req.set_payload(actix_web::dev::Payload::from(
        Box::pin(guarded) as Pin<Box<dyn futures_util::Stream<Item = _>>>
    ));
    let res = next.call(req).await?;
    Ok(res.map_body(|_, body| KeepRequestBody {
        body,
        _payload: payload,
    }))
}

/// The connection's request payload, shared by the reader a handler gets and the response.
type SharedPayload = Rc<RefCell<Option<actix_web::dev::Payload>>>;

/// The request body as handlers read it: the connection's payload with the idle timeout
/// and, on unauthenticated routes, the whole-body deadline. Ends for good after the end
/// or a timeout (some readers, such as multipart, poll again after the end).
struct GuardedBody {
    payload: SharedPayload,
    idle: Duration,
    total: Duration,
    deadline: Option<Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl GuardedBody {
    /// When the body fails if nothing more arrives.
    fn due(&self) -> Instant {
        let idle = Instant::now() + self.idle;
        self.deadline.map_or(idle, |d| d.min(idle))
    }

    fn timed_out(&self) -> actix_web::error::PayloadError {
        let why = match self.deadline {
            Some(d) if d <= Instant::now() => {
                format!("the request body did not arrive within {} s", self.total.as_secs())
            }
            _ => format!("the request body sent nothing for {} s", self.idle.as_secs()),
        };
        actix_web::error::PayloadError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, why))
    }
}

impl futures_util::Stream for GuardedBody {
    type Item = Result<web::Bytes, actix_web::error::PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use futures_util::StreamExt;
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let polled = match this.payload.borrow_mut().as_mut() {
            Some(payload) => payload.poll_next_unpin(cx),
            None => Poll::Ready(None),
        };
        match polled {
            Poll::Ready(Some(item)) => {
                let due = this.due();
                if let Some(timer) = this.timer.as_mut() {
                    timer.as_mut().reset(due);
                }
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let due = this.due();
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.done = true;
                        Poll::Ready(Some(Err(this.timed_out())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds the request's payload until it has been sent (see
    /// [`body_idle_timeout`]).
    pub struct KeepRequestBody<B> {
        #[pin]
        body: B,
        _payload: SharedPayload,
    }
}

impl<B: MessageBody> MessageBody for KeepRequestBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }
}

/// Open connections per peer address (IPv6 by /64, see [`limit_key`]), so one client
/// cannot take every connection slot
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
        let Ok(peer) = stream.peer_addr().map(|a| a.ip().to_canonical()) else {
            return;
        };
        if trusted(&self.trusted, peer) {
            return;
        }
        let ip = limit_key(peer);
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
            tracing::debug!(%peer, limit = self.per_address, "connection refused: too many open from this address");
            let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
        }
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

    /// A client's undecodable entry cannot hide what the proxy appended after it, and a
    /// dual-stack listener's IPv4-mapped peers match IPv4 proxies.
    #[test]
    fn raw_entries_and_mapped_peers() {
        let proxies = parse_trusted("10.0.0.0/8").unwrap();
        let r = TestRequest::default()
            .peer_addr("10.0.0.9:1".parse().unwrap())
            .insert_header((
                "x-forwarded-for",
                actix_web::http::header::HeaderValue::from_bytes(b"\x80\xff, 203.0.113.7").unwrap(),
            ))
            .to_http_request();
        assert_eq!(client_ip(&r, &proxies), Some("203.0.113.7".parse().unwrap()));
        let mapped = req("[::ffff:10.0.0.9]:1", &[("x-forwarded-for", "::ffff:198.51.100.4")]);
        assert_eq!(client_ip(&mapped, &proxies), Some("198.51.100.4".parse().unwrap()));
    }

    #[test]
    fn limits_count_ipv6_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(c));
        assert_eq!(limit_key("2001:db8:1:2::".parse().unwrap()), limit_key(a));
        let v4: IpAddr = "198.51.100.4".parse().unwrap();
        assert_eq!(limit_key(v4), v4);
        assert_eq!(limit_key("::ffff:198.51.100.4".parse().unwrap()), v4);
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
