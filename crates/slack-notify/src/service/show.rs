//! Reading messages: one, or a page of a filtered list.

use shared_db::DbConn;
use shared_db::paging::{self, PagingError};

use super::SlackService;
use crate::model::{MessageFilter, MessagePage, NotifyError, SlackMessage};
use crate::store::{self, Row};

impl SlackService {
    pub(super) async fn load(&self, conn: &mut DbConn, id: &str) -> Result<SlackMessage, NotifyError> {
        store::find(conn, id)
            .await?
            .ok_or(NotifyError::NotFound)?
            .into_message()
    }

    /// How many messages are in each status, for overviews.
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>, NotifyError> {
        let mut conn = self.pool.get().await?;
        store::count_by_status(&mut conn).await
    }

    /// One message.
    pub async fn get(&self, id: &str) -> Result<SlackMessage, NotifyError> {
        let mut conn = self.pool.get().await?;
        self.load(&mut conn, id).await
    }

    /// Messages matching `filter`, newest first unless `order=asc`; `limit` and `cursor`
    /// follow shared-db's paging rule.
    pub async fn list(&self, filter: &MessageFilter) -> Result<MessagePage, NotifyError> {
        let limit = paging::limit(filter.limit)?;
        let (order, after) =
            paging::continue_from(filter.cursor.as_deref(), filter.order).map_err(PagingError::from)?;
        let mut conn = self.pool.get().await?;
        let rows = store::list(&mut conn, filter, order, &after, limit + 1).await?;
        let (rows, next_cursor) = paging::page(rows, limit, |r: &Row| paging::encode_ordered(order, &r.id));
        let items = rows.into_iter().map(Row::into_message).collect::<Result<Vec<_>, _>>()?;
        Ok(MessagePage { items, next_cursor })
    }
}
