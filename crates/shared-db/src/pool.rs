//! One connection pool over MySQL/MariaDB and SQLite.
//!
//! diesel has no async `MultiConnection`, so a [`DbConn`] is an enum of the two async
//! connection types and [`with_conn!`](crate::with_conn) compiles one query body for each
//! arm. Functions take `&mut DbConn`, so the same function runs alone or inside a caller's
//! [`DbConn::transaction`].

use std::time::Duration;

use diesel::SqliteConnection;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection, TransactionManager};

use crate::{Backend, DatabaseUrl, DbError};

/// The async SQLite connection: diesel's sync connection run on blocking threads.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, BlockingTasks>;

/// Runs SQLite calls on tokio's blocking pool of whichever runtime is current.
///
/// diesel-async's default waits for an unfinished call with `block_in_place` when its
/// future is dropped, which panics on the current-thread runtimes Actix workers use (a
/// client disconnecting, or one extractor failing while another queries). Here the call
/// simply finishes on its own; the connection's mutex makes the next call wait for it,
/// and a connection dropped inside a transaction is discarded by the pool's recycle check.
pub struct BlockingTasks;

impl diesel_async::sync_connection_wrapper::SpawnBlocking for BlockingTasks {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures_util::future::BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        let handle = tokio::task::spawn_blocking(task);
        Box::pin(async move { handle.await.map_err(Box::from) })
    }

    fn get_runtime() -> Self {
        BlockingTasks
    }
}

/// A database connection on either backend.
pub enum DbConn {
    /// MySQL or MariaDB.
    Mysql(AsyncMysqlConnection),
    /// SQLite.
    Sqlite(SqliteConn),
}

/// Runs one query body against whichever connection a [`DbConn`] holds.
///
/// ```text
/// let n = with_conn!(conn, |c| jobs::table.count().get_result::<i64>(c).await)?;
/// ```
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::DbConn::Mysql($c) => $body,
            $crate::DbConn::Sqlite($c) => $body,
        }
    };
}

/// A future returned by an async closure, named so its `Send`-ness can be required
/// (the same trick diesel-async uses for its own `transaction`).
pub trait AsyncFunc<T, R>: AsyncFnOnce(T) -> R + FnOnce(T) -> <Self as AsyncFunc<T, R>>::Fut {
    /// The future the closure returns.
    type Fut: Future<Output = R>;
}

impl<F, T, Fut, R> AsyncFunc<T, R> for F
where
    F: AsyncFnOnce(T) -> R + FnOnce(T) -> Fut,
    Fut: Future<Output = R>,
{
    type Fut = Fut;
}

