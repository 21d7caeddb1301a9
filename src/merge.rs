//! Merging observations into releases: which observations are one release, which releases
//! just became available, and which of those are news.
//!
//! Rules: a release is one canonical version per project, whatever the source's spelling; a
//! secondary source's version that the primary published only as a post-release (tag
//! `v0.2.0`, upload `0.2.0.post1`) is evidence of that post-release; a release is new when it
//! first becomes available on the primary source after that source's baseline fetch, and is
//! not yanked; a feature release's blog post is inherited by the bugfix releases of its line
//! that have no post of their own.
//!
//! Owns: that decision, as a [`Plan`]. Pure: no I/O, no clock; `store` writes the plan.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use pep440_rs::Version;

use crate::model::{Observation, Project, ReleaseClass, SourceKind};
use crate::version;

/// A release already in the database, as the merge step needs it.
#[derive(Debug, Clone)]
pub struct KnownRelease {
    /// `releases.id`.
    pub id: i64,
    pub version: Version,
    /// Its canonical key ([`version::canonical_key`]): one release per key and project.
    pub key: String,
    /// Evidence already recorded: source, inherited flag, URL.
    pub evidence: Vec<(SourceKind, bool, Option<String>)>,
    /// The row as stored, to write only what a run changes.
    pub stored: StoredRelease,
}

/// A release row's stored values (timestamps as stored text) and the fingerprints of its
/// evidence rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRelease {
    pub class: ReleaseClass,
    /// When it was published, as stored.
    pub published_at: Option<String>,
    /// When it became installable on the primary source.
    pub available_at: Option<String>,
    /// Withdrawn from the index.
    pub yanked: bool,
    /// Why it was yanked, as the index says.
    pub yanked_reason: Option<String>,
    /// Known from a source's first fetch.
    pub baseline: bool,
    /// The run that announced it.
    pub new_in_run: Option<i64>,
    /// When a run withdrew it (another package's under the current attribution rule).
    pub withdrawn_at: Option<String>,
    /// Why it was withdrawn.
    pub withdrawn_reason: Option<String>,
    /// (source, fingerprint) of each evidence row written since fingerprints exist.
    pub fingerprints: Vec<(SourceKind, i64)>,
}

impl StoredRelease {
    /// A row of `class` with nothing else recorded.
    pub fn of_class(class: ReleaseClass) -> StoredRelease {
        StoredRelease {
            class,
            published_at: None,
            available_at: None,
            yanked: false,
            yanked_reason: None,
            baseline: false,
            new_in_run: None,
            withdrawn_at: None,
            withdrawn_reason: None,
            fingerprints: Vec::new(),
        }
    }

    /// Whether writing `next` would change nothing (fingerprints aside).
    pub(crate) fn same_row(&self, next: &StoredRelease) -> bool {
        self.class == next.class
            && self.published_at == next.published_at
            && self.available_at == next.available_at
            && self.yanked == next.yanked
            && self.yanked_reason == next.yanked_reason
            && self.baseline == next.baseline
            && self.new_in_run == next.new_in_run
            && self.withdrawn_at == next.withdrawn_at
            && self.withdrawn_reason == next.withdrawn_reason
    }
}

impl KnownRelease {
    /// Whether the primary source has offered it for installation.
    pub fn available(&self) -> bool {
        self.stored.available_at.is_some()
    }

    /// Whether a source has recorded evidence of its own (not inherited) for this release.
    pub fn has_own(&self, kind: SourceKind) -> bool {
        self.evidence
            .iter()
            .any(|(k, inherited, _)| *k == kind && !inherited)
    }
}

/// What one source reported in this run.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    pub kind: SourceKind,
    /// Its observations.
    pub observations: Vec<Observation>,
    /// Whether this source had a successful fetch before this run.
    pub had_baseline: bool,
}

/// One evidence row to write.
#[derive(Debug, Clone)]
pub struct PlannedEvidence {
    pub kind: SourceKind,
    /// What it said.
    pub observation: Observation,
    /// True for a line post reused from the line's feature release.
    pub inherited: bool,
}

