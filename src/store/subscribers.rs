//! Subscribers and the projects they follow.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

use super::{Store, StoreError, parse_ts, parse_ts_opt, ts};
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

fn subscriber_row(
    row: &sqlx::sqlite::SqliteRow,
    projects: Vec<String>,
) -> Result<Subscriber, StoreError> {
    let email: String = row.try_get("email")?;
    let status: String = row.try_get("status")?;
    let digest: String = row.try_get("digest")?;
    let classes: String = row.try_get("classes")?;
    let created: String = row.try_get("created_at")?;
    let confirmed: Option<String> = row.try_get("confirmed_at")?;
    Ok(Subscriber {
        id: row.try_get("id")?,
        email: EmailAddress::from_str(&email).map_err(corrupt("subscribers.email"))?,
        status: match status.as_str() {
            "confirmed" => SubscriberStatus::Confirmed,
            _ => SubscriberStatus::Pending,
        },
        digest: DigestMode::from_str(&digest).map_err(corrupt("subscribers.digest"))?,
        classes: classes
            .split(',')
            .filter(|c| !c.is_empty())
            .map(ReleaseClass::from_str)
            .collect::<Result<_, _>>()
            .map_err(corrupt("subscribers.classes"))?,
        projects,
        created_at: parse_ts("subscribers.created_at", &created)?,
        confirmed_at: parse_ts_opt("subscribers.confirmed_at", confirmed.as_deref())?,
    })
}

/// Confirmed subscribers following `project`, inside a transaction.
pub async fn subscribers_following(
    conn: &mut SqliteConnection,
    project: &str,
) -> Result<Vec<Subscriber>, StoreError> {
    const SQL: &str = "SELECT s.id, s.email, s.status, s.digest, s.classes, s.created_at, s.confirmed_at \
         FROM subscribers s JOIN subscriber_projects p ON p.subscriber_id = s.id \
         WHERE p.project = $1 AND s.status = 'confirmed' ORDER BY s.id";
    let rows = sqlx::query(SQL).bind(project).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| subscriber_row(row, vec![project.to_string()]))
        .collect()
}

