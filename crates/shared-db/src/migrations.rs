//! Embedded migrations, one folder per backend with the same version names.

use std::time::Duration;

use diesel::QueryableByName;
use diesel_async::AsyncMigrationHarness;
use diesel_async::RunQueryDsl;
use diesel_async::SimpleAsyncConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{DatabaseUrl, DbConn, DbError};

const MYSQL: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Every table Event Bridge creates, without the `eb_` prefix they all carry. Databases
/// migrated before the prefix have them under these bare names; [`adopt_prefix`] renames
/// them once.
pub const TABLES: &[&str] = &[
    "api_keys",
    "jobs",
    "idempotency_keys",
    "events",
    "documents",
    "collection_schemas",
    "licenses",
    "machines",
    "signing_keys",
    "email_messages",
    "email_deliveries",
    "email_templates",
    "email_suppressions",
    "slack_messages",
    "bridge_rules",
    "webhooks",
    "webhook_deliveries",
    "bridge_marks",
];

/// The first migration's version as diesel records it.
const FIRST_VERSION: &str = "20261128000001";

/// Name of the MySQL advisory lock that serialises migrations across replicas.
const LOCK_NAME: &str = "event_bridge_migrations";
/// How long a replica waits for another one's migrations before refusing to migrate.
pub const LOCK_WAIT: Duration = Duration::from_secs(600);

/// Applies every pending migration and returns the versions applied.
///
/// On MySQL, replicas starting together take an advisory lock (`GET_LOCK`) so only one
/// migrates at a time; the others then find nothing pending. A replica that cannot get
/// the lock within [`LOCK_WAIT`] refuses to migrate (MySQL DDL is not transactional:
/// two replicas must never run the same migrations at once). Needs the multi-thread
/// tokio runtime (the harness uses `block_in_place`).
pub async fn run_pending(url: &DatabaseUrl) -> Result<Vec<String>, DbError> {
    with_harness(url, Op::RunPending, LOCK_WAIT).await
}

/// [`run_pending`], waiting at most `lock_wait` for another replica's migrations.
pub async fn run_pending_waiting(url: &DatabaseUrl, lock_wait: Duration) -> Result<Vec<String>, DbError> {
    with_harness(url, Op::RunPending, lock_wait).await
}

/// Reverts every applied migration (used by tests and for a full teardown).
pub async fn revert_all(url: &DatabaseUrl) -> Result<Vec<String>, DbError> {
    with_harness(url, Op::RevertAll, LOCK_WAIT).await
}

/// Versions that are embedded but not yet applied.
pub async fn pending(url: &DatabaseUrl) -> Result<Vec<String>, DbError> {
    with_harness(url, Op::Pending, LOCK_WAIT).await
}

#[derive(Clone, Copy)]
enum Op {
    RunPending,
    RevertAll,
    Pending,
}

fn apply<DB, H>(harness: &mut H, migrations: EmbeddedMigrations, op: Op) -> Result<Vec<String>, DbError>
where
    DB: diesel::backend::Backend,
    H: MigrationHarness<DB>,
    EmbeddedMigrations: diesel::migration::MigrationSource<DB>,
{
    let versions = match op {
        Op::RunPending => harness
            .run_pending_migrations(migrations)
            .map(|v| v.iter().map(ToString::to_string).collect()),
        Op::RevertAll => harness
            .revert_all_migrations(migrations)
            .map(|v| v.iter().map(ToString::to_string).collect()),
        Op::Pending => harness
            .pending_migrations(migrations)
            .map(|v| v.iter().map(|m| m.name().version().to_string()).collect()),
    };
    versions.map_err(|e| DbError::Migration(e.to_string()))
}

#[derive(QueryableByName)]
struct Lock {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    got: Option<i64>,
}

