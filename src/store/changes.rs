//! The change marker behind the web service's conditional answers: a counter that grows with
//! every write to releases, evidence and per-version metadata, with the time of the last one.
//! Owns reading it and, on SQLite, counting a change ([`mark_changed!`]); does not own what a
//! change means to a page (`http`).
//!
//! Who counts: on PostgreSQL, statement triggers in the schema. SQLite has only row triggers,
//! which cost an `UPDATE` of the marker per written row (a first check writes two rows per
//! release), so there each statement of the store that writes one of the three tables ends
//! with [`mark_changed!`]: one `UPDATE` per statement, when it changed a row. A new statement
//! writing them must do the same; `tests/it/pages.rs` checks the pages follow a check's writes, and this module's tests each writing statement.

use chrono::{DateTime, Utc};

use super::db::on_db;
use super::{Store, StoreError};

/// Appended (with `concat!`) to a SQLite statement that writes `releases`, `evidence` or
/// `release_metadata`: a second statement in the same command, which counts the change when
/// the first changed a row (`changes()` is that statement's count). The command's
/// `rows_affected` then includes the marker's row; a caller reading rows from the first
/// statement must read them all (`fetch_all`), or the second does not run.
macro_rules! mark_changed {
    () => {
        "; UPDATE change_marker SET serial = serial + 1, changed_at = unixepoch('subsec') \
         WHERE id = 1 AND changes() > 0"
    };
}
pub(crate) use mark_changed;

/// The last recorded change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Grows with every change; equal serials mean nothing changed in between.
    pub serial: i64,
    /// When the last change was written (the database's clock).
    pub at: DateTime<Utc>,
}

impl Store {
    /// The last recorded change to what the pages and feeds show.
    pub async fn last_change(&self) -> Result<Change, StoreError> {
        const SQL: &str = "SELECT serial, changed_at FROM change_marker WHERE id = 1";
        let (serial, seconds): (i64, f64) =
            on_db!(self.pool(), |c| sqlx::query_as(SQL).fetch_one(c).await?);
        let at =
            DateTime::from_timestamp_micros((seconds * 1e6).round() as i64).ok_or_else(|| {
                StoreError::Corrupt {
                    column: "change_marker.changed_at",
                    detail: format!("{seconds} is not a time"),
                }
            })?;
        Ok(Change { serial, at })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use pep440_rs::Version;

    use super::super::{
        EvidenceWrite, ReleaseWrite, Tx, mark_alerts_done, put_release_doc, withdraw_rejected,
        write_releases,
    };
    use super::*;
    use crate::model::{Observation, ReleaseClass, ReleaseMetadata, SourceKind};

    const NOW: &str = "2026-07-08T12:00:00Z";

    async fn serial(store: &Store) -> i64 {
        store.last_change().await.expect("marker").serial
    }

    /// Writes pretalx 2.3.1 with one GitHub observation, as a check does; its row id.
    async fn write(store: &Store, observation: &Observation) -> i64 {
        let now: DateTime<Utc> = NOW.parse().expect("ts");
        let evidence = [EvidenceWrite {
            kind: SourceKind::Github,
            observation,
            inherited: false,
        }];
        let known = store.known_releases("pretalx").await.expect("known");
        let mut tx = store.begin().await.expect("tx");
        let write = ReleaseWrite {
            version: &observation.version,
            key: "2.3.1",
            class: ReleaseClass::Bugfix,
            line: "2.3",
            primary_published_at: Some(now),
            other_published_at: None,
            available_at: Some(now),
            yanked: None,
            baseline: true,
            new_in_run: None,
            attributed: true,
            evidence: &evidence,
        };
        let ids = write_releases(&mut tx, "pretalx", &known, &[write], now)
            .await
            .expect("write");
        tx.commit().await.expect("commit");
        ids[0]
    }

    async fn withdraw(tx: &mut Tx, spelling: &str) -> usize {
        let now: DateTime<Utc> = NOW.parse().expect("ts");
        let rejected = [(spelling.to_string(), "not ours".to_string())];
        withdraw_rejected(tx, "pretalx", SourceKind::Github, &rejected, now)
            .await
            .expect("withdraw")
            .len()
    }

    /// Each statement that writes what pages show counts one change when it changes a row,
    /// none when it changes nothing; a write pages do not show counts none.
    #[tokio::test]
    async fn every_writing_statement_counts_a_change_once_and_only_when_it_changed_rows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("herald.db").display());
        let store = Store::open(&url).await.expect("open");
        let now: DateTime<Utc> = NOW.parse().expect("ts");
        let start = serial(&store).await;

        let version = Version::from_str("2.3.1").expect("version");
        let mut observation = Observation::new("v2.3.1", version);
        // A new release and its evidence: two statements, each one change.
        let id = write(&store, &observation).await;
        assert_eq!(serial(&store).await, start + 2);
        // The same again writes nothing and counts nothing.
        write(&store, &observation).await;
        assert_eq!(serial(&store).await, start + 2);
        // Only the evidence changed: one statement.
        observation.notes = Some("Fixed a crash.".into());
        write(&store, &observation).await;
        assert_eq!(serial(&store).await, start + 3);

        let mut tx = store.begin().await.expect("tx");
        put_release_doc(
            &mut tx,
            "pretalx",
            "2.3.1",
            &ReleaseMetadata::default(),
            now,
        )
        .await
        .expect("metadata");
        assert_eq!(withdraw(&mut tx, "v9").await, 0);
        tx.commit().await.expect("commit");
        assert_eq!(
            serial(&store).await,
            start + 4,
            "metadata: one; no withdrawal: none"
        );

        let mut tx = store.begin().await.expect("tx");
        assert_eq!(
            withdraw(&mut tx, "v2.3.1").await,
            1,
            "its rows are all read"
        );
        mark_alerts_done(&mut tx, id, now)
            .await
            .expect("alerts done");
        tx.commit().await.expect("commit");
        assert_eq!(
            serial(&store).await,
            start + 5,
            "withdrawal: one; alerts done: none"
        );
    }
}
