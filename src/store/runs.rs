//! Check runs and the run lease that keeps two checks from overlapping.
//!
//! On SQLite the lease is the `run_lease` row: taken when free, expired or held by a dead
//! process on this host, renewed by pushing its expiry. On PostgreSQL what decides is a session
//! advisory lock (`pg_try_advisory_lock`) held on a connection of its own, outside the pool,
//! for as long as the lease is held: when the holder dies its session ends and the server
//! frees the lock, so another instance takes the lease at once. The `run_lease` row is kept up
//! to date beside it, to say who holds the lease.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sqlx::{Connection, PgConnection, PgPool};

use super::db::{Db, Ts, on_db};
use super::{Store, StoreError};

/// The advisory lock key of the run lease on PostgreSQL ("Herald" and 1).
const LEASE_LOCK_KEY: i64 = 0x4865_7261_6c64_0001;

/// The connection holding the run lease's advisory lock on PostgreSQL, with its holder; shared
/// by every clone of a [`Store`]. Empty on SQLite and while no lease is held.
pub(crate) type LeaseConn = Arc<tokio::sync::Mutex<Option<(String, PgConnection)>>>;

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
    /// Takes the run lease for `ttl` unless another live holder has it. On SQLite a holder on
    /// this host whose process has died loses the lease at once; elsewhere it expires after
    /// `ttl`. On PostgreSQL a holder whose session has ended loses it at once (see the module).
    pub async fn acquire_lease(
        &self,
        holder: &str,
        this_host: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        match self.pool() {
            Db::Postgres(pool) => self.acquire_lock(pool, holder, this_host, now, ttl).await,
            Db::Sqlite(_) => self.acquire_row(holder, this_host, now, ttl).await,
        }
    }

    /// The lease as the `run_lease` row alone (SQLite).
    async fn acquire_row(
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
        for _ in 0..2 {
            let mut tx = self.begin().await?;
            let current = current_lease(&mut tx).await?;
            let dead_holder = match &current {
                Some((h, _, _)) if holder_is_dead(h, this_host) => h.clone(),
                _ => String::new(),
            };
            let taken = on_db!(tx.conn(), |c| sqlx::query(TAKE)
                .bind(holder)
                .bind(Ts(now))
                .bind(Ts(now + ttl))
                .bind(&dead_holder)
                .execute(&mut *c)
                .await?
                .rows_affected());
            if taken == 1 {
                tx.commit().await?;
                return Ok(LeaseOutcome::Acquired);
            }
            tx.rollback().await?;
            if let Some((holder, since, expires_at)) = current {
                return Ok(LeaseOutcome::Held {
                    holder,
                    since,
                    expires_at,
                });
            }
        }
        Err(StoreError::Corrupt {
            column: "run_lease",
            detail: "lease neither taken nor held".into(),
        })
    }

    /// The lease as an advisory lock on a connection of its own (PostgreSQL). The row is
    /// written once the lock is ours: it only says who holds it. When this process already
    /// holds the lock, the row decides between its holders as on SQLite (see [`hand_over`]).
    async fn acquire_lock(
        &self,
        pool: &PgPool,
        holder: &str,
        this_host: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        const LOCK: &str = "SELECT pg_try_advisory_lock($1)";
        let mut slot = self.lease.lock().await;
        if let Some((held_by, conn)) = slot.as_mut() {
            match sqlx::query_as(CURRENT).fetch_optional(&mut *conn).await {
                Ok(row) => return hand_over(conn, held_by, row, holder, this_host, now, ttl).await,
                // The session is gone, and the server has freed its lock with it.
                Err(_) => *slot = None,
            }
        }
        let options = (*pool.connect_options())
            .clone()
            .application_name("herald run lease");
        let mut conn = PgConnection::connect_with(&options).await?;
        let locked: bool = sqlx::query_scalar(LOCK)
            .bind(LEASE_LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if !locked {
            conn.close().await?;
            drop(slot);
            return self.lease_holder(now, ttl).await;
        }
        record_holder(&mut conn, holder, now, ttl).await?;
        *slot = Some((holder.to_string(), conn));
        Ok(LeaseOutcome::Acquired)
    }

    /// Who holds the lease another session has locked, as its row says. The holder writes its
    /// row just after taking the lock: until then the lease is shown as held from `now`.
    async fn lease_holder(
        &self,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let current = current_lease(&mut tx).await?;
        tx.rollback().await?;
        let (holder, since, expires_at) =
            current.unwrap_or_else(|| ("(being taken)".to_string(), now, now + ttl));
        Ok(LeaseOutcome::Held {
            holder,
            since,
            expires_at,
        })
    }

    /// Extends the lease; false when it is no longer ours. On PostgreSQL the lease is ours as
    /// long as the connection holding its lock still answers.
    pub async fn renew_lease(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE run_lease SET expires_at = $1 WHERE id = 1 AND holder = $2";
        let Db::Postgres(_) = self.pool() else {
            let renewed = on_db!(self.pool(), |c| sqlx::query(SQL)
                .bind(Ts(now + ttl))
                .bind(holder)
                .execute(c)
                .await?
                .rows_affected());
            return Ok(renewed == 1);
        };
        let mut slot = self.lease.lock().await;
        let Some((_, conn)) = slot.as_mut().filter(|(h, _)| h == holder) else {
            return Ok(false);
        };
        let answered = sqlx::query(SQL)
            .bind(Ts(now + ttl))
            .bind(holder)
            .execute(&mut *conn)
            .await;
        if answered.is_err() {
            // The session is gone, and the server has freed its lock with it.
            *slot = None;
            return Ok(false);
        }
        Ok(true)
    }

    /// Gives the lease up. On PostgreSQL the row goes first, then the lock and its connection,
    /// so the next holder's row is never overwritten by this one's.
    pub async fn release_lease(&self, holder: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM run_lease WHERE id = 1 AND holder = $1";
        const UNLOCK: &str = "SELECT pg_advisory_unlock($1)";
        let held = {
            let mut slot = self.lease.lock().await;
            let ours = matches!(slot.as_ref(), Some((h, _)) if h == holder);
            if ours { slot.take() } else { None }
        };
        if let Some((_, mut conn)) = held {
            let released = async {
                sqlx::query(SQL).bind(holder).execute(&mut conn).await?;
                sqlx::query_scalar::<_, bool>(UNLOCK)
                    .bind(LEASE_LOCK_KEY)
                    .fetch_one(&mut conn)
                    .await?;
                conn.close().await
            }
            .await;
            if released.is_ok() {
                return Ok(());
            }
            // The lock went with the session; the row is removed through the pool below.
        }
        on_db!(self.pool(), |c| sqlx::query(SQL)
            .bind(holder)
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Records the start of a run. On PostgreSQL the lease row, when this process holds the
    /// lease, names the run.
    pub async fn start_run(&self, trigger: &str, now: DateTime<Utc>) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO runs (started_at, trigger) VALUES ($1, $2) RETURNING id";
        const NAME_RUN: &str = "UPDATE run_lease SET run_id = $1 WHERE id = 1 AND holder = $2";
        let id: i64 = on_db!(self.pool(), |c| sqlx::query_scalar(SQL)
            .bind(Ts(now))
            .bind(trigger)
            .fetch_one(c)
            .await?);
        if let Some((holder, conn)) = self.lease.lock().await.as_mut() {
            sqlx::query(NAME_RUN)
                .bind(id)
                .bind(holder.as_str())
                .execute(&mut *conn)
                .await?;
        }
        Ok(id)
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
        on_db!(self.pool(), |c| sqlx::query(SQL)
            .bind(Ts(now))
            .bind(status)
            .bind(summary.to_string())
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The most recent runs, newest first.
    pub async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        const SQL: &str = "SELECT id, started_at, finished_at, trigger, status, summary FROM runs ORDER BY id DESC LIMIT $1";
        type Row = (i64, Ts, Option<Ts>, String, String, Option<String>);
        let rows: Vec<Row> = on_db!(self.pool(), |c| sqlx::query_as(SQL)
            .bind(limit)
            .fetch_all(c)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(id, started, finished, trigger, status, summary)| RunRow {
                id,
                started_at: started.0,
                finished_at: finished.map(Into::into),
                trigger,
                status,
                summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
            })
            .collect())
    }
}

/// The `run_lease` row.
const CURRENT: &str = "SELECT holder, acquired_at, expires_at FROM run_lease WHERE id = 1";

/// Writes the lease row for a new holder, on the connection holding the lock (PostgreSQL).
async fn record_holder(
    conn: &mut PgConnection,
    holder: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<(), StoreError> {
    const RECORD: &str = "INSERT INTO run_lease (id, holder, run_id, acquired_at, expires_at) \
         VALUES (1, $1, NULL, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, run_id = NULL, \
            acquired_at = excluded.acquired_at, expires_at = excluded.expires_at";
    sqlx::query(RECORD)
        .bind(holder)
        .bind(Ts(now))
        .bind(Ts(now + ttl))
        .execute(conn)
        .await?;
    Ok(())
}

/// A run of this process asks for the lease another run of this process holds (PostgreSQL):
/// the lock stays with this process's session, and the row decides as on SQLite. The new run
/// takes over when the row has expired or names a dead process on this host (or is gone);
/// otherwise the lease is held.
async fn hand_over(
    conn: &mut PgConnection,
    held_by: &mut String,
    row: Option<(String, Ts, Ts)>,
    holder: &str,
    this_host: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<LeaseOutcome, StoreError> {
    match row {
        Some((current, since, until))
            if current == *held_by && until.0 >= now && !holder_is_dead(&current, this_host) =>
        {
            Ok(LeaseOutcome::Held {
                holder: current,
                since: since.0,
                expires_at: until.0,
            })
        }
        _ => {
            record_holder(conn, holder, now, ttl).await?;
            *held_by = holder.to_string();
            Ok(LeaseOutcome::Acquired)
        }
    }
}

/// The `run_lease` row: holder, since, until.
async fn current_lease(
    tx: &mut super::Tx,
) -> Result<Option<(String, DateTime<Utc>, DateTime<Utc>)>, StoreError> {
    let row: Option<(String, Ts, Ts)> = on_db!(tx.conn(), |c| sqlx::query_as(CURRENT)
        .fetch_optional(&mut *c)
        .await?);
    Ok(row.map(|(holder, since, until)| (holder, since.0, until.0)))
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
        (m.runs, m.sources, m.releases) = on_db!(self.pool(), |c| (
            sqlx::query_as(RUNS).fetch_all(c).await?,
            sqlx::query_as(SOURCES).bind(Ts(now)).fetch_all(c).await?,
            sqlx::query_scalar(RELEASES).fetch_one(c).await?,
        ));
        m.outbox = self.outbox_counts().await?;
        Ok(m)
    }
}
