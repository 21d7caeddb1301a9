//! Releases and their per-source evidence.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use pep440_rs::Version;

use super::changes::mark_changed;
use super::db::{Conn, Ts, no_nul, on_db};
use super::{Store, StoreError, Tx, ts};
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

/// A stored release row, as [`Store::known_releases`] reads it in one JSON array.
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

/// A stored evidence row, as [`Store::known_releases`] reads it: release, source, inherited, URL,
/// fingerprint.
type KnownEvidenceRow = (i64, String, i64, Option<String>, Option<i64>);

/// Reads one aggregated JSON column (`json_group_array`; `json_agg` on PostgreSQL), so a
/// whole set comes back as one row instead of one message per row from the database thread.
/// `sql` is the statement per dialect (SQLite, PostgreSQL).
async fn json_rows<T: serde::de::DeserializeOwned>(
    conn: Conn<'_>,
    sql: (&'static str, &'static str),
    bind: &str,
    column: &'static str,
) -> Result<Vec<T>, StoreError> {
    let text: String = on_db!(conn, |c, d| sqlx::query_scalar(d.pick(sql.0, sql.1))
        .bind(bind)
        .fetch_one(&mut *c)
        .await?);
    serde_json::from_str(&text).map_err(|err| StoreError::Corrupt {
        column,
        detail: err.to_string(),
    })
}