/// One release to write.
#[derive(Debug, Clone)]
pub struct PlannedRelease {
    /// Version to show.
    pub version: Version,
    pub key: String,
    pub class: ReleaseClass,
    /// Its release line (`2026.2`), as [`version::line`] gives it.
    pub line: String,
    /// Not in the database yet.
    pub is_new_row: bool,
    /// Date from the primary source.
    pub primary_published_at: Option<DateTime<Utc>>,
    /// Earliest date from other sources.
    pub other_published_at: Option<DateTime<Utc>>,
    /// Installable on the primary source for the first time.
    pub becomes_available: bool,
    /// Became available during the primary source's baseline fetch.
    pub baseline: bool,
    /// News: announce it.
    pub announce: bool,
    /// Yanked state, when the primary source reports one.
    pub yanked: Option<(bool, Option<String>)>,
    /// One evidence row per source that reported it.
    pub evidence: Vec<PlannedEvidence>,
}

/// Everything one project's transaction writes.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Releases, in ascending version order.
    pub releases: Vec<PlannedRelease>,
}

impl Plan {
    /// Releases to announce.
    pub fn announced(&self) -> impl Iterator<Item = &PlannedRelease> {
        self.releases.iter().filter(|r| r.announce)
    }

    /// Releases not in the database yet.
    pub fn new_rows(&self) -> usize {
        self.releases.iter().filter(|r| r.is_new_row).count()
    }
}

struct Slot {
    version: Version,
    evidence: Vec<PlannedEvidence>,
}

/// Plans the writes for one project.
pub fn plan(project: &Project, known: &[KnownRelease], batches: Vec<SourceBatch>) -> Plan {
    let primary = project.primary();
    let known_by_key: HashMap<&str, &KnownRelease> =
        known.iter().map(|k| (k.key.as_str(), k)).collect();
    let primary_had_baseline = batches
        .iter()
        .find(|b| Some(b.kind) == primary)
        .map(|b| b.had_baseline)
        .unwrap_or(true);
    let mut ordered = batches;
    ordered.sort_by_key(|b| Some(b.kind) != primary);
    let primary_versions = primary_versions(known, primary, &ordered);
    let slots = slots(ordered, primary, &primary_versions, &known_by_key);

    let all_keys: HashSet<String> = known
        .iter()
        .map(|k| k.key.clone())
        .chain(slots.keys().cloned())
        .collect();
    let is_published = |key: &str| all_keys.contains(key);

    let mut releases: Vec<PlannedRelease> = slots
        .into_iter()
        .map(|(key, slot)| {
            let existing = known_by_key.get(key.as_str()).copied();
            let sight = Sight {
                primary,
                primary_had_baseline,
            };
            planned_release(key, slot, existing, sight, &is_published)
        })
        .collect();
    inherit_line_posts(known, &mut releases, &is_published);
    releases.sort_by(|a, b| a.version.cmp(&b.version));
    Plan { releases }
}

/// Versions the primary source knows: recorded ones and this run's (`ordered` has the
/// primary's batch first, when there is one).
fn primary_versions(
    known: &[KnownRelease],
    primary: Option<SourceKind>,
    ordered: &[SourceBatch],
) -> Vec<Version> {
    let mut versions: Vec<Version> = known
        .iter()
        .filter(|k| primary.is_some_and(|p| k.has_own(p)))
        .map(|k| k.version.clone())
        .collect();
    if let Some(batch) = ordered.first().filter(|b| Some(b.kind) == primary) {
        versions.extend(batch.observations.iter().map(|o| o.version.clone()));
    }
    versions
}

