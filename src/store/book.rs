//! The connection a check keeps for writing its projects ([`ProjectBook`]), one transaction
//! per project; on SQLite the usual transaction is a single command to SQLite's thread.
//!
//! Owns: that connection and the one-command form of a project's usual writes (its sources'
//! health, validators, release rows and evidence rows), built from the same statement texts
//! the step-by-step functions run. Does not own: deciding what a project's transaction
//! holds (`check`), or the rows themselves (`releases`, `sources`).

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection};

use super::db::{Db, Ts};
use super::releases::{ReleaseRows, evidence_upsert_sql, releases_upsert_sql, write_release_rows};
use super::sources::{
    SourceSuccess, put_validators, sources_succeeded, sources_succeeded_sql, successes_json,
    validators_json, validators_upsert_sql,
};
use super::{Store, StoreError};
use crate::sources::http::Validators;

/// What a check writes of one project in the usual case: every source answered, none
/// skipped an entry, and nothing is announced or withdrawn.
#[derive(Debug, Clone, Copy)]
pub struct PlainProject<'a> {
    /// The project.
    pub project: &'a str,
    /// Its sources' successful fetches.
    pub successes: &'a [SourceSuccess<'a>],
    /// The validators of the bodies read.
    pub validators: &'a [(String, Validators)],
    /// The release and evidence rows that change.
    pub rows: &'a ReleaseRows,
}

/// One connection a check keeps for writing its projects, many short transactions in a row.
/// Its page cache stays valid from one project to the next (a pooled connection taken per
/// transaction re-reads every page another connection wrote since it last ran), and on
/// SQLite a [`PlainProject`] is one command: `BEGIN IMMEDIATE`, the sources, the validators,
/// the releases, the evidence, `COMMIT`, one hand-over to SQLite's thread instead of six.
/// After an error the connection is rolled back and closed, and the next project takes a
/// fresh one.
///
/// On PostgreSQL (whose protocol binds no parameters across the statements of one command)
/// every project is written statement by statement, in a transaction of its own.
pub struct ProjectBook {
    store: Store,
    conn: Option<PoolConnection<Sqlite>>,
}

impl Store {
    /// A book for writing a check's projects (see [`ProjectBook`]); it takes its connection
    /// at the first project.
    pub fn project_book(&self) -> ProjectBook {
        ProjectBook {
            store: self.clone(),
            conn: None,
        }
    }
}

impl ProjectBook {
    /// Writes one project's usual transaction; committed when this returns.
    pub async fn write(
        &mut self,
        plain: &PlainProject<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Db::Sqlite(pool) = &self.store.pool else {
            return write_in_steps(&self.store, plain, now).await;
        };
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => pool.acquire().await?,
        };
        match write_at_once(&mut conn, plain, now).await {
            Ok(()) => {
                self.conn = Some(conn);
                Ok(())
            }
            Err(err) => {
                // Whatever state the transaction was left in, this connection is not reused.
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                drop(conn.detach());
                Err(err)
            }
        }
    }
}

/// A plain project in one command on SQLite.
async fn write_at_once(
    conn: &mut SqliteConnection,
    plain: &PlainProject<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const AT_ONCE: &str = concat!(
        "BEGIN IMMEDIATE; ",
        sources_succeeded_sql!("$1", "$2", "$3"),
        "; ",
        validators_upsert_sql!("$2", "$4"),
        "; ",
        releases_upsert_sql!("$1", "$2", "$5"),
        "; ",
        evidence_upsert_sql!("$2", "$6", "$1"),
        "; COMMIT"
    );
    let successes = successes_json(plain.successes);
    let validators = validators_json(plain.validators);
    sqlx::query(AT_ONCE)
        .bind(plain.project)
        .bind(Ts(now))
        .bind(successes.as_str())
        .bind(validators.as_str())
        .bind(plain.rows.releases_json())
        .bind(plain.rows.evidence_json())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A plain project statement by statement, in a transaction of its own.
async fn write_in_steps(
    store: &Store,
    plain: &PlainProject<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    sources_succeeded(&mut tx, plain.project, plain.successes, now).await?;
    put_validators(&mut tx, plain.validators, now).await?;
    write_release_rows(&mut tx, plain.project, plain.rows, now).await?;
    tx.commit().await
}
