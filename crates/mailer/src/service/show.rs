//! Reading the outbox: one message with its history, its exact MIME, and lists.

use serde_json::Value;
use shared_db::events;
use shared_db::paging::{self, PagingError};

use super::MailService;
use crate::address::Mailbox;
use crate::model::*;
use crate::store::{self, Delivery, Head};
use crate::transport::MailMode;

impl MailService {
    /// One message with its history.
    pub async fn get(&self, id: &str) -> Result<Email, MailError> {
        let mut conn = self.pool.get().await?;
        let head = store::find_head(&mut conn, id)
            .await?
            .ok_or(MailError::NotFound("email"))?;
        let deliveries = store::deliveries_of(&mut conn, std::slice::from_ref(&head.id)).await?;
        let history = events::for_subject(&mut conn, &format!("email:{id}"))
            .await?
            .into_iter()
            .map(|e| StatusChange {
                kind: e.event_type,
                at: e.occurred_at.and_utc(),
                data: serde_json::from_str(&e.data).unwrap_or(Value::Null),
            })
            .collect();
        let mut email = store::view(head, &deliveries)?;
        email.history = Some(history);
        Ok(email)
    }

    /// The messages accepted in each of the `hours` whole hours up to `now` (the current
    /// hour last), by status: an hour's start and its counts, for overviews.
    pub async fn activity(
        &self,
        now: chrono::NaiveDateTime,
        hours: u32,
    ) -> Result<Vec<(chrono::NaiveDateTime, Vec<(String, i64)>)>, MailError> {
        use chrono::{Duration, DurationRound};
        let current = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
        let mut conn = self.pool.get().await?;
        let mut out = Vec::with_capacity(hours as usize);
        for back in (0..i64::from(hours)).rev() {
            let start = current - Duration::hours(back);
            let end = start + Duration::hours(1);
            let (from, to) = (shared_db::time::id_floor(start), shared_db::time::id_floor(end));
            out.push((start, store::count_by_status_between(&mut conn, &from, &to).await?));
        }
        Ok(out)
    }

    /// The exact MIME of a message (dev mailbox only).
    pub async fn raw(&self, id: &str) -> Result<Vec<u8>, MailError> {
        let mode = self.mode();
        if mode != MailMode::Dev {
            return Err(MailError::RawUnavailable(mode.as_str()));
        }
        let mut conn = self.pool.get().await?;
        let raw = store::raw_mime(&mut conn, id).await?;
        raw.ok_or(MailError::NotFound("email"))
    }

    /// Messages matching `filter`, newest first unless `order=asc`; `limit` and `cursor`
    /// follow shared-db's paging rule.
    pub async fn list(&self, filter: &EmailFilter) -> Result<EmailPage, MailError> {
        let limit = paging::limit(filter.limit)?;
        let (order, after) =
            paging::continue_from(filter.cursor.as_deref(), filter.order).map_err(PagingError::from)?;
        let from = filter
            .from
            .as_deref()
            .map(|f| Mailbox::parse(f).map_err(|e| invalid("from", e)))
            .transpose()?;
        let mut conn = self.pool.get().await?;
        let rows = store::list_heads(&mut conn, filter, from.as_ref(), order, &after, limit + 1).await?;
        let (rows, next_cursor) = paging::page(rows, limit, |h: &Head| paging::encode_ordered(order, &h.id));
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let deliveries = store::deliveries_of(&mut conn, &ids).await?;
        let items = rows
            .into_iter()
            .map(|h| {
                let mine: Vec<Delivery> = deliveries.iter().filter(|d| d.email_id == h.id).cloned().collect();
                store::view(h, &mine)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EmailPage { items, next_cursor })
    }
}
