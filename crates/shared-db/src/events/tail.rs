//! A live tail of the audit trail: the frames of a Server-Sent Events stream that polls
//! for events past its position, keeps proxies awake with comments, and ends (with a
//! comment saying why) when its caller's key no longer opens it or the server stops.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::Stream;
use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{AuditEvent, Event, EventFilter, list};
use crate::DbPool;

/// How often the tail looks for new events.
const POLL: Duration = Duration::from_millis(500);
/// A comment line this often keeps proxies from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often an open tail asks its [`KeyCheck`]: a revoked or expired key's stream ends
/// within this (and one poll).
const KEY_CHECK: Duration = Duration::from_secs(2);

/// Asked every few seconds whether the tail may go on: `Some(why)` ends it. A check that
/// cannot be answered (the database is away) should answer `None` and is asked again.
pub type KeyCheck = Box<dyn Fn() -> BoxFuture<'static, Option<&'static str>> + Send + Sync>;

/// One open tail's position and the check that keeps it open.
pub struct Tail {
    pool: DbPool,
    stopping: CancellationToken,
    filter: EventFilter,
    check: KeyCheck,
    last: Option<String>,
    pending: VecDeque<Event>,
    quiet_since: Instant,
    checked: Instant,
    closed: bool,
}

impl Tail {
    /// A tail of the events matching `filter` (oldest first) after `start` (an event
    /// id; `None` for the newest event when it opens).
    pub async fn open(
        pool: DbPool,
        stopping: CancellationToken,
        filter: EventFilter,
        start: Option<String>,
        check: KeyCheck,
    ) -> Result<Tail, crate::DbError> {
        let last = match start {
            Some(id) => Some(id),
            None => {
                let mut conn = pool.get().await?;
                super::latest_id(&mut conn).await?
            }
        };
        Ok(Tail {
            pool,
            stopping,
            filter,
            check,
            last,
            pending: VecDeque::new(),
            quiet_since: Instant::now(),
            checked: Instant::now(),
            closed: false,
        })
    }

    /// The stream of frames (events, keep-alive comments, the closing comment).
    pub fn frames(self) -> impl Stream<Item = String> + Send + 'static {
        futures_util::stream::unfold(self, |mut tail| async move {
            let frame = tail.next_frame().await?;
            Some((frame, tail))
        })
    }

    /// The next frame to send, or `None` when the stream has ended.
    async fn next_frame(&mut self) -> Option<String> {
        if self.closed {
            return None;
        }
        loop {
            if self.checked.elapsed() >= KEY_CHECK {
                self.checked = Instant::now();
                if let Some(why) = (self.check)().await {
                    self.closed = true;
                    return Some(format!(": closed: {why}\n\n"));
                }
            }
            if let Some(e) = self.pending.pop_front() {
                self.last = Some(e.id.clone());
                self.quiet_since = Instant::now();
                return Some(AuditEvent::from(e).sse_frame());
            }
            if self.quiet_since.elapsed() >= KEEPALIVE {
                self.quiet_since = Instant::now();
                return Some(": keep-alive\n\n".to_owned());
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = self.stopping.cancelled() => {
                    self.closed = true;
                    return Some(": closed: the server is shutting down\n\n".to_owned());
                }
            }
            let mut filter = self.filter.clone();
            filter.after_id = self.last.clone();
            filter.limit = 200;
            match self.pool.get().await {
                Ok(mut conn) => match list(&mut conn, &filter).await {
                    Ok(found) => self.pending.extend(found),
                    Err(e) => tracing::warn!(error = %e, "event tail: query failed; retrying"),
                },
                Err(e) => tracing::warn!(error = %e, "event tail: database unavailable; retrying"),
            }
        }
    }
}
