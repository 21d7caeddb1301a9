//! Operator inventories, per-version metadata and the compatibility verdicts last sent.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::changes::mark_changed;
use super::db::{Db, Ts, no_nul, on_db};
use super::{Store, StoreError, Tx};
use crate::model::{ReleaseMetadata, Vulnerability};

/// One operator's inventory: project -> installed version.
pub type InventoryMap = BTreeMap<String, String>;

fn corrupt(column: &'static str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        column,
        detail: err.to_string(),
    }
}

impl Store {
    /// Replaces a subscriber's inventory.
    pub async fn set_inventory(
        &self,
        subscriber_id: i64,
        items: &InventoryMap,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // PostgreSQL: the subscriber's row is locked first, so two processes replacing the
        // same inventory take turns instead of interleaving their deletes and inserts.
        const LOCK_PG: &str = "SELECT id FROM subscribers WHERE id = $1 FOR NO KEY UPDATE";
        const CLEAR: &str = "DELETE FROM inventory WHERE subscriber_id = $1";
        const ADD: &str = "INSERT INTO inventory (subscriber_id, project, version, updated_at) VALUES ($1, $2, $3, $4)";
        let mut tx = self.begin().await?;
        if let Db::Postgres(c) = tx.conn() {
            sqlx::query(LOCK_PG)
                .bind(subscriber_id)
                .fetch_optional(&mut *c)
                .await?;
        }
        on_db!(tx.conn(), |c| {
            sqlx::query(CLEAR)
                .bind(subscriber_id)
                .execute(&mut *c)
                .await?;
            for (project, version) in items {
                sqlx::query(ADD)
                    .bind(subscriber_id)
                    .bind(project)
                    .bind(version)
                    .bind(Ts(now))
                    .execute(&mut *c)
                    .await?;
            }
        });
        tx.commit().await?;
        Ok(())
    }

    /// Every confirmed subscriber's inventory, by subscriber id.
    pub async fn inventories(&self) -> Result<BTreeMap<i64, InventoryMap>, StoreError> {
        const SQL: &str = "SELECT i.subscriber_id, i.project, i.version FROM inventory i \
             JOIN subscribers s ON s.id = i.subscriber_id WHERE s.status = 'confirmed' ORDER BY i.subscriber_id";
        let rows: Vec<(i64, String, String)> =
            on_db!(self.pool(), |c| sqlx::query_as(SQL).fetch_all(c).await?);
        let mut out: BTreeMap<i64, InventoryMap> = BTreeMap::new();
        for (id, project, version) in rows {
            out.entry(id).or_default().insert(project, version);
        }
        Ok(out)
    }

    /// Stored per-version metadata, if fetched.
    pub async fn release_doc(
        &self,
        project: &str,
        version_key: &str,
    ) -> Result<Option<ReleaseMetadata>, StoreError> {
        const SQL: &str = "SELECT requires_dist, requires_python, vulnerabilities FROM release_metadata \
             WHERE project = $1 AND version_key = $2";
        let row: Option<(Option<String>, Option<String>, String)> =
            on_db!(self.pool(), |c| sqlx::query_as(SQL)
                .bind(project)
                .bind(version_key)
                .fetch_optional(c)
                .await?);
        let Some((dist, requires_python, vulns)) = row else {
            return Ok(None);
        };
        Ok(Some(ReleaseMetadata {
            requires_dist: dist
                .map(|d| serde_json::from_str(&d))
                .transpose()
                .map_err(|e| corrupt("release_metadata.requires_dist", e))?,
            requires_python,
            vulnerabilities: serde_json::from_str::<Vec<Vulnerability>>(&vulns)
                .map_err(|e| corrupt("release_metadata.vulnerabilities", e))?,
        }))
    }

    /// Releases found new whose operator alerts are not decided yet.
    pub async fn releases_pending_alerts(&self) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT id FROM releases WHERE new_in_run IS NOT NULL AND alerts_done_at IS NULL \
             AND withdrawn_at IS NULL ORDER BY id";
        Ok(on_db!(self.pool(), |c| sqlx::query_scalar(SQL)
            .fetch_all(c)
            .await?))
    }

    /// The verdicts each operator was last sent, by (subscriber, core release).
    pub async fn compat_states(
        &self,
    ) -> Result<BTreeMap<(OperatorKey, i64), BTreeMap<String, String>>, StoreError> {
        const SUBSCRIBERS: &str =
            "SELECT subscriber_id, core_release_id, verdicts FROM compat_state";
        const CHANNELS: &str =
            "SELECT channel, core_release_id, verdicts FROM channel_compat_state";
        // (subscriber or channel, core release, verdicts as JSON).
        type Rows<K> = Vec<(K, i64, String)>;
        let (subscribers, channels): (Rows<i64>, Rows<String>) = on_db!(self.pool(), |c| (
            sqlx::query_as(SUBSCRIBERS).fetch_all(c).await?,
            sqlx::query_as(CHANNELS).fetch_all(c).await?,
        ));
        let mut out = BTreeMap::new();
        for (id, core, text) in subscribers {
            out.insert(
                (OperatorKey::Subscriber(id), core),
                serde_json::from_str(&text).map_err(|e| corrupt("compat_state.verdicts", e))?,
            );
        }
        for (channel, core, text) in channels {
            out.insert(
                (OperatorKey::Channel(channel), core),
                serde_json::from_str(&text)
                    .map_err(|e| corrupt("channel_compat_state.verdicts", e))?,
            );
        }
        Ok(out)
    }
}

