//! The bridge's tables: the only place that touches diesel. Plain functions over a
//! connection, returning rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::events::Event;
use shared_db::paging::Order;
use shared_db::schema::events as events_table;
use shared_db::{DbConn, DbError, with_conn};

use crate::model::{BridgeError, Rule, Webhook, WebhookDelivery, corrupt};
use schema::{bridge_marks, bridge_rules, webhook_deliveries, webhooks};

mod schema;

impl From<diesel::result::Error> for BridgeError {
    fn from(e: diesel::result::Error) -> Self {
        BridgeError::Db(e.into())
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = bridge_rules, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(crate) struct RuleRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) event_type: String,
    pub(crate) filter: String,
    pub(crate) actions: String,
    pub(crate) enabled: bool,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

impl RuleRow {
    pub(crate) fn into_rule(self) -> Result<Rule, BridgeError> {
        Ok(Rule {
            filter: serde_json::from_str(&self.filter).map_err(corrupt)?,
            actions: serde_json::from_str(&self.actions).map_err(corrupt)?,
            id: self.id,
            name: self.name,
            event_type: self.event_type,
            enabled: self.enabled,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhooks, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_null = true)]
pub(crate) struct WebhookRow {
    pub(crate) id: String,
    pub(crate) url: String,
    pub(crate) event_types: String,
    pub(crate) description: Option<String>,
    pub(crate) secret_sealed: String,
    pub(crate) enabled: bool,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

impl WebhookRow {
    pub(crate) fn types(&self) -> Vec<String> {
        serde_json::from_str(&self.event_types).unwrap_or_default()
    }

    pub(crate) fn into_webhook(self) -> Webhook {
        Webhook {
            event_types: self.types(),
            id: self.id,
            url: self.url,
            description: self.description,
            enabled: self.enabled,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(crate) struct DeliveryRow {
    pub(crate) id: String,
    pub(crate) webhook_id: String,
    pub(crate) event_id: String,
    pub(crate) attempt: i32,
    pub(crate) status_code: Option<i32>,
    pub(crate) error: Option<String>,
    pub(crate) duration_ms: i64,
    pub(crate) delivered_at: NaiveDateTime,
}

impl From<DeliveryRow> for WebhookDelivery {
    fn from(r: DeliveryRow) -> Self {
        WebhookDelivery {
            id: r.id,
            event_id: r.event_id,
            attempt: r.attempt,
            status_code: r.status_code,
            error: r.error,
            duration_ms: r.duration_ms,
            delivered_at: r.delivered_at.and_utc(),
        }
    }
}

// ----- rules -----

/// Stores a new rule, or every column of a changed one.
pub(crate) async fn save_rule(conn: &mut DbConn, row: &RuleRow, new: bool) -> Result<(), DbError> {
    if new {
        with_conn!(conn, |c| diesel::insert_into(bridge_rules::table)
            .values(row)
            .execute(c)
            .await)?;
    } else {
        with_conn!(conn, |c| diesel::update(bridge_rules::table.find(&row.id))
            .set(row)
            .execute(c)
            .await)?;
    }
    Ok(())
}

/// Rule `id`.
pub(crate) async fn rule(conn: &mut DbConn, id: &str) -> Result<RuleRow, BridgeError> {
    with_conn!(conn, |c| bridge_rules::table
        .find(id)
        .select(RuleRow::as_select())
        .first(c)
        .await
        .optional())?
    .ok_or(BridgeError::NotFound("rule"))
}

/// Every rule, oldest first (the order they are applied in).
pub(crate) async fn load_rules(conn: &mut DbConn) -> Result<Vec<Rule>, BridgeError> {
    let rows: Vec<RuleRow> = with_conn!(conn, |c| bridge_rules::table
        .select(RuleRow::as_select())
        .order(bridge_rules::id.asc())
        .load(c)
        .await)?;
    rows.into_iter().map(RuleRow::into_rule).collect()
}

/// Rules newest first, after `after`: at most `limit` rows.
pub(crate) async fn list_rules(conn: &mut DbConn, after: &Option<String>, limit: i64) -> Result<Vec<RuleRow>, DbError> {
    Ok(with_conn!(conn, |c| {
        let q = bridge_rules::table.select(RuleRow::as_select()).into_boxed();
        shared_db::page_in_order!(q, bridge_rules::id, Order::Desc, after)
            .limit(limit)
            .load(c)
            .await
    })?)
}

/// Deletes rule `id`; how many rows went (0 or 1).
pub(crate) async fn delete_rule(conn: &mut DbConn, id: &str) -> Result<usize, DbError> {
    Ok(with_conn!(conn, |c| diesel::delete(bridge_rules::table.find(id))
        .execute(c)
        .await)?)
}

// ----- webhooks -----

/// Stores a new webhook, or every column of a changed one.
pub(crate) async fn save_webhook(conn: &mut DbConn, row: &WebhookRow, new: bool) -> Result<(), DbError> {
    if new {
        with_conn!(conn, |c| diesel::insert_into(webhooks::table)
            .values(row)
            .execute(c)
            .await)?;
    } else {
        with_conn!(conn, |c| diesel::update(webhooks::table.find(&row.id))
            .set(row)
            .execute(c)
            .await)?;
    }
    Ok(())
}

/// Webhook `id`.
pub(crate) async fn webhook(conn: &mut DbConn, id: &str) -> Result<WebhookRow, BridgeError> {
    with_conn!(conn, |c| webhooks::table
        .find(id)
        .select(WebhookRow::as_select())
        .first(c)
        .await
        .optional())?
    .ok_or(BridgeError::NotFound("webhook"))
}

/// Webhooks newest first, after `after`: at most `limit` rows.
pub(crate) async fn list_webhooks(
    conn: &mut DbConn,
    after: &Option<String>,
    limit: i64,
) -> Result<Vec<WebhookRow>, DbError> {
    Ok(with_conn!(conn, |c| {
        let q = webhooks::table.select(WebhookRow::as_select()).into_boxed();
        shared_db::page_in_order!(q, webhooks::id, Order::Desc, after)
            .limit(limit)
            .load(c)
            .await
    })?)
}

/// The webhooks that are on.
pub(crate) async fn enabled_webhooks(conn: &mut DbConn) -> Result<Vec<WebhookRow>, DbError> {
    Ok(with_conn!(conn, |c| webhooks::table
        .filter(webhooks::enabled.eq(true))
        .select(WebhookRow::as_select())
        .load(c)
        .await)?)
}

/// Turns webhook `id` off.
pub(crate) async fn disable_webhook(conn: &mut DbConn, id: &str) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(webhooks::table.find(id))
        .set(webhooks::enabled.eq(false))
        .execute(c)
        .await)?;
    Ok(())
}

/// Deletes webhook `id` and its delivery log; how many webhooks went (0 or 1).
pub(crate) async fn delete_webhook(conn: &mut DbConn, id: &str) -> Result<usize, DbError> {
    let n = with_conn!(&mut *conn, |c| diesel::delete(webhooks::table.find(id))
        .execute(c)
        .await)?;
    if n > 0 {
        with_conn!(conn, |c| diesel::delete(
            webhook_deliveries::table.filter(webhook_deliveries::webhook_id.eq(id))
        )
        .execute(c)
        .await)?;
    }
    Ok(n)
}

/// Webhook `id`'s delivery attempts newest first, after `after`: at most `limit` rows.
pub(crate) async fn deliveries(
    conn: &mut DbConn,
    id: &str,
    after: &Option<String>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, DbError> {
    Ok(with_conn!(conn, |c| {
        let q = webhook_deliveries::table
            .filter(webhook_deliveries::webhook_id.eq(id))
            .select(DeliveryRow::as_select())
            .into_boxed();
        shared_db::page_in_order!(q, webhook_deliveries::id, Order::Desc, after)
            .limit(limit)
            .load(c)
            .await
    })?)
}

/// Adds an attempt to a webhook's delivery log.
pub(crate) async fn insert_delivery(conn: &mut DbConn, row: &DeliveryRow) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(webhook_deliveries::table)
        .values(row)
        .execute(c)
        .await)?;
    Ok(())
}

// ----- events and marks -----

/// Event `id` of the audit trail.
pub(crate) async fn event(conn: &mut DbConn, id: &str) -> Result<Option<Event>, DbError> {
    Ok(with_conn!(conn, |c| events_table::table
        .find(id)
        .select(Event::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Inserts an idempotency mark; `false` when it was already there.
pub(crate) async fn set_mark(c: &mut DbConn, mark: &str) -> Result<bool, DbError> {
    let n = with_conn!(c, |c| diesel::insert_or_ignore_into(bridge_marks::table)
        .values((
            bridge_marks::mark.eq(mark),
            bridge_marks::created_at.eq(shared_db::now())
        ))
        .execute(c)
        .await)?;
    Ok(n > 0)
}

/// Whether `mark` is set.
pub(crate) async fn has_mark(conn: &mut DbConn, mark: &str) -> Result<bool, DbError> {
    let seen: Option<String> = with_conn!(conn, |c| bridge_marks::table
        .find(mark)
        .select(bridge_marks::mark)
        .first(c)
        .await
        .optional())?;
    Ok(seen.is_some())
}

/// Retention: removes at most `batch` webhook delivery records made before `before`.
/// Returns how many; call again until it returns less than `batch`.
pub async fn prune_deliveries(
    conn: &mut DbConn,
    before: chrono::DateTime<chrono::Utc>,
    batch: i64,
) -> Result<u64, DbError> {
    let ids = shared_db::prunable_ids!(conn, webhook_deliveries, id, delivered_at, before.naive_utc(), batch)?;
    if ids.is_empty() {
        return Ok(0);
    }
    let n = with_conn!(conn, |c| diesel::delete(
        webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(&ids))
    )
    .execute(c)
    .await)?;
    Ok(n as u64)
}