impl Store {
    /// Releases of one project with their evidence and what is stored of them: two
    /// statements, one row each, whatever the history's length. Read outside any transaction,
    /// on a connection of its own: a check reads a project this way while it writes the
    /// previous one, and writes it with [`write_release_rows`] in a transaction of its own
    /// afterwards.
    ///
    /// What is read stays what is stored until then: only a check writes releases and
    /// evidence (besides `alerts_done_at`, which is not read here), and the run lease keeps
    /// a second check out. If one ran anyway, the writes would still be safe: each is an
    /// upsert on the row's unique key (`ON CONFLICT (project, version_key)`,
    /// `ON CONFLICT (release_id, source)`), so a row another process wrote meanwhile is
    /// updated in place, never duplicated or refused, and evidence finds its release by key.
    pub async fn known_releases(&self, project: &str) -> Result<Vec<KnownRelease>, StoreError> {
        const RELEASES: &str = "SELECT json_group_array(json_array(id, version, version_key, class, \
            published_at, available_at, yanked, yanked_reason, baseline, new_in_run, \
            withdrawn_at, withdrawn_reason)) FROM releases WHERE project = $1";
        // Times through `herald_ts` and flags as 0/1: the same text as SQLite's, which a run
        // compares with what it would write.
        const RELEASES_PG: &str = "SELECT COALESCE(json_agg(json_build_array(id, version, \
            version_key, class, herald_ts(published_at), herald_ts(available_at), yanked::int, \
            yanked_reason, baseline::int, new_in_run, herald_ts(withdrawn_at), \
            withdrawn_reason)), '[]')::text FROM releases WHERE project = $1";
        let mut held = self.pool.acquire().await?;
        let rows: Vec<KnownRow> =
            json_rows(held.conn(), (RELEASES, RELEASES_PG), project, "releases").await?;
        let (mut evidence, mut fingerprints) = known_evidence(held.conn(), project).await?;
        rows.into_iter()
            .map(|row| {
                let (id, text, key, class, published_at, available_at, yanked) =
                    (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
                let version = Version::from_str(&text).map_err(|err| StoreError::Corrupt {
                    column: "releases.version",
                    detail: format!("`{text}`: {err}"),
                })?;
                let class =
                    ReleaseClass::from_str(&class).map_err(|detail| StoreError::Corrupt {
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
}

/// Evidence of one project's releases by release id: (source, inherited, URL) of each row,
/// and (source, fingerprint) of those that carry one.
type KnownEvidence = (
    HashMap<i64, Vec<(SourceKind, bool, Option<String>)>>,
    HashMap<i64, Vec<(SourceKind, i64)>>,
);

/// The evidence half of [`Store::known_releases`], in one statement.
async fn known_evidence(conn: Conn<'_>, project: &str) -> Result<KnownEvidence, StoreError> {
    const EVIDENCE: &str = "SELECT json_group_array(json_array(e.release_id, e.source, \
            e.inherited, e.url, e.fingerprint)) \
         FROM evidence e JOIN releases r ON r.id = e.release_id WHERE r.project = $1";
    const EVIDENCE_PG: &str = "SELECT COALESCE(json_agg(json_build_array(e.release_id, \
            e.source, e.inherited::int, e.url, e.fingerprint)), '[]')::text \
         FROM evidence e JOIN releases r ON r.id = e.release_id WHERE r.project = $1";
    let mut evidence: HashMap<i64, Vec<(SourceKind, bool, Option<String>)>> = HashMap::new();
    let mut fingerprints: HashMap<i64, Vec<(SourceKind, i64)>> = HashMap::new();
    let evidence_rows: Vec<KnownEvidenceRow> =
        json_rows(conn, (EVIDENCE, EVIDENCE_PG), project, "evidence").await?;
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
    Ok((evidence, fingerprints))
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
        (Some((yanked, reason)), _) => {
            let reason = reason.as_deref().map(|r| no_nul(r).into_owned());
            (*yanked, reason)
        }
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
/// whose observation changed. XXH3-64 over every field as written (text without NUL, see
/// [`no_nul`]), each length-prefixed.
fn fingerprint(obs: &Observation, inherited: bool) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut text = |t: Option<&str>| match t.map(no_nul) {
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

/// What a run writes of one project's releases: only the rows that change, the release rows
/// as one JSON array and their evidence as another. [`release_rows`] computes it from what
/// [`Store::known_releases`] read, with no database at hand, so a check prepares one project while
/// it writes the previous one; [`write_release_rows`] writes it.
#[derive(Debug, Default)]
pub struct ReleaseRows {
    releases: Option<String>,
    evidence: Option<String>,
}

impl ReleaseRows {
    /// The release rows as [`releases_upsert_sql!`] reads them (`[]`: none).
    pub(crate) fn releases_json(&self) -> &str {
        self.releases.as_deref().unwrap_or("[]")
    }

    /// The evidence rows as [`evidence_upsert_sql!`] reads them (`[]`: none).
    pub(crate) fn evidence_json(&self) -> &str {
        self.evidence.as_deref().unwrap_or("[]")
    }
}

/// The rows `writes` change, given what is stored (`known`): a release row whose values
/// differ (or that is new), an evidence row whose fingerprint differs (or that is new).
pub fn release_rows(
    known: &[KnownRelease],
    writes: &[ReleaseWrite<'_>],
) -> Result<ReleaseRows, StoreError> {
    let known_by_key: HashMap<&str, &KnownRelease> =
        known.iter().map(|k| (k.key.as_str(), k)).collect();
    let mut releases = Vec::new();
    let mut evidence = Vec::new();
    for w in writes {
        let existing = known_by_key.get(w.key).copied();
        let next = updated(existing.map(|k| &k.stored), w);
        let stored = existing
            .map(|k| k.stored.fingerprints.as_slice())
            .unwrap_or_default();
        if !existing.is_some_and(|k| k.stored.same_row(&next)) {
            releases.push(ReleaseJson::new(w, next));
        }
        for e in w.evidence {
            let fp = fingerprint(e.observation, e.inherited);
            if !stored
                .iter()
                .any(|(kind, old)| *kind == e.kind && *old == fp)
            {
                evidence.push(EvidenceJson::new(w.key, e, fp));
            }
        }
    }
    Ok(ReleaseRows {
        releases: (!releases.is_empty())
            .then(|| to_json(&releases))
            .transpose()?,
        evidence: (!evidence.is_empty())
            .then(|| to_json(&evidence))
            .transpose()?,
    })
}

/// Writes one project's prepared rows: the releases in one statement, then their evidence in
/// another (each row finds its release by key, so new releases need no second look-up).
/// See [`Store::known_releases`] for why this is safe beside another writer.
pub async fn write_release_rows(
    conn: &mut Tx,
    project: &str,
    rows: &ReleaseRows,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let stamp = Ts(now);
    if let Some(releases) = &rows.releases {
        upsert_releases(conn.conn(), project, releases, stamp).await?;
    }
    if let Some(evidence) = &rows.evidence {
        upsert_evidence(conn.conn(), project, evidence, stamp).await?;
    }
    Ok(())
}

/// [`release_rows`] and [`write_release_rows`] at once, for a single write outside a check
/// (tests, tools): returns each release's row id, in the order of `writes`.
pub async fn write_releases(
    conn: &mut Tx,
    project: &str,
    known: &[KnownRelease],
    writes: &[ReleaseWrite<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    write_release_rows(conn, project, &release_rows(known, writes)?, now).await?;
    let keys: Vec<&str> = writes.iter().map(|w| w.key).collect();
    let ids = release_ids(conn, project, &keys).await?;
    keys.iter()
        .map(|key| {
            ids.get(*key).copied().ok_or_else(|| StoreError::Corrupt {
                column: "releases.id",
                detail: format!("no row for {project} {key} after writing it"),
            })
        })
        .collect()
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

/// An evidence row to write, serialised as a JSON array, its release named by version key;
/// its text without NUL ([`no_nul`]).
#[derive(serde::Serialize)]
struct EvidenceJson<'a>(
    &'a str,
    &'static str,
    Cow<'a, str>,
    Option<Cow<'a, str>>,
    Option<String>,
    Option<Cow<'a, str>>,
    bool,
    Option<Cow<'a, str>>,
    bool,
    Option<bool>,
    bool,
    i64,
);

impl<'a> EvidenceJson<'a> {
    fn new(key: &'a str, e: &EvidenceWrite<'a>, fingerprint: i64) -> EvidenceJson<'a> {
        let o = e.observation;
        EvidenceJson(
            key,
            e.kind.as_str(),
            no_nul(&o.raw),
            o.url.as_deref().map(no_nul),
            o.published_at.map(ts),
            o.notes.as_deref().map(no_nul),
            o.yanked,
            o.yanked_reason.as_deref().map(no_nul),
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

/// What a release row becomes on conflict: the values merged with what is stored (the
/// same on both backends).
macro_rules! releases_on_conflict {
    () => {
        " ON CONFLICT (project, version_key) DO UPDATE SET \
            class = excluded.class, published_at = excluded.published_at, \
            available_at = excluded.available_at, yanked = excluded.yanked, \
            yanked_reason = excluded.yanked_reason, baseline = excluded.baseline, \
            new_in_run = excluded.new_in_run, withdrawn_at = excluded.withdrawn_at, \
            withdrawn_reason = excluded.withdrawn_reason"
    };
}
pub(crate) use releases_on_conflict;

/// Inserts or updates the release rows of the project at `$project` read from a JSON array
/// (bound at `$rows`, see [`ReleaseJson`]), first seen at `$now`, and counts the change
/// (SQLite).
macro_rules! releases_upsert_sql {
    ($project:literal, $now:literal, $rows:literal) => {
        concat!(
            "INSERT INTO releases (project, version, version_key, class, line, \
                published_at, available_at, yanked, yanked_reason, baseline, new_in_run, \
                withdrawn_at, withdrawn_reason, first_seen_at) \
             SELECT ",
            $project,
            ", r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value ->> 4, \
                r.value ->> 5, r.value ->> 6, r.value ->> 7, r.value ->> 8, r.value ->> 9, \
                r.value ->> 10, r.value ->> 11, ",
            $now,
            " FROM jsonb_each(",
            $rows,
            ") r WHERE true",
            $crate::store::releases::releases_on_conflict!(),
            $crate::store::changes::mark_changed!()
        )
    };
}
pub(crate) use releases_upsert_sql;

/// What an evidence row becomes on conflict: the same on both backends. Own evidence
/// replaces inherited evidence; inherited evidence never replaces a source's own.
macro_rules! evidence_on_conflict {
    () => {
        " ON CONFLICT (release_id, source) DO UPDATE SET \
        raw = excluded.raw, url = COALESCE(excluded.url, evidence.url), \
        published_at = COALESCE(excluded.published_at, evidence.published_at), \
        notes = COALESCE(excluded.notes, evidence.notes), yanked = excluded.yanked, \
        yanked_reason = excluded.yanked_reason, available = excluded.available, \
        prerelease_flag = excluded.prerelease_flag, inherited = excluded.inherited, \
        fingerprint = excluded.fingerprint, last_seen_at = excluded.last_seen_at \
        WHERE evidence.inherited = TRUE OR excluded.inherited = FALSE"
    };
}
pub(crate) use evidence_on_conflict;

/// Inserts or updates evidence rows read from a JSON array (bound at `$rows`, see
/// [`EvidenceJson`]), each finding its release of the project at `$project` by version key,
/// seen at `$now`, and counts the change (SQLite).
macro_rules! evidence_upsert_sql {
    ($now:literal, $rows:literal, $project:literal) => {
        concat!(
            "INSERT INTO evidence (release_id, source, raw, url, published_at, notes, \
                yanked, yanked_reason, available, prerelease_flag, inherited, fingerprint, \
                first_seen_at, last_seen_at) \
             SELECT (SELECT id FROM releases WHERE project = ",
            $project,
            " AND version_key = e.value ->> 0), \
                e.value ->> 1, e.value ->> 2, e.value ->> 3, e.value ->> 4, e.value ->> 5, \
                e.value ->> 6, e.value ->> 7, e.value ->> 8, e.value ->> 9, \
                e.value ->> 10, e.value ->> 11, ",
            $now,
            ", ",
            $now,
            " FROM jsonb_each(",
            $rows,
            ") e WHERE true",
            $crate::store::releases::evidence_on_conflict!(),
            $crate::store::changes::mark_changed!()
        )
    };
}
pub(crate) use evidence_upsert_sql;

/// Inserts or replaces release rows (values already merged with what is stored). Keys are
/// unique within `rows` (one planned release per key), as PostgreSQL's `ON CONFLICT DO UPDATE`
/// requires.
async fn upsert_releases(
    conn: Conn<'_>,
    project: &str,
    rows: &str,
    now: Ts,
) -> Result<(), StoreError> {
    const SQL: &str = releases_upsert_sql!("$1", "$2", "$3");
    const SQL_PG: &str = concat!(
        "INSERT INTO releases (project, version, version_key, class, line, \
            published_at, available_at, yanked, yanked_reason, baseline, new_in_run, \
            withdrawn_at, withdrawn_reason, first_seen_at) \
         SELECT $1, r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, \
            (r.value ->> 4)::timestamptz, (r.value ->> 5)::timestamptz, \
            (r.value ->> 6)::boolean, r.value ->> 7, (r.value ->> 8)::boolean, \
            (r.value ->> 9)::bigint, (r.value ->> 10)::timestamptz, r.value ->> 11, $2 \
         FROM jsonb_array_elements($3::jsonb) r(value)",
        releases_on_conflict!()
    );
    on_db!(conn, |c, d| sqlx::query(d.pick(SQL, SQL_PG))
        .bind(project)
        .bind(now)
        .bind(rows)
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}

/// The row ids of the project's releases with these keys, by key, in one statement (one row).
pub async fn release_ids(
    conn: &mut Tx,
    project: &str,
    keys: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    const SQL: &str = "SELECT json_group_object(version_key, id) FROM releases \
         WHERE project = $1 AND version_key IN (SELECT value FROM jsonb_each($2))";
    const SQL_PG: &str = "SELECT COALESCE(json_object_agg(version_key, id), '{}')::text \
         FROM releases WHERE project = $1 \
         AND version_key IN (SELECT jsonb_array_elements_text($2::jsonb))";
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let keys = to_json(keys)?;
    let text: String = on_db!(conn.conn(), |c, d| sqlx::query_scalar(d.pick(SQL, SQL_PG))
        .bind(project)
        .bind(keys.as_str())
        .fetch_one(&mut *c)
        .await?);
    serde_json::from_str(&text).map_err(|err| StoreError::Corrupt {
        column: "releases.id",
        detail: err.to_string(),
    })
}

/// Records what sources said about releases. Own evidence replaces inherited evidence;
/// inherited evidence never replaces a source's own. (release, source) pairs are unique
/// within `rows` (merge keeps one observation per source and release), as PostgreSQL's
/// `ON CONFLICT DO UPDATE` requires.
async fn upsert_evidence(
    conn: Conn<'_>,
    project: &str,
    rows: &str,
    now: Ts,
) -> Result<(), StoreError> {
    const SQL: &str = evidence_upsert_sql!("$1", "$2", "$3");
    const SQL_PG: &str = concat!(
        "INSERT INTO evidence (release_id, source, raw, url, published_at, \
            notes, yanked, yanked_reason, available, prerelease_flag, inherited, fingerprint, \
            first_seen_at, last_seen_at) \
         SELECT (SELECT id FROM releases WHERE project = $3 AND version_key = e.value ->> 0), \
            e.value ->> 1, e.value ->> 2, e.value ->> 3, \
            (e.value ->> 4)::timestamptz, e.value ->> 5, (e.value ->> 6)::boolean, \
            e.value ->> 7, (e.value ->> 8)::boolean, (e.value ->> 9)::boolean, \
            (e.value ->> 10)::boolean, (e.value ->> 11)::bigint, $1, $1 \
         FROM jsonb_array_elements($2::jsonb) e(value)",
        evidence_on_conflict!()
    );
    on_db!(conn, |c, d| sqlx::query(d.pick(SQL, SQL_PG))
        .bind(now)
        .bind(rows)
        .bind(project)
        .execute(&mut *c)
        .await?
        .rows_affected());
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
///
/// One `UPDATE .. WHERE withdrawn_at IS NULL .. RETURNING`: on PostgreSQL a row another
/// process changed meanwhile is checked again once that commits, so a release is withdrawn,
/// and reported, once.
pub async fn withdraw_rejected(
    conn: &mut Tx,
    project: &str,
    source: SourceKind,
    rejected: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Vec<Withdrawal>, StoreError> {
    const SQL: &str = concat!(
        "UPDATE releases SET withdrawn_at = $3, withdrawn_reason = ( \
            SELECT json_extract(j.value, '$[1]') FROM evidence e \
            JOIN json_each($4) j ON e.raw = json_extract(j.value, '$[0]') \
            WHERE e.release_id = releases.id AND e.source = $2 AND e.inherited = 0) \
         WHERE project = $1 AND withdrawn_at IS NULL \
         AND EXISTS (SELECT 1 FROM evidence e JOIN json_each($4) j ON e.raw = json_extract(j.value, '$[0]') \
            WHERE e.release_id = releases.id AND e.source = $2 AND e.inherited = 0) \
         AND NOT EXISTS (SELECT 1 FROM evidence o \
            WHERE o.release_id = releases.id AND o.inherited = 0 AND o.source <> $2) \
         RETURNING version, withdrawn_reason",
        mark_changed!()
    );
    // A spelling rejected twice gives its first reason, as SQLite's first match does
    // (PostgreSQL refuses a scalar subquery of two rows).
    const SQL_PG: &str = "UPDATE releases SET withdrawn_at = $3, withdrawn_reason = ( \
            SELECT j.value ->> 1 FROM evidence e \
            JOIN jsonb_array_elements($4::jsonb) WITH ORDINALITY j(value, n) \
               ON e.raw = j.value ->> 0 \
            WHERE e.release_id = releases.id AND e.source = $2 AND NOT e.inherited \
            ORDER BY j.n LIMIT 1) \
         WHERE project = $1 AND withdrawn_at IS NULL \
         AND EXISTS (SELECT 1 FROM evidence e \
            JOIN jsonb_array_elements($4::jsonb) j(value) ON e.raw = j.value ->> 0 \
            WHERE e.release_id = releases.id AND e.source = $2 AND NOT e.inherited) \
         AND NOT EXISTS (SELECT 1 FROM evidence o \
            WHERE o.release_id = releases.id AND NOT o.inherited AND o.source <> $2) \
         RETURNING version, withdrawn_reason";
    if rejected.is_empty() {
        return Ok(Vec::new());
    }
    // Spellings as `evidence.raw` stores them, reasons as they are to be stored: no NUL.
    let rejected: Vec<(Cow<'_, str>, Cow<'_, str>)> = rejected
        .iter()
        .map(|(raw, why)| (no_nul(raw), no_nul(why)))
        .collect();
    let rejected = serde_json::json!(rejected).to_string();
    let rows: Vec<(String, Option<String>)> =
        on_db!(conn.conn(), |c, d| sqlx::query_as(d.pick(SQL, SQL_PG))
            .bind(project)
            .bind(source.as_str())
            .bind(Ts(now))
            .bind(rejected.as_str())
            .fetch_all(&mut *c)
            .await?);
    Ok(rows
        .into_iter()
        .map(|(version, reason)| Withdrawal {
            version,
            reason: reason.unwrap_or_default(),
        })
        .collect())
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
        let (evidence_rows, rows) = on_db!(self.pool(), |c| {
            let evidence: Vec<EvidenceRecord> = sqlx::query_as(EVIDENCE).fetch_all(c).await?;
            let releases: Vec<ReleaseRecord> = sqlx::query_as(RELEASES).fetch_all(c).await?;
            (evidence, releases)
        });
        let mut evidence: HashMap<i64, Vec<EvidenceRow>> = HashMap::new();
        for row in evidence_rows {
            evidence
                .entry(row.release_id)
                .or_default()
                .push(row.into_row()?);
        }
        let mut out = Vec::new();
        for row in rows {
            if !filter.projects.is_empty() && !filter.projects.contains(&row.project) {
                continue;
            }
            let mut release = row.into_row()?;
            if !filter.classes.is_empty() && !filter.classes.contains(&release.class) {
                continue;
            }
            if filter.new_in_run.is_some() && filter.new_in_run != release.new_in_run {
                continue;
            }
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
        let (row, evidence) = on_db!(self.pool(), |c| {
            let row: Option<ReleaseRecord> =
                sqlx::query_as(RELEASE).bind(id).fetch_optional(c).await?;
            let evidence: Vec<EvidenceRecord> = if row.is_some() {
                sqlx::query_as(EVIDENCE).bind(id).fetch_all(c).await?
            } else {
                Vec::new()
            };
            (row, evidence)
        });
        let Some(row) = row else {
            return Ok(None);
        };
        let mut release = row.into_row()?;
        for row in evidence {
            release.sources.push(row.into_row()?);
        }
        Ok(Some(release))
    }

    /// Number of recorded releases and evidence rows (for summaries and tests).
    pub async fn counts(&self) -> Result<(i64, i64), StoreError> {
        const SQL: &str = "SELECT (SELECT COUNT(*) FROM releases), (SELECT COUNT(*) FROM evidence)";
        Ok(on_db!(self.pool(), |c| sqlx::query_as(SQL)
            .fetch_one(c)
            .await?))
    }
}

/// A `releases` row as both backends read it.
#[derive(sqlx::FromRow)]
struct ReleaseRecord {
    id: i64,
    project: String,
    version: String,
    class: String,
    line: String,
    published_at: Option<Ts>,
    first_seen_at: Ts,
    available_at: Option<Ts>,
    yanked: bool,
    yanked_reason: Option<String>,
    baseline: bool,
    new_in_run: Option<i64>,
    withdrawn_at: Option<Ts>,
    withdrawn_reason: Option<String>,
}

impl ReleaseRecord {
    fn into_row(self) -> Result<ReleaseRow, StoreError> {
        let class = ReleaseClass::from_str(&self.class).map_err(|detail| StoreError::Corrupt {
            column: "releases.class",
            detail,
        })?;
        Ok(ReleaseRow {
            id: self.id,
            parsed: Version::from_str(&self.version).ok(),
            project: self.project,
            version: self.version,
            class,
            line: self.line,
            published_at: self.published_at.map(Into::into),
            first_seen_at: self.first_seen_at.into(),
            available_at: self.available_at.map(Into::into),
            yanked: self.yanked,
            yanked_reason: self.yanked_reason,
            baseline: self.baseline,
            new_in_run: self.new_in_run,
            withdrawn_at: self.withdrawn_at.map(Into::into),
            withdrawn_reason: self.withdrawn_reason,
            sources: Vec::new(),
        })
    }
}

/// An `evidence` row as both backends read it.
#[derive(sqlx::FromRow)]
struct EvidenceRecord {
    release_id: i64,
    source: String,
    url: Option<String>,
    raw: String,
    published_at: Option<Ts>,
    notes: Option<String>,
    prerelease_flag: Option<bool>,
    inherited: bool,
}

impl EvidenceRecord {
    fn into_row(self) -> Result<EvidenceRow, StoreError> {
        Ok(EvidenceRow {
            source: source_kind(&self.source)?,
            url: self.url,
            raw: self.raw,
            published_at: self.published_at.map(Into::into),
            notes: self.notes,
            prerelease_flag: self.prerelease_flag,
            inherited: self.inherited,
        })
    }
}
