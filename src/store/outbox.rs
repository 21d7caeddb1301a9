//! The outbox: every message, from the transaction that decided it to the server's answer,
//! and the digest items waiting for their period to end.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{Connection, Postgres, Sqlite, SqliteConnection, Transaction};

use super::db::{Conn, Db, Held, Ts, no_nul, on_db};
use super::{Store, StoreError, Tx};

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// The subscriber it is for, if any (test messages have none).
    pub subscriber_id: Option<i64>,
    /// The recipient address (validated).
    pub recipient: &'a str,
    /// Template folder.
    pub kind: &'a str,
    /// One message per recipient and subject key.
    pub subject_key: &'a str,
    /// What to render.
    pub payload: &'a serde_json::Value,
    /// Stable `Message-ID`.
    pub message_id: &'a str,
}

/// A queued, sending, retrying, sent or dead message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// Subscriber.
    pub subscriber_id: Option<i64>,
    pub recipient: String,
    /// Template folder.
    pub kind: String,
    /// Subject key.
    pub subject_key: String,
    /// What to render.
    pub payload: serde_json::Value,
    /// `Message-ID`.
    pub message_id: String,
    /// `queued`, `sending`, `retrying`, `sent` or `dead`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// The server's last answer.
    pub last_response: Option<String>,
    /// Queued when.
    pub created_at: DateTime<Utc>,
    /// Sent when.
    pub sent_at: Option<DateTime<Utc>>,
    /// The channel of a channel delivery (`recipient` is then the same name); `None` for mail.
    pub channel: Option<String>,
}

/// An outbox row as both backends read it; [`OutboxRow`] once its payload is parsed.
#[derive(sqlx::FromRow)]
struct RawOutbox {
    id: i64,
    subscriber_id: Option<i64>,
    recipient: String,
    kind: String,
    subject_key: String,
    payload: String,
    message_id: String,
    status: String,
    attempts: i64,
    next_attempt_at: Ts,
    last_response: Option<String>,
    created_at: Ts,
    sent_at: Option<Ts>,
    channel: Option<String>,
}

impl TryFrom<RawOutbox> for OutboxRow {
    type Error = StoreError;

    fn try_from(row: RawOutbox) -> Result<OutboxRow, StoreError> {
        Ok(OutboxRow {
            id: row.id,
            subscriber_id: row.subscriber_id,
            recipient: row.recipient,
            kind: row.kind,
            subject_key: row.subject_key,
            payload: serde_json::from_str(&row.payload).map_err(|err| StoreError::Corrupt {
                column: "outbox.payload",
                detail: err.to_string(),
            })?,
            message_id: row.message_id,
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at.into(),
            last_response: row.last_response,
            created_at: row.created_at.into(),
            sent_at: row.sent_at.map(Into::into),
            channel: row.channel,
        })
    }
}

/// Records a transient failure and when to try again.
const RETRY: &str = "UPDATE outbox SET status = 'retrying', attempts = attempts + 1, next_attempt_at = $2, \
     updated_at = $3, last_response = $4, claimed_until = NULL, claimed_by = NULL WHERE id = $1";
/// Dead-letters a message with the server's answer.
const DEAD: &str = "UPDATE outbox SET status = 'dead', attempts = attempts + 1, updated_at = $2, \
     last_response = $3, claimed_until = NULL, claimed_by = NULL WHERE id = $1";

/// Queues a message in the caller's transaction unless one with the same recipient and
/// subject key exists; its row id when queued.
pub async fn enqueue_in(
    conn: &mut Tx,
    m: &NewMessage<'_>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    const SQL: &str = "INSERT INTO outbox (subscriber_id, recipient, kind, subject_key, payload, message_id, \
            next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7) \
         ON CONFLICT (recipient, subject_key) DO NOTHING RETURNING id";
    Ok(on_db!(conn.conn(), |c| sqlx::query_scalar(SQL)
        .bind(m.subscriber_id)
        .bind(m.recipient)
        .bind(m.kind)
        .bind(m.subject_key)
        .bind(m.payload.to_string())
        .bind(m.message_id)
        .bind(Ts(now))
        .fetch_optional(&mut *c)
        .await?))
}

