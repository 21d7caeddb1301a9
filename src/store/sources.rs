//! HTTP validators per URL and the health of each project x source.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::db::{Ts, no_nul, on_db};
use super::{Store, StoreError, Tx};
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
        const SQL_PG: &str = "UPDATE source_state SET last_success_at = $1, \
                last_attempt_at = $1, consecutive_failures = 0, last_error = NULL, \
                deferred_until = NULL, failing_since = NULL \
             WHERE (project, source) IN (SELECT s.value ->> 0, s.value ->> 1 \
                FROM jsonb_array_elements($2::jsonb) s(value))";
        for chunk in sources.chunks(1000) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|(project, kind)| serde_json::json!([project, kind.as_str()]))
                .collect();
            let rows = serde_json::Value::from(rows).to_string();
            on_db!(self.pool(), |c, d| sqlx::query(d.pick(SQL, SQL_PG))
                .bind(Ts(now))
                .bind(rows.as_str())
                .execute(c)
                .await?
                .rows_affected());
        }
        Ok(())
    }

    /// All stored validators.
    pub async fn validators(&self) -> Result<HashMap<String, Validators>, StoreError> {
        /// URL, ETag, Last-Modified, body digest.
        type Row = (String, Option<String>, Option<String>, Option<String>);
        const SQL: &str = "SELECT url, etag, last_modified, digest FROM http_validators";
        let rows: Vec<Row> = on_db!(self.pool(), |c| sqlx::query_as(SQL).fetch_all(c).await?);
        Ok(rows
            .into_iter()
            .map(|(url, etag, last_modified, digest)| {
                let validators = Validators {
                    etag,
                    last_modified,
                    digest,
                };
                (url, validators)
            })
            .collect())
    }

    /// The state of every project x source.
    pub async fn source_states(
        &self,
    ) -> Result<HashMap<(String, String), SourceState>, StoreError> {
        const SQL: &str = "SELECT project, source, baseline_at, last_success_at, last_attempt_at, \
                consecutive_failures, last_error, deferred_until, resolved_url, failing_since, \
                attribution_rule FROM source_state";
        let rows: Vec<SourceStateRecord> =
            on_db!(self.pool(), |c| sqlx::query_as(SQL).fetch_all(c).await?);
        Ok(rows
            .into_iter()
            .map(|row| {
                let state = SourceState::from(row);
                ((state.project.clone(), state.source.clone()), state)
            })
            .collect())
    }
}

/// A `source_state` row as both backends read it.
#[derive(sqlx::FromRow)]
struct SourceStateRecord {
    project: String,
    source: String,
    baseline_at: Option<Ts>,
    last_success_at: Option<Ts>,
    last_attempt_at: Option<Ts>,
    consecutive_failures: i64,
    last_error: Option<String>,
    deferred_until: Option<Ts>,
    resolved_url: Option<String>,
    failing_since: Option<Ts>,
    attribution_rule: i64,
}

impl From<SourceStateRecord> for SourceState {
    fn from(row: SourceStateRecord) -> SourceState {
        SourceState {
            project: row.project,
            source: row.source,
            baseline_at: row.baseline_at.map(Into::into),
            last_success_at: row.last_success_at.map(Into::into),
            last_attempt_at: row.last_attempt_at.map(Into::into),
            consecutive_failures: row.consecutive_failures,
            last_error: row.last_error,
            deferred_until: row.deferred_until.map(Into::into),
            resolved_url: row.resolved_url,
            failing_since: row.failing_since.map(Into::into),
            attribution_rule: row.attribution_rule,
        }
    }
}

/// Stores validators read from a JSON array (`[[url, etag, last_modified, digest], ...]`,
/// bound at `$rows`) as updated at `$now` (SQLite).
macro_rules! validators_upsert_sql {
    ($now:literal, $rows:literal) => {
        concat!(
            "INSERT INTO http_validators (url, etag, last_modified, digest, updated_at) \
             SELECT v.value ->> 0, v.value ->> 1, v.value ->> 2, v.value ->> 3, ",
            $now,
            " FROM jsonb_each(",
            $rows,
            ") v WHERE true \
             ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, \
                last_modified = excluded.last_modified, digest = excluded.digest, \
                updated_at = excluded.updated_at"
        )
    };
}
pub(crate) use validators_upsert_sql;

