//! Releases and their per-source evidence.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use pep440_rs::Version;
use sqlx::{Row, SqliteConnection};

use super::{Store, StoreError, parse_ts, parse_ts_opt, ts};
use crate::model::{Observation, ReleaseClass, SourceKind};

pub use crate::merge::{KnownRelease, StoredRelease};

/// What to write for one release.
#[derive(Debug, Clone)]
pub struct ReleaseWrite<'a> {
    /// Version to show (normal form).
    pub version: &'a Version,
    /// Canonical key.
    pub key: &'a str,
    pub class: ReleaseClass,
    pub line: &'a str,
    /// Date from the primary source: replaces what is stored.
    pub primary_published_at: Option<DateTime<Utc>>,
    /// Date from another source: used only when none is stored.
    pub other_published_at: Option<DateTime<Utc>>,
    /// Set when it became available on the primary source now.
    pub available_at: Option<DateTime<Utc>>,
    /// Yanked state from the primary source, when it reported one.
    pub yanked: Option<(bool, Option<String>)>,
    /// Known from a source's first fetch.
    pub baseline: bool,
    /// The run that announces it.
    pub new_in_run: Option<i64>,
    /// A source gave own (not inherited) evidence of it in this run: it is the project's
    /// under the current rule, so an earlier withdrawal is lifted.
    pub attributed: bool,
    /// What each source said of it in this run.
    pub evidence: &'a [EvidenceWrite<'a>],
}

/// A recorded release, for listings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReleaseRow {
    /// Row id.
    #[serde(skip)]
    pub id: i64,
    /// Project name.
    pub project: String,
    /// Version (normal form).
    pub version: String,
    pub class: ReleaseClass,
    pub line: String,
    /// Publication date.
    pub published_at: Option<DateTime<Utc>>,
    /// When Herald first recorded it.
    pub first_seen_at: DateTime<Utc>,
    /// When it became installable on the primary source (null: not yet).
    pub available_at: Option<DateTime<Utc>>,
    /// Withdrawn from the index.
    pub yanked: bool,
    /// Why, when known.
    pub yanked_reason: Option<String>,
    /// Known from the first fetch of its source (never announced).
    pub baseline: bool,
    /// The run that found it new, if any.
    pub new_in_run: Option<i64>,
    /// When a run found that the current attribution rule gives it to another package.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<DateTime<Utc>>,
    /// Why (`the github tag `x` names another package (`y`)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_reason: Option<String>,
    /// One entry per source that saw it.
    pub sources: Vec<EvidenceRow>,
    /// Parsed version, for ordering.
    #[serde(skip)]
    pub parsed: Option<Version>,
}

/// One source's evidence, for listings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvidenceRow {
    /// Which source.
    pub source: SourceKind,
    /// Its page for the release.
    pub url: Option<String>,
    /// Its spelling of the version.
    pub raw: String,
    /// Its date.
    pub published_at: Option<DateTime<Utc>>,
    /// Release notes it carried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The source's own pre-release flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prerelease_flag: Option<bool>,
    /// A post about the line's feature release, reused by this bugfix release.
    pub inherited: bool,
}

/// Which releases to list.
#[derive(Debug, Clone, Default)]
pub struct ReleaseFilter {
    /// Only these projects (all when empty).
    pub projects: Vec<String>,
    /// Only these classes (all when empty).
    pub classes: Vec<ReleaseClass>,
    /// Only releases found new by this run.
    pub new_in_run: Option<i64>,
    /// Include withdrawn releases (another package's under the current attribution rule);
    /// every listing but `herald releases` leaves them out.
    pub with_withdrawn: bool,
}

fn source_kind(text: &str) -> Result<SourceKind, StoreError> {
    SourceKind::from_str(text).map_err(|detail| StoreError::Corrupt {
        column: "evidence.source",
        detail,
    })
}

/// A stored release row, as `known_releases` reads it in one JSON array.
type KnownRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// A stored evidence row, as `known_releases` reads it: release, source, inherited, URL,
/// fingerprint.
type KnownEvidenceRow = (i64, String, i64, Option<String>, Option<i64>);

