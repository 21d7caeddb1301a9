//! Persistence: every SQL statement Herald runs lives in this module tree, as `&'static str`
//! with binds, executed through runtime `query`/`query_as` against the embedded migrations.
//!
//! Owns: opening the database, on one of two backends (see `store/db.rs`): a SQLite file (WAL mode,
//! created if missing; the default) or a PostgreSQL database (`postgres://...`, for several
//! instances on one database); applying migrations (`migrations/sqlite/` and their twins in
//! `migrations/postgres/`, with the same versions, both embedded; serialised across processes
//! by a lock file on SQLite and by sqlx's advisory lock on PostgreSQL; a shipped migration is
//! never edited, which a test checks against the recorded checksums), timestamps ([`Ts`]:
//! sortable UTC text on SQLite, `TIMESTAMPTZ` on PostgreSQL), `herald copy-db`, and one typed
//! error.
//! Does not own: deciding what to write (`check`, `merge`) or any network access; no
//! transaction here ever waits on the network. Nor what an outbox payload means: the store
//! keeps a message's kind and payload as text and JSON, `notify::outbox` types them.
//!
//! # One style
//!
//! - A method on [`Store`] runs on the pool: one statement, or a transaction it begins and
//!   commits itself (`store.releases(..)`, `store.claim_due(..)`).
//! - A free function joins the caller's transaction: its first argument is `conn: &mut Tx`
//!   (pass `&mut tx`), it never begins or commits, and this module re-exports it
//!   (`store::write_releases(&mut tx, ..)`).
//! - One exception, for many small transactions in a row: a book keeps one pooled
//!   connection (so its page cache stays valid) and its methods each run one transaction on
//!   it, on SQLite the usual one as a single command. The dispatcher records every relay
//!   answer through an [`AnswerBook`]; a check writes its projects through a [`ProjectBook`].
//! - A name means one thing. When an operation is needed in both forms, the free function's
//!   name ends in `_in` (`enqueue_in`, `enqueue_channel_in`) and the method without the suffix
//!   runs it in a transaction of its own.
//! - SQL lives only in this module tree, as a `&'static str` beside the code that binds it;
//!   no other module sees a statement, a row or the backend.
//! - A body that runs statements is written once inside `on_db!` and compiled for each
//!   backend. A statement both dialects read alike is one constant; one they read differently
//!   keeps its SQLite text as `NAME` and its PostgreSQL twin as `NAME_PG`, picked by the
//!   dialect. Flags are written `TRUE`/`FALSE`, so both read them.
//! - Statements number their placeholders `$1`, `$2`, ... (SQLite maps `$N` like `?N`, and it
//!   is PostgreSQL's own form); a test (`sql_style`) finds any `?` left.
//! - On PostgreSQL a transaction is `READ COMMITTED`, not SQLite's one writer at a time: a
//!   statement that reads before it writes is one statement (an upsert, `UPDATE ... RETURNING`)
//!   or locks what it read (`FOR UPDATE`, `SKIP LOCKED` for claims), and says which.

mod alerts;
mod book;
mod changes;
mod channels;
mod copy;
pub(crate) mod db;
mod outbox;
mod releases;
mod runs;
mod sources;
#[cfg(test)]
mod sql_style;
mod status;
mod subscribers;

pub use alerts::{InventoryMap, OperatorKey, mark_alerts_done, put_compat_state, put_release_doc};
pub use book::{PlainProject, ProjectBook};
pub use changes::Change;
pub use channels::{ChannelDelivery, DisabledChannel, enqueue_channel_in};
pub use copy::CopyReport;
pub use outbox::{
    Answer, AnswerBook, Claim, DueDigest, NewMessage, OutboxCounts, OutboxRow, add_digest_item,
    enqueue_all_in, enqueue_in, mark_digest_queued,
};
pub use releases::{
    EvidenceRow, EvidenceWrite, KnownRelease, ReleaseFilter, ReleaseRow, ReleaseRows, ReleaseWrite,
    StoredRelease, Withdrawal, release_ids, release_rows, withdraw_rejected, write_release_rows,
    write_releases,
};
pub use runs::{LeaseOutcome, Metrics, RunRow, host_name};
pub use sources::{
    SourceState, SourceSuccess, first_reports, put_validators, skip_key, source_failed,
    sources_succeeded,
};
pub use status::OutboxHealth;
pub use subscribers::{PendingOutcome, SubscriberWrite, subscribers_following};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use db::{Db, Pool, Pools, on_db};
pub use db::{Ts, Tx, ts};