/// Records the successful fetches of one project (`$project`) at `$now`, read from a JSON
/// array (`[[source, resolved_url, attribution_rule], ...]`, bound at `$rows`; see
/// [`sources_succeeded`]) (SQLite).
macro_rules! sources_succeeded_sql {
    ($project:literal, $now:literal, $rows:literal) => {
        concat!(
            "INSERT INTO source_state (project, source, baseline_at, last_success_at, \
                last_attempt_at, consecutive_failures, last_error, deferred_until, resolved_url, \
                attribution_rule) \
             SELECT ",
            $project,
            ", s.value ->> 0, ",
            $now,
            ", ",
            $now,
            ", ",
            $now,
            ", 0, NULL, NULL, s.value ->> 1, COALESCE(s.value ->> 2, 0) FROM jsonb_each(",
            $rows,
            ") s WHERE true",
            $crate::store::sources::sources_succeeded_on_conflict!()
        )
    };
}
pub(crate) use sources_succeeded_sql;

/// What a source's row becomes when it succeeds again: the same on both backends. The
/// attribution rule is kept when the fetch read no listing (0 then: a rule version is never 0,
/// which means "before attribution").
macro_rules! sources_succeeded_on_conflict {
    () => {
        " ON CONFLICT (project, source) DO UPDATE SET \
            baseline_at = COALESCE(source_state.baseline_at, excluded.baseline_at), \
            last_success_at = excluded.last_success_at, last_attempt_at = excluded.last_attempt_at, \
            consecutive_failures = 0, last_error = NULL, deferred_until = NULL, failing_since = NULL, \
            resolved_url = COALESCE(excluded.resolved_url, source_state.resolved_url), \
            attribution_rule = CASE WHEN excluded.attribution_rule = 0 \
                THEN source_state.attribution_rule ELSE excluded.attribution_rule END"
    };
}
pub(crate) use sources_succeeded_on_conflict;