/// Queues several messages in the caller's transaction, in order, one statement per
/// thousand; a message whose recipient and subject key are already queued is skipped, as
/// with [`enqueue_in`]. Returns how many were queued.
pub async fn enqueue_all_in(
    conn: &mut Tx,
    messages: &[NewMessage<'_>],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    // `WHERE true` keeps SQLite from reading `ON CONFLICT` as part of the SELECT.
    const SQL: &str = "INSERT INTO outbox (subscriber_id, recipient, kind, subject_key, payload, message_id, \
            next_attempt_at, created_at, updated_at) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, $2, $2, $2 \
         FROM json_each($1) WHERE true ORDER BY key \
         ON CONFLICT (recipient, subject_key) DO NOTHING";
    const SQL_PG: &str = "INSERT INTO outbox (subscriber_id, recipient, kind, subject_key, payload, message_id, \
            next_attempt_at, created_at, updated_at) \
         SELECT (r.value ->> 0)::bigint, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value ->> 4, \
                r.value ->> 5, $2, $2, $2 \
         FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS r(value, n) ORDER BY r.n \
         ON CONFLICT (recipient, subject_key) DO NOTHING";
    let mut queued = 0;
    for chunk in messages.chunks(1000) {
        let rows: Vec<serde_json::Value> = chunk
            .iter()
            .map(|m| {
                serde_json::json!([
                    m.subscriber_id,
                    m.recipient,
                    m.kind,
                    m.subject_key,
                    m.payload.to_string(),
                    m.message_id
                ])
            })
            .collect();
        let rows = serde_json::Value::Array(rows).to_string();
        queued += on_db!(conn.conn(), |c, d| sqlx::query(d.pick(SQL, SQL_PG))
            .bind(&rows)
            .bind(Ts(now))
            .execute(&mut *c)
            .await?
            .rows_affected());
    }
    Ok(queued)
}

/// Ties the items of a due digest to its message (queued now or before, in the caller's
/// transaction), so they are not queued again.
pub async fn mark_digest_queued(
    conn: &mut Tx,
    digest: &DueDigest,
    subject_key: &str,
) -> Result<(), StoreError> {
    const FIND: &str = "SELECT id FROM outbox WHERE recipient = $1 AND subject_key = $2";
    // One statement that re-checks `outbox_id IS NULL`: items another transaction tied
    // meanwhile stay tied to their message.
    const MARK: &str = "UPDATE digest_items SET outbox_id = $1 WHERE subscriber_id = $2 AND period = $3 AND outbox_id IS NULL";
    on_db!(conn.conn(), |c| {
        let id: i64 = sqlx::query_scalar(FIND)
            .bind(&digest.recipient)
            .bind(subject_key)
            .fetch_one(&mut *c)
            .await?;
        sqlx::query(MARK)
            .bind(id)
            .bind(digest.subscriber_id)
            .bind(&digest.period)
            .execute(&mut *c)
            .await?
            .rows_affected()
    });
    Ok(())
}

/// Adds a release to a subscriber's digest period (once).
pub async fn add_digest_item(
    conn: &mut Tx,
    subscriber_id: i64,
    release_id: i64,
    period: &str,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    const SQL: &str = "INSERT INTO digest_items (subscriber_id, release_id, period, due_at, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
    let added = on_db!(conn.conn(), |c| sqlx::query(SQL)
        .bind(subscriber_id)
        .bind(release_id)
        .bind(period)
        .bind(Ts(due_at))
        .bind(Ts(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(added == 1)
}

/// A digest whose period has ended.
#[derive(Debug, Clone)]
pub struct DueDigest {
    /// Subscriber.
    pub subscriber_id: i64,
    /// Their address.
    pub recipient: String,
    /// Period key.
    pub period: String,
    /// The releases it lists.
    pub release_ids: Vec<i64>,
}

/// A relay's answer to one message, to record.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Accepted; `scrub` forgets the payload (a confirmation link must not outlive its mail).
    Sent {
        /// The message.
        id: i64,
        /// The relay's answer.
        response: String,
        /// Forget the payload.
        scrub: bool,
    },
    /// Failed transiently; try again at `next`.
    Retry {
        /// The message.
        id: i64,
        /// The relay's answer.
        response: String,
        /// When to try again.
        next: DateTime<Utc>,
    },
    /// Dead-lettered.
    Dead {
        /// The message.
        id: i64,
        /// The relay's answer or why it was not sent.
        response: String,
    },
}

/// What a dispatcher claims: who, how many, until when (mail beside recorded answers in
/// [`AnswerBook::record`], or through [`Store::claim_due`] and [`Store::claim_due_channels`]).
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// `host:pid:nonce` of the dispatcher.
    pub claimer: &'a str,
    /// At most this many messages.
    pub limit: i64,
    /// Held until then.
    pub until: DateTime<Utc>,
    /// Only this message.
    pub only: Option<i64>,
}

/// What a dispatcher worker claims: mail or channel deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Medium {
    Mail,
    Channels,
}

impl Medium {
    fn as_str(self) -> &'static str {
        match self {
            Medium::Mail => "mail",
            Medium::Channels => "channels",
        }
    }
}

