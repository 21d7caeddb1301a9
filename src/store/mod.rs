//! Persistence: every SQL statement Herald runs lives in this module tree, as `&'static str`
//! with binds, executed through runtime `query`/`query_as` against the embedded migrations.
//!
//! Owns: opening the database (SQLite in WAL mode, created if missing), applying migrations
//! (`migrations/sqlite/`, embedded; serialised across processes by a lock file; a shipped
//! migration is never edited, which a test checks against the recorded checksums), timestamps
//! as UTC text, and one typed error.
//! Does not own: deciding what to write (`check`, `merge`) or any network access; no
//! transaction here ever waits on the network. Nor what an outbox payload means: the store
//! keeps a message's kind and payload as text and JSON, `notify::outbox` types them.
//!
//! # One style
//!
//! - A method on [`Store`] runs on the pool: one statement, or a transaction it begins and
//!   commits itself (`store.releases(..)`, `store.claim_due(..)`).
//! - A free function joins the caller's transaction: its first argument is
//!   `conn: &mut SqliteConnection` (pass `&mut tx`), it never begins or commits, and this
//!   module re-exports it (`store::write_releases(&mut tx, ..)`).
//! - One exception, for many small transactions in a row: [`AnswerBook`] keeps one pooled
//!   connection (so its page cache stays valid) and its methods each run one transaction on
//!   it; the dispatcher records every relay answer through it.
//! - A name means one thing. When an operation is needed in both forms, the free function's
//!   name ends in `_in` (`enqueue_in`, `enqueue_channel_in`) and the method without the suffix
//!   runs it in a transaction of its own.
//! - SQL lives only in this module tree, as a `&'static str` beside the code that binds it;
//!   no other module sees a statement, a row or the backend.
//! - Statements number their placeholders `$1`, `$2`, ... (SQLite maps `$N` like `?N`), the
//!   form the PostgreSQL dialect to come shares; a test (`sql_style`) finds any `?` left.

mod alerts;
mod changes;
mod channels;
mod outbox;
mod releases;
mod runs;
mod sources;
#[cfg(test)]
mod sql_style;
mod status;
mod subscribers;

pub use alerts::{InventoryMap, OperatorKey, mark_alerts_done, put_compat_state, put_release_doc};
pub use changes::Change;
pub use channels::{ChannelDelivery, DisabledChannel, enqueue_channel_in};
pub use outbox::{
    Answer, AnswerBook, Claim, DueDigest, NewMessage, OutboxCounts, OutboxRow, add_digest_item,
    enqueue_all_in, enqueue_in, mark_digest_queued,
};
pub use releases::{
    EvidenceRow, EvidenceWrite, KnownRelease, ReleaseFilter, ReleaseRow, ReleaseWrite,
    StoredRelease, Withdrawal, known_releases, withdraw_rejected, write_releases,
};
pub use runs::{LeaseOutcome, Metrics, RunRow, host_name};
pub use sources::{
    SourceState, first_reports, put_validators, skip_key, source_failed, source_succeeded,
};
pub use status::OutboxHealth;
pub use subscribers::{PendingOutcome, SubscriberWrite, subscribers_following};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

/// The migrations embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A failure of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one Herald can use.
    #[error("database URL `{url}`: {reason}")]
    Url {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be opened or created.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The database file.
        path: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations could not be applied.
    #[error("cannot migrate database {path}: {detail}")]
    Migrate {
        /// The database file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value could not be read back.
    #[error("corrupt value in column {column}: {detail}")]
    Corrupt {
        /// Where.
        column: &'static str,
        /// What.
        detail: String,
    },
}

/// A transaction on the store.
pub type Tx = Transaction<'static, Sqlite>;

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

/// Formats a timestamp the way every column stores it: fixed width, so text order is time
/// order.
pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Reads a stored timestamp.
pub fn parse_ts(column: &'static str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|err| StoreError::Corrupt {
            column,
            detail: format!("`{text}`: {err}"),
        })
}

/// Reads an optional stored timestamp.
pub fn parse_ts_opt(
    column: &'static str,
    text: Option<&str>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.map(|t| parse_ts(column, t)).transpose()
}

