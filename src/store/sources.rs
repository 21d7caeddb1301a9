//! HTTP validators per URL and the health of each project x source.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

use super::{Store, StoreError, parse_ts_opt, ts};
use crate::model::SourceKind;
use crate::sources::http::Validators;

/// The recorded state of one project x source.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceState {
    pub project: String,
    pub source: String,
    /// First successful fetch.
    pub baseline_at: Option<DateTime<Utc>>,
    /// Last successful fetch.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Last attempt.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Failures since the last success.
    pub consecutive_failures: i64,
    /// The last error, as reported.
    pub last_error: Option<String>,
    /// Rate limited until then.
    pub deferred_until: Option<DateTime<Utc>>,
    /// The feed a configured page pointed to.
    pub resolved_url: Option<String>,
    /// The first failed attempt since the last success (none while the source answers).
    pub failing_since: Option<DateTime<Utc>>,
    /// The attribution rule version the source's listing was last read under (0: never).
    pub attribution_rule: i64,
}

impl Store {
    /// Records a successful fetch that changed nothing (a 304, or the same body again) for
    /// each project x source, in one statement per thousand.
    pub async fn sources_unchanged(
        &self,
        sources: &[(String, SourceKind)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE source_state SET last_success_at = $1, last_attempt_at = $1, \
                consecutive_failures = 0, last_error = NULL, deferred_until = NULL, \
                failing_since = NULL \
             WHERE (project, source) IN (SELECT s.value ->> 0, s.value ->> 1 FROM jsonb_each($2) s)";
        for chunk in sources.chunks(1000) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|(project, kind)| serde_json::json!([project, kind.as_str()]))
                .collect();
            sqlx::query(SQL)
                .bind(ts(now))
                .bind(serde_json::Value::from(rows).to_string())
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// All stored validators.
    pub async fn validators(&self) -> Result<HashMap<String, Validators>, StoreError> {
        const SQL: &str = "SELECT url, etag, last_modified, digest FROM http_validators";
        let mut out = HashMap::new();
        for row in sqlx::query(SQL).fetch_all(self.pool()).await? {
            out.insert(
                row.try_get("url")?,
                Validators {
                    etag: row.try_get("etag")?,
                    last_modified: row.try_get("last_modified")?,
                    digest: row.try_get("digest")?,
                },
            );
        }
        Ok(out)
    }

    /// The state of every project x source.
    pub async fn source_states(
        &self,
    ) -> Result<HashMap<(String, String), SourceState>, StoreError> {
        const SQL: &str = "SELECT project, source, baseline_at, last_success_at, last_attempt_at, \
                consecutive_failures, last_error, deferred_until, resolved_url, failing_since, \
                attribution_rule FROM source_state";
        let mut out = HashMap::new();
        for row in sqlx::query(SQL).fetch_all(self.pool()).await? {
            let get =
                |col: &'static str| -> Result<Option<String>, StoreError> { Ok(row.try_get(col)?) };
            let state = SourceState {
                project: row.try_get("project")?,
                source: row.try_get("source")?,
                baseline_at: parse_ts_opt(
                    "source_state.baseline_at",
                    get("baseline_at")?.as_deref(),
                )?,
                last_success_at: parse_ts_opt(
                    "source_state.last_success_at",
                    get("last_success_at")?.as_deref(),
                )?,
                last_attempt_at: parse_ts_opt(
                    "source_state.last_attempt_at",
                    get("last_attempt_at")?.as_deref(),
                )?,
                consecutive_failures: row.try_get("consecutive_failures")?,
                last_error: get("last_error")?,
                deferred_until: parse_ts_opt(
                    "source_state.deferred_until",
                    get("deferred_until")?.as_deref(),
                )?,
                resolved_url: get("resolved_url")?,
                failing_since: parse_ts_opt(
                    "source_state.failing_since",
                    get("failing_since")?.as_deref(),
                )?,
                attribution_rule: row.try_get("attribution_rule")?,
            };
            out.insert((state.project.clone(), state.source.clone()), state);
        }
        Ok(out)
    }
}

/// Stores the validators (and body digest) of the URLs whose bodies were just recorded, in
/// one statement.
pub async fn put_validators(
    conn: &mut SqliteConnection,
    validators: &[(String, Validators)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO http_validators (url, etag, last_modified, digest, updated_at) \
         SELECT v.value ->> 0, v.value ->> 1, v.value ->> 2, v.value ->> 3, $1 \
         FROM jsonb_each($2) v WHERE true \
         ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified, \
            digest = excluded.digest, updated_at = excluded.updated_at";
    if validators.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = validators
        .iter()
        .map(|(url, v)| serde_json::json!([url, v.etag, v.last_modified, v.digest]))
        .collect();
    sqlx::query(SQL)
        .bind(ts(now))
        .bind(serde_json::Value::from(rows).to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records a successful fetch (a 200 or a 304). The first success sets the baseline.
/// `attribution_rule` is the rule version a listing read with a body was judged under (none for
/// a 304).
pub async fn source_succeeded(
    conn: &mut SqliteConnection,
    project: &str,
    source: SourceKind,
    resolved_url: Option<&str>,
    attribution_rule: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO source_state (project, source, baseline_at, last_success_at, last_attempt_at, \
            consecutive_failures, last_error, deferred_until, resolved_url, attribution_rule) \
         VALUES ($1, $2, $3, $3, $3, 0, NULL, NULL, $4, COALESCE($5, 0)) \
         ON CONFLICT (project, source) DO UPDATE SET \
            baseline_at = COALESCE(source_state.baseline_at, excluded.baseline_at), \
            last_success_at = excluded.last_success_at, last_attempt_at = excluded.last_attempt_at, \
            consecutive_failures = 0, last_error = NULL, deferred_until = NULL, failing_since = NULL, \
            resolved_url = COALESCE(excluded.resolved_url, source_state.resolved_url), \
            attribution_rule = COALESCE($5, source_state.attribution_rule)";
    sqlx::query(SQL)
        .bind(project)
        .bind(source.as_str())
        .bind(ts(now))
        .bind(resolved_url)
        .bind(attribution_rule)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Of the entries a source skipped in this run, those no earlier run reported (each is
/// remembered per project and source, cut to 200 characters).
pub async fn first_reports(
    conn: &mut SqliteConnection,
    project: &str,
    source: SourceKind,
    entries: &[&str],
    now: DateTime<Utc>,
) -> Result<HashSet<String>, StoreError> {
    const SQL: &str = "INSERT INTO skipped_entries (project, source, entry, first_seen_at) \
         SELECT $1, $2, value, $3 FROM json_each($4) WHERE true \
         ON CONFLICT (project, source, entry) DO NOTHING RETURNING entry";
    if entries.is_empty() {
        return Ok(HashSet::new());
    }
    let keys: Vec<String> = entries.iter().map(|e| skip_key(e)).collect();
    let rows: Vec<String> = sqlx::query_scalar(SQL)
        .bind(project)
        .bind(source.as_str())
        .bind(ts(now))
        .bind(serde_json::json!(keys).to_string())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// How a skipped entry is remembered: its first 200 characters.
pub fn skip_key(entry: &str) -> String {
    entry.chars().take(200).collect()
}

/// Records a failed fetch; `deferred_until` is set when the upstream asked to wait.
pub async fn source_failed(
    conn: &mut SqliteConnection,
    project: &str,
    source: SourceKind,
    error: &str,
    deferred_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO source_state (project, source, last_attempt_at, consecutive_failures, \
            last_error, deferred_until, failing_since) VALUES ($1, $2, $3, 1, $4, $5, $3) \
         ON CONFLICT (project, source) DO UPDATE SET last_attempt_at = excluded.last_attempt_at, \
            failing_since = COALESCE(source_state.failing_since, excluded.failing_since), \
            consecutive_failures = source_state.consecutive_failures + 1, \
            last_error = excluded.last_error, deferred_until = excluded.deferred_until";
    sqlx::query(SQL)
        .bind(project)
        .bind(source.as_str())
        .bind(ts(now))
        .bind(error)
        .bind(deferred_until.map(ts))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