/// Reads one aggregated JSON column (`json_group_array`), so a whole set comes back as one
/// row instead of one message per row from the database thread.
async fn json_rows<T: serde::de::DeserializeOwned>(
    conn: &mut SqliteConnection,
    sql: &'static str,
    bind: &str,
    column: &'static str,
) -> Result<Vec<T>, StoreError> {
    let text: String = sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&mut *conn)
        .await?;
    serde_json::from_str(&text).map_err(|err| StoreError::Corrupt {
        column,
        detail: err.to_string(),
    })
}

/// Releases of one project with their evidence and what is stored of them, inside a
/// transaction: two statements, one row each, whatever the history's length.
pub async fn known_releases(
    conn: &mut SqliteConnection,
    project: &str,
) -> Result<Vec<KnownRelease>, StoreError> {
    const RELEASES: &str = "SELECT json_group_array(json_array(id, version, version_key, class, \
            published_at, available_at, yanked, yanked_reason, baseline, new_in_run, \
            withdrawn_at, withdrawn_reason)) FROM releases WHERE project = $1";
    const EVIDENCE: &str = "SELECT json_group_array(json_array(e.release_id, e.source, \
            e.inherited, e.url, e.fingerprint)) \
         FROM evidence e JOIN releases r ON r.id = e.release_id WHERE r.project = $1";
    let rows: Vec<KnownRow> = json_rows(conn, RELEASES, project, "releases").await?;
    let mut evidence: HashMap<i64, Vec<(SourceKind, bool, Option<String>)>> = HashMap::new();
    let mut fingerprints: HashMap<i64, Vec<(SourceKind, i64)>> = HashMap::new();
    let evidence_rows: Vec<KnownEvidenceRow> =
        json_rows(conn, EVIDENCE, project, "evidence").await?;
    for (release_id, source, inherited, url, fingerprint) in evidence_rows {
        let kind = source_kind(&source)?;
        evidence
            .entry(release_id)
            .or_default()
            .push((kind, inherited != 0, url));
        if let Some(fingerprint) = fingerprint {
            fingerprints
                .entry(release_id)
                .or_default()
                .push((kind, fingerprint));
        }
    }
    rows.into_iter()
        .map(|row| {
            let (id, text, key, class, published_at, available_at, yanked) =
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
            let version = Version::from_str(&text).map_err(|err| StoreError::Corrupt {
                column: "releases.version",
                detail: format!("`{text}`: {err}"),
            })?;
            let class = ReleaseClass::from_str(&class).map_err(|detail| StoreError::Corrupt {
                column: "releases.class",
                detail,
            })?;
            Ok(KnownRelease {
                id,
                version,
                key,
                evidence: evidence.remove(&id).unwrap_or_default(),
                stored: StoredRelease {
                    class,
                    published_at,
                    available_at,
                    yanked: yanked != 0,
                    yanked_reason: row.7,
                    baseline: row.8 != 0,
                    new_in_run: row.9,
                    withdrawn_at: row.10,
                    withdrawn_reason: row.11,
                    fingerprints: fingerprints.remove(&id).unwrap_or_default(),
                },
            })
        })
        .collect()
}

/// One source's evidence of a release, to write.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceWrite<'a> {
    /// Which source.
    pub kind: SourceKind,
    /// What it said.
    pub observation: &'a Observation,
    /// A line post reused from the line's feature release.
    pub inherited: bool,
}

/// The values a release row has after `w` is applied to what is stored (`None`: a new row).
/// This is the one place that says how a run's findings update a release.
fn updated(stored: Option<&StoredRelease>, w: &ReleaseWrite<'_>) -> StoredRelease {
    let primary = w.primary_published_at.map(ts);
    let other = || w.other_published_at.map(ts);
    let (yanked, yanked_reason) = match (&w.yanked, stored) {
        (Some((yanked, reason)), _) => (*yanked, reason.clone()),
        (None, Some(s)) => (s.yanked, s.yanked_reason.clone()),
        (None, None) => (false, None),
    };
    let lift = w.attributed;
    StoredRelease {
        class: w.class,
        published_at: primary
            .or_else(|| stored.and_then(|s| s.published_at.clone()).or_else(other)),
        available_at: stored
            .and_then(|s| s.available_at.clone())
            .or_else(|| w.available_at.map(ts)),
        yanked,
        yanked_reason,
        baseline: w.baseline || stored.is_some_and(|s| s.baseline),
        new_in_run: stored.and_then(|s| s.new_in_run).or(w.new_in_run),
        withdrawn_at: stored
            .filter(|_| !lift)
            .and_then(|s| s.withdrawn_at.clone()),
        withdrawn_reason: stored
            .filter(|_| !lift)
            .and_then(|s| s.withdrawn_reason.clone()),
        fingerprints: Vec::new(),
    }
}

