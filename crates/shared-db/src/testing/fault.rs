//! A TCP proxy in front of a real test peer that misbehaves on demand: refuses
//! connections, stalls, cuts a connection after so many bytes of request, or answers
//! every request itself (a throttling error, a 503). Fault tests put it between a client
//! (the SES or S3 SDK, the webhook client) and the real peer, switch faults while the
//! client works, then let traffic pass again.
#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with the next connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Close each connection at once, before reading anything.
    Refuse,
    /// Accept, read everything, never answer.
    Stall,
    /// Forward, but drop both sides once this many request bytes have gone upstream.
    CutAfter(usize),
    /// Read one whole HTTP/1.1 request, answer with these bytes, close.
    Respond(Vec<u8>),
}

impl Fault {
    /// An HTTP/1.1 response with `status`, a content type and `body` (closes the connection).
    pub fn http(status: u16, content_type: &str, body: &str) -> Fault {
        Fault::Respond(
            format!(
                "HTTP/1.1 {status} Fault\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }
}

/// A running proxy; it stops with the runtime.
pub struct FaultProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
    accepted: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// A proxy to `upstream` (`host:port` or `http://host:port`) on a free port, passing.
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fault proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (fault, changes) = watch::channel(Fault::Pass);
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut changes = changes.clone();
                let now = changes.borrow_and_update().clone();
                let upstream = upstream.clone();
                // A change of fault ends every open connection (pooled ones too), so the
                // client's next request meets the new fault.
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(client, &upstream, now) => {}
                        _ = changes.changed() => {}
                    }
                });
            }
        });
        FaultProxy { addr, fault, accepted }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every open connection and applies `fault` to the next ones.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn serve(mut client: TcpStream, upstream: &str, fault: Fault) {
    match fault {
        Fault::Refuse => drop(client),
        Fault::Stall => {
            let mut sink = [0u8; 8192];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        Fault::Respond(answer) => {
            if read_one_request(&mut client).await {
                let _ = client.write_all(&answer).await;
                let _ = client.shutdown().await;
            }
        }
        Fault::Pass => forward(client, upstream, usize::MAX).await,
        Fault::CutAfter(limit) => forward(client, upstream, limit).await,
    }
}

async fn forward(client: TcpStream, upstream: &str, limit: usize) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let up = async {
        let mut sent = 0usize;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let n = n.min(limit.saturating_sub(sent));
            if n == 0 || server_w.write_all(&buf[..n]).await.is_err() {
                return;
            }
            sent += n;
            if sent >= limit {
                return;
            }
        }
    };
    let down = tokio::io::copy(&mut server_r, &mut client_w);
    // Whichever side ends first ends the connection (dropping both halves of both).
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Reads a request head and its `Content-Length` body; false when the client went away.
async fn read_one_request(client: &mut TcpStream) -> bool {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while data.len() < end + 4 + length {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        return true;
    }
}