fn sqlite_path(url: &str) -> Result<PathBuf, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Url {
            url: url.to_string(),
            reason: "only sqlite:// URLs are supported (e.g. sqlite://herald.db or sqlite:///var/lib/herald/herald.db)".into(),
        })?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Url {
            url: url.to_string(),
            reason:
                "a database file is required (an in-memory database would lose everything at exit)"
                    .into(),
        });
    }
    Ok(PathBuf::from(path))
}

impl Store {
    /// Opens (creating if missing) the database at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let path = sqlite_path(url)?;
        ensure_folder(url, &path)?;
        let lock = FileLock::take(&path).await?;
        let store = Store::connect_unlocked(path).await?;
        store.migrate_unlocked().await?;
        drop(lock);
        Ok(store)
    }

    /// Opens the database without migrating it.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let path = sqlite_path(url)?;
        ensure_folder(url, &path)?;
        let lock = FileLock::take(&path).await?;
        let store = Store::connect_unlocked(path).await;
        drop(lock);
        store
    }

    // Creating the file and switching it to WAL need the write lock at once; processes that
    // open the same new database together take turns through the lock file instead of
    // failing with "database is locked".
    async fn connect_unlocked(path: PathBuf) -> Result<Store, StoreError> {
        let display = path.display().to_string();
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{display}"))
            .map_err(|source| StoreError::Open {
                path: display.clone(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        // A connection to a local file does not go stale: no ping (a round trip to the
        // connection's worker thread) before every acquire.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: display.clone(),
                source,
            })?;
        Ok(Store { pool, path })
    }

    /// Applies pending migrations; returns the versions applied. Processes sharing the file
    /// take turns through a lock file beside it, so two commands started together never race
    /// on the same migration.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let lock = FileLock::take(&self.path).await?;
        let applied = self.migrate_unlocked().await;
        drop(lock);
        applied
    }

    /// Applies migrations up to and including `version` only (for upgrade tests and
    /// step-by-step upgrades).
    pub async fn migrate_to(&self, version: i64) -> Result<(), StoreError> {
        let lock = FileLock::take(&self.path).await?;
        let done = MIGRATOR.run_to(version, &self.pool).await;
        drop(lock);
        done.map_err(|err| StoreError::Migrate {
            path: self.path.display().to_string(),
            detail: err.to_string(),
        })
    }

    async fn migrate_unlocked(&self) -> Result<Vec<i64>, StoreError> {
        let before = self.applied_migrations().await.unwrap_or_default();
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|err| StoreError::Migrate {
                path: self.path.display().to_string(),
                detail: err.to_string(),
            })?;
        let after = self.applied_migrations().await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        Ok(sqlx::query_scalar(SQL).fetch_all(&self.pool).await?)
    }

    /// Versions of the migrations embedded in this binary.
    pub fn known_migrations() -> Vec<i64> {
        MIGRATOR.iter().map(|m| m.version).collect()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection pool, for the store's own modules.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Begins a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so
    /// concurrent writers queue on the busy timeout instead of failing mid-transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Writes a consistent copy of the database to `target` while others keep writing
    /// (`VACUUM INTO`: one read transaction, so the copy is one moment of the database).
    pub async fn backup(&self, target: &Path) -> Result<(), StoreError> {
        const SQL: &str = "VACUUM INTO $1";
        if target.exists() {
            return Err(StoreError::Url {
                url: target.display().to_string(),
                reason: "the backup file already exists; choose a new name".into(),
            });
        }
        sqlx::query(SQL)
            .bind(target.display().to_string())
            .execute(&self.pool)
            .await?;
        // The copy holds subscribers' addresses: readable by its owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o600)).map_err(
                |err| StoreError::Url {
                    url: target.display().to_string(),
                    reason: format!("cannot make the backup private: {err}"),
                },
            )?;
        }
        Ok(())
    }

    /// Answers whether the database responds to a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn ensure_folder(url: &str, path: &Path) -> Result<(), StoreError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) if !parent.is_dir() => Err(StoreError::Url {
            url: url.to_string(),
            reason: format!("the folder {} does not exist", parent.display()),
        }),
        _ => Ok(()),
    }
}

