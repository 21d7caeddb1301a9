//! What `herald status` reads beyond runs and source states: the outbox's oldest waiting
//! message, dead letters since the previous look, and the record of that look.

use super::db::{Ts, on_db};
use super::{Store, StoreError};
use chrono::{DateTime, Utc};

/// Outbox facts for a health report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OutboxHealth {
    /// When the oldest message still waiting to be sent (queued, sending or retrying) was queued.
    pub oldest_waiting_since: Option<DateTime<Utc>>,
    /// Messages dead-lettered after the previous look (all of them when there was none).
    pub dead_since_last_look: i64,
    /// The previous look.
    pub last_look_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The outbox's oldest waiting message and the dead letters since the previous look.
    pub async fn outbox_health(&self) -> Result<OutboxHealth, StoreError> {
        const LOOK: &str = "SELECT looked_at FROM status_look WHERE id = 1";
        const OLDEST: &str = "SELECT MIN(created_at) FROM outbox \
             WHERE status IN ('queued', 'sending', 'retrying')";
        const DEAD: &str = "SELECT COUNT(*) FROM outbox WHERE status = 'dead' \
             AND ($1 IS NULL OR updated_at > $1)";
        let (look, oldest, dead) = on_db!(self.pool(), |c| {
            let look: Option<Ts> = sqlx::query_scalar(LOOK).fetch_optional(c).await?;
            let oldest: Option<Ts> = sqlx::query_scalar(OLDEST).fetch_one(c).await?;
            let dead: i64 = sqlx::query_scalar(DEAD).bind(look).fetch_one(c).await?;
            (look, oldest, dead)
        });
        Ok(OutboxHealth {
            oldest_waiting_since: oldest.map(Into::into),
            dead_since_last_look: dead,
            last_look_at: look.map(Into::into),
        })
    }

    /// Records that the outbox was looked at `now`.
    pub async fn record_status_look(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO status_look (id, looked_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET looked_at = excluded.looked_at";
        on_db!(self.pool(), |c| sqlx::query(SQL)
            .bind(Ts(now))
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }
}
