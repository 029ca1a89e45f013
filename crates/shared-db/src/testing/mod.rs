//! A fresh, migrated database per test, on either backend; [`fault::FaultProxy`] puts
//! network faults between a client and a real test peer.
//!
//! MySQL tests use `TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`) only to
//! reach the server: each test gets its own `eb_test_*` database, dropped afterwards.
//! When the server cannot be reached a MySQL test is skipped with a visible message,
//! except under `CI=true`, where it fails.
#![allow(clippy::panic, clippy::expect_used)]

use crate::{Backend, DatabaseUrl, DbConn, DbPool, PoolOptions};

pub mod fault;
pub mod tls_server;

/// Where MySQL tests find a server.
pub fn mysql_server_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// True under `CI=true`: required test peers must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when `python3` can import `module`, for tests that check our output with an
/// independent implementation. When it cannot, `test` is skipped with a message, except
/// under `CI=true`, where it fails.
pub fn python_with(module: &str, test: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(!in_ci(), "python3 able to import {module} is required under CI=true");
        eprintln!("SKIPPED: {test}: python3 cannot import `{module}`");
    }
    ok
}

/// A database that exists for one test.
pub struct TestDb {
    /// Its URL.
    pub url: DatabaseUrl,
    /// A pool on it.
    pub pool: DbPool,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    MysqlDatabase { server: String, name: String },
}

impl TestDb {
    /// A migrated SQLite database in a temporary folder.
    pub async fn sqlite() -> TestDb {
        let db = Self::sqlite_unmigrated().await;
        crate::migrations::run_pending(&db.url).await.expect("migrate sqlite");
        db
    }

    /// A SQLite database with no tables yet.
    pub async fn sqlite_unmigrated() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.db");
        let url = DatabaseUrl::sqlite(path.to_string_lossy().into_owned());
        let pool = DbPool::new(url.clone(), PoolOptions::default()).expect("sqlite pool");
        TestDb {
            url,
            pool,
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// A migrated database of its own on the MySQL test server, or `None` (with a
    /// message) when no server answers outside CI.
    pub async fn mysql() -> Option<TestDb> {
        let db = Self::mysql_unmigrated().await?;
        crate::migrations::run_pending(&db.url).await.expect("migrate mysql");
        Some(db)
    }

    /// A MySQL database with no tables yet; see [`TestDb::mysql`].
    pub async fn mysql_unmigrated() -> Option<TestDb> {
        let server = mysql_server_url();
        let server_url = DatabaseUrl::parse(&server).expect("TEST_MYSQL_URL");
        let mut admin = match DbConn::connect(&server_url).await {
            Ok(conn) => conn,
            Err(e) => {
                if in_ci() {
                    panic!(
                        "MariaDB is required under CI=true but {} is unreachable: {e}",
                        server_url.redacted()
                    );
                }
                eprintln!(
                    "SKIPPED: MySQL test: no server at {} ({e}); set TEST_MYSQL_URL",
                    server_url.redacted()
                );
                return None;
            }
        };
        let name = format!("eb_test_{}", uuid::Uuid::now_v7().simple());
        create_database(&mut admin, &name).await;
        let mut url = url::Url::parse(server_url.expose_target()).expect("mysql url");
        url.set_path(&name);
        let url = DatabaseUrl::parse(url.as_str()).expect("test database url");
        let pool = DbPool::new(
            url.clone(),
            PoolOptions {
                max_size: 16,
                ..PoolOptions::default()
            },
        )
        .expect("mysql pool");
        Some(TestDb {
            url,
            pool,
            cleanup: Cleanup::MysqlDatabase { server, name },
        })
    }

    /// Every backend that can run here: SQLite always, MySQL when reachable (always in CI).
    pub async fn each() -> Vec<TestDb> {
        let mut dbs = vec![Self::sqlite().await];
        dbs.extend(Self::mysql().await);
        dbs
    }

    /// The backend of this database.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }
}

async fn create_database(admin: &mut DbConn, name: &str) {
    use diesel_async::SimpleAsyncConnection;
    if let DbConn::Mysql(c) = admin {
        c.batch_execute(&format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await
        .expect("create test database");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.pool.close();
        if let Cleanup::MysqlDatabase { server, name } = &self.cleanup {
            let (server, name) = (server.clone(), name.clone());
            // Drop runs outside async: use a thread with its own small runtime.
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    use diesel_async::SimpleAsyncConnection;
                    let url = DatabaseUrl::parse(&server).ok()?;
                    if let Ok(DbConn::Mysql(mut c)) = DbConn::connect(&url).await {
                        c.batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"))
                            .await
                            .ok()?;
                    }
                    Some(())
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("warning: could not drop test database");
            }
        }
    }
}
