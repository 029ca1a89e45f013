//! Coalesced look-ups: many concurrent requests for rows by key share one query.
//!
//! A look-up joins a queue; if fewer than `slots` queries are in flight it starts one
//! with everything queued (up to `max_batch` keys), otherwise the next query to finish
//! takes the queue. An idle service therefore runs each look-up at once, alone (no
//! waiting window), and a busy one answers many callers per round trip: the database
//! does one statement's work for a whole batch instead of one per caller.
//!
//! Every look-up is answered by a query that started after it was queued, so it sees
//! everything committed before the caller asked. Queries run in their own task: a
//! caller that goes away does not take its batch with it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::{Semaphore, oneshot};

use crate::DbError;

/// The query behind a [`Coalescer`]: the rows found for some keys (absent keys are
/// simply missing from the map).
pub type Loader<K, V> = Arc<dyn Fn(Vec<K>) -> BoxFuture<'static, Result<HashMap<K, V>, DbError>> + Send + Sync>;

type Waiter<K, V> = (K, oneshot::Sender<Result<Option<V>, DbError>>);

/// Shares look-ups by key between concurrent callers; see the module documentation.
pub struct Coalescer<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Coalescer<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<K, V> {
    queue: Mutex<Vec<Waiter<K, V>>>,
    slots: Arc<Semaphore>,
    max_batch: usize,
    load: Loader<K, V>,
}

impl<K, V> Coalescer<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Clone + Send + 'static,
{
    /// At most `slots` queries in flight, each for at most `max_batch` distinct keys.
    pub fn new(slots: usize, max_batch: usize, load: Loader<K, V>) -> Self {
        Self {
            inner: Arc::new(Inner {
                queue: Mutex::new(Vec::new()),
                slots: Arc::new(Semaphore::new(slots.max(1))),
                max_batch: max_batch.max(1),
                load,
            }),
        }
    }

    /// The row for `key`, if any, from a query that started after this call.
    pub async fn get(&self, key: K) -> Result<Option<V>, DbError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.queue).push((key, tx));
        Inner::start(&self.inner);
        rx.await
            .unwrap_or_else(|_| Err(DbError::Unavailable("the look-up was dropped".into())))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the queue leaves a valid Vec: carry on with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<K, V> Inner<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Starts a query for the queue if a slot is free; otherwise the query holding a
    /// slot calls this again when it finishes.
    fn start(this: &Arc<Self>) {
        let Ok(permit) = this.slots.clone().try_acquire_owned() else {
            return;
        };
        let batch = this.take();
        if batch.is_empty() {
            return;
        }
        let this = this.clone();
        tokio::spawn(async move {
            let keys = distinct(&batch);
            let result = (this.load)(keys).await;
            drop(permit);
            // Whatever queued meanwhile goes next, before the answers are handed out.
            Self::start(&this);
            match result {
                Ok(mut found) => {
                    let mut batch = batch.into_iter().peekable();
                    while let Some((key, tx)) = batch.next() {
                        // The last caller for a key takes the row; earlier ones get copies.
                        let row = if batch.peek().is_some_and(|(k, _)| *k == key) {
                            found.get(&key).cloned()
                        } else {
                            found.remove(&key).or_else(|| found.get(&key).cloned())
                        };
                        let _ = tx.send(Ok(row));
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, keys = batch.len(), "coalesced look-up failed");
                    for (_, tx) in batch {
                        let _ = tx.send(Err(e.shared_copy()));
                    }
                }
            }
        });
    }

    /// The callers of the oldest `max_batch` distinct keys queued (every caller of each
    /// of those keys, grouped by key); the others stay queued in order.
    fn take(&self) -> Vec<Waiter<K, V>> {
        let mut queue = lock(&self.queue);
        if queue.is_empty() {
            return Vec::new();
        }
        let mut chosen: HashMap<K, usize> = HashMap::new();
        for (key, _) in queue.iter() {
            if !chosen.contains_key(key) {
                if chosen.len() == self.max_batch {
                    break;
                }
                let rank = chosen.len();
                chosen.insert(key.clone(), rank);
            }
        }
        let (mut batch, rest): (Vec<_>, Vec<_>) = queue.drain(..).partition(|(k, _)| chosen.contains_key(k));
        *queue = rest;
        drop(queue);
        // Equal keys side by side, so each row is cloned only for its extra callers.
        batch.sort_by_key(|(k, _)| chosen.get(k).copied().unwrap_or(usize::MAX));
        batch
    }
}

