//! Event Bridge's database layer.
//!
//! - [`DbPool`] / [`DbConn`]: one pool over MySQL/MariaDB and SQLite, chosen by URL.
//! - [`migrations`]: embedded per-backend migrations.
//! - [`jobs`] and [`worker`]: the durable job queue.
//! - [`events`]: the append-only audit trail.
//! - [`paging`]: one limit rule, one cursor codec, one error for every list.
//! - [`tx`]: the one transaction helper, which runs again after lost lock races.
//! - [`lock_first!`]: a row read under a write lock on either backend.
//! - [`keyring`]: the current and earlier secrets, for digests, signatures and seals.
//! - [`batch`]: concurrent look-ups by key coalesced into shared queries.
//! - [`idempotency`]: `Idempotency-Key` bookkeeping.
//! - [`backup`]: online copies of the embedded SQLite database.
//! - [`retention`]: pruning old rows in small batches.
//! - `testing` (feature `testing`): a fresh database per test on either backend.

mod error;
mod lock;
mod pool;
pub mod time;
mod url;

pub mod backup;
pub mod batch;
pub mod events;
pub mod idempotency;
pub mod jobs;
pub mod keyring;
pub mod metrics;
pub mod migrations;
pub mod paging;
pub mod retention;
pub mod schema;
pub mod sealing;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tx;
pub mod worker;

pub use error::DbError;
pub use keyring::{Generation, KeyRing};
pub use pool::{AsyncFunc, DbConn, DbPool, PoolOptions, PoolStatus, PooledConn, SqliteConn};
pub use time::{new_id, now, to_utc};
pub use tx::LockConflict;
pub use url::{Backend, DatabaseUrl, MysqlTls, SslMode};
