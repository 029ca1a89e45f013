//! Rules: created, shown, listed, changed and deleted.

use serde_json::json;
use shared_db::events;

use shared_db::paging;

use super::{BridgeService, cursor_after, page_request};
use crate::model::{BridgeError, Items, NewRule, PageQuery, Rule, RulePatch, check_rule, corrupt};
use crate::store::{self, RuleRow};

impl BridgeService {
    /// Creates a rule.
    pub async fn create_rule(&self, r: NewRule, actor: &str) -> Result<Rule, BridgeError> {
        check_rule(&r)?;
        let now = shared_db::now();
        let row = RuleRow {
            id: shared_db::new_id(),
            name: r.name.trim().to_owned(),
            event_type: r.event_type,
            filter: serde_json::to_string(&r.filter).map_err(corrupt)?,
            actions: serde_json::to_string(&r.actions).map_err(corrupt)?,
            enabled: r.enabled,
            created_at: now,
            updated_at: now,
        };
        self.save_rule(row, true, actor).await
    }

    async fn save_rule(&self, row: RuleRow, new: bool, actor: &str) -> Result<Rule, BridgeError> {
        let mut conn = self.pool.get().await?;
        let stored = &row;
        shared_db::transaction!(conn, BridgeError, |c| {
            store::save_rule(c, stored, new).await?;
            events::record(
                c,
                if new { "rule.created" } else { "rule.updated" },
                actor,
                &format!("rule:{}", stored.id),
                json!({ "name": stored.name, "event_type": stored.event_type, "enabled": stored.enabled }),
            )
            .await?;
            Ok(())
        })?;
        row.into_rule()
    }

    /// One rule.
    pub async fn rule(&self, id: &str) -> Result<Rule, BridgeError> {
        let mut conn = self.pool.get().await?;
        store::rule(&mut conn, id).await?.into_rule()
    }

    /// A page of rules, newest first.
    pub async fn rules(&self, query: &PageQuery) -> Result<Items<Rule>, BridgeError> {
        let (limit, after) = page_request(query)?;
        let mut conn = self.pool.get().await?;
        let rows = store::list_rules(&mut conn, &after, limit + 1).await?;
        let (rows, next_cursor) = paging::page(rows, limit, |r| cursor_after(&r.id));
        Ok(Items {
            items: rows.into_iter().map(RuleRow::into_rule).collect::<Result<_, _>>()?,
            next_cursor,
        })
    }

    /// Changes a rule.
    pub async fn update_rule(&self, id: &str, patch: RulePatch, actor: &str) -> Result<Rule, BridgeError> {
        let mut conn = self.pool.get().await?;
        let current = store::rule(&mut conn, id).await?;
        let old = current.clone().into_rule()?;
        let merged = NewRule {
            name: patch.name.unwrap_or(old.name),
            event_type: patch.event_type.unwrap_or(old.event_type),
            filter: patch.filter.unwrap_or(old.filter),
            actions: patch.actions.unwrap_or(old.actions),
            enabled: patch.enabled.unwrap_or(old.enabled),
        };
        check_rule(&merged)?;
        let row = RuleRow {
            id: current.id,
            name: merged.name.trim().to_owned(),
            event_type: merged.event_type,
            filter: serde_json::to_string(&merged.filter).map_err(corrupt)?,
            actions: serde_json::to_string(&merged.actions).map_err(corrupt)?,
            enabled: merged.enabled,
            created_at: current.created_at,
            updated_at: shared_db::now(),
        };
        self.save_rule(row, false, actor).await
    }

    /// Deletes a rule (deliveries already queued still run).
    pub async fn delete_rule(&self, id: &str, actor: &str) -> Result<(), BridgeError> {
        let mut conn = self.pool.get().await?;
        shared_db::transaction!(conn, BridgeError, |c| {
            if store::delete_rule(c, id).await? == 0 {
                return Err(BridgeError::NotFound("rule"));
            }
            events::record(c, "rule.deleted", actor, &format!("rule:{id}"), json!({})).await?;
            Ok(())
        })
    }
}
