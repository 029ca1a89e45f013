//! Reading a row under a write lock, the same way on both backends.

/// The first row of `query` (an `Option`), locked until the transaction ends: MySQL
/// reads it `FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` already serialises writers.
///
/// `lock_first!(conn, licenses::table.find(id).select(LicenseRow::as_select()))?` needs
/// `diesel::prelude::*` and `diesel_async::RunQueryDsl` in scope, as every query does.
#[macro_export]
macro_rules! lock_first {
    ($conn:expr, $query:expr) => {
        match $conn {
            $crate::DbConn::Mysql(c) => $query.for_update().first(c).await.optional(),
            $crate::DbConn::Sqlite(c) => $query.first(c).await.optional(),
        }
    };
}