/// Whose compatibility verdicts: a subscriber's (by mail) or a channel's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum OperatorKey {
    /// A subscriber with an inventory.
    Subscriber(i64),
    /// A channel with an inventory, by name.
    Channel(String),
}

/// Stores per-version metadata, inside a transaction (one upsert: safe beside another writer).
pub async fn put_release_doc(
    conn: &mut Tx,
    project: &str,
    version_key: &str,
    doc: &ReleaseMetadata,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    /// The same on both backends but for SQLite's own count of the change.
    macro_rules! upsert {
        () => {
            "INSERT INTO release_metadata (project, version_key, requires_dist, requires_python, \
            vulnerabilities, fetched_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (project, version_key) DO UPDATE SET requires_dist = excluded.requires_dist, \
            requires_python = excluded.requires_python, vulnerabilities = excluded.vulnerabilities, \
            fetched_at = excluded.fetched_at"
        };
    }
    const SQL: &str = concat!(upsert!(), mark_changed!());
    const SQL_PG: &str = upsert!();
    let dist = doc
        .requires_dist
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| corrupt("release_metadata.requires_dist", e))?;
    let vulns = serde_json::to_string(&doc.vulnerabilities)
        .map_err(|e| corrupt("release_metadata.vulnerabilities", e))?;
    on_db!(conn.conn(), |c, d| sqlx::query(d.pick(SQL, SQL_PG))
        .bind(project)
        .bind(version_key)
        .bind(dist)
        .bind(doc.requires_python.as_deref().map(no_nul))
        .bind(vulns)
        .bind(Ts(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}

/// Records the verdicts sent to an operator for a core release (one upsert).
pub async fn put_compat_state(
    conn: &mut Tx,
    operator: &OperatorKey,
    core_release_id: i64,
    verdicts: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SUBSCRIBER: &str = "INSERT INTO compat_state (subscriber_id, core_release_id, verdicts, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (subscriber_id, core_release_id) DO UPDATE SET verdicts = excluded.verdicts, updated_at = excluded.updated_at";
    const CHANNEL: &str = "INSERT INTO channel_compat_state (channel, core_release_id, verdicts, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (channel, core_release_id) DO UPDATE SET verdicts = excluded.verdicts, updated_at = excluded.updated_at";
    let text = serde_json::to_string(verdicts).map_err(|e| corrupt("compat_state.verdicts", e))?;
    on_db!(conn.conn(), |c| {
        let query = match operator {
            OperatorKey::Subscriber(id) => sqlx::query(SUBSCRIBER).bind(*id),
            OperatorKey::Channel(name) => sqlx::query(CHANNEL).bind(name.clone()),
        };
        query
            .bind(core_release_id)
            .bind(text)
            .bind(Ts(now))
            .execute(&mut *c)
            .await?
            .rows_affected()
    });
    Ok(())
}

/// Marks a release's alerts as decided.
pub async fn mark_alerts_done(
    conn: &mut Tx,
    release_id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE releases SET alerts_done_at = $1 WHERE id = $2";
    on_db!(conn.conn(), |c| sqlx::query(SQL)
        .bind(Ts(now))
        .bind(release_id)
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `release_metadata` row as earlier versions wrote it (the index's own vulnerability
    /// records, every field present) still reads, and reads the same once written back.
    #[tokio::test]
    async fn release_metadata_rows_written_before_keep_reading() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("herald.db").display());
        let store = Store::open(&url).await.expect("open");
        const OLD_ROW: &str = "INSERT INTO release_metadata (project, version_key, requires_dist, \
             requires_python, vulnerabilities, fetched_at) VALUES ('pretalx', '2.3.1', \
             '[\"Django>=4.2\"]', '>=3.9', $1, '2026-07-08T12:00:00.000000Z')";
        let vulns = r#"[{"id":"PYSEC-2023-41","aliases":["CVE-2023-28458"],"summary":null,"fixed_in":["2.3.2"],"link":"https://osv.dev/vulnerability/PYSEC-2023-41","withdrawn":null},{"id":"GHSA-wh3w-jcc7-mhmf"}]"#;
        on_db!(store.pool(), |c| sqlx::query(OLD_ROW)
            .bind(vulns)
            .execute(c)
            .await
            .expect("old row")
            .rows_affected());
        let read = store
            .release_doc("pretalx", "2.3.1")
            .await
            .expect("reads")
            .expect("row");
        assert_eq!(read.requires_dist, Some(vec!["Django>=4.2".to_string()]));
        assert_eq!(read.requires_python.as_deref(), Some(">=3.9"));
        assert_eq!(read.vulnerabilities.len(), 2);
        assert_eq!(read.vulnerabilities[0].fixed_in, ["2.3.2"]);
        assert_eq!(read.vulnerabilities[1].aliases, Vec::<String>::new());
        let now: DateTime<Utc> = "2026-07-09T12:00:00Z".parse().expect("ts");
        let mut tx = store.begin().await.expect("tx");
        put_release_doc(&mut tx, "pretalx", "2.3.1", &read, now)
            .await
            .expect("write back");
        tx.commit().await.expect("commit");
        let again = store.release_doc("pretalx", "2.3.1").await.expect("reads");
        assert_eq!(again, Some(read));
    }
}
