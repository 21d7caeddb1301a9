//! Channel deliveries in the outbox (webhook, Matrix, Slack-compatible, Discord, ntfy) and
//! the state of each channel: whether a `410 Gone` disabled it. The outbox rows themselves are
//! claimed, retried and dead-lettered by the statements of `outbox`, like mail.

use std::collections::BTreeMap;

use super::db::{Ts, no_nul, on_db};
use super::{Store, StoreError, Tx};
use chrono::{DateTime, Utc};

/// A channel delivery to queue.
#[derive(Debug, Clone)]
pub struct ChannelDelivery<'a> {
    /// The channel's name.
    pub channel: &'a str,
    /// What it says: `release`, `compat_report`, `compat_followup`, `bugfix_advice`, `test`.
    pub kind: &'a str,
    /// One delivery per channel and subject key.
    pub subject_key: &'a str,
    /// What to render.
    pub payload: &'a serde_json::Value,
    /// The delivery id receivers deduplicate on (webhook-id, Matrix txnId, ntfy sequence id).
    pub delivery_id: &'a str,
}

/// A channel a `410 Gone` disabled.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DisabledChannel {
    /// Since when.
    pub since: DateTime<Utc>,
    /// The receiver's answer.
    pub reason: String,
}

/// Queues a channel delivery in the caller's transaction unless one for the same channel and
/// subject key exists; its row id when queued.
pub async fn enqueue_channel_in(
    conn: &mut Tx,
    d: &ChannelDelivery<'_>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    const SQL: &str = "INSERT INTO outbox (subscriber_id, recipient, channel, kind, subject_key, payload, \
            message_id, next_attempt_at, created_at, updated_at) \
         VALUES (NULL, $1, $1, $2, $3, $4, $5, $6, $6, $6) \
         ON CONFLICT (recipient, subject_key) DO NOTHING RETURNING id";
    Ok(on_db!(conn.conn(), |c| sqlx::query_scalar(SQL)
        .bind(d.channel)
        .bind(d.kind)
        .bind(d.subject_key)
        .bind(d.payload.to_string())
        .bind(d.delivery_id)
        .bind(Ts(now))
        .fetch_optional(&mut *c)
        .await?))
}

impl Store {
    /// Queues one channel delivery in a transaction of its own; its row id when queued.
    pub async fn enqueue_channel(
        &self,
        d: &ChannelDelivery<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin().await?;
        let id = enqueue_channel_in(&mut tx, d, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Disables a channel (its receiver answered `410 Gone`).
    pub async fn disable_channel(
        &self,
        name: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO channel_state (name, disabled_at, disabled_reason, updated_at) \
             VALUES ($1, $2, $3, $2) ON CONFLICT (name) DO UPDATE SET \
             disabled_at = excluded.disabled_at, disabled_reason = excluded.disabled_reason, \
             updated_at = excluded.updated_at";
        on_db!(self.pool(), |c| sqlx::query(SQL)
            .bind(name)
            .bind(Ts(now))
            .bind(no_nul(reason))
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Enables a channel again (a test notification went through).
    pub async fn enable_channel(&self, name: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE channel_state SET disabled_at = NULL, disabled_reason = NULL, \
             updated_at = $2 WHERE name = $1";
        on_db!(self.pool(), |c| sqlx::query(SQL)
            .bind(name)
            .bind(Ts(now))
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The disabled channels, by name.
    pub async fn disabled_channels(&self) -> Result<BTreeMap<String, DisabledChannel>, StoreError> {
        const SQL: &str = "SELECT name, disabled_at, disabled_reason FROM channel_state \
             WHERE disabled_at IS NOT NULL ORDER BY name";
        let rows: Vec<(String, Ts, Option<String>)> =
            on_db!(self.pool(), |c| sqlx::query_as(SQL).fetch_all(c).await?);
        Ok(rows
            .into_iter()
            .map(|(name, since, reason)| {
                let since = since.into();
                let reason = reason.unwrap_or_default();
                (name, DisabledChannel { since, reason })
            })
            .collect())
    }

    /// Outbox rows per channel (`mail` for mail) and state.
    pub async fn outbox_counts_by_channel(
        &self,
    ) -> Result<BTreeMap<(String, String), i64>, StoreError> {
        const SQL: &str = "SELECT COALESCE(channel, '') AS channel, status, COUNT(*) AS n \
             FROM outbox GROUP BY channel, status";
        let rows: Vec<(String, String, i64)> =
            on_db!(self.pool(), |c| sqlx::query_as(SQL).fetch_all(c).await?);
        Ok(rows
            .into_iter()
            .map(|(channel, status, n)| ((channel, status), n))
            .collect())
    }
}