/// Marks the acceptances in a JSON array (`[[id, response, scrub], ...]`, bound at `$json`)
/// as sent at `$1`.
macro_rules! sent_sql {
    ($json:literal) => {
        concat!(
            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = $1, \
         updated_at = $1, last_response = a.response, claimed_until = NULL, claimed_by = NULL, \
         payload = CASE WHEN a.scrub THEN '{}' ELSE outbox.payload END \
         FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS response, \
                      json_extract(value, '$[2]') AS scrub FROM json_each(",
            $json,
            ")) AS a \
         WHERE outbox.id = a.id"
        )
    };
}

/// The rows of one medium: `$m` is `'mail'` or `'channels'`, `$list` a subquery that lists
/// the channels (from a bound JSON array: `json_each` on SQLite, `jsonb_array_elements_text`
/// on PostgreSQL).
macro_rules! medium_sql {
    ($m:literal, $list:literal) => {
        concat!(
            "((",
            $m,
            " = 'mail' AND channel IS NULL) OR (",
            $m,
            " = 'channels' AND channel IN (",
            $list,
            ")))"
        )
    };
}

/// Claims due messages (`$1` now, `$2` until, `$3` limit, `$4` only this id, `$5` claimer,
/// `$6` medium, `$7` channels as a JSON array) and returns them.
macro_rules! claim_sql {
    () => {
        concat!(
            "UPDATE outbox SET status = 'sending', claimed_until = $2, claimed_by = $5, updated_at = $1 \
             WHERE id IN (SELECT id FROM outbox \
                WHERE status IN ('queued', 'retrying', 'sending') \
                  AND ((status IN ('queued', 'retrying') AND next_attempt_at <= $1) \
                    OR (status = 'sending' AND claimed_until < $1)) \
                  AND ($4 IS NULL OR id = $4) AND ",
            medium_sql!("$6", "SELECT value FROM json_each($7)"),
            " ORDER BY next_attempt_at, id LIMIT $3) \
             RETURNING id, subscriber_id, recipient, kind, subject_key, payload, message_id, status, \
             attempts, next_attempt_at, last_response, created_at, sent_at, channel"
        )
    };
}

/// [`sent_sql!`] for PostgreSQL, the array bound at `$2`.
const SENT_PG: &str = "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = $1, \
     updated_at = $1, last_response = a.response, claimed_until = NULL, claimed_by = NULL, \
     payload = CASE WHEN a.scrub THEN '{}' ELSE outbox.payload END \
     FROM (SELECT (r.value ->> 0)::bigint AS id, r.value ->> 1 AS response, \
                  (r.value ->> 2)::boolean AS scrub FROM jsonb_array_elements($2::jsonb) AS r(value)) AS a \
     WHERE outbox.id = a.id";

/// [`claim_sql!`] for PostgreSQL, with the same binds. Several dispatchers share the
/// database: the subquery locks the rows it picks and skips those another transaction holds
/// (`FOR UPDATE SKIP LOCKED`), so two claims never take the same message and neither waits
/// on the other; a row whose claim another transaction changed meanwhile is re-checked
/// against the condition before it is locked.
const CLAIM_PG: &str = concat!(
    "UPDATE outbox SET status = 'sending', claimed_until = $2, claimed_by = $5, updated_at = $1 \
     WHERE id IN (SELECT id FROM outbox \
        WHERE status IN ('queued', 'retrying', 'sending') \
          AND ((status IN ('queued', 'retrying') AND next_attempt_at <= $1) \
            OR (status = 'sending' AND claimed_until < $1)) \
          AND ($4::bigint IS NULL OR id = $4) AND ",
    medium_sql!("$6", "SELECT jsonb_array_elements_text($7::jsonb)"),
    " ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
     RETURNING id, subscriber_id, recipient, kind, subject_key, payload, message_id, status, \
     attempts, next_attempt_at, last_response, created_at, sent_at, channel"
);

/// Claims up to `limit` due messages in the caller's transaction (see [`Store::claim_due`]).
async fn claim_in(
    tx: &mut Tx,
    medium: Medium,
    claim: &Claim<'_>,
    channels: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<OutboxRow>, StoreError> {
    free_dead_holders_in(tx.conn(), medium, channels, now).await?;
    claim_only_in(tx.conn(), medium, claim, channels, now).await
}

/// The rows a claim returned, in the order they were due.
fn claimed_rows(rows: Vec<RawOutbox>) -> Result<Vec<OutboxRow>, StoreError> {
    let mut rows = rows
        .into_iter()
        .map(OutboxRow::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_by_key(|row| (row.next_attempt_at, row.id));
    Ok(rows)
}

/// Claims of dispatchers that died on this host end now, not when they expire: those of
/// `medium` (and `channels`), which the caller claims next in the same transaction. Freeing
/// another medium's rows would leave them to a dispatcher that may already have skipped them
/// (locked, on PostgreSQL) and finished.
async fn free_dead_holders_in(
    conn: Conn<'_>,
    medium: Medium,
    channels: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const HOLDERS: &str = concat!(
        "SELECT DISTINCT claimed_by FROM outbox \
         WHERE status = 'sending' AND claimed_until >= $1 AND claimed_by IS NOT NULL AND ",
        medium_sql!("$2", "SELECT value FROM json_each($3)")
    );
    const HOLDERS_PG: &str = concat!(
        "SELECT DISTINCT claimed_by FROM outbox \
         WHERE status = 'sending' AND claimed_until >= $1 AND claimed_by IS NOT NULL AND ",
        medium_sql!("$2", "SELECT jsonb_array_elements_text($3::jsonb)")
    );
    const FREE: &str = concat!(
        "UPDATE outbox SET claimed_until = $2 WHERE status = 'sending' AND claimed_by = $1 AND ",
        medium_sql!("$3", "SELECT value FROM json_each($4)")
    );
    // Another process may free the same holder at the same moment: the statement re-checks
    // the holder in the row it changes, and skips the rows the other process has locked
    // (it frees or claims them itself), so neither waits and no fresh claim is cut short.
    const FREE_PG: &str = concat!(
        "UPDATE outbox SET claimed_until = $2 WHERE id IN (SELECT id FROM outbox \
         WHERE status = 'sending' AND claimed_by = $1 AND ",
        medium_sql!("$3", "SELECT jsonb_array_elements_text($4::jsonb)"),
        " FOR UPDATE SKIP LOCKED)"
    );
    let this_host = super::host_name();
    let expired = Ts(now - chrono::Duration::microseconds(1));
    let channels = serde_json::to_string(channels).unwrap_or_else(|_| "[]".into());
    on_db!(conn, |c, d| {
        let holders: Vec<String> = sqlx::query_scalar(d.pick(HOLDERS, HOLDERS_PG))
            .bind(Ts(now))
            .bind(medium.as_str())
            .bind(&channels)
            .fetch_all(&mut *c)
            .await?;
        for holder in holders
            .iter()
            .filter(|h| super::runs::holder_is_dead(h, &this_host))
        {
            sqlx::query(d.pick(FREE, FREE_PG))
                .bind(holder)
                .bind(expired)
                .bind(medium.as_str())
                .bind(&channels)
                .execute(&mut *c)
                .await?;
        }
    });
    Ok(())
}

/// The claim itself, without looking for dead holders first.
async fn claim_only_in(
    conn: Conn<'_>,
    medium: Medium,
    claim: &Claim<'_>,
    channels: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<OutboxRow>, StoreError> {
    let Claim {
        claimer,
        limit,
        until: claim_until,
        only,
    } = *claim;
    const CLAIM: &str = claim_sql!();
    let channels = serde_json::to_string(channels).unwrap_or_else(|_| "[]".into());
    // Only what this statement claimed: a message this claimer sent and whose answer is
    // still being recorded is not handed out again.
    let rows: Vec<RawOutbox> = on_db!(conn, |c, d| sqlx::query_as(d.pick(CLAIM, CLAIM_PG))
        .bind(Ts(now))
        .bind(Ts(claim_until))
        .bind(limit)
        .bind(only)
        .bind(claimer)
        .bind(medium.as_str())
        .bind(&channels)
        .fetch_all(&mut *c)
        .await?);
    claimed_rows(rows)
}

/// Outbox states and how many messages are in each.
pub type OutboxCounts = BTreeMap<String, i64>;

impl Store {
    /// Digests whose period ended by `now` and that have items not yet queued.
    pub async fn due_digests(&self, now: DateTime<Utc>) -> Result<Vec<DueDigest>, StoreError> {
        const SQL: &str = "SELECT d.subscriber_id, s.email, d.period, d.release_id FROM digest_items d \
             JOIN subscribers s ON s.id = d.subscriber_id \
             WHERE d.outbox_id IS NULL AND d.due_at <= $1 AND s.status = 'confirmed' \
             ORDER BY d.subscriber_id, d.period, d.release_id";
        let rows: Vec<(i64, String, String, i64)> = on_db!(self.pool(), |c| sqlx::query_as(SQL)
            .bind(Ts(now))
            .fetch_all(c)
            .await?);
        let mut out: Vec<DueDigest> = Vec::new();
        for (subscriber_id, email, period, release_id) in rows {
            match out.last_mut() {
                Some(last) if last.subscriber_id == subscriber_id && last.period == period => {
                    last.release_ids.push(release_id)
                }
                _ => out.push(DueDigest {
                    subscriber_id,
                    recipient: email,
                    period,
                    release_ids: vec![release_id],
                }),
            }
        }
        Ok(out)
    }

    /// Queues one message in a transaction of its own; its row id when queued.
    pub async fn enqueue(
        &self,
        m: &NewMessage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin().await?;
        let id = enqueue_in(&mut tx, m, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Claims up to `limit` due messages (queued or retrying and due, or abandoned by a
    /// dispatcher whose claim expired or whose process on this host no longer runs) for
    /// `claimer` (`host:pid:nonce`) until `claim_until`. Returns only what this call claimed,
    /// never what the claimer already held.
    ///
    /// Mail only: channel deliveries are claimed by [`Store::claim_due_channels`].
    pub async fn claim_due(
        &self,
        claimer: &str,
        now: DateTime<Utc>,
        limit: i64,
        claim_until: DateTime<Utc>,
        only: Option<i64>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let claim = Claim {
            claimer,
            limit,
            until: claim_until,
            only,
        };
        self.claim(Medium::Mail, &claim, &[], now).await
    }

    /// Claims due channel deliveries of the channels named (those configured now; the
    /// deliveries of others wait), like [`Store::claim_due`] does mail.
    pub async fn claim_due_channels(
        &self,
        claimer: &str,
        now: DateTime<Utc>,
        limit: i64,
        claim_until: DateTime<Utc>,
        only: Option<i64>,
        channels: &[String],
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let claim = Claim {
            claimer,
            limit,
            until: claim_until,
            only,
        };
        self.claim(Medium::Channels, &claim, channels, now).await
    }

    async fn claim(
        &self,
        medium: Medium,
        claim: &Claim<'_>,
        channels: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut tx = self.begin().await?;
        let rows = claim_in(&mut tx, medium, claim, channels, now).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// One message.
    pub async fn outbox_message(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        const SQL: &str = "SELECT id, subscriber_id, recipient, kind, subject_key, payload, message_id, status, \
             attempts, next_attempt_at, last_response, created_at, sent_at, channel FROM outbox WHERE id = $1";
        let row: Option<RawOutbox> = on_db!(self.pool(), |c| sqlx::query_as(SQL)
            .bind(id)
            .fetch_optional(c)
            .await?);
        row.map(OutboxRow::try_from).transpose()
    }

    /// Records the server's acceptance.
    pub async fn mark_sent(
        &self,
        id: i64,
        response: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = $2, \
             updated_at = $2, last_response = $3, claimed_until = NULL, claimed_by = NULL WHERE id = $1";
        on_db!(self.pool(), |c| sqlx::query(SQL)
            .bind(id)
            .bind(Ts(now))
            .bind(no_nul(response))
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// A book for recording a dispatch's answers (see [`AnswerBook`]); it takes its
    /// connection at the first transaction.
    pub fn answer_book(&self) -> AnswerBook {
        AnswerBook {
            store: self.clone(),
            conn: None,
            holders_checked: None,
        }
    }

    /// Forgets what a sent message carried (a confirmation link must not outlive its mail).
    pub async fn scrub_payload(&self, id: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE outbox SET payload = '{}' WHERE id = $1 AND status = 'sent'";
        on_db!(self.pool(), |c| sqlx::query(SQL)
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Records a transient failure and when to try again.
    pub async fn mark_retry(
        &self,
        id: i64,
        response: &str,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_db!(self.pool(), |c| sqlx::query(RETRY)
            .bind(id)
            .bind(Ts(next))
            .bind(Ts(now))
            .bind(no_nul(response))
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Dead-letters a message with the server's answer.
    pub async fn mark_dead(
        &self,
        id: i64,
        response: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_db!(self.pool(), |c| sqlx::query(DEAD)
            .bind(id)
            .bind(Ts(now))
            .bind(no_nul(response))
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Gives a claimed message back without counting an attempt (no relay configured).
    pub async fn unclaim(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE outbox SET status = CASE WHEN attempts = 0 THEN 'queued' ELSE 'retrying' END, \
             claimed_until = NULL, claimed_by = NULL, updated_at = $1 WHERE id = $2 AND status = 'sending'";
        on_db!(self.pool(), |c| sqlx::query(SQL)
            .bind(Ts(now))
            .bind(id)
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Gives a claimed message back to be tried at `next`, without counting an attempt (its
    /// receiver asked Herald to wait).
    pub async fn defer(
        &self,
        id: i64,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE outbox SET status = CASE WHEN attempts = 0 THEN 'queued' ELSE 'retrying' END, \
             next_attempt_at = $3, claimed_until = NULL, claimed_by = NULL, updated_at = $2 \
             WHERE id = $1 AND status = 'sending'";
        on_db!(self.pool(), |c| sqlx::query(SQL)
            .bind(id)
            .bind(Ts(now))
            .bind(Ts(next))
            .execute(c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Messages in the given states (all when empty), oldest first, at most `limit`.
    pub async fn outbox(
        &self,
        statuses: &[&str],
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        const SQL: &str = "SELECT id, subscriber_id, recipient, kind, subject_key, payload, message_id, status, \
             attempts, next_attempt_at, last_response, created_at, sent_at, channel FROM outbox ORDER BY id";
        let rows: Vec<RawOutbox> =
            on_db!(self.pool(), |c| sqlx::query_as(SQL).fetch_all(c).await?);
        let mut out = Vec::new();
        for row in rows {
            if statuses.is_empty() || statuses.contains(&row.status.as_str()) {
                out.push(OutboxRow::try_from(row)?);
            }
            if out.len() as i64 >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// How many messages are in each state.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        const SQL: &str = "SELECT status, COUNT(*) AS n FROM outbox GROUP BY status";
        let rows: Vec<(String, i64)> =
            on_db!(self.pool(), |c| sqlx::query_as(SQL).fetch_all(c).await?);
        Ok(rows.into_iter().collect())
    }
}

/// How often an [`AnswerBook`] looks for claims of dispatchers that died on this host.
const HOLDERS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// One connection a dispatch keeps for recording the relay's answers and claiming the next
/// mail, many small transactions in a row. Its page cache stays valid from one transaction
/// to the next (a pooled connection taken per transaction re-read every page another
/// connection had written since it last ran); the usual transaction (acceptances and a
/// claim) is one multi-statement command to SQLite's thread instead of four; and the claims
/// of dispatchers that died on this host are looked for at the first claim and then once a
/// second, not in every transaction. After an error the connection is rolled back and
/// closed, and the next transaction takes a fresh one.
///
/// On PostgreSQL every transaction goes statement by statement (its protocol binds no
/// parameters across the statements of one command), in a plain `BEGIN`.
pub struct AnswerBook {
    store: Store,
    conn: Option<Held>,
    holders_checked: Option<std::time::Instant>,
}

impl AnswerBook {
    /// Records several answers and claims more mail (up to `claim.limit`, as
    /// [`Store::claim_due`]), in one transaction. The answers are durable when this returns.
    pub async fn record(
        &mut self,
        answers: &[Answer],
        claim: Option<&Claim<'_>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.store.pool.acquire().await?,
        };
        let holders_due = claim.is_some_and(|c| c.limit > 0)
            && self
                .holders_checked
                .is_none_or(|at| at.elapsed() >= HOLDERS_EVERY);
        let only_sent = answers.iter().all(|a| matches!(a, Answer::Sent { .. }));
        let outcome = match &mut conn {
            Db::Sqlite(c) if only_sent && !holders_due => {
                record_at_once(c, answers, claim, now).await
            }
            held => record_in_steps(held.conn(), answers, claim, holders_due, now).await,
        };
        match outcome {
            Ok(rows) => {
                if holders_due {
                    self.holders_checked = Some(std::time::Instant::now());
                }
                self.conn = Some(conn);
                Ok(rows)
            }
            Err(err) => {
                // Whatever state the transaction was left in, this connection is not reused.
                on_db!(conn.conn(), |c| {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *c).await;
                });
                match conn {
                    Db::Sqlite(c) => drop(c.detach()),
                    Db::Postgres(c) => drop(c.detach()),
                }
                Err(err)
            }
        }
    }
}

/// The acceptances as the JSON array the statements read (`[[id, response, scrub], ...]`),
/// each response without NUL ([`no_nul`]).
fn sent_json(answers: &[Answer]) -> String {
    let sent: Vec<serde_json::Value> = answers
        .iter()
        .filter_map(|answer| match answer {
            Answer::Sent {
                id,
                response,
                scrub,
            } => Some(serde_json::json!([id, no_nul(response), scrub])),
            _ => None,
        })
        .collect();
    serde_json::Value::Array(sent).to_string()
}

/// Acceptances and a claim of mail in one command: `BEGIN IMMEDIATE`, the acceptances, the
/// claim (`LIMIT 0` when none is asked), `COMMIT`.
async fn record_at_once(
    conn: &mut SqliteConnection,
    answers: &[Answer],
    claim: Option<&Claim<'_>>,
    now: DateTime<Utc>,
) -> Result<Vec<OutboxRow>, StoreError> {
    const AT_ONCE: &str = concat!(
        "BEGIN IMMEDIATE; ",
        sent_sql!("$8"),
        "; ",
        claim_sql!(),
        "; COMMIT"
    );
    let (until, limit, only, claimer) = match claim {
        Some(c) => (c.until, c.limit, c.only, c.claimer),
        None => (now, 0, None, ""),
    };
    let rows: Vec<RawOutbox> = sqlx::query_as(AT_ONCE)
        .bind(Ts(now))
        .bind(Ts(until))
        .bind(limit)
        .bind(only)
        .bind(claimer)
        .bind(Medium::Mail.as_str())
        .bind("[]")
        .bind(sent_json(answers))
        .fetch_all(&mut *conn)
        .await?;
    claimed_rows(rows)
}

/// A transaction on a held connection, on either backend.
type HeldTx<'c> = Db<Transaction<'c, Sqlite>, Transaction<'c, Postgres>>;

/// The held transaction's connection, to run statements in it.
fn held_tx_conn<'a>(tx: &'a mut HeldTx<'_>) -> Conn<'a> {
    match tx {
        Db::Sqlite(t) => Db::Sqlite(&mut **t),
        Db::Postgres(t) => Db::Postgres(&mut **t),
    }
}

/// The general case, statement by statement: acceptances, each failure, the dead holders'
/// claims when due, the claim. On SQLite the transaction takes the write lock at once
/// (`BEGIN IMMEDIATE`); on PostgreSQL it is a plain `BEGIN`, and each statement is safe beside
/// other dispatchers on its own (answers touch only this dispatcher's claimed rows, claims
/// and freed holders skip locked rows).
async fn record_in_steps(
    conn: Conn<'_>,
    answers: &[Answer],
    claim: Option<&Claim<'_>>,
    holders_due: bool,
    now: DateTime<Utc>,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut tx: HeldTx<'_> = match conn {
        Db::Sqlite(c) => Db::Sqlite(c.begin_with("BEGIN IMMEDIATE").await?),
        Db::Postgres(c) => Db::Postgres(c.begin().await?),
    };
    record_answers_in(held_tx_conn(&mut tx), answers, now).await?;
    let claimed = match claim {
        Some(claim) if claim.limit > 0 => {
            if holders_due {
                free_dead_holders_in(held_tx_conn(&mut tx), Medium::Mail, &[], now).await?;
            }
            claim_only_in(held_tx_conn(&mut tx), Medium::Mail, claim, &[], now).await?
        }
        _ => Vec::new(),
    };
    match tx {
        Db::Sqlite(t) => t.commit().await?,
        Db::Postgres(t) => t.commit().await?,
    }
    Ok(claimed)
}

/// The acceptances in one statement, then each failure.
async fn record_answers_in(
    conn: Conn<'_>,
    answers: &[Answer],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SENT: &str = sent_sql!("$2");
    let any_sent = answers.iter().any(|a| matches!(a, Answer::Sent { .. }));
    on_db!(conn, |c, d| {
        if any_sent {
            sqlx::query(d.pick(SENT, SENT_PG))
                .bind(Ts(now))
                .bind(sent_json(answers))
                .execute(&mut *c)
                .await?;
        }
        for answer in answers {
            match answer {
                Answer::Sent { .. } => {}
                Answer::Retry { id, response, next } => {
                    sqlx::query(RETRY)
                        .bind(id)
                        .bind(Ts(*next))
                        .bind(Ts(now))
                        .bind(no_nul(response))
                        .execute(&mut *c)
                        .await?;
                }
                Answer::Dead { id, response } => {
                    sqlx::query(DEAD)
                        .bind(id)
                        .bind(Ts(now))
                        .bind(no_nul(response))
                        .execute(&mut *c)
                        .await?;
                }
            }
        }
    });
    Ok(())
}