/// An exclusive advisory lock on `<database>.migrate.lock`, released on drop.
struct FileLock(#[allow(dead_code)] std::fs::File);

impl FileLock {
    async fn take(db: &Path) -> Result<FileLock, StoreError> {
        let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".migrate.lock");
        let path = db.with_file_name(name);
        let shown = path.display().to_string();
        let taken = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok(file)
        })
        .await;
        match taken {
            Ok(Ok(file)) => Ok(FileLock(file)),
            Ok(Err(err)) => Err(StoreError::Migrate {
                path: db.display().to_string(),
                detail: format!("cannot lock {shown}: {err}"),
            }),
            Err(err) => Err(StoreError::Migrate {
                path: db.display().to_string(),
                detail: format!("cannot lock {shown}: {err}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every migration a released Herald has applied, with the SHA-384 of its file (what
    /// sqlx records in `_sqlx_migrations.checksum` and compares on every start). Editing a
    /// shipped migration makes every existing database refuse to open; change the schema with
    /// a new migration instead, and add its line here.
    const SHIPPED: &[(i64, &str)] = &[
        (
            20261122000000,
            "64bb0101b170a0c126d2c878771bc7ce544f2711f197a7201e6a426fcb9c4b29b5fa750115d3ccf3656245200fb10221",
        ),
        (
            20261122010000,
            "2f4157202898bc398f158c4ddc3738582a60d266ae204f2e74680b5c32ba03b84e7f63e5a4769b9afd988b8d0d2939a2",
        ),
        (
            20261122020000,
            "65fbb1c14e29a6beeb7f40d5efb33d9bfb04c5135737f45020c47b17b33104e341b411ae19834b73619c64ea2a2b3838",
        ),
        (
            20261130000000,
            "b3b58d54595a514634f1d28d58343d069bb2d91a764aa7a43e398e8428f2cecb9b38b4d15738c8f6a14b822bc7ffcfae",
        ),
        (
            20261130020000,
            "34fe462636dbdec97f96bd32c63567a26e19e3f5bd35ae252bf4881f61495cc74ced5a604fb4615c09bfe1c923ae1d00",
        ),
        (
            20261130040000,
            "e70b79e61f831cfb7eac1507432f745099122a020756ef25fdcbb27506da1ee2a022977fcb597348c4f2e2b183dd1f2d",
        ),
        (
            20261130100000,
            "4b43d0a310ff6bd7dc30c3b7ac01f8f40abed7d9b177f2f2eb1c24bced06856c74203819868cf6d4c39f6fe1a92022ea",
        ),
        (
            20261201000000,
            "65a19767c2a4124ef68c1f09ce99c3aca8fc59067d42778f51d9134d89780309f6259d27e3c851a06e1a6e3a191f59cf",
        ),
        (
            20261201010000,
            "0cc0a5c8618d9842b22b14139c6f84b20ae3fd6f10e301c746b22b975702c924889e66e7e7ae03059e52a091f5d53d23",
        ),
        (
            20261201020000,
            "40008ba0c2493e53a94528ec10d6331aee9b1cac32d840c2af42e70c84f45daf9c86a0558abb6d4523b539f586bba964",
        ),
    ];

    #[test]
    fn shipped_migrations_are_never_edited() {
        let embedded: Vec<(i64, String)> = MIGRATOR
            .iter()
            .map(|m| {
                let hex: String = m.checksum.iter().map(|b| format!("{b:02x}")).collect();
                (m.version, hex)
            })
            .collect();
        for (version, checksum) in SHIPPED {
            let found = embedded.iter().find(|(v, _)| v == version);
            assert_eq!(
                found.map(|(_, c)| c.as_str()),
                Some(*checksum),
                "migration {version} was changed or removed after it shipped"
            );
        }
        assert_eq!(
            embedded.len(),
            SHIPPED.len(),
            "a new migration: add its version and `sha384sum` to SHIPPED"
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            sqlite_path("sqlite://herald.db").expect("ok"),
            PathBuf::from("herald.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/herald.db?mode=rwc").expect("ok"),
            PathBuf::from("/var/lib/herald.db")
        );
        assert!(sqlite_path("postgres://x").is_err());
        assert!(sqlite_path("sqlite://:memory:").is_err());
    }

    #[test]
    fn timestamps_sort_as_text() {
        let a = parse_ts("t", "2026-01-01T00:00:00Z").expect("ts");
        let b = parse_ts("t", "2026-01-01T00:00:00.5Z").expect("ts");
        assert!(ts(a) < ts(b));
        assert_eq!(ts(a), "2026-01-01T00:00:00.000000Z");
    }
}