/// SQLite's migrations, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// PostgreSQL's migrations: the same versions as SQLite's, in its dialect.
pub static MIGRATOR_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections each Herald process opens to a PostgreSQL server at most (the server's
/// `max_connections` must cover every instance's pool, plus one connection per instance for
/// the run lease).
pub const POSTGRES_POOL_SIZE: u32 = 10;

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
    /// `herald copy-db` refused the target or found the copy incomplete (nothing committed).
    #[error("copy-db into {target}: {reason}")]
    Copy {
        /// The target database, without its password.
        target: String,
        /// Why.
        reason: String,
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

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    location: Location,
    /// The run lease's own connection on PostgreSQL, while this process holds the lease.
    lease: runs::LeaseConn,
}

/// Where the database is, for messages.
#[derive(Clone, Debug)]
enum Location {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL database, its URL without the password.
    Server(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Server(url) => f.write_str(url),
        }
    }
}

/// Whether a database URL names a PostgreSQL database (else it must be SQLite's).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn sqlite_path(url: &str) -> Result<PathBuf, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Url {
            url: url.to_string(),
            reason: "use sqlite://PATH (e.g. sqlite://herald.db or sqlite:///var/lib/herald/herald.db) or postgres://USER@HOST/DB".into(),
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

/// A PostgreSQL URL without its password, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "postgres://(unreadable URL)".to_string(),
    }
}

