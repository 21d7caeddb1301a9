//! Subscribers and the projects they follow.
//!
//! Addresses are case-insensitive: SQLite's column is `COLLATE NOCASE`; PostgreSQL's table is
//! unique on `lower(email)`, so its statements match and conflict on `lower(email)`.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::db::{Ts, on_db};
use super::{Store, StoreError, Tx};
use crate::model::{DigestMode, EmailAddress, ReleaseClass, Subscriber, SubscriberStatus};

/// What to store for a subscriber.
#[derive(Debug, Clone)]
pub struct SubscriberWrite<'a> {
    /// Address.
    pub email: &'a EmailAddress,
    /// Projects followed.
    pub projects: &'a [String],
    /// Classes wanted.
    pub classes: &'a [ReleaseClass],
    /// Delivery mode.
    pub digest: DigestMode,
    /// Confirmed (operator-added) or pending with a token hash and its expiry.
    pub status: SubscriberStatus,
    /// Hash of the confirmation token, for pending subscribers.
    pub token_hash: Option<&'a str>,
    /// When the token expires.
    pub token_expires_at: Option<DateTime<Utc>>,
}

fn corrupt(column: &'static str) -> impl Fn(String) -> StoreError {
    move |detail| StoreError::Corrupt { column, detail }
}

fn classes_text(classes: &[ReleaseClass]) -> String {
    classes
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A `subscribers` row as the statements below select it.
#[derive(sqlx::FromRow)]
struct SubscriberRecord {
    id: i64,
    email: String,
    status: String,
    digest: String,
    classes: String,
    created_at: Ts,
    confirmed_at: Option<Ts>,
}

impl SubscriberRecord {
    fn into_subscriber(self, projects: Vec<String>) -> Result<Subscriber, StoreError> {
        Ok(Subscriber {
            id: self.id,
            email: EmailAddress::from_str(&self.email).map_err(corrupt("subscribers.email"))?,
            status: match self.status.as_str() {
                "confirmed" => SubscriberStatus::Confirmed,
                _ => SubscriberStatus::Pending,
            },
            digest: DigestMode::from_str(&self.digest).map_err(corrupt("subscribers.digest"))?,
            classes: self
                .classes
                .split(',')
                .filter(|c| !c.is_empty())
                .map(ReleaseClass::from_str)
                .collect::<Result<_, _>>()
                .map_err(corrupt("subscribers.classes"))?,
            projects,
            created_at: self.created_at.0,
            confirmed_at: self.confirmed_at.map(Into::into),
        })
    }
}

/// Confirmed subscribers following `project`, inside a transaction.
pub async fn subscribers_following(
    conn: &mut Tx,
    project: &str,
) -> Result<Vec<Subscriber>, StoreError> {
    const SQL: &str = "SELECT s.id, s.email, s.status, s.digest, s.classes, s.created_at, s.confirmed_at \
         FROM subscribers s JOIN subscriber_projects p ON p.subscriber_id = s.id \
         WHERE p.project = $1 AND s.status = 'confirmed' ORDER BY s.id";
    let rows: Vec<SubscriberRecord> = on_db!(conn.conn(), |c| sqlx::query_as(SQL)
        .bind(project)
        .fetch_all(&mut *c)
        .await?);
    rows.into_iter()
        .map(|row| row.into_subscriber(vec![project.to_string()]))
        .collect()
}

/// Adds a subscriber or updates their preferences, inside a transaction; returns the id and
/// whether it is new. A confirmed subscriber stays confirmed.
///
/// On PostgreSQL the upsert is one statement and leaves the subscriber's row locked until the
/// transaction ends, so another process writing the same address waits for this one, and the
/// project list it replaces is this transaction's alone.
async fn upsert_in(
    tx: &mut Tx,
    w: &SubscriberWrite<'_>,
    now: DateTime<Utc>,
) -> Result<(i64, bool), StoreError> {
    /// The upsert on either backend's unique address: SQLite's `email` column is
    /// `COLLATE NOCASE`, PostgreSQL's index is on `lower(email)`.
    macro_rules! upsert {
        ($target:literal) => {
            concat!(
                "INSERT INTO subscribers (email, status, token_hash, token_expires_at, digest, \
                 classes, created_at, confirmed_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7) ON CONFLICT (",
                $target,
                ") DO UPDATE SET \
                 status = CASE WHEN subscribers.status = 'confirmed' THEN 'confirmed' ELSE excluded.status END, \
                 token_hash = CASE WHEN subscribers.status = 'confirmed' THEN NULL ELSE excluded.token_hash END, \
                 token_expires_at = CASE WHEN subscribers.status = 'confirmed' THEN NULL ELSE excluded.token_expires_at END, \
                 confirmed_at = COALESCE(subscribers.confirmed_at, excluded.confirmed_at), \
                 digest = excluded.digest, classes = excluded.classes, updated_at = excluded.updated_at \
                 RETURNING id, created_at = $7 AS created"
            )
        };
    }
    const UPSERT: &str = upsert!("email");
    const UPSERT_PG: &str = upsert!("lower(email)");
    let confirmed = w.status == SubscriberStatus::Confirmed;
    let (id, created): (i64, bool) =
        on_db!(tx.conn(), |c, d| sqlx::query_as(d.pick(UPSERT, UPSERT_PG))
            .bind(w.email.as_str())
            .bind(if confirmed { "confirmed" } else { "pending" })
            .bind(w.token_hash)
            .bind(w.token_expires_at.map(Ts))
            .bind(w.digest.as_str())
            .bind(classes_text(w.classes))
            .bind(Ts(now))
            .bind(confirmed.then_some(Ts(now)))
            .fetch_one(&mut *c)
            .await?);
    replace_projects(tx, id, w.projects).await?;
    Ok((id, created))
}

/// Replaces the projects a subscriber follows, inside a transaction that already holds the
/// subscriber's row (see its callers).
async fn replace_projects(tx: &mut Tx, id: i64, projects: &[String]) -> Result<(), StoreError> {
    const CLEAR: &str = "DELETE FROM subscriber_projects WHERE subscriber_id = $1";
    const ADD: &str = "INSERT INTO subscriber_projects (subscriber_id, project) VALUES ($1, $2) ON CONFLICT DO NOTHING";
    on_db!(tx.conn(), |c| {
        sqlx::query(CLEAR).bind(id).execute(&mut *c).await?;
        for project in projects {
            sqlx::query(ADD)
                .bind(id)
                .bind(project)
                .execute(&mut *c)
                .await?;
        }
    });
    Ok(())
}

impl Store {
    /// Adds a subscriber or updates their preferences; returns the id and whether it is new.
    /// A confirmed subscriber stays confirmed.
    pub async fn upsert_subscriber(
        &self,
        w: &SubscriberWrite<'_>,
        now: DateTime<Utc>,
    ) -> Result<(i64, bool), StoreError> {
        let mut tx = self.begin().await?;
        let done = upsert_in(&mut tx, w, now).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Removes a subscriber and everything queued for them; false when unknown.
    pub async fn remove_subscriber(&self, email: &EmailAddress) -> Result<bool, StoreError> {
        const DROP_QUEUED: &str = "DELETE FROM outbox WHERE status IN ('queued', 'retrying') \
             AND subscriber_id = (SELECT id FROM subscribers WHERE email = $1)";
        const SQL: &str = "DELETE FROM subscribers WHERE email = $1";
        // PostgreSQL: the subscriber's row is locked first (`FOR UPDATE`), so no other process
        // queues mail for them between the two deletes.
        const DROP_QUEUED_PG: &str = "DELETE FROM outbox WHERE status IN ('queued', 'retrying') \
             AND subscriber_id = (SELECT id FROM subscribers WHERE lower(email) = lower($1) FOR UPDATE)";
        const SQL_PG: &str = "DELETE FROM subscribers WHERE lower(email) = lower($1)";
        let mut tx = self.begin().await?;
        let removed = on_db!(tx.conn(), |c, d| {
            sqlx::query(d.pick(DROP_QUEUED, DROP_QUEUED_PG))
                .bind(email.as_str())
                .execute(&mut *c)
                .await?;
            sqlx::query(d.pick(SQL, SQL_PG))
                .bind(email.as_str())
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// Every subscriber with the projects they follow, by address.
    pub async fn subscribers(&self) -> Result<Vec<Subscriber>, StoreError> {
        const SQL: &str = "SELECT id, email, status, digest, classes, created_at, confirmed_at FROM subscribers ORDER BY email";
        // SQLite orders the NOCASE column by its ASCII-folded bytes.
        const SQL_PG: &str = "SELECT id, email, status, digest, classes, created_at, confirmed_at FROM subscribers \
             ORDER BY lower(email) COLLATE \"C\"";
        const PROJECTS: &str =
            "SELECT subscriber_id, project FROM subscriber_projects ORDER BY project";
        let (links, rows): (Vec<(i64, String)>, Vec<SubscriberRecord>) =
            on_db!(self.pool(), |c, d| (
                sqlx::query_as(PROJECTS).fetch_all(c).await?,
                sqlx::query_as(d.pick(SQL, SQL_PG)).fetch_all(c).await?,
            ));
        let mut projects: HashMap<i64, Vec<String>> = HashMap::new();
        for (id, project) in links {
            projects.entry(id).or_default().push(project);
        }
        rows.into_iter()
            .map(|row| {
                let followed = projects.remove(&row.id).unwrap_or_default();
                row.into_subscriber(followed)
            })
            .collect()
    }

    /// The projects each of these subscribers follows, in one query (for mail footers); a
    /// subscriber that no longer exists is left out.
    pub async fn projects_of(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<String>>, StoreError> {
        const SQL: &str = "SELECT subscriber_id, project FROM subscriber_projects \
             WHERE subscriber_id IN (SELECT value FROM json_each($1)) ORDER BY subscriber_id, project";
        const SQL_PG: &str = "SELECT subscriber_id, project FROM subscriber_projects \
             WHERE subscriber_id IN (SELECT r.value::bigint FROM jsonb_array_elements_text($1::jsonb) r(value)) \
             ORDER BY subscriber_id, project";
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let rows: Vec<(i64, String)> =
            on_db!(self.pool(), |c, d| sqlx::query_as(d.pick(SQL, SQL_PG))
                .bind(ids)
                .fetch_all(c)
                .await?);
        let mut out: HashMap<i64, Vec<String>> = HashMap::new();
        for (id, project) in rows {
            out.entry(id).or_default().push(project);
        }
        Ok(out)
    }

    /// One subscriber by id.
    pub async fn subscriber(&self, id: i64) -> Result<Option<Subscriber>, StoreError> {
        const SQL: &str = "SELECT id, email, status, digest, classes, created_at, confirmed_at FROM subscribers WHERE id = $1";
        const PROJECTS: &str =
            "SELECT project FROM subscriber_projects WHERE subscriber_id = $1 ORDER BY project";
        let found: Option<(SubscriberRecord, Vec<String>)> = on_db!(self.pool(), |c| {
            match sqlx::query_as::<_, SubscriberRecord>(SQL)
                .bind(id)
                .fetch_optional(c)
                .await?
            {
                None => None,
                Some(row) => Some((
                    row,
                    sqlx::query_scalar(PROJECTS).bind(id).fetch_all(c).await?,
                )),
            }
        });
        found
            .map(|(row, projects)| row.into_subscriber(projects))
            .transpose()
    }
}

/// What a self-service subscription did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingOutcome {
    /// A pending subscriber (new, or still unconfirmed) now waits for this token.
    Pending(i64),
    /// The address is already confirmed: nothing changed.
    AlreadyConfirmed(i64),
}

impl Store {
    /// Records a self-service subscription awaiting confirmation; a confirmed address is left
    /// as it is (the caller answers the same either way).
    pub async fn subscribe_pending(
        &self,
        w: &SubscriberWrite<'_>,
        now: DateTime<Utc>,
    ) -> Result<PendingOutcome, StoreError> {
        const FIND: &str = "SELECT id, status FROM subscribers WHERE email = $1";
        // PostgreSQL: the row read is locked (`FOR UPDATE`) until the upsert below commits, so
        // a confirmation in another process cannot land between the look and the write; a new
        // address is settled by the upsert's conflict target.
        const FIND_PG: &str =
            "SELECT id, status FROM subscribers WHERE lower(email) = lower($1) FOR UPDATE";
        let mut tx = self.begin().await?;
        let found: Option<(i64, String)> =
            on_db!(tx.conn(), |c, d| sqlx::query_as(d.pick(FIND, FIND_PG))
                .bind(w.email.as_str())
                .fetch_optional(&mut *c)
                .await?);
        if let Some((id, status)) = found
            && status == "confirmed"
        {
            tx.rollback().await?;
            return Ok(PendingOutcome::AlreadyConfirmed(id));
        }
        let (id, _) = upsert_in(&mut tx, w, now).await?;
        tx.commit().await?;
        Ok(PendingOutcome::Pending(id))
    }

    /// Confirms the pending subscriber holding this token hash, if it has not expired. One
    /// statement: of two processes confirming the same token, the second finds it gone.
    pub async fn confirm_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "UPDATE subscribers SET status = 'confirmed', confirmed_at = $1, updated_at = $1, \
                token_hash = NULL, token_expires_at = NULL \
             WHERE token_hash = $2 AND status = 'pending' AND token_expires_at > $1 RETURNING id";
        Ok(on_db!(self.pool(), |c| sqlx::query_scalar(SQL)
            .bind(Ts(now))
            .bind(token_hash)
            .fetch_optional(c)
            .await?))
    }

    /// Whether a pending subscriber holds this (unexpired) token hash.
    pub async fn pending_token_valid(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM subscribers WHERE token_hash = $1 AND status = 'pending' AND token_expires_at > $2";
        let n: i64 = on_db!(self.pool(), |c| sqlx::query_scalar(SQL)
            .bind(token_hash)
            .bind(Ts(now))
            .fetch_one(c)
            .await?);
        Ok(n > 0)
    }

    /// Changes a subscriber's projects, classes and delivery mode. On PostgreSQL the update
    /// locks the subscriber's row first, so two processes replacing the same list take turns.
    pub async fn set_preferences(
        &self,
        id: i64,
        projects: &[String],
        classes: &[ReleaseClass],
        digest: DigestMode,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const UPDATE: &str =
            "UPDATE subscribers SET classes = $1, digest = $2, updated_at = $3 WHERE id = $4";
        let mut tx = self.begin().await?;
        let updated = on_db!(tx.conn(), |c| sqlx::query(UPDATE)
            .bind(classes_text(classes))
            .bind(digest.as_str())
            .bind(Ts(now))
            .bind(id)
            .execute(&mut *c)
            .await?
            .rows_affected());
        if updated == 0 {
            return Ok(false);
        }
        replace_projects(&mut tx, id, projects).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a subscriber by id (and their queued mail); false when unknown.
    pub async fn remove_subscriber_id(&self, id: i64) -> Result<bool, StoreError> {
        const DROP_QUEUED: &str =
            "DELETE FROM outbox WHERE status IN ('queued', 'retrying') AND subscriber_id = $1";
        const SQL: &str = "DELETE FROM subscribers WHERE id = $1";
        // PostgreSQL: the subscriber's row is locked first (`FOR UPDATE`), so no other process
        // queues mail for them between the two deletes.
        const DROP_QUEUED_PG: &str = "DELETE FROM outbox WHERE status IN ('queued', 'retrying') \
             AND subscriber_id = (SELECT id FROM subscribers WHERE id = $1 FOR UPDATE)";
        let mut tx = self.begin().await?;
        let removed = on_db!(tx.conn(), |c, d| {
            sqlx::query(d.pick(DROP_QUEUED, DROP_QUEUED_PG))
                .bind(id)
                .execute(&mut *c)
                .await?;
            sqlx::query(SQL)
                .bind(id)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        Ok(removed > 0)
    }
}