async fn with_harness(url: &DatabaseUrl, op: Op, lock_wait: Duration) -> Result<Vec<String>, DbError> {
    match DbConn::connect(url).await? {
        DbConn::Mysql(mut c) => {
            let wait = lock_wait.as_secs().max(1);
            // 1: got it; 0: timed out (another replica still migrating); NULL: an
            // error (for instance the connection was killed while waiting).
            let lock: Lock = diesel::sql_query("SELECT CAST(GET_LOCK(?, ?) AS SIGNED) AS got")
                .bind::<diesel::sql_types::Text, _>(LOCK_NAME)
                .bind::<diesel::sql_types::Unsigned<diesel::sql_types::BigInt>, _>(wait)
                .get_result(&mut c)
                .await?;
            if lock.got != Some(1) {
                return Err(DbError::Migration(format!(
                    "could not take the migration lock `{LOCK_NAME}` within {wait} s: another \
                     replica is probably migrating; refusing to migrate concurrently (retry, or \
                     set DB_MIGRATE_ON_START=false and run `gateway migrate` once)"
                )));
            }
            // Dropping the connection on an error releases the lock with it.
            let mut conn = DbConn::Mysql(c);
            if matches!(op, Op::RunPending) {
                adopt_prefix(&mut conn).await?;
            }
            let DbConn::Mysql(c) = conn else {
                return Err(DbError::Migration("the MySQL connection changed backend".into()));
            };
            let mut harness = AsyncMigrationHarness::new(c);
            let result = apply(&mut harness, MYSQL, op);
            let mut c = harness.into_inner();
            c.batch_execute(&format!("DO RELEASE_LOCK('{LOCK_NAME}')")).await?;
            result
        }
        DbConn::Sqlite(c) => {
            let mut conn = DbConn::Sqlite(c);
            if matches!(op, Op::RunPending) {
                adopt_prefix(&mut conn).await?;
            }
            let DbConn::Sqlite(c) = conn else {
                return Err(DbError::Migration("the SQLite connection changed backend".into()));
            };
            apply(&mut AsyncMigrationHarness::new(c), SQLITE, op)
        }
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn table_exists(conn: &mut DbConn, name: &str) -> Result<bool, DbError> {
    let q = match conn {
        DbConn::Mysql(_) => {
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
        }
        DbConn::Sqlite(_) => "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?",
    };
    let found: Count = crate::with_conn!(conn, |c| diesel::sql_query(q)
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(c)
        .await)?;
    Ok(found.n > 0)
}

/// Gives the tables of a database migrated before the `eb_` prefix their prefixed names,
/// once, before the migrations run; returns how many it renamed.
///
/// A bare-named table is renamed only when it is certainly ours: diesel's own table says
/// our first migration ran here, and the prefixed table does not exist yet. On a database
/// that never ran our migrations (a fresh one, or the original service's, with its own
/// `licenses`, `jobs`, ... tables) nothing is touched: the migrations create `eb_` tables
/// beside the foreign ones and never read, alter or drop those.
///
/// Indexes keep their names (SQLite cannot rename one): a later migration must not drop
/// or change an index created before the prefix by its name alone.
pub async fn adopt_prefix(conn: &mut DbConn) -> Result<usize, DbError> {
    if !table_exists(conn, "__diesel_schema_migrations").await? {
        return Ok(0);
    }
    let ran: Count = crate::with_conn!(&mut *conn, |c| diesel::sql_query(
        "SELECT COUNT(*) AS n FROM __diesel_schema_migrations WHERE version = ?"
    )
    .bind::<diesel::sql_types::Text, _>(FIRST_VERSION)
    .get_result(c)
    .await)?;
    if ran.n == 0 || table_exists(conn, "eb_jobs").await? {
        return Ok(0);
    }
    let mut renamed = 0;
    for table in TABLES {
        if table_exists(conn, table).await? && !table_exists(conn, &format!("eb_{table}")).await? {
            let sql = format!("ALTER TABLE {table} RENAME TO eb_{table}");
            crate::with_conn!(&mut *conn, |c| c.batch_execute(&sql).await)?;
            renamed += 1;
        }
    }
    if renamed > 0 {
        tracing::info!(renamed, "renamed Event Bridge's tables to their eb_ names");
    }
    Ok(renamed)
}
