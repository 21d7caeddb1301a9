//! Releases and their per-source evidence.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use pep440_rs::Version;
use sqlx::{Row, SqliteConnection};

use super::{Store, StoreError, parse_ts, parse_ts_opt, ts};
use crate::model::{Observation, ReleaseClass, SourceKind};

/// A release already in the database, as the merge step needs it.
#[derive(Debug, Clone)]
pub struct KnownRelease {
    /// Row id.
    pub id: i64,
    /// Parsed version.
    pub version: Version,
    /// Canonical key.
    pub key: String,
    /// Whether the primary source has offered it for installation.
    pub available: bool,
    /// Evidence already recorded: source, inherited flag, URL.
    pub evidence: Vec<(SourceKind, bool, Option<String>)>,
}

impl KnownRelease {
    /// Whether a source has recorded evidence of its own (not inherited) for this release.
    pub fn has_own(&self, kind: SourceKind) -> bool {
        self.evidence
            .iter()
            .any(|(k, inherited, _)| *k == kind && !inherited)
    }
}

/// What to write for one release.
#[derive(Debug, Clone)]
pub struct ReleaseWrite<'a> {
    /// Project name.
    pub project: &'a str,
    /// Version to show (normal form).
    pub version: &'a Version,
    /// Canonical key.
    pub key: &'a str,
    /// Class.
    pub class: ReleaseClass,
    /// Line.
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
    /// Now.
    pub now: DateTime<Utc>,
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
    /// Class.
    pub class: ReleaseClass,
    /// Line.
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

/// Releases of one project with their evidence, inside a transaction.
pub async fn known_releases(
    conn: &mut SqliteConnection,
    project: &str,
) -> Result<Vec<KnownRelease>, StoreError> {
    const RELEASES: &str = "SELECT id, version, version_key, available_at IS NOT NULL AS available FROM releases WHERE project = ?";
    const EVIDENCE: &str = "SELECT e.release_id, e.source, e.inherited, e.url FROM evidence e \
         JOIN releases r ON r.id = e.release_id WHERE r.project = ?";
    let rows = sqlx::query(RELEASES)
        .bind(project)
        .fetch_all(&mut *conn)
        .await?;
    let mut evidence: HashMap<i64, Vec<(SourceKind, bool, Option<String>)>> = HashMap::new();
    for row in sqlx::query(EVIDENCE)
        .bind(project)
        .fetch_all(&mut *conn)
        .await?
    {
        let source: String = row.try_get("source")?;
        evidence
            .entry(row.try_get("release_id")?)
            .or_default()
            .push((
                source_kind(&source)?,
                row.try_get("inherited")?,
                row.try_get("url")?,
            ));
    }
    rows.into_iter()
        .map(|row| {
            let id: i64 = row.try_get("id")?;
            let text: String = row.try_get("version")?;
            let version = Version::from_str(&text).map_err(|err| StoreError::Corrupt {
                column: "releases.version",
                detail: format!("`{text}`: {err}"),
            })?;
            Ok(KnownRelease {
                id,
                version,
                key: row.try_get("version_key")?,
                available: row.try_get("available")?,
                evidence: evidence.remove(&id).unwrap_or_default(),
            })
        })
        .collect()
}

