//! Dispatch: the events waiting in the outbox turned into one queued delivery per
//! matching rule and webhook.

use serde_json::{Value, json};
use shared_db::events::{self, Event};
use shared_db::jobs::{self, NewJob};

use super::{BridgeService, RULE_QUEUE, WEBHOOK_QUEUE};
use crate::model::{BridgeError, Rule, type_matches};
use crate::store::{self, WebhookRow};

/// Events claimed per dispatch transaction.
const DISPATCH_BATCH: i64 = 200;
/// About a day of retries with the worker's backoff (2 s doubling to 15 minutes).
const WEBHOOK_ATTEMPTS: i32 = 100;

impl BridgeService {
    /// Queues one delivery per matching rule and webhook for every event waiting in
    /// the outbox (see `shared_db::events`), each at most once, and marks the events
    /// dispatched in the same transaction. Returns how many it queued. Safe to run from
    /// every replica at once: each claims different events.
    pub async fn dispatch(&self) -> Result<usize, BridgeError> {
        let mut conn = self.pool.get().await?;
        if !events::any_undispatched(&mut conn).await? {
            return Ok(0);
        }
        let mut queued = 0;
        loop {
            // Each run of the round in READ COMMITTED (see `prefer_read_committed`), again
            // after a lost lock race.
            let round = shared_db::retrying!(
                async {
                    events::prefer_read_committed(&mut conn).await?;
                    conn.transaction::<_, BridgeError, _>(async |c| {
                        let batch = events::claim_undispatched(c, DISPATCH_BATCH).await?;
                        if batch.is_empty() {
                            return Ok((0, 0));
                        }
                        // Rules and webhooks as they are now, for each batch: a long backlog
                        // must not be bridged with the ones of when it started (a rule added
                        // or turned off since, a webhook removed).
                        let rules: Vec<Rule> = store::load_rules(c).await?.into_iter().filter(|r| r.enabled).collect();
                        let hooks = store::enabled_webhooks(c).await?;
                        let mut added = 0;
                        for (mark, queue, target, event) in deliveries_wanted(&rules, &hooks, &batch) {
                            if !store::set_mark(c, &mark).await? {
                                continue; // queued before (by a replica of an older version)
                            }
                            let job = NewJob::new(queue, &json!({ "target": target, "event_id": event }))?
                                .max_attempts(if queue == WEBHOOK_QUEUE { WEBHOOK_ATTEMPTS } else { 12 });
                            jobs::enqueue(c, job).await?;
                            added += 1;
                        }
                        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
                        events::mark_dispatched(c, &ids).await?;
                        Ok((batch.len(), added))
                    })
                    .await
                }
                .await
            );
            match round {
                Ok((claimed, added)) => {
                    queued += added;
                    if i64::try_from(claimed).unwrap_or(0) < DISPATCH_BATCH {
                        break;
                    }
                }
                // Another replica still holds what this round needed (after the runs
                // again): its events are still waiting, and the next run takes them.
                Err(BridgeError::Db(e)) if e.is_lock_conflict() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(queued)
    }
}

/// The value at a dotted path.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// The deliveries a batch of events asks for: (mark, queue, target, event id) per
/// matching rule and webhook.
fn deliveries_wanted(
    rules: &[Rule],
    hooks: &[WebhookRow],
    batch: &[Event],
) -> Vec<(String, &'static str, String, String)> {
    let mut wanted = Vec::new();
    for e in batch {
        // Loop guard: what the bridge itself did never triggers rules.
        let by_bridge = e.actor.as_deref().is_some_and(|a| a.starts_with("bridge"));
        let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
        for r in rules.iter().filter(|_| !by_bridge) {
            let matches = type_matches(&r.event_type, &e.event_type)
                && r.filter.iter().all(|(path, want)| at(&data, path) == Some(want));
            if matches {
                wanted.push((
                    format!("rule:{}:{}", r.id, e.id),
                    RULE_QUEUE,
                    r.id.clone(),
                    e.id.clone(),
                ));
            }
        }
        for h in hooks {
            if h.types().iter().any(|t| type_matches(t, &e.event_type)) {
                wanted.push((
                    format!("webhook:{}:{}", h.id, e.id),
                    WEBHOOK_QUEUE,
                    h.id.clone(),
                    e.id.clone(),
                ));
            }
        }
    }
    wanted
}
