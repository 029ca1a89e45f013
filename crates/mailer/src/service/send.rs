//! Accepting messages: one, or a batch of up to 100 (all or none), stored with their
//! delivery jobs in one transaction and remembered under their idempotency key.

use serde_json::json;
use shared_db::DbConn;
use shared_db::events;
use shared_db::idempotency::{self, Seen};
use shared_db::jobs::{self, NewJob};

use super::prepare::Prepared;
use super::{BATCH_SCOPE, IDEMPOTENCY_SCOPE, MailService, seen};
use crate::jobs::{ATTEMPTS, SEND_QUEUE};
use crate::model::*;
use crate::store;

/// What `accept` did.
enum Stored {
    /// Stored: the message or batch id, and the message ids in request order.
    New { resource: String, ids: Vec<String> },
    /// A repeat of an earlier request: its message or batch id.
    Replay(String),
}

impl MailService {
    /// Checks, renders, builds and queues one message. With an idempotency key, a
    /// repeat of the same request returns the first message (`true` = replay).
    pub async fn submit(
        &self,
        req: SendEmail,
        idempotency: Option<idempotency::Key<'_>>,
        actor: &str,
    ) -> Result<(Accepted, bool), MailError> {
        self.transport_or_refuse()?;
        match self.accept(vec![req], false, idempotency, actor).await? {
            Stored::Replay(id) => {
                let mut conn = self.pool.get().await?;
                Ok((self.accepted(&mut conn, &id).await?, true))
            }
            Stored::New { ids, .. } => Ok((
                Accepted {
                    id: ids.into_iter().next().unwrap_or_default(),
                    status: EmailStatus::Queued,
                },
                false,
            )),
        }
    }

    /// Checks, renders and queues up to 100 messages, all or none: a problem in any
    /// names its index (`[3].to`).
    pub async fn submit_batch(
        &self,
        reqs: Vec<SendEmail>,
        idempotency: Option<idempotency::Key<'_>>,
        actor: &str,
    ) -> Result<(BatchAccepted, bool), MailError> {
        self.transport_or_refuse()?;
        if reqs.is_empty() || reqs.len() > MAX_BATCH {
            return Err(invalid("", format!("a batch holds 1 to {MAX_BATCH} messages")));
        }
        match self.accept(reqs, true, idempotency, actor).await? {
            Stored::Replay(batch) => {
                let mut conn = self.pool.get().await?;
                Ok((self.batch(&mut conn, &batch).await?, true))
            }
            Stored::New { resource, ids } => Ok((
                BatchAccepted {
                    batch_id: resource,
                    items: ids
                        .into_iter()
                        .map(|id| Accepted {
                            id,
                            status: EmailStatus::Queued,
                        })
                        .collect(),
                },
                false,
            )),
        }
    }

    /// Prepares `reqs` (one message, or a batch) and stores them with their jobs in one
    /// transaction, remembering the idempotency key for the message or batch id. A
    /// request that loses a race for the same key is answered as a repeat.
    async fn accept(
        &self,
        reqs: Vec<SendEmail>,
        batch: bool,
        idempotency: Option<idempotency::Key<'_>>,
        actor: &str,
    ) -> Result<Stored, MailError> {
        let scope = if batch { BATCH_SCOPE } else { IDEMPOTENCY_SCOPE };
        let mut conn = self.pool.get().await?;
        match seen(&mut conn, scope, idempotency).await? {
            Seen::Replay(id) => return Ok(Stored::Replay(id)),
            Seen::Conflict => return Err(conflict_key()),
            Seen::New => {}
        }
        let batch_id = batch.then(shared_db::new_id);
        let mut prepared = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.into_iter().enumerate() {
            let at = if batch { format!("[{i}]") } else { String::new() };
            prepared.push(self.prepare(&mut conn, req, batch_id.as_deref(), &at).await?);
        }
        let ids: Vec<String> = prepared.iter().map(|p| p.row.id.clone()).collect();
        let resource = batch_id.unwrap_or_else(|| <[String]>::first(&ids).cloned().unwrap_or_default());
        for p in &mut prepared {
            p.row.created_by = Some(actor.to_owned());
        }
        let saved = shared_db::transaction!(conn, MailError, |c| {
            for p in &prepared {
                queue(c, p, actor).await?;
            }
            if let Some(key) = idempotency {
                idempotency::remember(c, scope, key, &resource).await?;
            }
            Ok(())
        });
        match saved {
            Ok(()) => {
                self.wake.notify_one();
                Ok(Stored::New { resource, ids })
            }
            Err(MailError::Db(e)) if e.is_unique_violation() && idempotency.is_some() => {
                match seen(&mut conn, scope, idempotency).await? {
                    Seen::Replay(id) => Ok(Stored::Replay(id)),
                    _ => Err(conflict_key()),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn accepted(&self, conn: &mut DbConn, id: &str) -> Result<Accepted, MailError> {
        let head = store::find_head(conn, id).await?.ok_or(MailError::NotFound("email"))?;
        Ok(Accepted {
            status: EmailStatus::parse(&head.status).unwrap_or(EmailStatus::Queued),
            id: head.id,
        })
    }

    async fn batch(&self, conn: &mut DbConn, batch: &str) -> Result<BatchAccepted, MailError> {
        let rows = store::batch_items(conn, batch).await?;
        Ok(BatchAccepted {
            batch_id: batch.to_owned(),
            items: rows
                .into_iter()
                .map(|(id, s)| Accepted {
                    id,
                    status: EmailStatus::parse(&s).unwrap_or(EmailStatus::Queued),
                })
                .collect(),
        })
    }
}

/// Stores a prepared message, its deliveries, their jobs and the `email.queued` event.
async fn queue(c: &mut DbConn, p: &Prepared, actor: &str) -> Result<(), MailError> {
    let row = &p.row;
    let id = &row.id;
    let recipients: usize = p.deliveries.iter().map(|d| d.recipients().len()).sum();
    store::insert_message(c, row).await?;
    for d in &p.deliveries {
        store::insert_delivery(c, d).await?;
        let job = NewJob::new(SEND_QUEUE, &json!({ "delivery_id": d.id }))?.max_attempts(ATTEMPTS);
        jobs::enqueue(c, job).await?;
    }
    events::record(
        c,
        "email.queued",
        actor,
        &format!("email:{id}"),
        json!({
            "from": row.from_addr, "subject": row.subject, "recipients": recipients,
            "groups": p.deliveries.len(), "template": row.template, "size": row.size,
        }),
    )
    .await?;
    Ok(())
}