fn distinct<K: Clone + Eq + Hash, V>(batch: &[Waiter<K, V>]) -> Vec<K> {
    let mut keys: Vec<K> = Vec::with_capacity(batch.len());
    for (key, _) in batch {
        if keys.last() != Some(key) {
            keys.push(key.clone());
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(calls: Arc<Mutex<Vec<Vec<u32>>>>, delay_ms: u64) -> Loader<u32, String> {
        Arc::new(move |keys: Vec<u32>| {
            let calls = calls.clone();
            Box::pin(async move {
                calls.lock().unwrap().push(keys.clone());
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                Ok(keys
                    .into_iter()
                    .filter(|k| !k.is_multiple_of(10))
                    .map(|k| (k, format!("row {k}")))
                    .collect())
            })
        })
    }

    #[tokio::test]
    async fn an_idle_lookup_runs_alone_and_at_once() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Coalescer::new(2, 8, counting(calls.clone(), 0));
        assert_eq!(c.get(7).await.unwrap().as_deref(), Some("row 7"));
        assert_eq!(c.get(10).await.unwrap(), None);
        assert_eq!(*calls.lock().unwrap(), vec![vec![7], vec![10]]);
    }

    #[tokio::test]
    async fn concurrent_lookups_share_queries_and_each_gets_its_own_row() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Coalescer::new(1, 16, counting(calls.clone(), 20));
        // 1 starts a query alone; the other 40 (20 distinct keys, each asked twice, and
        // some absent) queue behind it and are answered by 2 more queries.
        let first = c.get(1);
        let rest: Vec<_> = (0..40u32).map(|i| c.get(100 + i % 20)).collect();
        let (first, rest) = tokio::join!(first, futures_util::future::join_all(rest));
        assert_eq!(first.unwrap().as_deref(), Some("row 1"));
        for (i, row) in rest.into_iter().enumerate() {
            let k = 100 + i as u32 % 20;
            let expected = (!k.is_multiple_of(10)).then(|| format!("row {k}"));
            assert_eq!(row.unwrap(), expected, "caller {i}");
        }
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert_eq!(calls[0], vec![1]);
        assert!(calls[1..].iter().all(|b| b.len() <= 16), "{calls:?}");
        let mut asked: Vec<u32> = calls[1..].iter().flatten().copied().collect();
        asked.sort_unstable();
        assert_eq!(asked, (100..120).collect::<Vec<_>>(), "each key asked once");
    }

    #[tokio::test]
    async fn a_failed_query_fails_its_batch_only() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let load: Loader<u32, u32> = Arc::new(move |keys: Vec<u32>| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                if n == 0 {
                    Err(DbError::Unavailable("server gone".into()))
                } else {
                    Ok(keys.into_iter().map(|k| (k, k * 2)).collect())
                }
            })
        });
        let c = Coalescer::new(1, 8, load);
        let (a, b) = tokio::join!(c.get(1), async {
            tokio::task::yield_now().await;
            c.get(2).await
        });
        assert!(
            matches!(a, Err(DbError::Unavailable(ref m)) if m.contains("server gone")),
            "{a:?}"
        );
        assert_eq!(b.unwrap(), Some(4));
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_cancel_the_others() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Coalescer::new(1, 8, counting(calls.clone(), 30));
        let leader = tokio::spawn({
            let c = c.clone();
            async move { c.get(1).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let follower = tokio::spawn({
            let c = c.clone();
            async move { c.get(2).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        leader.abort();
        assert_eq!(follower.await.unwrap().unwrap().as_deref(), Some("row 2"));
    }
}
