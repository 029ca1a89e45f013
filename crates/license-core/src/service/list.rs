//! Showing and listing licences and their machines.

use shared_db::paging::{self, Order, PagingError};

use super::LicenseService;
use crate::model::{
    License, LicenseError, LicenseFilter, LicensePage, LicenseStatus, Machine, MachinePage, MachineQuery,
};
use crate::store;

impl LicenseService {
    /// One licence.
    pub async fn get(&self, id: &str) -> Result<License, LicenseError> {
        let mut conn = self.pool.get().await?;
        let (row, count, policy) = store::find(&mut conn, id).await?.ok_or(LicenseError::NotFound)?;
        row.into_license(count, policy.as_ref())
    }

    /// A page of licences matching `filter`, newest first unless `order=asc`.
    pub async fn list(&self, filter: &LicenseFilter) -> Result<LicensePage, LicenseError> {
        let limit = paging::limit(filter.limit)?;
        let (order, after) =
            paging::continue_from(filter.cursor.as_deref(), filter.order).map_err(PagingError::Cursor)?;
        let mut conn = self.pool.get().await?;
        let rows = store::list_licenses(&mut conn, filter, order, &after, limit + 1).await?;
        let (rows, next_cursor) = paging::page(rows, limit, |(row, _, _)| paging::encode_ordered(order, &row.id));
        let mut items = Vec::with_capacity(rows.len());
        for (row, count, policy) in rows {
            items.push(row.into_license(count, policy.as_ref())?);
        }
        Ok(LicensePage { items, next_cursor })
    }

    /// How many licences are in each status (`active`, `suspended`, `revoked`,
    /// `expired`), every status named, for overviews.
    pub async fn count_by_status(&self) -> Result<Vec<(LicenseStatus, i64)>, LicenseError> {
        let mut conn = self.pool.get().await?;
        let (stored, expired) = store::count_by_status(&mut conn, shared_db::now()).await?;
        let stored_count = |s: LicenseStatus| {
            stored
                .iter()
                .filter(|(name, _)| LicenseStatus::parse(name) == Some(s))
                .map(|(_, n)| n)
                .sum::<i64>()
        };
        Ok(vec![
            (LicenseStatus::Active, stored_count(LicenseStatus::Active) - expired),
            (LicenseStatus::Suspended, stored_count(LicenseStatus::Suspended)),
            (LicenseStatus::Revoked, stored_count(LicenseStatus::Revoked)),
            (LicenseStatus::Expired, expired),
        ])
    }

    /// A page of the machines activated on licence `id`, newest first.
    pub async fn machines(&self, id: &str, query: &MachineQuery) -> Result<MachinePage, LicenseError> {
        let limit = paging::limit(query.limit)?;
        let (order, after) =
            paging::continue_from(query.cursor.as_deref(), Some(Order::Desc)).map_err(PagingError::Cursor)?;
        let mut conn = self.pool.get().await?;
        store::find(&mut conn, id).await?.ok_or(LicenseError::NotFound)?;
        let rows = store::list_machines(&mut conn, id, order, &after, limit + 1).await?;
        let (rows, next_cursor) = paging::page(rows, limit, |m| paging::encode_ordered(order, &m.id));
        Ok(MachinePage {
            items: rows.into_iter().map(Machine::from).collect(),
            next_cursor,
        })
    }
}