/// A digest of what an evidence row records, so a listing read again writes only the rows
/// whose observation changed. XXH3-64 over every written field, each length-prefixed.
fn fingerprint(obs: &Observation, inherited: bool) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut text = |t: Option<&str>| match t {
        Some(t) => {
            h.update(&[1]);
            h.update(&(t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
        None => h.update(&[0]),
    };
    text(Some(&obs.raw));
    text(obs.url.as_deref());
    text(obs.notes.as_deref());
    text(obs.yanked_reason.as_deref());
    let when = obs
        .published_at
        .map_or(i64::MIN, |at| at.timestamp_micros());
    let flags = [
        u8::from(obs.yanked),
        u8::from(obs.available),
        obs.prerelease_flag.map_or(2, u8::from),
        u8::from(inherited),
    ];
    h.update(&when.to_le_bytes());
    h.update(&flags);
    h.digest() as i64
}

/// Writes what a run found of one project's releases, only the rows that change: the
/// releases in one statement, their evidence in another (each a JSON array of rows read with
/// `jsonb_each`), and the ids of new rows in a third. Returns each release's row id, in the
/// order of `writes`.
pub async fn write_releases(
    conn: &mut SqliteConnection,
    project: &str,
    known: &[KnownRelease],
    writes: &[ReleaseWrite<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let known_by_key: HashMap<&str, &KnownRelease> =
        known.iter().map(|k| (k.key.as_str(), k)).collect();
    let mut ids: Vec<Option<i64>> = Vec::with_capacity(writes.len());
    let mut rows = Vec::new();
    for w in writes {
        let existing = known_by_key.get(w.key).copied();
        let next = updated(existing.map(|k| &k.stored), w);
        ids.push(existing.map(|k| k.id));
        if !existing.is_some_and(|k| k.stored.same_row(&next)) {
            rows.push(ReleaseJson::new(w, next));
        }
    }
    let stamp = ts(now);
    if !rows.is_empty() {
        upsert_releases(conn, project, &rows, &stamp).await?;
    }
    let missing: Vec<&str> = writes
        .iter()
        .zip(&ids)
        .filter(|(_, id)| id.is_none())
        .map(|(w, _)| w.key)
        .collect();
    if !missing.is_empty() {
        let found: HashMap<String, i64> = new_ids(conn, project, &missing).await?;
        for (slot, w) in ids.iter_mut().zip(writes) {
            if slot.is_none() {
                *slot = found.get(w.key).copied();
            }
        }
    }
    let ids: Vec<i64> = ids
        .into_iter()
        .zip(writes)
        .map(|(id, w)| {
            id.ok_or_else(|| StoreError::Corrupt {
                column: "releases.id",
                detail: format!("no row for {project} {} after writing it", w.key),
            })
        })
        .collect::<Result<_, _>>()?;
    let mut evidence = Vec::new();
    for (w, id) in writes.iter().zip(&ids) {
        let stored = known_by_key
            .get(w.key)
            .map(|k| k.stored.fingerprints.as_slice())
            .unwrap_or_default();
        for e in w.evidence {
            let fp = fingerprint(e.observation, e.inherited);
            if !stored
                .iter()
                .any(|(kind, old)| *kind == e.kind && *old == fp)
            {
                evidence.push(EvidenceJson::new(*id, e, fp));
            }
        }
    }
    if !evidence.is_empty() {
        upsert_evidence(conn, &evidence, &stamp).await?;
    }
    Ok(ids)
}

/// A release row to write, serialised as a JSON array (the statement reads it by position).
#[derive(serde::Serialize)]
struct ReleaseJson<'a>(
    String,
    &'a str,
    &'static str,
    &'a str,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
    bool,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl<'a> ReleaseJson<'a> {
    fn new(w: &ReleaseWrite<'a>, next: StoredRelease) -> ReleaseJson<'a> {
        ReleaseJson(
            w.version.to_string(),
            w.key,
            next.class.as_str(),
            w.line,
            next.published_at,
            next.available_at,
            next.yanked,
            next.yanked_reason,
            next.baseline,
            next.new_in_run,
            next.withdrawn_at,
            next.withdrawn_reason,
        )
    }
}

/// An evidence row to write, serialised as a JSON array.
#[derive(serde::Serialize)]
struct EvidenceJson<'a>(
    i64,
    &'static str,
    &'a str,
    Option<&'a str>,
    Option<String>,
    Option<&'a str>,
    bool,
    Option<&'a str>,
    bool,
    Option<bool>,
    bool,
    i64,
);

impl<'a> EvidenceJson<'a> {
    fn new(release_id: i64, e: &EvidenceWrite<'a>, fingerprint: i64) -> EvidenceJson<'a> {
        let o = e.observation;
        EvidenceJson(
            release_id,
            e.kind.as_str(),
            &o.raw,
            o.url.as_deref(),
            o.published_at.map(ts),
            o.notes.as_deref(),
            o.yanked,
            o.yanked_reason.as_deref(),
            o.available,
            o.prerelease_flag,
            e.inherited,
            fingerprint,
        )
    }
}

fn to_json<T: serde::Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|err| StoreError::Corrupt {
        column: "(rows to write)",
        detail: err.to_string(),
    })
}

/// Inserts or replaces release rows (values already merged with what is stored).
async fn upsert_releases(
    conn: &mut SqliteConnection,
    project: &str,
    rows: &[ReleaseJson<'_>],
    now: &str,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO releases (project, version, version_key, class, line, \
            published_at, available_at, yanked, yanked_reason, baseline, new_in_run, \
            withdrawn_at, withdrawn_reason, first_seen_at) \
         SELECT $1, r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value ->> 4, \
            r.value ->> 5, r.value ->> 6, r.value ->> 7, r.value ->> 8, r.value ->> 9, \
            r.value ->> 10, r.value ->> 11, $2 \
         FROM jsonb_each($3) r WHERE true \
         ON CONFLICT (project, version_key) DO UPDATE SET \
            class = excluded.class, published_at = excluded.published_at, \
            available_at = excluded.available_at, yanked = excluded.yanked, \
            yanked_reason = excluded.yanked_reason, baseline = excluded.baseline, \
            new_in_run = excluded.new_in_run, withdrawn_at = excluded.withdrawn_at, \
            withdrawn_reason = excluded.withdrawn_reason";
    sqlx::query(SQL)
        .bind(project)
        .bind(now)
        .bind(to_json(rows)?)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The row ids of releases just inserted, by key, in one row.
async fn new_ids(
    conn: &mut SqliteConnection,
    project: &str,
    keys: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    const SQL: &str = "SELECT json_group_object(version_key, id) FROM releases \
         WHERE project = $1 AND version_key IN (SELECT value FROM jsonb_each($2))";
    let text: String = sqlx::query_scalar(SQL)
        .bind(project)
        .bind(to_json(keys)?)
        .fetch_one(&mut *conn)
        .await?;
    serde_json::from_str(&text).map_err(|err| StoreError::Corrupt {
        column: "releases.id",
        detail: err.to_string(),
    })
}

/// Records what sources said about releases. Own evidence replaces inherited evidence;
/// inherited evidence never replaces a source's own.
async fn upsert_evidence(
    conn: &mut SqliteConnection,
    rows: &[EvidenceJson<'_>],
    now: &str,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO evidence (release_id, source, raw, url, published_at, notes, \
            yanked, yanked_reason, available, prerelease_flag, inherited, fingerprint, \
            first_seen_at, last_seen_at) \
         SELECT e.value ->> 0, e.value ->> 1, e.value ->> 2, e.value ->> 3, e.value ->> 4, \
            e.value ->> 5, e.value ->> 6, e.value ->> 7, e.value ->> 8, e.value ->> 9, \
            e.value ->> 10, e.value ->> 11, $1, $1 \
         FROM jsonb_each($2) e WHERE true \
         ON CONFLICT (release_id, source) DO UPDATE SET \
            raw = excluded.raw, url = COALESCE(excluded.url, evidence.url), \
            published_at = COALESCE(excluded.published_at, evidence.published_at), \
            notes = COALESCE(excluded.notes, evidence.notes), yanked = excluded.yanked, \
            yanked_reason = excluded.yanked_reason, available = excluded.available, \
            prerelease_flag = excluded.prerelease_flag, inherited = excluded.inherited, \
            fingerprint = excluded.fingerprint, last_seen_at = excluded.last_seen_at \
         WHERE evidence.inherited = 1 OR excluded.inherited = 0";
    sqlx::query(SQL)
        .bind(now)
        .bind(to_json(rows)?)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A release a run withdrew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    /// Its version.
    pub version: String,
    /// Why.
    pub reason: String,
}

/// Withdraws the project's releases whose only own evidence is an entry of `source` that the
/// current attribution rule rejects: `rejected` pairs each rejected spelling with the reason to
/// record. Releases another source also gives evidence of are kept as they are. Run after this
/// run's evidence is written (an entry the rule still gives to the project has replaced the
/// rejected spelling by then).
pub async fn withdraw_rejected(
    conn: &mut SqliteConnection,
    project: &str,
    source: SourceKind,
    rejected: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Vec<Withdrawal>, StoreError> {
    const SQL: &str = "UPDATE releases SET withdrawn_at = $3, withdrawn_reason = ( \
            SELECT json_extract(j.value, '$[1]') FROM evidence e \
            JOIN json_each($4) j ON e.raw = json_extract(j.value, '$[0]') \
            WHERE e.release_id = releases.id AND e.source = $2 AND e.inherited = 0) \
         WHERE project = $1 AND withdrawn_at IS NULL \
         AND EXISTS (SELECT 1 FROM evidence e JOIN json_each($4) j ON e.raw = json_extract(j.value, '$[0]') \
            WHERE e.release_id = releases.id AND e.source = $2 AND e.inherited = 0) \
         AND NOT EXISTS (SELECT 1 FROM evidence o \
            WHERE o.release_id = releases.id AND o.inherited = 0 AND o.source <> $2) \
         RETURNING version, withdrawn_reason";
    if rejected.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(SQL)
        .bind(project)
        .bind(source.as_str())
        .bind(ts(now))
        .bind(serde_json::json!(rejected).to_string())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Withdrawal {
                version: row.try_get("version")?,
                reason: row
                    .try_get::<Option<String>, _>("withdrawn_reason")?
                    .unwrap_or_default(),
            })
        })
        .collect()
}

impl Store {
    /// Recorded releases matching `filter`, newest first (by publication date, else first
    /// sight; ties by project, then version).
    pub async fn releases(&self, filter: &ReleaseFilter) -> Result<Vec<ReleaseRow>, StoreError> {
        const RELEASES: &str = "SELECT id, project, version, class, line, published_at, first_seen_at, \
                available_at, yanked, yanked_reason, baseline, new_in_run, withdrawn_at, \
                withdrawn_reason FROM releases";
        const EVIDENCE: &str = "SELECT release_id, source, url, raw, published_at, notes, prerelease_flag, \
                inherited FROM evidence ORDER BY release_id, source";
        let mut evidence: HashMap<i64, Vec<EvidenceRow>> = HashMap::new();
        for row in sqlx::query(EVIDENCE).fetch_all(self.pool()).await? {
            let source: String = row.try_get("source")?;
            let published: Option<String> = row.try_get("published_at")?;
            evidence
                .entry(row.try_get("release_id")?)
                .or_default()
                .push(EvidenceRow {
                    source: source_kind(&source)?,
                    url: row.try_get("url")?,
                    raw: row.try_get("raw")?,
                    published_at: parse_ts_opt("evidence.published_at", published.as_deref())?,
                    notes: row.try_get("notes")?,
                    prerelease_flag: row.try_get("prerelease_flag")?,
                    inherited: row.try_get("inherited")?,
                });
        }
        let mut out = Vec::new();
        for row in sqlx::query(RELEASES).fetch_all(self.pool()).await? {
            let project: String = row.try_get("project")?;
            if !filter.projects.is_empty() && !filter.projects.contains(&project) {
                continue;
            }
            let class_text: String = row.try_get("class")?;
            let class =
                ReleaseClass::from_str(&class_text).map_err(|detail| StoreError::Corrupt {
                    column: "releases.class",
                    detail,
                })?;
            if !filter.classes.is_empty() && !filter.classes.contains(&class) {
                continue;
            }
            let new_in_run: Option<i64> = row.try_get("new_in_run")?;
            if filter.new_in_run.is_some() && filter.new_in_run != new_in_run {
                continue;
            }
            let mut release = release_row(&row)?;
            if release.withdrawn_at.is_some() && !filter.with_withdrawn {
                continue;
            }
            release.sources = evidence.remove(&release.id).unwrap_or_default();
            out.push(release);
        }
        out.sort_by(|a, b| {
            let date_a = a.published_at.unwrap_or(a.first_seen_at);
            let date_b = b.published_at.unwrap_or(b.first_seen_at);
            date_b
                .cmp(&date_a)
                .then_with(|| a.project.cmp(&b.project))
                .then_with(|| b.parsed.cmp(&a.parsed))
        });
        Ok(out)
    }

    /// One release with its evidence.
    pub async fn release(&self, id: i64) -> Result<Option<ReleaseRow>, StoreError> {
        const RELEASE: &str = "SELECT id, project, version, class, line, published_at, first_seen_at, \
                available_at, yanked, yanked_reason, baseline, new_in_run, withdrawn_at, \
                withdrawn_reason FROM releases WHERE id = $1";
        const EVIDENCE: &str = "SELECT release_id, source, url, raw, published_at, notes, prerelease_flag, \
                inherited FROM evidence WHERE release_id = $1 ORDER BY source";
        let Some(row) = sqlx::query(RELEASE)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let mut release = release_row(&row)?;
        for row in sqlx::query(EVIDENCE)
            .bind(id)
            .fetch_all(self.pool())
            .await?
        {
            release.sources.push(evidence_row(&row)?);
        }
        Ok(Some(release))
    }

    /// Number of recorded releases and evidence rows (for summaries and tests).
    pub async fn counts(&self) -> Result<(i64, i64), StoreError> {
        const SQL: &str = "SELECT (SELECT COUNT(*) FROM releases), (SELECT COUNT(*) FROM evidence)";
        let row = sqlx::query(SQL).fetch_one(self.pool()).await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }
}

fn release_row(row: &sqlx::sqlite::SqliteRow) -> Result<ReleaseRow, StoreError> {
    let class_text: String = row.try_get("class")?;
    let class = ReleaseClass::from_str(&class_text).map_err(|detail| StoreError::Corrupt {
        column: "releases.class",
        detail,
    })?;
    let version: String = row.try_get("version")?;
    let published: Option<String> = row.try_get("published_at")?;
    let first_seen: String = row.try_get("first_seen_at")?;
    let available: Option<String> = row.try_get("available_at")?;
    let withdrawn: Option<String> = row.try_get("withdrawn_at")?;
    Ok(ReleaseRow {
        id: row.try_get("id")?,
        parsed: Version::from_str(&version).ok(),
        project: row.try_get("project")?,
        version,
        class,
        line: row.try_get("line")?,
        published_at: parse_ts_opt("releases.published_at", published.as_deref())?,
        first_seen_at: parse_ts("releases.first_seen_at", &first_seen)?,
        available_at: parse_ts_opt("releases.available_at", available.as_deref())?,
        yanked: row.try_get("yanked")?,
        yanked_reason: row.try_get("yanked_reason")?,
        baseline: row.try_get("baseline")?,
        new_in_run: row.try_get("new_in_run")?,
        withdrawn_at: parse_ts_opt("releases.withdrawn_at", withdrawn.as_deref())?,
        withdrawn_reason: row.try_get("withdrawn_reason")?,
        sources: Vec::new(),
    })
}

fn evidence_row(row: &sqlx::sqlite::SqliteRow) -> Result<EvidenceRow, StoreError> {
    let source: String = row.try_get("source")?;
    let published: Option<String> = row.try_get("published_at")?;
    Ok(EvidenceRow {
        source: source_kind(&source)?,
        url: row.try_get("url")?,
        raw: row.try_get("raw")?,
        published_at: parse_ts_opt("evidence.published_at", published.as_deref())?,
        notes: row.try_get("notes")?,
        prerelease_flag: row.try_get("prerelease_flag")?,
        inherited: row.try_get("inherited")?,
    })
}