impl DbConn {
    /// Opens one connection outside any pool, applying the SQLite pragmas.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, DbError> {
        match url.backend() {
            Backend::Mysql => {
                let mut conn = connect_mysql(url).await?;
                conn.batch_execute("SET time_zone = '+00:00'").await?;
                Ok(DbConn::Mysql(conn))
            }
            Backend::Sqlite => {
                let mut conn = SqliteConn::establish(url.expose_target()).await?;
                // busy_timeout first: switching to WAL needs a lock another
                // connection may hold for a moment.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                )
                .await?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }

    /// The TLS cipher of a MySQL connection (`None`: plain text, or SQLite).
    pub async fn tls_cipher(&mut self) -> Result<Option<String>, DbError> {
        use diesel::QueryableByName;
        use diesel::sql_types::Text;
        use diesel_async::RunQueryDsl;
        #[derive(QueryableByName)]
        struct Status {
            #[diesel(sql_type = Text, column_name = "Value")]
            value: String,
        }
        let DbConn::Mysql(c) = self else {
            return Ok(None);
        };
        let rows: Vec<Status> = diesel::sql_query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            .load(c)
            .await?;
        Ok(rows.into_iter().map(|r| r.value).find(|v| !v.is_empty()))
    }

    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            DbConn::Mysql(_) => Backend::Mysql,
            DbConn::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs `SELECT 1`.
    pub async fn ping(&mut self) -> Result<(), DbError> {
        with_conn!(self, |c| c.batch_execute("SELECT 1").await)?;
        Ok(())
    }

    /// Runs `f` in a transaction: committed when it returns `Ok`, rolled back otherwise.
    ///
    /// On SQLite the outermost transaction is `BEGIN IMMEDIATE`, which takes the write
    /// lock up front so concurrent writers wait (`busy_timeout`) instead of failing with
    /// "database is locked" when they upgrade. Nested calls become savepoints.
    pub async fn transaction<'a, R, E, F>(&'a mut self, f: F) -> Result<R, E>
    where
        for<'r> F: AsyncFnOnce(&'r mut DbConn) -> Result<R, E>
            + AsyncFunc<&'r mut DbConn, Result<R, E>, Fut: Send>
            + Send
            + 'a,
        E: From<DbError> + Send,
        R: Send,
    {
        self.begin().await.map_err(E::from)?;
        match f(&mut *self).await {
            Ok(value) => {
                self.end(true).await.map_err(E::from)?;
                Ok(value)
            }
            Err(user_error) => {
                // The caller's error is the one worth reporting; a failed rollback
                // leaves the connection broken, and the pool discards it.
                if let Err(e) = self.end(false).await {
                    tracing::warn!(error = %e, "rollback failed");
                }
                Err(user_error)
            }
        }
    }

    async fn begin(&mut self) -> Result<(), DbError> {
        match self {
            DbConn::Mysql(c) => {
                <AsyncMysqlConnection as AsyncConnection>::TransactionManager::begin_transaction(c).await?
            }
            DbConn::Sqlite(c) => {
                let depth = <SqliteConn as AsyncConnection>::TransactionManager::transaction_manager_status_mut(c)
                    .transaction_depth()?;
                if depth.is_some() {
                    <SqliteConn as AsyncConnection>::TransactionManager::begin_transaction(c).await?
                } else {
                    c.spawn_blocking(|c| {
                        diesel::connection::AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
                    })
                    .await?
                }
            }
        }
        Ok(())
    }

    async fn end(&mut self, commit: bool) -> Result<(), DbError> {
        match self {
            DbConn::Mysql(c) => {
                type Tm = <AsyncMysqlConnection as AsyncConnection>::TransactionManager;
                if commit {
                    Tm::commit_transaction(c).await?
                } else {
                    Tm::rollback_transaction(c).await?
                }
            }
            DbConn::Sqlite(c) => {
                type Tm = <SqliteConn as AsyncConnection>::TransactionManager;
                if commit {
                    Tm::commit_transaction(c).await?
                } else {
                    Tm::rollback_transaction(c).await?
                }
            }
        }
        Ok(())
    }

    fn is_broken(&mut self) -> bool {
        match self {
            DbConn::Mysql(c) => {
                <AsyncMysqlConnection as AsyncConnection>::TransactionManager::is_broken_transaction_manager(c)
            }
            DbConn::Sqlite(c) => <SqliteConn as AsyncConnection>::TransactionManager::is_broken_transaction_manager(c),
        }
    }
}

/// Opens a MySQL connection with the URL's options, over TLS when the URL requires it.
///
/// diesel-async's own `establish` knows only the URL, which cannot carry certificates;
/// this builds the same options (no driver statement cache: diesel has its own; found
/// rows counted, as diesel expects) plus the TLS settings.
async fn connect_mysql(url: &DatabaseUrl) -> Result<AsyncMysqlConnection, DbError> {
    let opts = mysql_async::Opts::from_url(url.expose_target()).map_err(|e| DbError::InvalidUrl(e.to_string()))?;
    let mut builder = mysql_async::OptsBuilder::from_opts(opts)
        .stmt_cache_size(0)
        .client_found_rows(true);
    if let Some(tls) = url.tls() {
        // No switch to the server's Unix socket after connecting: the TLS connection is
        // the one asked for.
        builder = builder.ssl_opts(tls.ssl_opts()).prefer_socket(false);
    }
    let conn = mysql_async::Conn::new(builder)
        .await
        .map_err(|e| connect_error(url, e))?;
    Ok(AsyncMysqlConnection::try_from(conn).await?)
}

/// Names TLS and `DB_SSL_CA` when the failure is about TLS.
fn connect_error(url: &DatabaseUrl, e: mysql_async::Error) -> DbError {
    use mysql_async::{DriverError, Error as E, IoError};
    let with_tls = url.tls().is_some();
    match &e {
        E::Driver(DriverError::NoClientSslFlagFromServer) => DbError::Unavailable(format!(
            "TLS is required (DB_IS_SSL / ssl-mode) but the server at {} does not offer TLS: turn TLS on in the server, or connect without it",
            url.redacted()
        )),
        E::Io(IoError::Tls(tls)) if with_tls => DbError::Unavailable(format!(
            "TLS to the database failed: {tls}. The server's certificate must chain to a system root or to the CA in DB_SSL_CA (ssl-ca=...); with ssl-mode=VERIFY_IDENTITY it must also name the host (use VERIFY_CA to skip that check)"
        )),
        E::Io(IoError::Io(io))
            if with_tls
                && ["certificate", "tls", "handshake", "alert", "peer"]
                    .iter()
                    .any(|w| io.to_string().to_ascii_lowercase().contains(w)) =>
        {
            DbError::Unavailable(format!(
                "TLS to the database failed: {io}. The server's certificate must chain to a system root or to the CA in DB_SSL_CA (ssl-ca=...); with ssl-mode=VERIFY_IDENTITY it must also name the host (use VERIFY_CA to skip that check)"
            ))
        }
        _ => DbError::Unavailable(e.to_string()),
    }
}

