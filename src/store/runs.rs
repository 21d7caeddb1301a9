//! Check runs and the run lease that keeps two checks from overlapping.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use super::{Store, StoreError, parse_ts, parse_ts_opt, ts};

/// What happened when a run asked for the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The lease is ours.
    Acquired,
    /// Another run holds it.
    Held {
        /// Who holds it (`host:pid:nonce`).
        holder: String,
        /// Since when.
        since: DateTime<Utc>,
        /// Until when, unless renewed.
        expires_at: DateTime<Utc>,
    },
}

/// A recorded run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    /// Run id.
    pub id: i64,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End, when finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// `check`, `serve`, ...
    pub trigger: String,
    /// `running`, `ok`, `partial` or `failed`.
    pub status: String,
    /// The JSON summary.
    pub summary: Option<serde_json::Value>,
}

/// This host's name, for lease and claim holders (`host:pid:...`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(':'))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether a holder (`host:pid:...`) is a process on this host that no longer runs: its
/// lease or claims are free at once. Holders on other hosts are never judged dead here.
pub(crate) fn holder_is_dead(holder: &str, this_host: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    if host != this_host || pid.parse::<u32>().is_err() {
        return false;
    }
    !std::path::Path::new("/proc").join(pid).exists() && std::path::Path::new("/proc/self").exists()
}

impl Store {
    /// Takes the run lease for `ttl` unless another live holder has it. A holder on this host
    /// whose process has died loses the lease at once; elsewhere it expires after `ttl`.
    pub async fn acquire_lease(
        &self,
        holder: &str,
        this_host: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        const TAKE: &str = "INSERT INTO run_lease (id, holder, acquired_at, expires_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at, \
                expires_at = excluded.expires_at, run_id = NULL \
             WHERE run_lease.expires_at < $2 OR run_lease.holder = $4";
        const CURRENT: &str = "SELECT holder, acquired_at, expires_at FROM run_lease WHERE id = 1";
        for _ in 0..2 {
            let mut tx = self.begin().await?;
            let current = sqlx::query(CURRENT).fetch_optional(&mut *tx).await?;
            let dead_holder = match &current {
                Some(row) => {
                    let h: String = row.try_get("holder")?;
                    if holder_is_dead(&h, this_host) {
                        h
                    } else {
                        String::new()
                    }
                }
                None => String::new(),
            };
            let done = sqlx::query(TAKE)
                .bind(holder)
                .bind(ts(now))
                .bind(ts(now + ttl))
                .bind(&dead_holder)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 {
                tx.commit().await?;
                return Ok(LeaseOutcome::Acquired);
            }
            tx.rollback().await?;
            if let Some(row) = current {
                let acquired: String = row.try_get("acquired_at")?;
                let expires: String = row.try_get("expires_at")?;
                return Ok(LeaseOutcome::Held {
                    holder: row.try_get("holder")?,
                    since: parse_ts("run_lease.acquired_at", &acquired)?,
                    expires_at: parse_ts("run_lease.expires_at", &expires)?,
                });
            }
        }
        Err(StoreError::Corrupt {
            column: "run_lease",
            detail: "lease neither taken nor held".into(),
        })
    }

    /// Extends the lease; false when it is no longer ours.
    pub async fn renew_lease(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE run_lease SET expires_at = $1 WHERE id = 1 AND holder = $2";
        let done = sqlx::query(SQL)
            .bind(ts(now + ttl))
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up.
    pub async fn release_lease(&self, holder: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM run_lease WHERE id = 1 AND holder = $1";
        sqlx::query(SQL).bind(holder).execute(self.pool()).await?;
        Ok(())
    }

    /// Records the start of a run.
    pub async fn start_run(&self, trigger: &str, now: DateTime<Utc>) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO runs (started_at, trigger) VALUES ($1, $2) RETURNING id";
        Ok(sqlx::query_scalar(SQL)
            .bind(ts(now))
            .bind(trigger)
            .fetch_one(self.pool())
            .await?)
    }

    /// Records the end of a run with its summary.
    pub async fn finish_run(
        &self,
        id: i64,
        status: &str,
        summary: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE runs SET finished_at = $1, status = $2, summary = $3 WHERE id = $4";
        sqlx::query(SQL)
            .bind(ts(now))
            .bind(status)
            .bind(summary.to_string())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The most recent runs, newest first.
    pub async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        const SQL: &str = "SELECT id, started_at, finished_at, trigger, status, summary FROM runs ORDER BY id DESC LIMIT $1";
        let mut out = Vec::new();
        for row in sqlx::query(SQL).bind(limit).fetch_all(self.pool()).await? {
            let started: String = row.try_get("started_at")?;
            let finished: Option<String> = row.try_get("finished_at")?;
            let summary: Option<String> = row.try_get("summary")?;
            out.push(RunRow {
                id: row.try_get("id")?,
                started_at: parse_ts("runs.started_at", &started)?,
                finished_at: parse_ts_opt("runs.finished_at", finished.as_deref())?,
                trigger: row.try_get("trigger")?,
                status: row.try_get("status")?,
                summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
            });
        }
        Ok(out)
    }
}

/// Figures for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Runs by status.
    pub runs: Vec<(String, i64)>,
    /// (project, source, consecutive failures, deferred now).
    pub sources: Vec<(String, String, i64, bool)>,
    /// Releases recorded.
    pub releases: i64,
    /// Outbox messages by state.
    pub outbox: std::collections::BTreeMap<String, i64>,
}

impl Store {
    /// Everything `/metrics` reports.
    pub async fn metrics(&self, now: DateTime<Utc>) -> Result<Metrics, StoreError> {
        const RUNS: &str = "SELECT status, COUNT(*) AS n FROM runs GROUP BY status ORDER BY status";
        const SOURCES: &str = "SELECT project, source, consecutive_failures, \
             deferred_until IS NOT NULL AND deferred_until > $1 AS deferred FROM source_state ORDER BY project, source";
        const RELEASES: &str = "SELECT COUNT(*) FROM releases";
        let mut m = Metrics::default();
        for row in sqlx::query(RUNS).fetch_all(self.pool()).await? {
            m.runs.push((row.try_get("status")?, row.try_get("n")?));
        }
        for row in sqlx::query(SOURCES)
            .bind(ts(now))
            .fetch_all(self.pool())
            .await?
        {
            m.sources.push((
                row.try_get("project")?,
                row.try_get("source")?,
                row.try_get("consecutive_failures")?,
                row.try_get("deferred")?,
            ));
        }
        m.releases = sqlx::query_scalar(RELEASES).fetch_one(self.pool()).await?;
        m.outbox = self.outbox_counts().await?;
        Ok(m)
    }
}
