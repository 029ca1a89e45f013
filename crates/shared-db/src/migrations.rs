//! Embedded migrations, one folder per backend with the same version names.

use diesel_async::AsyncMigrationHarness;
use diesel_async::SimpleAsyncConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{DatabaseUrl, DbConn, DbError};

const MYSQL: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Name of the MySQL advisory lock that serialises migrations across replicas.
const LOCK_NAME: &str = "event_bridge_migrations";
/// How long a replica waits for another one's migrations (seconds).
const LOCK_WAIT_SECS: u32 = 120;

/// Applies every pending migration and returns the versions applied.
///
/// On MySQL, replicas starting together take an advisory lock (`GET_LOCK`) so only one
/// migrates at a time; the others then find nothing pending. Needs the multi-thread
/// tokio runtime (the harness uses `block_in_place`).
pub async fn run_pending(url: &DatabaseUrl) -> Result<Vec<String>, DbError> {
    with_harness(url, Op::RunPending).await
}

/// Reverts every applied migration (used by tests and for a full teardown).
pub async fn revert_all(url: &DatabaseUrl) -> Result<Vec<String>, DbError> {
    with_harness(url, Op::RevertAll).await
}

/// Versions that are embedded but not yet applied.
pub async fn pending(url: &DatabaseUrl) -> Result<Vec<String>, DbError> {
    with_harness(url, Op::Pending).await
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

async fn with_harness(url: &DatabaseUrl, op: Op) -> Result<Vec<String>, DbError> {
    match DbConn::connect(url).await? {
        DbConn::Mysql(mut c) => {
            c.batch_execute(&format!("DO GET_LOCK('{LOCK_NAME}', {LOCK_WAIT_SECS})"))
                .await?;
            let mut harness = AsyncMigrationHarness::new(c);
            let result = apply(&mut harness, MYSQL, op);
            let mut c = harness.into_inner();
            c.batch_execute(&format!("DO RELEASE_LOCK('{LOCK_NAME}')")).await?;
            result
        }
        DbConn::Sqlite(c) => apply(&mut AsyncMigrationHarness::new(c), SQLITE, op),
    }
}