impl Store {
    /// Adds a subscriber or updates their preferences; returns the id and whether it is new.
    /// A confirmed subscriber stays confirmed.
    pub async fn upsert_subscriber(
        &self,
        w: &SubscriberWrite<'_>,
        now: DateTime<Utc>,
    ) -> Result<(i64, bool), StoreError> {
        const UPSERT: &str = "INSERT INTO subscribers (email, status, token_hash, token_expires_at, digest, classes, \
                created_at, confirmed_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7) \
             ON CONFLICT (email) DO UPDATE SET \
                status = CASE WHEN subscribers.status = 'confirmed' THEN 'confirmed' ELSE excluded.status END, \
                token_hash = CASE WHEN subscribers.status = 'confirmed' THEN NULL ELSE excluded.token_hash END, \
                token_expires_at = CASE WHEN subscribers.status = 'confirmed' THEN NULL ELSE excluded.token_expires_at END, \
                confirmed_at = COALESCE(subscribers.confirmed_at, excluded.confirmed_at), \
                digest = excluded.digest, classes = excluded.classes, updated_at = excluded.updated_at \
             RETURNING id, created_at = $7 AS created";
        const CLEAR: &str = "DELETE FROM subscriber_projects WHERE subscriber_id = $1";
        const ADD: &str = "INSERT INTO subscriber_projects (subscriber_id, project) VALUES ($1, $2) ON CONFLICT DO NOTHING";
        let confirmed = w.status == SubscriberStatus::Confirmed;
        let mut tx = self.begin().await?;
        let row = sqlx::query(UPSERT)
            .bind(w.email.as_str())
            .bind(if confirmed { "confirmed" } else { "pending" })
            .bind(w.token_hash)
            .bind(w.token_expires_at.map(ts))
            .bind(w.digest.as_str())
            .bind(classes_text(w.classes))
            .bind(ts(now))
            .bind(confirmed.then(|| ts(now)))
            .fetch_one(&mut *tx)
            .await?;
        let id: i64 = row.try_get("id")?;
        let created: bool = row.try_get("created")?;
        sqlx::query(CLEAR).bind(id).execute(&mut *tx).await?;
        for project in w.projects {
            sqlx::query(ADD)
                .bind(id)
                .bind(project)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((id, created))
    }

    /// Removes a subscriber and everything queued for them; false when unknown.
    pub async fn remove_subscriber(&self, email: &EmailAddress) -> Result<bool, StoreError> {
        const DROP_QUEUED: &str = "DELETE FROM outbox WHERE status IN ('queued', 'retrying') \
             AND subscriber_id = (SELECT id FROM subscribers WHERE email = $1)";
        const SQL: &str = "DELETE FROM subscribers WHERE email = $1";
        let mut tx = self.begin().await?;
        sqlx::query(DROP_QUEUED)
            .bind(email.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(SQL)
            .bind(email.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every subscriber with the projects they follow, by address.
    pub async fn subscribers(&self) -> Result<Vec<Subscriber>, StoreError> {
        const SQL: &str = "SELECT id, email, status, digest, classes, created_at, confirmed_at FROM subscribers ORDER BY email";
        const PROJECTS: &str =
            "SELECT subscriber_id, project FROM subscriber_projects ORDER BY project";
        let mut projects: HashMap<i64, Vec<String>> = HashMap::new();
        for row in sqlx::query(PROJECTS).fetch_all(self.pool()).await? {
            projects
                .entry(row.try_get("subscriber_id")?)
                .or_default()
                .push(row.try_get("project")?);
        }
        let rows = sqlx::query(SQL).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                subscriber_row(row, projects.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    /// The projects each of these subscribers follows, in one query (for mail footers); a
    /// subscriber that no longer exists is left out.
    pub async fn projects_of(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<String>>, StoreError> {
        const SQL: &str = "SELECT subscriber_id, project FROM subscriber_projects \
             WHERE subscriber_id IN (SELECT value FROM json_each($1)) ORDER BY subscriber_id, project";
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let mut out: HashMap<i64, Vec<String>> = HashMap::new();
        for row in sqlx::query(SQL).bind(ids).fetch_all(self.pool()).await? {
            out.entry(row.try_get("subscriber_id")?)
                .or_default()
                .push(row.try_get("project")?);
        }
        Ok(out)
    }

    /// One subscriber by id.
    pub async fn subscriber(&self, id: i64) -> Result<Option<Subscriber>, StoreError> {
        const SQL: &str = "SELECT id, email, status, digest, classes, created_at, confirmed_at FROM subscribers WHERE id = $1";
        const PROJECTS: &str =
            "SELECT project FROM subscriber_projects WHERE subscriber_id = $1 ORDER BY project";
        let Some(row) = sqlx::query(SQL)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let projects = sqlx::query_scalar(PROJECTS)
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        Ok(Some(subscriber_row(&row, projects)?))
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
        if let Some(row) = sqlx::query(FIND)
            .bind(w.email.as_str())
            .fetch_optional(self.pool())
            .await?
        {
            let status: String = row.try_get("status")?;
            if status == "confirmed" {
                return Ok(PendingOutcome::AlreadyConfirmed(row.try_get("id")?));
            }
        }
        let (id, _) = self.upsert_subscriber(w, now).await?;
        Ok(PendingOutcome::Pending(id))
    }

    /// Confirms the pending subscriber holding this token hash, if it has not expired.
    pub async fn confirm_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "UPDATE subscribers SET status = 'confirmed', confirmed_at = $1, updated_at = $1, \
                token_hash = NULL, token_expires_at = NULL \
             WHERE token_hash = $2 AND status = 'pending' AND token_expires_at > $1 RETURNING id";
        Ok(sqlx::query_scalar(SQL)
            .bind(ts(now))
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Whether a pending subscriber holds this (unexpired) token hash.
    pub async fn pending_token_valid(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM subscribers WHERE token_hash = $1 AND status = 'pending' AND token_expires_at > $2";
        let n: i64 = sqlx::query_scalar(SQL)
            .bind(token_hash)
            .bind(ts(now))
            .fetch_one(self.pool())
            .await?;
        Ok(n > 0)
    }

    /// Changes a subscriber's projects, classes and delivery mode.
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
        const CLEAR: &str = "DELETE FROM subscriber_projects WHERE subscriber_id = $1";
        const ADD: &str = "INSERT INTO subscriber_projects (subscriber_id, project) VALUES ($1, $2) ON CONFLICT DO NOTHING";
        let mut tx = self.begin().await?;
        let done = sqlx::query(UPDATE)
            .bind(classes_text(classes))
            .bind(digest.as_str())
            .bind(ts(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(CLEAR).bind(id).execute(&mut *tx).await?;
        for project in projects {
            sqlx::query(ADD)
                .bind(id)
                .bind(project)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a subscriber by id (and their queued mail); false when unknown.
    pub async fn remove_subscriber_id(&self, id: i64) -> Result<bool, StoreError> {
        const DROP_QUEUED: &str =
            "DELETE FROM outbox WHERE status IN ('queued', 'retrying') AND subscriber_id = $1";
        const SQL: &str = "DELETE FROM subscribers WHERE id = $1";
        let mut tx = self.begin().await?;
        sqlx::query(DROP_QUEUED).bind(id).execute(&mut *tx).await?;
        let done = sqlx::query(SQL).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
