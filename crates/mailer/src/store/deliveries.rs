//! Deliveries: one group of up to 50 recipients of a message, sent by one job.

use std::collections::HashSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_db::{DbConn, with_conn};

use super::Delivery;
use crate::model::MailError;
use crate::schema::{email_deliveries, email_suppressions};

/// Stores a delivery row.
pub(crate) async fn insert_delivery(c: &mut DbConn, d: &Delivery) -> Result<(), MailError> {
    with_conn!(&mut *c, |c| diesel::insert_into(email_deliveries::table)
        .values(d)
        .execute(c)
        .await)?;
    Ok(())
}

/// One delivery.
pub(crate) async fn find_delivery(conn: &mut DbConn, id: &str) -> Result<Option<Delivery>, MailError> {
    Ok(with_conn!(conn, |c| email_deliveries::table
        .find(id)
        .select(Delivery::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The deliveries of the messages `ids`.
pub(crate) async fn deliveries_of(conn: &mut DbConn, ids: &[String]) -> Result<Vec<Delivery>, MailError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(with_conn!(conn, |c| email_deliveries::table
        .filter(email_deliveries::email_id.eq_any(ids))
        .select(Delivery::as_select())
        .load(c)
        .await)?)
}

/// Which of `keys` (lowercase addresses) are suppressed.
pub(crate) async fn suppressed_among(conn: &mut DbConn, keys: &[String]) -> Result<HashSet<String>, MailError> {
    Ok(with_conn!(conn, |c| email_suppressions::table
        .filter(email_suppressions::address.eq_any(keys))
        .select(email_suppressions::address)
        .load::<String>(c)
        .await)?
    .into_iter()
    .collect())
}

/// Marks a delivery `sending`.
pub(crate) async fn mark_delivery_sending(c: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), MailError> {
    with_conn!(&mut *c, |c| diesel::update(email_deliveries::table.find(id))
        .set((
            email_deliveries::status.eq("sending"),
            email_deliveries::updated_at.eq(now)
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// How one delivery ended.
pub(crate) struct DeliveryEnd<'a> {
    pub(crate) status: &'a str,
    pub(crate) provider_id: &'a Option<String>,
    pub(crate) error: &'a Option<String>,
    pub(crate) suppressed: &'a Option<String>,
}

/// Records how a delivery ended.
pub(crate) async fn end_delivery(
    c: &mut DbConn,
    id: &str,
    end: DeliveryEnd<'_>,
    now: NaiveDateTime,
) -> Result<(), MailError> {
    with_conn!(&mut *c, |c| diesel::update(email_deliveries::table.find(id))
        .set((
            email_deliveries::status.eq(end.status),
            email_deliveries::provider_id.eq(end.provider_id),
            email_deliveries::error.eq(end.error),
            email_deliveries::suppressed.eq(end.suppressed),
            email_deliveries::updated_at.eq(now),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// The statuses of all of a message's deliveries.
pub(crate) async fn delivery_statuses(c: &mut DbConn, email_id: &str) -> Result<Vec<String>, MailError> {
    Ok(with_conn!(&mut *c, |c| email_deliveries::table
        .filter(email_deliveries::email_id.eq(email_id))
        .select(email_deliveries::status)
        .load(c)
        .await)?)
}

/// The message a provider (SES) message id belongs to.
pub(crate) async fn email_of_provider(c: &mut DbConn, provider_id: &str) -> Result<Option<String>, MailError> {
    Ok(with_conn!(&mut *c, |c| email_deliveries::table
        .filter(email_deliveries::provider_id.eq(provider_id))
        .select(email_deliveries::email_id)
        .first(c)
        .await
        .optional())?)
}