/// Groups the observations by canonical key, primary source first; a secondary source's
/// version the primary published only as a post-release joins that post-release.
fn slots(
    ordered: Vec<SourceBatch>,
    primary: Option<SourceKind>,
    primary_versions: &[Version],
    known_by_key: &HashMap<&str, &KnownRelease>,
) -> BTreeMap<String, Slot> {
    let primary_keys: HashSet<String> = primary_versions
        .iter()
        .map(version::canonical_key)
        .collect();
    let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
    for batch in ordered {
        let is_primary = Some(batch.kind) == primary;
        for obs in batch.observations {
            let mut key = version::canonical_key(&obs.version);
            let mut ver = obs.version.clone();
            if !is_primary
                && !primary_keys.contains(&key)
                && !known_by_key.contains_key(key.as_str())
                && let Some(post) = version::post_release_for(&obs.version, primary_versions.iter())
            {
                key = version::canonical_key(post);
                ver = post.clone();
            }
            let slot = slots.entry(key).or_insert_with(|| Slot {
                version: ver,
                evidence: Vec::new(),
            });
            if slot.evidence.iter().any(|e| e.kind == batch.kind) {
                continue; // two spellings from one source (`v.1.6.1` and `v1.6.1`): keep the first
            }
            if is_primary {
                slot.version = obs.version.clone();
            }
            slot.evidence.push(PlannedEvidence {
                kind: batch.kind,
                observation: obs,
                inherited: false,
            });
        }
    }
    slots
}

/// The primary source of a project and whether it had its baseline before this run.
#[derive(Clone, Copy)]
struct Sight {
    primary: Option<SourceKind>,
    primary_had_baseline: bool,
}

/// What to write for one slot, given the release already recorded under its key.
fn planned_release(
    key: String,
    slot: Slot,
    existing: Option<&KnownRelease>,
    sight: Sight,
    is_published: &dyn Fn(&str) -> bool,
) -> PlannedRelease {
    let primary = sight.primary;
    let version = existing.map(|k| k.version.clone()).unwrap_or(slot.version);
    let primary_obs = slot
        .evidence
        .iter()
        .find(|e| Some(e.kind) == primary)
        .map(|e| &e.observation);
    let becomes_available =
        primary_obs.is_some_and(|o| o.available) && !existing.is_some_and(|k| k.available());
    let yanked_now = primary_obs.is_some_and(|o| o.yanked);
    PlannedRelease {
        class: version::classify(&version, is_published),
        line: version::line(&version),
        is_new_row: existing.is_none(),
        primary_published_at: primary_obs.and_then(|o| o.published_at),
        other_published_at: slot
            .evidence
            .iter()
            .filter(|e| Some(e.kind) != primary)
            .filter_map(|e| e.observation.published_at)
            .min(),
        becomes_available,
        baseline: becomes_available && !sight.primary_had_baseline,
        announce: becomes_available && sight.primary_had_baseline && !yanked_now,
        yanked: primary_obs
            .filter(|_| primary == Some(SourceKind::Pypi))
            .map(|o| (o.yanked, o.yanked_reason.clone())),
        evidence: slot.evidence,
        version,
        key,
    }
}

/// Gives each bugfix release without a post of its own the post of the closest lower release
/// of its line that has one.
fn inherit_line_posts(
    known: &[KnownRelease],
    releases: &mut Vec<PlannedRelease>,
    is_published: &dyn Fn(&str) -> bool,
) {
    let posts = line_posts(known, releases);
    if posts.is_empty() {
        return;
    }
    add_untouched(known, releases, is_published);
    let known_urls: HashMap<&str, Option<&str>> = known
        .iter()
        .filter_map(|k| {
            k.evidence
                .iter()
                .find(|(kind, inherited, _)| *kind == SourceKind::Feed && *inherited)
                .map(|(_, _, url)| (k.key.as_str(), url.as_deref()))
        })
        .collect();
    for r in releases.iter_mut() {
        if r.class != ReleaseClass::Bugfix || r.evidence.iter().any(|e| e.kind == SourceKind::Feed)
        {
            continue;
        }
        let own_known = known
            .iter()
            .any(|k| k.key == r.key && k.has_own(SourceKind::Feed));
        if own_known {
            continue;
        }
        let line = version::line(&r.version);
        let Some((_, url)) = posts
            .iter()
            .filter(|(v, _)| version::line(v) == line && *v < r.version)
            .max_by(|a, b| a.0.cmp(&b.0))
        else {
            continue;
        };
        if known_urls.get(r.key.as_str()) == Some(&Some(url.as_str())) {
            continue; // already inherited from the same post
        }
        let mut obs = Observation::new(url.clone(), r.version.clone());
        obs.url = Some(url.clone());
        obs.line_post = true;
        r.evidence.push(PlannedEvidence {
            kind: SourceKind::Feed,
            observation: obs,
            inherited: true,
        });
    }
    // Drop the placeholder rows that did not receive anything.
    releases.retain(|r| r.is_new_row || !r.evidence.is_empty());
}

