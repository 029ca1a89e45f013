//! shared-db against real databases: SQLite always, MariaDB when reachable (required in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use futures_util::future::BoxFuture;
use shared_db::jobs::{self, AfterFailure, Enqueued, Job, NewJob};
use shared_db::testing::TestDb;
use shared_db::worker::{Backoff, JobError, JobHandler, Worker, WorkerOptions};
use shared_db::{Backend, DbConn, DbError, DbPool, PoolOptions, events, migrations, schema, with_conn};
use tokio_util::sync::CancellationToken;

fn count(n: &AtomicUsize) -> usize {
    AtomicUsize::load(n, Ordering::SeqCst)
}

async fn table_count(conn: &mut DbConn) -> i64 {
    with_conn!(conn, |c| schema::jobs::table.count().get_result::<i64>(c).await).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_run_up_down_and_up_again_on_both_backends() {
    let mut backends = vec![TestDb::sqlite_unmigrated().await];
    backends.extend(TestDb::mysql_unmigrated().await);
    for db in backends {
        let pending = migrations::pending(&db.url).await.unwrap();
        assert!(
            !pending.is_empty(),
            "{}: nothing pending on an empty database",
            db.backend()
        );
        let applied = migrations::run_pending(&db.url).await.unwrap();
        assert_eq!(applied, pending, "{}", db.backend());
        assert!(migrations::pending(&db.url).await.unwrap().is_empty());
        let mut conn = db.pool.get().await.unwrap();
        assert_eq!(table_count(&mut conn).await, 0);
        drop(conn);

        let reverted = migrations::revert_all(&db.url).await.unwrap();
        assert_eq!(reverted.len(), applied.len(), "{}", db.backend());
        let mut conn = db.pool.get().await.unwrap();
        let gone = with_conn!(&mut *conn, |c| schema::jobs::table.count().get_result::<i64>(c).await);
        assert!(
            gone.is_err(),
            "{}: jobs table should be gone after revert",
            db.backend()
        );
        drop(conn);

        assert_eq!(migrations::run_pending(&db.url).await.unwrap(), applied);
        assert!(
            migrations::run_pending(&db.url).await.unwrap().is_empty(),
            "second run applies nothing"
        );
    }
}

/// While another connection (a replica still migrating) holds the migration lock past
/// the wait, a replica refuses to migrate, with an error naming the lock and the way
/// out, instead of running the same DDL concurrently.
#[tokio::test(flavor = "multi_thread")]
async fn migrations_refuse_to_run_without_the_lock() {
    use diesel_async::SimpleAsyncConnection;
    let Some(db) = TestDb::mysql_unmigrated().await else {
        return;
    };
    let DbConn::Mysql(mut holder) = DbConn::connect(&db.url).await.unwrap() else {
        unreachable!("a MySQL url");
    };
    #[derive(QueryableByName)]
    struct Got {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        got: Option<i64>,
    }
    let got: Got = diesel::sql_query("SELECT CAST(GET_LOCK('event_bridge_migrations', 120) AS SIGNED) AS got")
        .get_result(&mut holder)
        .await
        .unwrap();
    assert_eq!(got.got, Some(1));
    let err = migrations::run_pending_waiting(&db.url, Duration::from_secs(1))
        .await
        .expect_err("migrated without the lock");
    let msg = err.to_string();
    assert!(msg.contains("event_bridge_migrations"), "{msg}");
    assert!(msg.contains("DB_MIGRATE_ON_START=false"), "{msg}");
    assert!(msg.contains("gateway migrate"), "{msg}");
    holder
        .batch_execute("DO RELEASE_LOCK('event_bridge_migrations')")
        .await
        .unwrap();
    // Nothing ran: everything is still pending.
    let pending = migrations::pending(&db.url).await.unwrap();
    assert!(!pending.is_empty(), "nothing ran");
    assert_eq!(migrations::run_pending(&db.url).await.unwrap(), pending);
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_commit_roll_back_and_nest() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let kept = conn
            .transaction::<_, DbError, _>(async |c| {
                let job = jobs::enqueue(c, NewJob::new("t", &1).unwrap()).await?;
                Ok(job.id().to_owned())
            })
            .await
            .unwrap();
        let failed: Result<(), DbError> = conn
            .transaction(async |c| {
                jobs::enqueue(c, NewJob::new("t", &2).unwrap()).await?;
                events::record(c, "thing.changed", "test", "thing:2", serde_json::json!({})).await?;
                Err(DbError::Corrupt("caller changed its mind".into()))
            })
            .await;
        assert!(failed.is_err());
        // A change that fails leaves no event: the event was in its transaction.
        let trail = events::for_subject(&mut conn, "thing:2").await.unwrap();
        assert!(trail.is_empty(), "{trail:?}");
        let nested = conn
            .transaction::<_, DbError, _>(async |c| {
                jobs::enqueue(c, NewJob::new("t", &3).unwrap()).await?;
                let inner: Result<(), DbError> = c
                    .transaction(async |c| {
                        jobs::enqueue(c, NewJob::new("t", &4).unwrap()).await?;
                        Err(DbError::Corrupt("inner".into()))
                    })
                    .await;
                assert!(inner.is_err());
                Ok(())
            })
            .await;
        nested.unwrap();
        let payloads: Vec<String> = with_conn!(&mut *conn, |c| schema::jobs::table
            .order(schema::jobs::id.asc())
            .select(schema::jobs::payload)
            .load(c)
            .await)
        .unwrap();
        assert_eq!(payloads, vec!["1", "3"], "{}", db.backend());
        assert!(jobs::get(&mut conn, &kept).await.unwrap().is_some());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_appended_with_the_change_or_not_at_all() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        let _: Result<(), DbError> = conn
            .transaction(async |c| {
                events::append(
                    c,
                    events::NewEvent {
                        event_type: "x.done",
                        actor: Some("cli"),
                        subject: Some("x:1"),
                        data: serde_json::json!({"n": 1}),
                    },
                )
                .await?;
                Err(DbError::Corrupt("abort".into()))
            })
            .await;
        let kept = events::append(
            &mut conn,
            events::NewEvent {
                event_type: "x.done",
                actor: None,
                subject: Some("x:1"),
                data: serde_json::json!({"n": 2}),
            },
        )
        .await
        .unwrap();
        let stored = events::for_subject(&mut conn, "x:1").await.unwrap();
        assert_eq!(stored, vec![kept], "{}", db.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_reported_as_unavailable() {
    let url = shared_db::DatabaseUrl::parse("mysql://root@127.0.0.1:9/nothing").unwrap();
    let pool = DbPool::new(
        url,
        PoolOptions {
            max_size: 1,
            connect_timeout: Duration::from_millis(500),
            acquire_timeout: Duration::from_millis(500),
        },
    )
    .unwrap();
    let err = pool.check().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(!err.to_string().contains("password"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_connections_get_their_pragmas() {
    let db = TestDb::sqlite().await;
    let mut conn = db.pool.get().await.unwrap();
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    #[derive(QueryableByName)]
    struct Fk {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        foreign_keys: i32,
    }
    let DbConn::Sqlite(c) = &mut *conn else {
        panic!("sqlite")
    };
    let mode: Mode = diesel::sql_query("PRAGMA journal_mode").get_result(c).await.unwrap();
    let fk: Fk = diesel::sql_query("PRAGMA foreign_keys").get_result(c).await.unwrap();
    assert_eq!((mode.journal_mode.as_str(), fk.foreign_keys), ("wal", 1));
}

/// Enqueues a Slack-like job with `payload` in the line of `key`.
async fn enqueue_ordered(conn: &mut shared_db::DbConn, payload: &str, key: &str) -> jobs::Enqueued {
    jobs::enqueue(conn, NewJob::new("slack", &payload).unwrap().ordering_key(key))
        .await
        .unwrap()
}

/// Up to 10 jobs of `queues`, claimed by worker `w` for 30 s.
async fn claim_as_w(conn: &mut shared_db::DbConn, queues: &[String]) -> Vec<jobs::Job> {
    jobs::claim(conn, queues, "w", Duration::from_secs(30), 10)
        .await
        .unwrap()
}

/// A database migrated before the `eb_` prefix (made here by renaming our tables back to
/// their bare names) has them renamed once, rows and all, before the migrations run; a
/// second run renames nothing.
#[tokio::test(flavor = "multi_thread")]
async fn tables_from_before_the_prefix_are_renamed_once_with_their_rows() {
    for db in TestDb::each().await {
        let mut conn = db.pool.get().await.unwrap();
        jobs::enqueue(&mut conn, NewJob::new("legacy", &"kept").unwrap())
            .await
            .unwrap();
        for t in migrations::TABLES {
            let sql = format!("ALTER TABLE eb_{t} RENAME TO {t}");
            with_conn!(&mut *conn, |c| c.batch_execute(&sql).await).unwrap();
        }
        drop(conn);
        assert!(migrations::run_pending(&db.url).await.unwrap().is_empty());
        let mut conn = db.pool.get().await.unwrap();
        assert_eq!(table_count(&mut conn).await, 1, "{}: the job came along", db.backend());
        assert_eq!(migrations::adopt_prefix(&mut conn).await.unwrap(), 0);
    }
}

mod migrations_on_data;
mod queue;
