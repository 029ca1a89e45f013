//! Templates: stored by name, checked when saved, rendered when a message names one.

use serde_json::json;
use shared_db::events;
use shared_db::paging;

use super::MailService;
use crate::model::*;
use crate::store::{self, TemplateRow};
use crate::template::{self, Parts};

impl MailService {
    /// Creates or replaces a template (`true` = created).
    pub async fn put_template(
        &self,
        name: &str,
        body: TemplateBody,
        actor: &str,
    ) -> Result<(EmailTemplate, bool), MailError> {
        check_template_name(name)?;
        let parts = Parts {
            subject: body.subject.clone(),
            html: body.html.clone(),
            text: body.text.clone(),
        };
        if parts.subject.trim().is_empty() {
            return Err(invalid("subject", "must not be empty"));
        }
        if parts.html.is_none() && parts.text.is_none() {
            return Err(invalid("html", "give html, text or both"));
        }
        template::check(&parts)?;
        let mut conn = self.pool.get().await?;
        let (row, created) = shared_db::transaction!(conn, MailError, |c| {
            let now = shared_db::now();
            let old = store::find_template(c, name).await?;
            let row = TemplateRow {
                name: name.to_owned(),
                subject: body.subject.clone(),
                html: body.html.clone(),
                text: body.text.clone(),
                description: body.description.clone(),
                version: old.as_ref().map_or(1, |o| o.version + 1),
                created_at: old.as_ref().map_or(now, |o| o.created_at),
                updated_at: now,
            };
            match &old {
                None => store::insert_template(c, &row).await?,
                Some(_) => store::update_template(c, &row).await?,
            };
            events::record(
                c,
                "email.template_saved",
                actor,
                &format!("email_template:{name}"),
                json!({ "version": row.version }),
            )
            .await?;
            Ok((row, old.is_none()))
        })?;
        Ok((row.into_view(), created))
    }

    /// One template.
    pub async fn get_template(&self, name: &str) -> Result<EmailTemplate, MailError> {
        let mut conn = self.pool.get().await?;
        Ok(store::find_template(&mut conn, name)
            .await?
            .ok_or(MailError::NotFound("template"))?
            .into_view())
    }

    /// Templates by name; `limit` and `after` (a cursor) follow shared-db's paging rule.
    pub async fn list_templates(&self, limit: Option<u32>, after: Option<&str>) -> Result<TemplatePage, MailError> {
        let limit = paging::limit(limit)?;
        let after = paging::after(after)?;
        let mut conn = self.pool.get().await?;
        let rows = store::list_templates(&mut conn, &after, limit + 1).await?;
        let (rows, next_cursor) = paging::page(rows, limit, |t: &TemplateRow| paging::encode(&t.name));
        let items = rows.into_iter().map(TemplateRow::into_view).collect();
        Ok(TemplatePage { items, next_cursor })
    }

    /// Deletes a template (messages rendered from it keep their content).
    pub async fn delete_template(&self, name: &str, actor: &str) -> Result<(), MailError> {
        let mut conn = self.pool.get().await?;
        shared_db::transaction!(conn, MailError, |c| {
            let n = store::delete_template(c, name).await?;
            if n == 0 {
                return Err(MailError::NotFound("template"));
            }
            events::record(
                c,
                "email.template_deleted",
                actor,
                &format!("email_template:{name}"),
                json!({}),
            )
            .await?;
            Ok(())
        })
    }
}
