//! Webhooks: registered (with a secret sealed at rest), shown, listed, changed,
//! deleted, and their delivery logs.

use serde_json::json;
use shared_db::events;

use shared_db::paging;

use super::{BridgeService, SEALING_PURPOSE, cursor_after, page_request};
use crate::model::{
    BridgeError, CreatedWebhook, Items, NewWebhook, PageQuery, Webhook, WebhookDelivery, WebhookPatch, check_types,
    corrupt, invalid,
};
use crate::net;
use crate::store::{self, WebhookRow};

impl BridgeService {
    /// Registers a webhook; the answer holds its signing secret, shown only here.
    pub async fn create_webhook(&self, w: NewWebhook, actor: &str) -> Result<CreatedWebhook, BridgeError> {
        net::check_url(&w.url, self.settings.allow_internal_webhooks).map_err(|m| invalid("url", m))?;
        check_types(&w.event_types)?;
        let mut raw = [0u8; 32];
        rand::fill(&mut raw);
        let secret = format!("whsec_{}", data_encoding::BASE64.encode(&raw));
        let id = shared_db::new_id();
        let now = shared_db::now();
        let sealer = self
            .ring
            .sealer(SEALING_PURPOSE)
            .map_err(|_| corrupt("key derivation"))?;
        let row = WebhookRow {
            secret_sealed: sealer.seal(secret.as_bytes(), &id).map_err(|_| corrupt("sealing"))?,
            id,
            url: w.url,
            event_types: serde_json::to_string(&w.event_types).map_err(corrupt)?,
            description: w.description,
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        self.save_webhook(&row, true, actor).await?;
        Ok(CreatedWebhook {
            webhook: row.into_webhook(),
            secret,
        })
    }

    async fn save_webhook(&self, row: &WebhookRow, new: bool, actor: &str) -> Result<(), BridgeError> {
        let mut conn = self.pool.get().await?;
        shared_db::transaction!(conn, BridgeError, |c| {
            store::save_webhook(c, row, new).await?;
            events::record(
                c,
                if new { "webhook.created" } else { "webhook.updated" },
                actor,
                &format!("webhook:{}", row.id),
                json!({ "url": row.url, "enabled": row.enabled }),
            )
            .await?;
            Ok(())
        })
    }

    /// One webhook.
    pub async fn webhook(&self, id: &str) -> Result<Webhook, BridgeError> {
        let mut conn = self.pool.get().await?;
        Ok(store::webhook(&mut conn, id).await?.into_webhook())
    }

    /// A page of webhooks, newest first.
    pub async fn webhooks(&self, query: &PageQuery) -> Result<Items<Webhook>, BridgeError> {
        let (limit, after) = page_request(query)?;
        let mut conn = self.pool.get().await?;
        let rows = store::list_webhooks(&mut conn, &after, limit + 1).await?;
        let (rows, next_cursor) = paging::page(rows, limit, |r| cursor_after(&r.id));
        Ok(Items {
            items: rows.into_iter().map(WebhookRow::into_webhook).collect(),
            next_cursor,
        })
    }

    /// Changes a webhook.
    pub async fn update_webhook(&self, id: &str, patch: WebhookPatch, actor: &str) -> Result<Webhook, BridgeError> {
        let mut conn = self.pool.get().await?;
        let mut row = store::webhook(&mut conn, id).await?;
        if let Some(url) = patch.url {
            net::check_url(&url, self.settings.allow_internal_webhooks).map_err(|m| invalid("url", m))?;
            row.url = url;
        }
        if let Some(types) = patch.event_types {
            check_types(&types)?;
            row.event_types = serde_json::to_string(&types).map_err(corrupt)?;
        }
        if patch.description.is_some() {
            row.description = patch.description;
        }
        if let Some(e) = patch.enabled {
            row.enabled = e;
        }
        row.updated_at = shared_db::now();
        self.save_webhook(&row, false, actor).await?;
        Ok(row.into_webhook())
    }

    /// Deletes a webhook and its delivery log.
    pub async fn delete_webhook(&self, id: &str, actor: &str) -> Result<(), BridgeError> {
        let mut conn = self.pool.get().await?;
        shared_db::transaction!(conn, BridgeError, |c| {
            if store::delete_webhook(c, id).await? == 0 {
                return Err(BridgeError::NotFound("webhook"));
            }
            events::record(c, "webhook.deleted", actor, &format!("webhook:{id}"), json!({})).await?;
            Ok(())
        })
    }

    /// A page of a webhook's delivery attempts, newest first.
    pub async fn deliveries(&self, id: &str, query: &PageQuery) -> Result<Items<WebhookDelivery>, BridgeError> {
        let (limit, after) = page_request(query)?;
        let mut conn = self.pool.get().await?;
        store::webhook(&mut conn, id).await?;
        let rows = store::deliveries(&mut conn, id, &after, limit + 1).await?;
        let (rows, next_cursor) = paging::page(rows, limit, |r| cursor_after(&r.id));
        Ok(Items {
            items: rows.into_iter().map(WebhookDelivery::from).collect(),
            next_cursor,
        })
    }
}