impl Store {
    /// Opens (creating if missing) the database at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if is_postgres_url(url) {
            let store = Store::connect_postgres(url).await?;
            store.migrate_unlocked().await?;
            return Ok(store);
        }
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
        if is_postgres_url(url) {
            return Store::connect_postgres(url).await;
        }
        let path = sqlite_path(url)?;
        ensure_folder(url, &path)?;
        let lock = FileLock::take(&path).await?;
        let store = Store::connect_unlocked(path).await;
        drop(lock);
        store
    }

    async fn connect_postgres(url: &str) -> Result<Store, StoreError> {
        let shown = redacted(url);
        let open_error = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(open_error)?;
        // One connection first, with the server's own answer when it fails (refused, no such
        // database, wrong password): the pool would retry until its timeout and then report
        // only that it timed out.
        let first = tokio::time::timeout(
            Duration::from_secs(30),
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        .map_err(|_| open_error(sqlx::Error::PoolTimedOut))?
        .map_err(open_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(POSTGRES_POOL_SIZE)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options)
            .await
            .map_err(open_error)?;
        // Closing only ends a session that the pool replaced; its error changes nothing.
        let _ = sqlx::Connection::close(first).await;
        Ok(Store {
            pool: Db::Postgres(pool),
            location: Location::Server(shown),
            lease: runs::LeaseConn::default(),
        })
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
        Ok(Store {
            pool: Db::Sqlite(pool),
            location: Location::File(path),
            lease: runs::LeaseConn::default(),
        })
    }

    /// Applies pending migrations; returns the versions applied. Processes sharing a SQLite
    /// file take turns through a lock file beside it (PostgreSQL's migrator takes an advisory
    /// lock), so two commands started together never race on the same migration.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let lock = match &self.location {
            Location::File(path) => Some(FileLock::take(path).await?),
            Location::Server(_) => None,
        };
        let applied = self.migrate_unlocked().await;
        drop(lock);
        applied
    }

    /// Applies migrations up to and including `version` only (for upgrade tests and
    /// step-by-step upgrades).
    pub async fn migrate_to(&self, version: i64) -> Result<(), StoreError> {
        let lock = match &self.location {
            Location::File(path) => Some(FileLock::take(path).await?),
            Location::Server(_) => None,
        };
        let done = match &self.pool {
            Db::Sqlite(pool) => MIGRATOR.run_to(version, pool).await,
            Db::Postgres(pool) => MIGRATOR_POSTGRES.run_to(version, pool).await,
        };
        drop(lock);
        done.map_err(|err| StoreError::Migrate {
            path: self.location.to_string(),
            detail: err.to_string(),
        })
    }

    async fn migrate_unlocked(&self) -> Result<Vec<i64>, StoreError> {
        let before = self.applied_migrations().await.unwrap_or_default();
        let done = match &self.pool {
            Db::Sqlite(pool) => MIGRATOR.run(pool).await,
            Db::Postgres(pool) => MIGRATOR_POSTGRES.run(pool).await,
        };
        done.map_err(|err| StoreError::Migrate {
            path: self.location.to_string(),
            detail: err.to_string(),
        })?;
        let after = self.applied_migrations().await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        Ok(on_db!(self.pool(), |c| sqlx::query_scalar(SQL)
            .fetch_all(c)
            .await?))
    }

    /// Versions of the migrations embedded in this binary.
    pub fn known_migrations() -> Vec<i64> {
        MIGRATOR.iter().map(|m| m.version).collect()
    }

    /// The database file, on SQLite.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::File(path) => Some(path),
            Location::Server(_) => None,
        }
    }

    /// The database, for messages: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        self.location.to_string()
    }

    /// Whether the database is a PostgreSQL server.
    pub fn is_postgres(&self) -> bool {
        matches!(self.pool, Db::Postgres(_))
    }

    /// The connection pool, for the store's own modules.
    pub(crate) fn pool(&self) -> Pools<'_> {
        self.pool.get()
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so concurrent writers queue on the busy timeout instead of failing
    /// mid-transaction; on PostgreSQL it is `READ COMMITTED` (see the module's style notes).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Tx::begin(&self.pool).await
    }

    /// Writes a consistent copy of the database to `target` while others keep writing
    /// (`VACUUM INTO`: one read transaction, so the copy is one moment of the database).
    /// SQLite only: a PostgreSQL database is backed up with `pg_dump` (see
    /// [`Store::pg_dump_hint`]).
    pub async fn backup(&self, target: &Path) -> Result<(), StoreError> {
        const SQL: &str = "VACUUM INTO $1";
        let Db::Sqlite(pool) = &self.pool else {
            return Err(StoreError::Url {
                url: self.describe(),
                reason: self.pg_dump_hint(target),
            });
        };
        if target.exists() {
            return Err(StoreError::Url {
                url: target.display().to_string(),
                reason: "the backup file already exists; choose a new name".into(),
            });
        }
        sqlx::query(SQL)
            .bind(target.display().to_string())
            .execute(pool)
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

    /// What to run instead of `herald backup` on PostgreSQL.
    pub fn pg_dump_hint(&self, target: &Path) -> String {
        format!(
            "a PostgreSQL database is backed up by the server's own tools, not copied by Herald: \
             run `pg_dump --format=custom --file={} \"$HERALD_DATABASE_URL\"` (restore with \
             `pg_restore --dbname=URL`), and keep HERALD_SECRET with it",
            target.display()
        )
    }

    /// Answers whether the database responds to a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(self.pool(), |c| sqlx::query("SELECT 1")
            .execute(c)
            .await?
            .rows_affected());
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
    use chrono::{DateTime, Utc};

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
        (
            20261201030000,
            "37181b8c73e4cbfab7cfa280f24964f725269d2079b9b88e7335252d933b8ff3a2e9fc32f8c68e4d8db9f589f02bcac4",
        ),
    ];

    /// The same for PostgreSQL's twins (`migrations/postgres/`).
    const SHIPPED_POSTGRES: &[(i64, &str)] = &[
        (
            20261122000000,
            "3887b18ae180ec5c9de2799ce7456ba19b38da201843c316a73f7e3c78d01c65c3e3df2f729f0f1696668dc9dacfa205",
        ),
        (
            20261122010000,
            "c1601ca22a37e477ac1bd75fdedab1c3fc9a438e859d83edede768e59b49fe843001b9405bdc6e045f0346d69a5df009",
        ),
        (
            20261122020000,
            "e64334412be0306b37a9ee73fa7e4f5cb40a79a02942481f355618e97d76ae8c7538cb9b2fa778e2e9217b6998696bda",
        ),
        (
            20261130000000,
            "f36c881e6cb4fbb386c75fb316823abd9c8a8d31dca916090246390df13dc8615a615f32fcf9a366a3b15b28e9210ef0",
        ),
        (
            20261130020000,
            "77130154a130676e05d4c362c99f77e9a620d6d4f193ca8b5af4dd878adda7dc2ea96d7e7572de40c1be8b2c29d853dd",
        ),
        (
            20261130040000,
            "7f38f6400273e778b9cb116d7b43d46c9a6c122f9a0652983d5acd6d46b8d306f6468a33bf6d0335472b1c6faf41f4a0",
        ),
        (
            20261130100000,
            "c39e71eae4ad9e20f6b211728f1f83003617f349ea86eb15e5e215a40d4653fc2a4729e657073bbc81adb8ebd35542ef",
        ),
        (
            20261201000000,
            "0c303322771dd5ba3b468194057cf77578677b9ab2e299e078f9cc6ff2de3fee9e25117a9b43dd777bd7ed91f8b9baec",
        ),
        (
            20261201010000,
            "e1c15d185c5677c2eb33d68fb647edb44f57c0765808810990e2cd0d9cc6036a54afa0a22ceb7d4e1c99b89410e19e67",
        ),
        (
            20261201020000,
            "f712a49790e9ede74c0402bb33387ddccd6f086e362430d24a2ae8d33d0a57670ddb0350950a616f87c2e94eb05d836f",
        ),
        (
            20261201030000,
            "d552246dfdee24acd328fcd457cdf3b363ebc2df847a8d0aacfea1199bea4c38cdbe9fc4c734e8882c4c83af49dd8d0c",
        ),
    ];

    /// Fails when an embedded migration differs from its recorded checksum, or when one was
    /// added without recording it.
    fn check_shipped(migrator: &sqlx::migrate::Migrator, shipped: &[(i64, &str)], list: &str) {
        let embedded: Vec<(i64, String)> = migrator
            .iter()
            .map(|m| {
                let hex: String = m.checksum.iter().map(|b| format!("{b:02x}")).collect();
                (m.version, hex)
            })
            .collect();
        for (version, checksum) in shipped {
            let found = embedded.iter().find(|(v, _)| v == version);
            assert_eq!(
                found.map(|(_, c)| c.as_str()),
                Some(*checksum),
                "migration {version} was changed or removed after it shipped"
            );
        }
        assert_eq!(
            embedded.len(),
            shipped.len(),
            "a new migration: add its version and `sha384sum` to {list}"
        );
    }

    #[test]
    fn shipped_migrations_are_never_edited() {
        check_shipped(&MIGRATOR, SHIPPED, "SHIPPED");
        check_shipped(&MIGRATOR_POSTGRES, SHIPPED_POSTGRES, "SHIPPED_POSTGRES");
    }

    #[test]
    fn both_backends_have_the_same_migration_versions() {
        let sqlite: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        let postgres: Vec<i64> = MIGRATOR_POSTGRES.iter().map(|m| m.version).collect();
        assert_eq!(
            sqlite, postgres,
            "every migration in migrations/sqlite/ has its twin in migrations/postgres/"
        );
    }

    #[test]
    fn postgres_urls_are_shown_without_their_password() {
        assert_eq!(
            redacted("postgres://herald:hunter2@db.example.org/herald?sslmode=require"),
            "postgres://herald:***@db.example.org/herald?sslmode=require"
        );
        assert_eq!(
            redacted("postgres://herald@localhost/herald?host=/run/postgresql"),
            "postgres://herald@localhost/herald?host=/run/postgresql"
        );
        assert!(is_postgres_url("postgresql://h/db") && !is_postgres_url("sqlite://x.db"));
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
        let at = |text| {
            DateTime::parse_from_rfc3339(text)
                .expect("ts")
                .with_timezone(&Utc)
        };
        let (a, b) = (at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:00.5Z"));
        assert!(ts(a) < ts(b));
        assert_eq!(ts(a), "2026-01-01T00:00:00.000000Z");
    }
}
