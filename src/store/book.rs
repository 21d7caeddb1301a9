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

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use pep440_rs::Version;

    use super::super::{EvidenceWrite, ReleaseWrite, release_rows};
    use super::*;
    use crate::model::{Observation, ReleaseClass, SourceKind};

    /// The state a store holds after the writes: each source's row, the validators, the
    /// releases and their evidence, as text.
    async fn state(store: &Store) -> Vec<String> {
        let mut out: Vec<String> = store
            .source_states()
            .await
            .expect("states")
            .into_values()
            .map(|s| {
                format!(
                    "{} {} baseline {:?} success {:?} rule {} url {:?}",
                    s.project,
                    s.source,
                    s.baseline_at,
                    s.last_success_at,
                    s.attribution_rule,
                    s.resolved_url
                )
            })
            .collect();
        let mut validators: Vec<String> = store
            .validators()
            .await
            .expect("validators")
            .into_iter()
            .map(|(url, v)| format!("{url} {v:?}"))
            .collect();
        validators.sort();
        out.extend(validators);
        let releases = store.known_releases("pretalx").await.expect("releases");
        out.extend(releases.iter().map(|r| format!("{} {:?}", r.key, r.stored)));
        out.extend(releases.iter().map(|r| format!("{:?}", r.evidence)));
        out
    }

    /// Two writes of pretalx 2.3.1 from PyPI: a first fetch (a body read under rule 1, found
    /// behind a page), then a `304` an hour later (no rule, no URL, no rows).
    async fn two_writes(
        store: &Store,
        mut write: impl AsyncFnMut(&PlainProject<'_>, DateTime<Utc>),
    ) -> Vec<String> {
        let first: DateTime<Utc> = "2026-07-08T12:00:00Z".parse().expect("ts");
        let version = Version::from_str("2.3.1").expect("version");
        let mut observation = Observation::new("2.3.1", version.clone());
        observation.url = Some("https://pypi.org/project/pretalx/2.3.1/".into());
        let evidence = [EvidenceWrite {
            kind: SourceKind::Pypi,
            observation: &observation,
            inherited: false,
        }];
        let release = ReleaseWrite {
            version: &version,
            key: "2.3.1",
            class: ReleaseClass::Bugfix,
            line: "2.3",
            primary_published_at: Some(first),
            other_published_at: None,
            available_at: Some(first),
            yanked: None,
            baseline: true,
            new_in_run: None,
            attributed: true,
            evidence: &evidence,
        };
        let rows = release_rows(&[], &[release]).expect("rows");
        let validators = [(
            "https://pypi.org/simple/pretalx/".to_string(),
            Validators {
                etag: Some("\"1\"".into()),
                ..Validators::default()
            },
        )];
        let read = [SourceSuccess {
            source: SourceKind::Pypi,
            resolved_url: Some("https://pypi.org/simple/pretalx/"),
            attribution_rule: Some(1),
        }];
        let plain = PlainProject {
            project: "pretalx",
            successes: &read,
            validators: &validators,
            rows: &rows,
        };
        write(&plain, first).await;
        let unchanged = [SourceSuccess {
            source: SourceKind::Pypi,
            resolved_url: None,
            attribution_rule: None,
        }];
        let nothing = ReleaseRows::default();
        let again = PlainProject {
            project: "pretalx",
            successes: &unchanged,
            validators: &[],
            rows: &nothing,
        };
        write(&again, first + chrono::Duration::hours(1)).await;
        state(store).await
    }

    async fn open(dir: &tempfile::TempDir, name: &str) -> Store {
        let url = format!("sqlite://{}", dir.path().join(name).display());
        Store::open(&url).await.expect("open")
    }

    /// The one command writes what the statements one by one write, and a `304` keeps the
    /// baseline, the attribution rule and the resolved URL of the first fetch.
    #[tokio::test]
    async fn one_command_writes_what_the_steps_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let at_once = open(&dir, "at-once.db").await;
        let mut book = at_once.project_book();
        let once = two_writes(&at_once, async |plain, now| {
            book.write(plain, now).await.expect("book");
        })
        .await;
        let steps = open(&dir, "steps.db").await;
        let stepped = two_writes(&steps, async |plain, now| {
            write_in_steps(&steps, plain, now).await.expect("steps");
        })
        .await;
        assert_eq!(once, stepped);
        let source = &once[0];
        assert!(
            source.contains("baseline Some(2026-07-08T12:00:00Z)")
                && source.contains("success Some(2026-07-08T13:00:00Z)")
                && source.contains("rule 1")
                && source.contains("url Some(\"https://pypi.org/simple/pretalx/\")"),
            "{source}"
        );
        assert!(
            once.iter()
                .any(|l| l.starts_with("https://pypi.org/simple/pretalx/ ")
                    && l.contains("etag: Some")),
            "{once:?}"
        );
        assert!(once.iter().any(|l| l.starts_with("2.3.1 ")), "{once:?}");
    }
}