/// Inserts or updates a release; returns its id.
pub async fn write_release(
    conn: &mut SqliteConnection,
    w: &ReleaseWrite<'_>,
) -> Result<i64, StoreError> {
    const SQL: &str = "INSERT INTO releases (project, version, version_key, class, line, published_at, \
            first_seen_at, available_at, yanked, yanked_reason, baseline, new_in_run) \
         VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, ?7), ?8, ?9, COALESCE(?10, 0), ?11, ?12, ?13) \
         ON CONFLICT (project, version_key) DO UPDATE SET \
            class = excluded.class, \
            published_at = CASE WHEN ?6 IS NOT NULL THEN ?6 ELSE COALESCE(releases.published_at, ?7) END, \
            available_at = COALESCE(releases.available_at, excluded.available_at), \
            yanked = COALESCE(?10, releases.yanked), \
            yanked_reason = CASE WHEN ?10 IS NULL THEN releases.yanked_reason ELSE ?11 END, \
            baseline = MAX(releases.baseline, excluded.baseline), \
            new_in_run = COALESCE(releases.new_in_run, excluded.new_in_run), \
            withdrawn_at = CASE WHEN ?14 THEN NULL ELSE releases.withdrawn_at END, \
            withdrawn_reason = CASE WHEN ?14 THEN NULL ELSE releases.withdrawn_reason END \
         RETURNING id";
    let (yanked, reason) = match &w.yanked {
        Some((yanked, reason)) => (Some(i64::from(*yanked)), reason.clone()),
        None => (None, None),
    };
    let id = sqlx::query_scalar(SQL)
        .bind(w.project)
        .bind(w.version.to_string())
        .bind(w.key)
        .bind(w.class.as_str())
        .bind(w.line)
        .bind(w.primary_published_at.map(ts))
        .bind(w.other_published_at.map(ts))
        .bind(ts(w.now))
        .bind(w.available_at.map(ts))
        .bind(yanked)
        .bind(reason)
        .bind(w.baseline)
        .bind(w.new_in_run)
        .bind(w.attributed)
        .fetch_one(&mut *conn)
        .await?;
    Ok(id)
}

/// Records what a source said about a release. Own evidence replaces inherited evidence;
/// inherited evidence never replaces a source's own.
pub async fn write_evidence(
    conn: &mut SqliteConnection,
    release_id: i64,
    source: SourceKind,
    obs: &Observation,
    inherited: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO evidence (release_id, source, raw, url, published_at, notes, yanked, \
            yanked_reason, available, prerelease_flag, inherited, first_seen_at, last_seen_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12) \
         ON CONFLICT (release_id, source) DO UPDATE SET \
            raw = excluded.raw, url = COALESCE(excluded.url, evidence.url), \
            published_at = COALESCE(excluded.published_at, evidence.published_at), \
            notes = COALESCE(excluded.notes, evidence.notes), yanked = excluded.yanked, \
            yanked_reason = excluded.yanked_reason, available = excluded.available, \
            prerelease_flag = excluded.prerelease_flag, inherited = excluded.inherited, \
            last_seen_at = excluded.last_seen_at \
         WHERE evidence.inherited = 1 OR excluded.inherited = 0";
    sqlx::query(SQL)
        .bind(release_id)
        .bind(source.as_str())
        .bind(&obs.raw)
        .bind(&obs.url)
        .bind(obs.published_at.map(ts))
        .bind(&obs.notes)
        .bind(obs.yanked)
        .bind(&obs.yanked_reason)
        .bind(obs.available)
        .bind(obs.prerelease_flag)
        .bind(inherited)
        .bind(ts(now))
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
    const SQL: &str = "UPDATE releases SET withdrawn_at = ?3, withdrawn_reason = ( \
            SELECT json_extract(j.value, '$[1]') FROM evidence e \
            JOIN json_each(?4) j ON e.raw = json_extract(j.value, '$[0]') \
            WHERE e.release_id = releases.id AND e.source = ?2 AND e.inherited = 0) \
         WHERE project = ?1 AND withdrawn_at IS NULL \
         AND EXISTS (SELECT 1 FROM evidence e JOIN json_each(?4) j ON e.raw = json_extract(j.value, '$[0]') \
            WHERE e.release_id = releases.id AND e.source = ?2 AND e.inherited = 0) \
         AND NOT EXISTS (SELECT 1 FROM evidence o \
            WHERE o.release_id = releases.id AND o.inherited = 0 AND o.source <> ?2) \
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
                withdrawn_reason FROM releases WHERE id = ?";
        const EVIDENCE: &str = "SELECT release_id, source, url, raw, published_at, notes, prerelease_flag, \
                inherited FROM evidence WHERE release_id = ? ORDER BY source";
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
