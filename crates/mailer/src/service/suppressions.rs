//! The suppression list: addresses never sent to again (permanent bounces, complaints,
//! or by hand).

use serde_json::json;
use shared_db::events;
use shared_db::paging;

use super::MailService;
use crate::model::*;
use crate::store::{self, SuppressionRow};

impl MailService {
    /// The suppression list, by address; `limit` and `cursor` follow shared-db's paging
    /// rule.
    pub async fn list_suppressions(&self, filter: &SuppressionFilter) -> Result<SuppressionPage, MailError> {
        let limit = paging::limit(filter.limit)?;
        let after = paging::after(filter.cursor.as_deref())?;
        let mut conn = self.pool.get().await?;
        let rows = store::list_suppressions(&mut conn, filter.reason, &after, limit + 1).await?;
        let (rows, next_cursor) = paging::page(rows, limit, |s: &SuppressionRow| paging::encode(&s.address));
        let items = rows.into_iter().map(SuppressionRow::into_view).collect();
        Ok(SuppressionPage { items, next_cursor })
    }

    /// Whether `address` is suppressed.
    pub async fn suppression(&self, address: &str) -> Result<Suppression, MailError> {
        let key = suppression_key(address)?;
        let mut conn = self.pool.get().await?;
        let row = store::find_suppression(&mut conn, &key).await?;
        Ok(row.ok_or(MailError::NotFound("suppression"))?.into_view())
    }

    /// Suppresses an address by hand (`true` = newly added).
    pub async fn add_suppression(&self, req: AddSuppression, actor: &str) -> Result<(Suppression, bool), MailError> {
        let key = suppression_key(&req.address)?;
        let mut conn = self.pool.get().await?;
        let added = shared_db::transaction!(conn, MailError, |c| {
            let n = store::suppress(c, &key, SuppressionReason::Manual, req.detail.as_deref(), None).await?;
            if n > 0 {
                events::record(
                    c,
                    "email.suppression_added",
                    actor,
                    &format!("email_suppression:{key}"),
                    json!({ "reason": "manual" }),
                )
                .await?;
            }
            Ok(n > 0)
        })?;
        Ok((self.suppression(&key).await?, added))
    }

    /// Lifts a suppression.
    pub async fn delete_suppression(&self, address: &str, actor: &str) -> Result<(), MailError> {
        let key = suppression_key(address)?;
        let mut conn = self.pool.get().await?;
        shared_db::transaction!(conn, MailError, |c| {
            let n = store::delete_suppression(c, &key).await?;
            if n == 0 {
                return Err(MailError::NotFound("suppression"));
            }
            events::record(
                c,
                "email.suppression_removed",
                actor,
                &format!("email_suppression:{key}"),
                json!({}),
            )
            .await?;
            Ok(())
        })
    }
}
