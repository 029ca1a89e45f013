//! Online backups of the embedded SQLite database (`gateway backup FILE`).
//!
//! `VACUUM INTO` copies the database inside one read transaction, so the copy is a
//! consistent snapshot even while a gateway keeps writing (WAL mode lets writers go on
//! meanwhile). The copy is written beside the destination under a temporary name, checked
//! with `PRAGMA integrity_check`, and only then renamed into place, so a file at the
//! destination is always a whole, checked backup. MySQL/MariaDB has its own tools.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use crate::{Backend, DatabaseUrl, DbConn, DbError};

/// Why a backup was not made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The gateway runs on MySQL/MariaDB, whose own tools make consistent copies.
    #[error(
        "the database is MySQL/MariaDB: back it up with its own tools, \
         `mariadb-dump --single-transaction --routines DATABASE > FILE.sql` (a logical copy, online) \
         or `mariadb-backup --backup --target-dir=DIR` (a physical copy, online); see the README, \
         \"Backup and restore\""
    )]
    NotSqlite,
    /// The database lives only in memory.
    #[error("the database is in memory (sqlite://:memory:); there is nothing on disk to copy")]
    InMemory,
    /// There is no database file to copy yet.
    #[error("there is no database at {0} (has the gateway run with this configuration?)")]
    Missing(PathBuf),
    /// The destination exists already; backups never overwrite.
    #[error("{0} exists already; choose a new file name (backups never overwrite)")]
    Exists(PathBuf),
    /// The destination's folder is missing or not writable.
    #[error("cannot write into {folder}: {reason}")]
    Destination {
        /// The folder the backup would go into.
        folder: PathBuf,
        /// What the file system said.
        reason: String,
    },
    /// The copy failed its integrity check (it is removed).
    #[error("the copy failed SQLite's integrity check: {0}")]
    Corrupt(String),
    /// The database refused.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What a finished backup holds.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// Where the backup is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// How many tables it holds (Event Bridge's and diesel's own).
    pub tables: i64,
    /// How long the copy and its check took.
    pub took: Duration,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Copies the SQLite database at `url` to `dest`, online and consistently.
pub async fn sqlite(url: &DatabaseUrl, dest: &Path) -> Result<BackupReport, BackupError> {
    if url.backend() != Backend::Sqlite {
        return Err(BackupError::NotSqlite);
    }
    let Some(source) = url.sqlite_file() else {
        return Err(BackupError::InMemory);
    };
    if !Path::new(source).is_file() {
        return Err(BackupError::Missing(PathBuf::from(source)));
    }
    if dest.exists() {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    let folder = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest.file_name().ok_or_else(|| BackupError::Destination {
        folder: folder.clone(),
        reason: "the destination names no file".into(),
    })?;
    if !folder.is_dir() {
        return Err(BackupError::Destination {
            folder,
            reason: "no such folder".into(),
        });
    }
    let partial = folder.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    let started = Instant::now();
    let outcome = copy_and_check(url, &partial).await;
    let tables = match outcome {
        Ok(tables) => tables,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    // Never overwrite: a file that appeared meanwhile wins and this copy is dropped.
    if dest.exists() {
        let _ = std::fs::remove_file(&partial);
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    std::fs::rename(&partial, dest).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        BackupError::Destination {
            folder: folder.clone(),
            reason: e.to_string(),
        }
    })?;
    if let Ok(dir) = std::fs::File::open(&folder) {
        let _ = dir.sync_all();
    }
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        path: dest.to_path_buf(),
        bytes,
        tables,
        took: started.elapsed(),
    })
}

async fn copy_and_check(url: &DatabaseUrl, partial: &Path) -> Result<i64, BackupError> {
    let target = partial.to_str().ok_or_else(|| BackupError::Destination {
        folder: partial.parent().map(Path::to_path_buf).unwrap_or_default(),
        reason: "the path is not valid UTF-8".into(),
    })?;
    let mut conn = DbConn::connect(url).await?;
    let DbConn::Sqlite(c) = &mut conn else {
        return Err(BackupError::NotSqlite);
    };
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(target)
        .execute(c)
        .await
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(_, info) => BackupError::Destination {
                folder: partial.parent().map(Path::to_path_buf).unwrap_or_default(),
                reason: info.message().to_string(),
            },
            other => BackupError::Db(other.into()),
        })?;
    drop(conn);

    let mut copy = DbConn::connect(&DatabaseUrl::sqlite(target)).await?;
    let DbConn::Sqlite(c) = &mut copy else {
        return Err(BackupError::NotSqlite);
    };
    let lines: Vec<Line> = diesel::sql_query("PRAGMA integrity_check")
        .load(c)
        .await
        .map_err(DbError::from)?;
    let verdict: Vec<String> = lines.into_iter().map(|l| l.integrity_check).collect();
    if verdict != ["ok"] {
        return Err(BackupError::Corrupt(verdict.join("; ")));
    }
    let tables: Vec<Count> = diesel::sql_query("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table'")
        .load(c)
        .await
        .map_err(DbError::from)?;
    // WAL mode leaves -wal/-shm files beside the copy while it is open; close it and fold
    // them back so the backup is one file.
    diesel::sql_query("PRAGMA journal_mode = DELETE")
        .execute(c)
        .await
        .map_err(DbError::from)?;
    drop(copy);
    Ok(tables.into_iter().next().map_or(0, |t| t.n))
}