/// (version, post URL) of every release with its own feed evidence, this run's replacing
/// what was recorded.
fn line_posts(known: &[KnownRelease], releases: &[PlannedRelease]) -> Vec<(Version, String)> {
    let mut posts: Vec<(Version, String)> = known
        .iter()
        .filter_map(|k| {
            k.evidence
                .iter()
                .find(|(kind, inherited, _)| *kind == SourceKind::Feed && !inherited)
                .and_then(|(_, _, url)| url.clone())
                .map(|url| (k.version.clone(), url))
        })
        .collect();
    for r in releases {
        if let Some(e) = r
            .evidence
            .iter()
            .find(|e| e.kind == SourceKind::Feed && !e.inherited)
        {
            posts.retain(|(v, _)| version::canonical_key(v) != r.key);
            posts.push((
                r.version.clone(),
                e.observation.url.clone().unwrap_or_default(),
            ));
        }
    }
    posts
}

/// Adds a placeholder row for each known release this run did not touch and that has no
/// feed evidence: it may inherit a post too.
fn add_untouched(
    known: &[KnownRelease],
    releases: &mut Vec<PlannedRelease>,
    is_published: &dyn Fn(&str) -> bool,
) {
    let planned: HashSet<String> = releases.iter().map(|r| r.key.clone()).collect();
    for k in known.iter().filter(|k| !planned.contains(&k.key)) {
        if !k
            .evidence
            .iter()
            .any(|(kind, _, _)| *kind == SourceKind::Feed)
        {
            releases.push(PlannedRelease {
                version: k.version.clone(),
                key: k.key.clone(),
                class: version::classify(&k.version, is_published),
                line: version::line(&k.version),
                is_new_row: false,
                primary_published_at: None,
                other_published_at: None,
                becomes_available: false,
                baseline: false,
                announce: false,
                yanked: None,
                evidence: Vec::new(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GithubRepo;

    fn project() -> Project {
        Project {
            name: "pretalx".into(),
            scheme: crate::model::Scheme::Calver,
            pypi: Some("pretalx".into()),
            github: Some(GithubRepo {
                owner: "pretalx".into(),
                name: "pretalx".into(),
            }),
            feed: url::Url::parse("https://pretalx.com/p/news/").ok(),
            plugin_of: None,
            module: None,
            tag_prefix: None,
            upgrade_steps: Vec::new(),
            compat: Vec::new(),
        }
    }

    fn obs(raw: &str) -> Observation {
        let v = version::parse_tag(raw, None)
            .expect("no prefix")
            .expect(raw);
        Observation::new(raw, v)
    }

    fn known_from(plan: &Plan) -> Vec<KnownRelease> {
        plan.releases
            .iter()
            .enumerate()
            .map(|(i, r)| KnownRelease {
                id: i as i64,
                version: r.version.clone(),
                key: r.key.clone(),
                evidence: r
                    .evidence
                    .iter()
                    .map(|e| (e.kind, e.inherited, e.observation.url.clone()))
                    .collect(),
                stored: StoredRelease {
                    available_at: r.becomes_available.then(|| "2026-01-01T00:00:00Z".into()),
                    ..StoredRelease::of_class(r.class)
                },
            })
            .collect()
    }

    #[test]
    fn first_fetch_is_a_baseline() {
        let plan = plan(
            &project(),
            &[],
            vec![SourceBatch {
                kind: SourceKind::Pypi,
                observations: vec![obs("2025.1.0"), obs("2025.1.1")],
                had_baseline: false,
            }],
        );
        assert_eq!(plan.releases.len(), 2);
        assert!(plan.releases.iter().all(|r| r.baseline && !r.announce));
    }

    #[test]
    fn spellings_merge_and_tags_find_their_post_release() {
        let plan = plan(
            &project(),
            &[],
            vec![
                SourceBatch {
                    kind: SourceKind::Github,
                    observations: vec![obs("v2025.1.0"), obs("v0.2.0")],
                    had_baseline: true,
                },
                SourceBatch {
                    kind: SourceKind::Pypi,
                    observations: vec![obs("2025.1.0"), obs("0.2.0.post1")],
                    had_baseline: true,
                },
            ],
        );
        let keys: Vec<&str> = plan.releases.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["0.2.post1", "2025.1"]);
        for r in &plan.releases {
            assert_eq!(r.evidence.len(), 2, "{}", r.key);
            assert!(r.announce);
        }
        assert_eq!(plan.releases[0].class, ReleaseClass::Feature);
    }

    #[test]
    fn a_release_is_new_only_when_the_primary_offers_it() {
        let first = plan(
            &project(),
            &[],
            vec![SourceBatch {
                kind: SourceKind::Github,
                observations: vec![obs("v2026.3.0")],
                had_baseline: true,
            }],
        );
        assert!(!first.releases[0].announce && !first.releases[0].becomes_available);
        let known = known_from(&first);
        let second = plan(
            &project(),
            &known,
            vec![SourceBatch {
                kind: SourceKind::Pypi,
                observations: vec![obs("2026.3.0")],
                had_baseline: true,
            }],
        );
        assert!(second.releases[0].announce);
        let again = plan(
            &project(),
            &known_from(&second),
            vec![SourceBatch {
                kind: SourceKind::Pypi,
                observations: vec![obs("2026.3.0")],
                had_baseline: true,
            }],
        );
        assert!(again.announced().next().is_none());
    }

    #[test]
    fn yanked_and_file_less_releases_are_not_news() {
        let mut yanked = obs("2.0.0");
        yanked.yanked = true;
        let mut empty = obs("2.1.0");
        empty.available = false;
        let plan = plan(
            &project(),
            &[],
            vec![SourceBatch {
                kind: SourceKind::Pypi,
                observations: vec![yanked, empty],
                had_baseline: true,
            }],
        );
        assert!(plan.announced().next().is_none());
        assert_eq!(plan.releases[0].yanked, Some((true, None)));
    }

    #[test]
    fn bugfix_releases_inherit_their_lines_post() {
        let mut post = obs("Releasing pretalx 2025.2.0"
            .replace("Releasing pretalx ", "")
            .as_str());
        post.url = Some("https://pretalx.com/p/news/releasing-pretalx-2025-2-0/".into());
        post.line_post = true;
        let first = plan(
            &project(),
            &[],
            vec![
                SourceBatch {
                    kind: SourceKind::Pypi,
                    observations: vec![obs("2025.2.0"), obs("2025.2.1"), obs("2025.1.1")],
                    had_baseline: false,
                },
                SourceBatch {
                    kind: SourceKind::Feed,
                    observations: vec![post],
                    had_baseline: false,
                },
            ],
        );
        let fix = first
            .releases
            .iter()
            .find(|r| r.key == "2025.2.1")
            .expect("2025.2.1");
        assert!(
            fix.evidence
                .iter()
                .any(|e| e.kind == SourceKind::Feed && e.inherited)
        );
        let other = first
            .releases
            .iter()
            .find(|r| r.key == "2025.1.1")
            .expect("2025.1.1");
        assert!(other.evidence.iter().all(|e| e.kind != SourceKind::Feed));

        // A later bugfix (the feed answering 304) still gets the post.
        let later = plan(
            &project(),
            &known_from(&first),
            vec![SourceBatch {
                kind: SourceKind::Pypi,
                observations: vec![obs("2025.2.2")],
                had_baseline: true,
            }],
        );
        let fix = later
            .releases
            .iter()
            .find(|r| r.key == "2025.2.2")
            .expect("2025.2.2");
        assert!(fix.announce);
        assert!(
            fix.evidence
                .iter()
                .any(|e| e.kind == SourceKind::Feed && e.inherited)
        );
        assert!(
            later.releases.iter().all(|r| r.key != "2025.2.1"),
            "already inherited: untouched"
        );
    }
}