/// Pool sizing and timeouts.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections held at once.
    pub max_size: usize,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// How long a caller waits for a free connection.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 10,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Creates and checks connections for deadpool.
pub struct Manager {
    url: DatabaseUrl,
}

impl deadpool::managed::Manager for Manager {
    type Type = DbConn;
    type Error = DbError;

    async fn create(&self) -> Result<DbConn, DbError> {
        DbConn::connect(&self.url).await
    }

    async fn recycle(
        &self,
        conn: &mut DbConn,
        metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<DbError> {
        // A MySQL connection used moments ago is alive: pinging it on every checkout
        // would double the round trips of a busy service. An idle one is checked first.
        // SQLite is always pinged: the ping goes through the connection's mutex, so it
        // also waits for a call whose future was dropped (see `BlockingTasks`).
        // After a lost connection was seen, every one is checked for a while.
        if conn.backend() == Backend::Sqlite
            || metrics.last_used() > IDLE_BEFORE_PING
            || crate::error::recent_connection_loss()
        {
            conn.ping().await.map_err(deadpool::managed::RecycleError::Backend)?;
        }
        // diesel-async panics instead of answering when such a call still holds the
        // connection; either way the connection is not reusable.
        let broken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conn.is_broken())).unwrap_or(true);
        if broken {
            return Err(deadpool::managed::RecycleError::message(
                "connection left inside a transaction or still busy",
            ));
        }
        Ok(())
    }
}

/// A connection idle longer than this is pinged before it is handed out again.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// A connection borrowed from the pool; derefs to [`DbConn`].
pub type PooledConn = deadpool::managed::Object<Manager>;

/// The shared connection pool.
#[derive(Clone)]
pub struct DbPool {
    pool: deadpool::managed::Pool<Manager>,
    url: DatabaseUrl,
    options: PoolOptions,
}

/// A snapshot of pool usage, for metrics.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PoolStatus {
    /// Configured maximum.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open and idle.
    pub idle: usize,
    /// Callers waiting for one.
    pub waiting: usize,
}

impl DbPool {
    /// Builds a pool. No connection is opened until one is needed; call
    /// [`DbPool::check`] to fail fast at start-up.
    pub fn new(url: DatabaseUrl, options: PoolOptions) -> Result<Self, DbError> {
        let max_size = if url.expose_target() == ":memory:" {
            // Every in-memory connection is its own database: share one.
            1
        } else {
            options.max_size.max(1)
        };
        let pool = deadpool::managed::Pool::builder(Manager { url: url.clone() })
            .max_size(max_size)
            .create_timeout(Some(options.connect_timeout))
            .wait_timeout(Some(options.acquire_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::InvalidUrl(e.to_string()))?;
        Ok(Self { pool, url, options })
    }

    /// Borrows a connection, waiting at most the acquire timeout.
    pub async fn get(&self) -> Result<PooledConn, DbError> {
        use deadpool::managed::PoolError;
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => match e {
                DbError::Query(q) => DbError::Unavailable(q.to_string()),
                other => other,
            },
            PoolError::Timeout(kind) => DbError::Unavailable(format!("timed out waiting for a connection ({kind:?})")),
            other => DbError::Unavailable(other.to_string()),
        })
    }

    /// Opens a connection and runs `SELECT 1`.
    pub async fn check(&self) -> Result<(), DbError> {
        let mut conn = self.get().await?;
        tokio::time::timeout(self.options.acquire_timeout, conn.ping())
            .await
            .map_err(|_| DbError::Unavailable("ping timed out".into()))?
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The URL in use (`Display` redacts the password).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Current usage.
    pub fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            idle: s.available,
            waiting: s.waiting,
        }
    }

    /// Closes the pool; later `get` calls fail.
    pub fn close(&self) {
        self.pool.close();
    }
}