/// Stores the validators (and body digest) of the URLs whose bodies were just recorded, in
/// one statement.
pub async fn put_validators(
    conn: &mut Tx,
    validators: &[(String, Validators)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = validators_upsert_sql!("$1", "$2");
    // A URL listed twice keeps its last validators, as SQLite's row-by-row upsert does
    // (PostgreSQL refuses to update one row twice in a statement).
    const SQL_PG: &str = "INSERT INTO http_validators (url, etag, last_modified, digest, \
            updated_at) \
         SELECT DISTINCT ON (v.value ->> 0) v.value ->> 0, v.value ->> 1, v.value ->> 2, \
            v.value ->> 3, $1 \
         FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY v(value, n) \
         ORDER BY v.value ->> 0, v.n DESC \
         ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, \
            last_modified = excluded.last_modified, digest = excluded.digest, \
            updated_at = excluded.updated_at";
    if validators.is_empty() {
        return Ok(());
    }
    let rows = validators_json(validators);
    on_db!(conn.conn(), |c, d| sqlx::query(d.pick(SQL, SQL_PG))
        .bind(Ts(now))
        .bind(rows.as_str())
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}

/// The validators as the JSON array [`validators_upsert_sql!`] reads.
pub(crate) fn validators_json(validators: &[(String, Validators)]) -> String {
    let rows: Vec<serde_json::Value> = validators
        .iter()
        .map(|(url, v)| serde_json::json!([url, v.etag, v.last_modified, v.digest]))
        .collect();
    serde_json::Value::from(rows).to_string()
}

/// A source's successful fetch (a 200 or a 304), to record.
#[derive(Debug, Clone, Copy)]
pub struct SourceSuccess<'a> {
    /// Which source.
    pub source: SourceKind,
    /// Where its document was found, when it had to be looked for (a feed behind a page).
    pub resolved_url: Option<&'a str>,
    /// The attribution rule version its listing was judged under (none for a 304).
    pub attribution_rule: Option<i64>,
}

/// The successes as the JSON array [`sources_succeeded_sql!`] reads.
pub(crate) fn successes_json(successes: &[SourceSuccess<'_>]) -> String {
    let rows: Vec<serde_json::Value> = successes
        .iter()
        .map(|s| {
            serde_json::json!([
                s.source.as_str(),
                s.resolved_url.map(no_nul),
                s.attribution_rule
            ])
        })
        .collect();
    serde_json::Value::from(rows).to_string()
}

/// Records a project's successful fetches, in one statement. The first success of a source
/// sets its baseline.
pub async fn sources_succeeded(
    conn: &mut Tx,
    project: &str,
    successes: &[SourceSuccess<'_>],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = sources_succeeded_sql!("$1", "$2", "$3");
    const SQL_PG: &str = concat!(
        "INSERT INTO source_state (project, source, baseline_at, last_success_at, \
            last_attempt_at, consecutive_failures, last_error, deferred_until, resolved_url, \
            attribution_rule) \
         SELECT $1, s.value ->> 0, $2, $2, $2, 0, NULL, NULL, s.value ->> 1, \
            COALESCE((s.value ->> 2)::bigint, 0) FROM jsonb_array_elements($3::jsonb) s(value)",
        sources_succeeded_on_conflict!()
    );
    if successes.is_empty() {
        return Ok(());
    }
    let rows = successes_json(successes);
    on_db!(conn.conn(), |c, d| sqlx::query(d.pick(SQL, SQL_PG))
        .bind(project)
        .bind(Ts(now))
        .bind(rows.as_str())
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}

/// Of the entries a source skipped in this run, those no earlier run reported (each is
/// remembered per project and source, cut to 200 characters). One insert: on PostgreSQL an
/// entry another process inserts at the same moment waits for it and is then skipped, so it
/// is reported once.
pub async fn first_reports(
    conn: &mut Tx,
    project: &str,
    source: SourceKind,
    entries: &[&str],
    now: DateTime<Utc>,
) -> Result<HashSet<String>, StoreError> {
    const SQL: &str = "INSERT INTO skipped_entries (project, source, entry, first_seen_at) \
         SELECT $1, $2, value, $3 FROM json_each($4) WHERE true \
         ON CONFLICT (project, source, entry) DO NOTHING RETURNING entry";
    const SQL_PG: &str = "INSERT INTO skipped_entries (project, source, entry, first_seen_at) \
         SELECT $1, $2, j.value, $3 FROM jsonb_array_elements_text($4::jsonb) j(value) \
         ON CONFLICT (project, source, entry) DO NOTHING RETURNING entry";
    if entries.is_empty() {
        return Ok(HashSet::new());
    }
    let keys: Vec<String> = entries.iter().map(|e| skip_key(e)).collect();
    let keys = serde_json::json!(keys).to_string();
    let rows: Vec<String> = on_db!(conn.conn(), |c, d| sqlx::query_scalar(d.pick(SQL, SQL_PG))
        .bind(project)
        .bind(source.as_str())
        .bind(Ts(now))
        .bind(keys.as_str())
        .fetch_all(&mut *c)
        .await?);
    Ok(rows.into_iter().collect())
}

/// How a skipped entry is remembered: its first 200 characters, without NUL ([`no_nul`]).
pub fn skip_key(entry: &str) -> String {
    no_nul(entry).chars().take(200).collect()
}

/// Records a failed fetch; `deferred_until` is set when the upstream asked to wait. One
/// upsert, the same text on both backends: on PostgreSQL the count grows under the row's
/// lock, so a concurrent failure is counted too.
pub async fn source_failed(
    conn: &mut Tx,
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
    on_db!(conn.conn(), |c| sqlx::query(SQL)
        .bind(project)
        .bind(source.as_str())
        .bind(Ts(now))
        .bind(no_nul(error))
        .bind(deferred_until.map(Ts))
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}
