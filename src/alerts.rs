//! Operator alerts: what an operator who registered an inventory (core version and plugins)
//! should do. [`advise`] builds the report for an inventory now (the `advise` command, the
//! update-check API and the mails use it); [`process`] runs after a check records new
//! releases and queues, per operator and pass, one message about the core (the compatibility
//! report for the newest new feature release, else the advice for the newest new bugfix
//! release: upgrade soon, or your line no longer gets fixes, with the known vulnerabilities
//! the upgrade closes), and the follow-up when a plugin release changes a verdict.
//!
//! The same messages go to every channel of `HERALD_CHANNELS` that has an inventory
//! (`installed`, `freeze`) and lists their kinds in `messages`; a channel's verdicts are kept
//! apart from the subscribers' (`channel_compat_state`), so its follow-ups compare with what
//! it was told.
//!
//! Owns: gathering the evidence (recorded releases, per-version documents fetched before any
//! transaction) and queueing alerts through the outbox. Does not own: the verdict rules
//! (`compat`) or delivery (`notify`).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use pep440_rs::Version;
use serde::Serialize;

use crate::app::App;
use crate::compat::{self, Assessment, CoreRelease, PluginRelease};
use crate::config::Config;
use crate::config::channels::Channel;
use crate::inventory::Installed;
use crate::model::{
    Project, ReleaseClass, ReleaseMetadata, SourceKind, Vulnerability, normalize_name,
};
use crate::notify::outbox::{Letter, Post, queue_mail, queue_notice};
use crate::sources::FetchContext;
use crate::store::{self, InventoryMap, ReleaseFilter, ReleaseRow};
use crate::version;

mod plan;

pub use crate::advice::{Advice, CoreAdvice, CoreStatus, ReleaseLink, VulnerabilityView};

/// How long before or after a core release a plugin release counts as released alongside.
pub const ALONGSIDE_WINDOW_DAYS: i64 = 3;
/// Plugin releases whose per-version documents are read, newest first.
const DOCS_PER_PLUGIN: usize = 3;

/// Maps inventory names to tracked projects: by project name, distribution name or plugin
/// module, after PEP 503 normalisation (`pretalx_pages` is `pretalx-pages`).
pub fn resolve<'a>(app: &'a App, name: &str) -> Option<&'a Project> {
    let wanted = normalize_name(name);
    app.config.projects.iter().find(|p| {
        normalize_name(&p.name) == wanted
            || p.pypi
                .as_deref()
                .is_some_and(|d| normalize_name(d) == wanted)
            || p.module
                .as_deref()
                .is_some_and(|m| normalize_name(m) == wanted)
    })
}

/// Splits an inventory into tracked projects (name -> version) and untracked names.
pub fn tracked_inventory(app: &App, items: &[Installed]) -> (InventoryMap, Vec<String>) {
    let mut map = InventoryMap::new();
    let mut untracked = Vec::new();
    for item in items {
        match resolve(app, &item.name) {
            Some(p) => {
                map.insert(p.name.clone(), item.version.to_string());
            }
            None => untracked.push(item.name.clone()),
        }
    }
    untracked.sort();
    untracked.dedup();
    (map, untracked)
}

/// What the advice and the alerts plan read of the configuration: the tracked projects and
/// the channels.
#[derive(Debug, Clone, Copy)]
struct Tracked<'a> {
    projects: &'a [Project],
    channels: &'a [Channel],
}

impl<'a> Tracked<'a> {
    fn of(config: &'a Config) -> Tracked<'a> {
        Tracked {
            projects: &config.projects,
            channels: &config.channels,
        }
    }

    fn project(&self, name: &str) -> Option<&'a Project> {
        self.projects.iter().find(|p| p.name == name)
    }

    /// The project `name` when it is a plugin of `core`.
    fn plugin_of(&self, name: &str, core: &str) -> Option<&'a Project> {
        self.project(name)
            .filter(|p| p.plugin_of.as_deref() == Some(core))
    }

    /// The core projects (those that are no other project's plugin), in file order.
    fn cores(&self) -> impl Iterator<Item = &'a Project> + use<'a> {
        self.projects.iter().filter(|p| p.plugin_of.is_none())
    }

    fn channel(&self, name: &str) -> Option<&'a Channel> {
        self.channels.iter().find(|c| c.name == name)
    }
}

/// Recorded releases of some projects, newest first, installable ones only.
struct Catalog {
    by_project: HashMap<String, Vec<ReleaseRow>>,
}

impl Catalog {
    async fn load(app: &App, projects: &[String]) -> anyhow::Result<Catalog> {
        let rows = app
            .store
            .releases(&ReleaseFilter {
                projects: projects.to_vec(),
                ..ReleaseFilter::default()
            })
            .await?;
        Ok(Catalog::from_rows(rows))
    }

    /// The catalogue of the listed (not withdrawn) releases `rows`.
    fn from_rows(rows: impl IntoIterator<Item = ReleaseRow>) -> Catalog {
        let mut by_project: HashMap<String, Vec<ReleaseRow>> = HashMap::new();
        for row in rows
            .into_iter()
            .filter(|r| r.available_at.is_some() && r.parsed.is_some())
        {
            by_project.entry(row.project.clone()).or_default().push(row);
        }
        for list in by_project.values_mut() {
            list.sort_by(|a, b| b.parsed.cmp(&a.parsed));
        }
        Catalog { by_project }
    }

    fn releases(&self, project: &str) -> &[ReleaseRow] {
        self.by_project
            .get(project)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn latest_final(&self, project: &str) -> Option<&ReleaseRow> {
        self.releases(project)
            .iter()
            .find(|r| r.class != ReleaseClass::Prerelease && !r.yanked)
    }

    fn latest_feature(&self, project: &str) -> Option<&ReleaseRow> {
        self.releases(project)
            .iter()
            .find(|r| r.class == ReleaseClass::Feature && !r.yanked)
    }
}

fn date(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(|d| d.format("%Y-%m-%d").to_string())
}

fn notes_url(r: &ReleaseRow) -> Option<String> {
    let pick = |k: SourceKind| {
        r.sources
            .iter()
            .find(|s| s.source == k)
            .and_then(|s| s.url.clone())
    };
    pick(SourceKind::Github)
        .or_else(|| pick(SourceKind::Feed))
        .or_else(|| pick(SourceKind::Pypi))
}

/// Per-version documents, fetched when missing or changed (never inside a transaction),
/// each at most once per `Docs`: one alerts pass shares it across every operator.
#[derive(Default)]
struct Docs {
    docs: HashMap<(String, String), ReleaseMetadata>,
    asked: HashSet<(String, String)>,
}

impl Docs {
    async fn gather(
        &mut self,
        app: &App,
        wanted: &[(Project, String)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let validators = app.store.validators().await?;
        let cx = FetchContext {
            http: &app.http,
            validators: &validators,
            resolved_url: None,
            now,
        };
        let docs = &mut self.docs;
        let mut fresh = Vec::new();
        for (project, version) in wanted {
            let Some(dist) = project.pypi.as_deref() else {
                continue;
            };
            let key = version::parse(version)
                .map(|v| version::canonical_key(&v))
                .unwrap_or_default();
            if !self.asked.insert((project.name.clone(), key.clone())) {
                continue;
            }
            let stored = app.store.release_doc(&project.name, &key).await?;
            match app.sources.pypi().release_doc(cx, dist, version).await {
                Ok((Some(doc), validators)) => {
                    fresh.push((project.name.clone(), key.clone(), doc.clone(), validators));
                    docs.insert((project.name.clone(), key), doc);
                }
                Ok((None, _)) => {
                    if let Some(doc) = stored {
                        docs.insert((project.name.clone(), key), doc);
                    }
                }
                Err(err) => {
                    tracing::warn!(project = %project.name, version = %version, "cannot read release metadata: {err}");
                    if let Some(doc) = stored {
                        docs.insert((project.name.clone(), key), doc);
                    }
                }
            }
        }
        if !fresh.is_empty() {
            let mut tx = app.store.begin().await?;
            let mut validators = Vec::new();
            for (project, key, doc, fetched) in &fresh {
                store::put_release_doc(&mut tx, project, key, doc, now).await?;
                validators.extend(fetched.clone());
            }
            store::put_validators(&mut tx, &validators, now).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    fn get(&self, project: &str, version: &Version) -> Option<&ReleaseMetadata> {
        self.docs
            .get(&(project.to_string(), version::canonical_key(version)))
    }
}

/// What documents an advice needs.
fn wanted_docs(
    tracked: Tracked<'_>,
    catalog: &Catalog,
    core: &Project,
    installed: &InventoryMap,
    target: Option<&ReleaseRow>,
) -> Vec<(Project, String)> {
    let mut wanted = Vec::new();
    if let Some(t) = target {
        wanted.push((core.clone(), t.version.clone()));
    }
    if let Some(v) = installed.get(&core.name) {
        wanted.push((core.clone(), v.clone()));
    }
    for name in installed.keys() {
        let Some(p) = tracked.plugin_of(name, &core.name) else {
            continue;
        };
        for r in catalog
            .releases(&p.name)
            .iter()
            .filter(|r| r.class != ReleaseClass::Prerelease && !r.yanked)
            .take(DOCS_PER_PLUGIN)
        {
            wanted.push((p.clone(), r.version.clone()));
        }
    }
    wanted
}

fn vulnerabilities_fixed(
    doc: Option<&ReleaseMetadata>,
    installed: &Version,
    upgrade: &Version,
) -> Vec<VulnerabilityView> {
    let Some(doc) = doc else { return Vec::new() };
    doc.vulnerabilities
        .iter()
        .filter(|v: &&Vulnerability| {
            v.fixed_in
                .iter()
                .filter_map(|f| version::parse(f).ok())
                .any(|f| f > *installed && f <= *upgrade)
        })
        .map(|v| VulnerabilityView {
            id: v.id.clone(),
            aliases: v.aliases.clone(),
            summary: v.summary.clone(),
            fixed_in: v.fixed_in.clone(),
            link: v.link.clone(),
        })
        .collect()
}

fn core_advice(
    catalog: &Catalog,
    docs: &Docs,
    core: &Project,
    installed: Option<&str>,
) -> CoreAdvice {
    let latest = catalog.latest_final(&core.name);
    let latest_feature = catalog.latest_feature(&core.name);
    let installed_v = installed.and_then(|v| version::parse(v).ok());
    let mut advice = CoreAdvice {
        project: core.name.clone(),
        installed: installed.map(str::to_string),
        latest: latest.map(|r| r.version.clone()),
        latest_feature: latest_feature.map(|r| r.version.clone()),
        status: CoreStatus::NotInstalled,
        summary: format!("{} is not in the inventory.", core.name),
        feature_releases_between: Vec::new(),
        vulnerabilities_fixed: Vec::new(),
    };
    let (Some(inst), Some(latest)) = (installed_v, latest) else {
        if installed.is_some() {
            advice.status = CoreStatus::UpToDate;
            advice.summary = format!("No release of {} is recorded yet.", core.name);
        }
        return advice;
    };
    let Some(latest_v) = latest.parsed.clone() else {
        return advice;
    };
    advice.vulnerabilities_fixed =
        vulnerabilities_fixed(docs.get(&core.name, &inst), &inst, &latest_v);
    if inst >= latest_v {
        advice.status = CoreStatus::UpToDate;
        advice.summary = format!("{} {inst} is the latest release.", core.name);
    } else if version::line(&inst) == latest.line {
        advice.status = CoreStatus::BugfixAvailable;
        advice.summary = format!(
            "{} {} fixes bugs in your {} line: upgrade soon, bugfix releases may carry security fixes.",
            core.name, latest.version, latest.line
        );
    } else {
        advice.status = CoreStatus::LineUnsupported;
        advice.feature_releases_between = features_between(catalog, core, &inst, &latest_v);
        advice.summary = format!(
            "Your {} line ({}) no longer gets bugfix releases: they are only issued for the latest feature release, {}. Read the notes of each feature release in between, back up, and upgrade.",
            version::line(&inst),
            inst,
            latest_feature
                .map(|r| r.version.as_str())
                .unwrap_or(latest.version.as_str())
        );
    }
    advice
}

/// The feature releases of `core` after `installed` up to `latest`, oldest first.
fn features_between(
    catalog: &Catalog,
    core: &Project,
    installed: &Version,
    latest: &Version,
) -> Vec<ReleaseLink> {
    catalog
        .releases(&core.name)
        .iter()
        .rev()
        .filter(|r| {
            r.class == ReleaseClass::Feature
                && r.parsed
                    .as_ref()
                    .is_some_and(|v| v > installed && v <= latest)
        })
        .map(|r| ReleaseLink {
            version: r.version.clone(),
            published: date(r.published_at),
            url: notes_url(r),
        })
        .collect()
}

/// The core release as the verdict rules see it.
fn core_release(docs: &Docs, core: &Project, target: &ReleaseRow) -> Option<CoreRelease> {
    let version = target.parsed.clone()?;
    Some(CoreRelease {
        requires_python: docs
            .get(&core.name, &version)
            .and_then(|d| d.requires_python.clone()),
        version,
        published_at: target.published_at.or(target.available_at),
    })
}

/// One plugin's verdict for one core release: the rules of [`compat::assess`] over the
/// recorded releases and per-version documents.
fn assess_plugin(
    catalog: &Catalog,
    docs: &Docs,
    core: &Project,
    core_release: &CoreRelease,
    plugin: &Project,
    installed: Option<&Version>,
) -> Assessment {
    let releases: Vec<PluginRelease> = catalog
        .releases(&plugin.name)
        .iter()
        .filter(|r| r.class != ReleaseClass::Prerelease)
        .filter_map(|r| {
            let v = r.parsed.clone()?;
            let doc = docs.get(&plugin.name, &v);
            Some(PluginRelease {
                version: v,
                published_at: r.published_at.or(r.available_at),
                requires_dist: doc
                    .and_then(|d| d.requires_dist.clone())
                    .or_else(|| doc.map(|_| Vec::new())),
                requires_python: doc.and_then(|d| d.requires_python.clone()),
                yanked: r.yanked,
            })
        })
        .collect();
    compat::assess(
        &core.name,
        core_release,
        &plugin.name,
        &releases,
        installed,
        &plugin.compat,
        Duration::days(ALONGSIDE_WINDOW_DAYS),
    )
}

fn plugin_assessments(
    tracked: Tracked<'_>,
    catalog: &Catalog,
    docs: &Docs,
    core: &Project,
    target: &ReleaseRow,
    installed: &InventoryMap,
) -> Vec<Assessment> {
    let Some(core_release) = core_release(docs, core, target) else {
        return Vec::new();
    };
    installed
        .iter()
        .filter_map(|(name, ver)| {
            let plugin = tracked.plugin_of(name, &core.name)?;
            let installed_v = version::parse(ver).ok();
            Some(assess_plugin(
                catalog,
                docs,
                core,
                &core_release,
                plugin,
                installed_v.as_ref(),
            ))
        })
        .collect()
}

/// The core project an inventory is about: the first core whose plugins or itself appear.
fn core_of<'a>(tracked: Tracked<'a>, installed: &InventoryMap) -> Option<&'a Project> {
    let cores: Vec<&Project> = tracked.cores().collect();
    cores
        .iter()
        .find(|c| installed.contains_key(&c.name))
        .or_else(|| {
            cores.iter().find(|c| {
                installed
                    .keys()
                    .any(|k| tracked.plugin_of(k, &c.name).is_some())
            })
        })
        .copied()
}

/// The advice when the inventory names no tracked project.
fn nothing_tracked(untracked: Vec<String>) -> Advice {
    Advice {
        core: CoreAdvice {
            project: String::new(),
            installed: None,
            latest: None,
            latest_feature: None,
            status: CoreStatus::NotInstalled,
            summary: "The inventory names no tracked project.".into(),
            feature_releases_between: Vec::new(),
            vulnerabilities_fixed: Vec::new(),
        },
        target: None,
        plugins: Vec::new(),
        recommendation: "Nothing to advise: none of these packages is tracked.".into(),
        untracked,
        upgrade: compat::UpgradePlan::default(),
    }
}

/// The core release an advice is about: the one with `target_key`, else the newest feature
/// release.
fn target_of<'c>(
    catalog: &'c Catalog,
    core: &Project,
    target_key: Option<&str>,
) -> Option<&'c ReleaseRow> {
    match target_key {
        Some(key) => catalog.releases(&core.name).iter().find(|r| {
            r.parsed
                .as_ref()
                .is_some_and(|v| version::canonical_key(v) == key)
        }),
        None => catalog.latest_feature(&core.name),
    }
}

/// The documents [`advice`] reads for `installed` and `target_key`.
fn docs_for(
    tracked: Tracked<'_>,
    catalog: &Catalog,
    installed: &InventoryMap,
    target_key: Option<&str>,
) -> Vec<(Project, String)> {
    let Some(core) = core_of(tracked, installed) else {
        return Vec::new();
    };
    let target = target_of(catalog, core, target_key);
    wanted_docs(tracked, catalog, core, installed, target)
}

/// The report for an inventory from what is loaded: no I/O. `docs` must hold what
/// [`docs_for`] names (a missing document reads as unknown metadata).
fn advice(
    tracked: Tracked<'_>,
    catalog: &Catalog,
    docs: &Docs,
    installed: &InventoryMap,
    untracked: Vec<String>,
    target_key: Option<&str>,
) -> Advice {
    let Some(core) = core_of(tracked, installed) else {
        return nothing_tracked(untracked);
    };
    let target = target_of(catalog, core, target_key);
    let core_advice = core_advice(
        catalog,
        docs,
        core,
        installed.get(&core.name).map(String::as_str),
    );
    let plugins = match target {
        Some(t) => plugin_assessments(tracked, catalog, docs, core, t, installed),
        None => Vec::new(),
    };
    let recommendation = match target.and_then(|t| t.parsed.as_ref()) {
        Some(v) if !plugins.is_empty() => compat::recommendation(&core.name, v, &plugins),
        _ => core_advice.summary.clone(),
    };
    let upgrade = upgrade_plan(tracked, catalog, core, installed, target, &plugins);
    Advice {
        core: core_advice,
        target: target.map(|t| t.version.clone()),
        plugins,
        recommendation,
        untracked,
        upgrade,
    }
}

/// Loads what the report for one inventory needs (recorded releases, per-version documents
/// fetched when missing or changed) and builds it.
async fn build(
    app: &App,
    installed: &InventoryMap,
    untracked: Vec<String>,
    now: DateTime<Utc>,
) -> anyhow::Result<Advice> {
    let tracked = Tracked::of(&app.config);
    let Some(core) = core_of(tracked, installed) else {
        return Ok(nothing_tracked(untracked));
    };
    let mut names: Vec<String> = vec![core.name.clone()];
    names.extend(installed.keys().cloned());
    let catalog = Catalog::load(app, &names).await?;
    let mut docs = Docs::default();
    docs.gather(app, &docs_for(tracked, &catalog, installed, None), now)
        .await?;
    Ok(advice(tracked, &catalog, &docs, installed, untracked, None))
}

/// The pinned command: the newest final release of the target's line (else the newest final
/// release) and every plugin version the verdicts name.
fn upgrade_plan(
    tracked: Tracked<'_>,
    catalog: &Catalog,
    core: &Project,
    installed: &InventoryMap,
    target: Option<&ReleaseRow>,
    plugins: &[Assessment],
) -> compat::UpgradePlan {
    let finals = || {
        catalog
            .releases(&core.name)
            .iter()
            .filter(|r| r.class != ReleaseClass::Prerelease && !r.yanked)
    };
    let core_to = target
        .and_then(|t| finals().find(|r| r.line == t.line))
        .or_else(|| catalog.latest_final(&core.name))
        .and_then(|r| r.parsed.clone());
    let Some(core_to) = core_to else {
        return compat::UpgradePlan::default();
    };
    let dist = |name: &str| {
        tracked
            .project(name)
            .and_then(|p| p.pypi.clone())
            .unwrap_or_else(|| name.to_string())
    };
    let named: Vec<(String, &Assessment)> = plugins.iter().map(|a| (dist(&a.plugin), a)).collect();
    let core_installed = installed
        .get(&core.name)
        .and_then(|v| version::parse(v).ok());
    compat::upgrade_plan(&dist(&core.name), core_installed.as_ref(), &core_to, &named)
}

/// The report for an inventory, now: core status, and plugin verdicts for the latest core
/// feature release.
pub async fn advise(app: &App, items: &[Installed]) -> anyhow::Result<Advice> {
    let (installed, untracked) = tracked_inventory(app, items);
    build(app, &installed, untracked, app.clock.now()).await
}

/// One cell of the compatibility board: a plugin against one core feature release.
#[derive(Debug, Clone, Serialize)]
pub struct BoardCell {
    /// `ready`, `likely`, `unknown` or `blocked`.
    pub verdict: compat::Verdict,
    /// The plugin version to install with that release.
    pub install: Option<String>,
    /// Why, naming versions and dates.
    pub evidence: String,
    /// Whether the operator's projects file set it.
    #[serde(rename = "override")]
    pub overridden: bool,
    /// Non-decisive remarks (Requires-Python).
    pub hints: Vec<String>,
}

/// One row of the board: a plugin of the core.
#[derive(Debug, Clone, Serialize)]
pub struct BoardPlugin {
    pub name: String,
    /// The module name pretalx reports for it.
    pub module: Option<String>,
    /// Its newest final release.
    pub latest: Option<String>,
    /// When that came out (`YYYY-MM-DD`).
    pub latest_published: Option<String>,
    /// Whether it was released after the core's newest feature release.
    pub new_since_feature: bool,
    /// One cell per core feature release, by version.
    pub cells: BTreeMap<String, BoardCell>,
}

/// The plugin compatibility board of a core project.
#[derive(Debug, Clone, Serialize)]
pub struct Board {
    /// The core project.
    pub core: String,
    /// Its newest feature releases, newest first (the columns).
    pub releases: Vec<String>,
    /// The same releases with their dates and notes.
    pub columns: Vec<ReleaseLink>,
    /// One row per plugin, by name.
    pub plugins: Vec<BoardPlugin>,
}

/// The board: every plugin of `core` against its `columns` newest feature releases, each cell
/// by the same rules and evidence as the operator reports ([`compat::assess`]).
pub async fn board(app: &App, core: &Project, columns: usize) -> anyhow::Result<Board> {
    let plugins: Vec<&Project> = app
        .config
        .projects
        .iter()
        .filter(|p| p.plugin_of.as_deref() == Some(core.name.as_str()))
        .collect();
    let mut names = vec![core.name.clone()];
    names.extend(plugins.iter().map(|p| p.name.clone()));
    let catalog = Catalog::load(app, &names).await?;
    let features: Vec<ReleaseRow> = catalog
        .releases(&core.name)
        .iter()
        .filter(|r| r.class == ReleaseClass::Feature && !r.yanked)
        .take(columns)
        .cloned()
        .collect();
    let mut docs = Docs::default();
    docs.gather(
        app,
        &board_docs(&catalog, core, &features, &plugins),
        app.clock.now(),
    )
    .await?;
    let newest_feature_at = features
        .first()
        .and_then(|r| r.published_at.or(r.available_at));
    let rows = plugins
        .iter()
        .map(|plugin| board_row(&catalog, &docs, core, &features, plugin, newest_feature_at))
        .collect();
    Ok(Board {
        core: core.name.clone(),
        releases: features.iter().map(|r| r.version.clone()).collect(),
        columns: features
            .iter()
            .map(|r| ReleaseLink {
                version: r.version.clone(),
                published: date(r.published_at),
                url: notes_url(r),
            })
            .collect(),
        plugins: rows,
    })
}

/// The documents the board reads: each column's core release, and the newest final releases
/// of each plugin.
fn board_docs(
    catalog: &Catalog,
    core: &Project,
    features: &[ReleaseRow],
    plugins: &[&Project],
) -> Vec<(Project, String)> {
    let mut wanted: Vec<(Project, String)> = features
        .iter()
        .map(|r| (core.clone(), r.version.clone()))
        .collect();
    for p in plugins {
        for r in catalog
            .releases(&p.name)
            .iter()
            .filter(|r| r.class != ReleaseClass::Prerelease && !r.yanked)
            .take(DOCS_PER_PLUGIN)
        {
            wanted.push(((*p).clone(), r.version.clone()));
        }
    }
    wanted
}

/// One plugin's row: its newest release and a cell per column.
fn board_row(
    catalog: &Catalog,
    docs: &Docs,
    core: &Project,
    features: &[ReleaseRow],
    plugin: &Project,
    newest_feature_at: Option<DateTime<Utc>>,
) -> BoardPlugin {
    let latest = catalog.latest_final(&plugin.name);
    let latest_at = latest.and_then(|r| r.published_at.or(r.available_at));
    let cells = features
        .iter()
        .filter_map(|f| {
            let release = core_release(docs, core, f)?;
            let a = assess_plugin(catalog, docs, core, &release, plugin, None);
            Some((
                f.version.clone(),
                BoardCell {
                    verdict: a.verdict,
                    install: a.install,
                    evidence: a.evidence,
                    overridden: compat::overridden(&plugin.compat, &release.version),
                    hints: a.hints,
                },
            ))
        })
        .collect();
    BoardPlugin {
        name: plugin.name.clone(),
        module: plugin.module.clone(),
        latest: latest.map(|r| r.version.clone()),
        latest_published: date(latest_at),
        new_since_feature: matches!((latest_at, newest_feature_at), (Some(p), Some(f)) if p > f),
        cells,
    }
}

/// What [`process`] queued.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertsReport {
    /// Compatibility reports for a new core feature release.
    pub compat_reports: usize,
    /// Follow-ups after a plugin release changed a verdict.
    pub followups: usize,
    /// Advice to take a new bugfix release.
    pub bugfix_advice: usize,
}

/// Decides and queues the operator alerts of every release found new and not handled yet:
/// per operator and core project, one message for the whole pass (the compatibility report
/// of the newest feature release, else advice for the newest bugfix release), or, when the
/// pass found no core release for them, the follow-ups of plugin releases that changed a
/// verdict. Loads once, fetches the documents the plan reads (never inside a transaction),
/// plans (`plan::plan`, pure), then queues everything in one transaction.
pub async fn process(app: &App) -> anyhow::Result<AlertsReport> {
    let now = app.clock.now();
    let input = match load_pass(app).await? {
        Loaded::Nothing => return Ok(AlertsReport::default()),
        // Nobody to advise: the releases are handled without reading the catalogue.
        Loaded::NoOperators(pending) => {
            queue_plan(app, &pending, &plan::Plan::default(), now).await?;
            return Ok(AlertsReport::default());
        }
        Loaded::Input(input) => input,
    };
    let tracked = Tracked::of(&app.config);
    let mut docs = Docs::default();
    docs.gather(app, &plan::docs_wanted(tracked, &input), now)
        .await?;
    let planned = plan::plan(tracked, &input, &docs)?;
    queue_plan(app, &input.pending, &planned, now).await?;
    Ok(planned.report)
}

/// What a pass found to do.
enum Loaded {
    /// No release waits for its alerts.
    Nothing,
    /// Releases wait (these ids), but no subscriber or channel has an inventory.
    NoOperators(Vec<i64>),
    /// Everything the plan reads.
    Input(plan::Input),
}

/// Everything one pass reads from the database, each table once (the release catalogue
/// only when there is an operator to advise).
async fn load_pass(app: &App) -> anyhow::Result<Loaded> {
    let pending = app.store.releases_pending_alerts().await?;
    if pending.is_empty() {
        return Ok(Loaded::Nothing);
    }
    let inventories = app.store.inventories().await?;
    let emails: HashMap<i64, String> = app
        .store
        .subscribers()
        .await?
        .into_iter()
        .map(|s| (s.id, s.email.as_str().to_string()))
        .collect();
    let operators = operators(app, inventories, &emails);
    if operators.is_empty() {
        return Ok(Loaded::NoOperators(pending));
    }
    let states = app.store.compat_states().await?;
    let rows = app
        .store
        .releases(&ReleaseFilter {
            projects: app.config.projects.iter().map(|p| p.name.clone()).collect(),
            with_withdrawn: true,
            ..ReleaseFilter::default()
        })
        .await?;
    let catalog = Catalog::from_rows(rows.iter().filter(|r| r.withdrawn_at.is_none()).cloned());
    let releases: HashMap<i64, ReleaseRow> = rows.into_iter().map(|r| (r.id, r)).collect();
    let found = pending
        .iter()
        .filter_map(|id| releases.get(id))
        .filter(|r| plan::alerts_for(r) && app.config.project(&r.project).is_some())
        .cloned()
        .collect();
    Ok(Loaded::Input(plan::Input {
        pending,
        found,
        releases,
        catalog,
        states,
        operators,
    }))
}

/// Every operator: subscribers with an inventory (by id), then channels with one.
fn operators(
    app: &App,
    inventories: BTreeMap<i64, InventoryMap>,
    emails: &HashMap<i64, String>,
) -> Vec<plan::Operator> {
    let mut operators: Vec<plan::Operator> = inventories
        .into_iter()
        .filter_map(|(subscriber_id, installed)| {
            let email = emails.get(&subscriber_id)?.clone();
            Some(plan::Operator {
                to: plan::Target::Mail {
                    subscriber_id,
                    email,
                },
                installed,
            })
        })
        .collect();
    operators.extend(
        app.config
            .channels
            .iter()
            .filter(|c| !c.installed.is_empty())
            .map(|c| plan::Operator {
                to: plan::Target::Channel(c.name.clone()),
                installed: tracked_inventory(app, &c.installed).0,
            }),
    );
    operators
}

/// Queues the plan's messages, records the verdicts told and marks the pass's releases
/// handled, in one transaction.
async fn queue_plan(
    app: &App,
    pending: &[i64],
    planned: &plan::Plan,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut tx = app.store.begin().await?;
    for q in &planned.queue {
        match &q.to {
            plan::Target::Mail {
                subscriber_id,
                email,
            } => {
                let letter = Letter::alert(
                    *subscriber_id,
                    email,
                    &q.subject_key,
                    q.kind,
                    q.payload.clone(),
                );
                queue_mail(&mut tx, &app.notifier.from, &letter, now).await?;
            }
            plan::Target::Channel(name) => {
                let post = Post::alert(name, &q.subject_key, q.kind, q.payload.clone());
                queue_notice(&mut tx, &post, now).await?;
            }
        }
    }
    for (operator, core_release_id, verdicts) in &planned.new_states {
        store::put_compat_state(&mut tx, operator, *core_release_id, verdicts, now).await?;
    }
    for id in pending {
        store::mark_alerts_done(&mut tx, *id, now).await?;
    }
    tx.commit().await.context("cannot record operator alerts")?;
    Ok(())
}

/// One plugin in pretalx's update-check payload (`name` is the plugin's module name).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CheckedPlugin {
    /// Module name, e.g. `pretalx_pages`.
    pub name: String,
    /// The version installed, as the instance reports it.
    pub version: String,
}

/// The JSON body pretalx's update check sends (extra fields are accepted and ignored).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct UpdateCheckRequest {
    /// The instance's random id.
    #[serde(default)]
    pub id: Option<String>,
    /// The installed core version.
    pub version: String,
    /// The plugins installed, by module name.
    #[serde(default)]
    pub plugins: Vec<CheckedPlugin>,
}

/// Latest release and whether the installed one is older.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latest {
    /// Newest final release, when any is recorded.
    pub latest: Option<String>,
    /// Whether the installed version is older than `latest`.
    pub updatable: bool,
}

/// Herald's additions to the update-check answer.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateCheckExtra {
    /// The core feature release the verdicts are for.
    pub target: Option<String>,
    /// Verdict per plugin, keyed like `plugins`.
    pub verdicts: BTreeMap<String, Assessment>,
    /// What to do.
    pub recommendation: String,
    /// Where the core installation stands.
    pub core: CoreAdvice,
    /// Plugins Herald does not track.
    pub untracked: Vec<String>,
}

/// The answer: pretalx's shape plus `herald`.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateCheckAnswer {
    /// The core's latest release, and whether the instance's is older.
    pub version: Latest,
    /// Per plugin, keyed by the name the instance sent.
    pub plugins: BTreeMap<String, Latest>,
    /// Herald's extra fields.
    pub herald: UpdateCheckExtra,
}

fn latest_for(catalog: &Catalog, project: &str, installed: &str) -> Latest {
    let latest = catalog.latest_final(project);
    let installed = version::parse(installed).ok();
    Latest {
        latest: latest.map(|r| r.version.clone()),
        updatable: match (latest.and_then(|r| r.parsed.as_ref()), installed) {
            (Some(l), Some(i)) => *l > i,
            _ => false,
        },
    }
}

/// Answers pretalx's update check: latest version and whether it is updatable, for the core
/// and each plugin (named by module), plus the compatibility verdicts for the latest core
/// feature release.
pub async fn update_check(
    app: &App,
    req: &UpdateCheckRequest,
) -> anyhow::Result<UpdateCheckAnswer> {
    let core = checked_core(app, req).context("no core project is tracked")?;
    let mut installed = InventoryMap::new();
    installed.insert(core.name.clone(), req.version.clone());
    let mut names_sent: BTreeMap<String, String> = BTreeMap::new();
    let mut untracked = Vec::new();
    for plugin in &req.plugins {
        match resolve(app, &plugin.name) {
            Some(p) => {
                installed.insert(p.name.clone(), plugin.version.clone());
                names_sent.insert(p.name.clone(), plugin.name.clone());
            }
            None => untracked.push(plugin.name.clone()),
        }
    }
    let advice = build(app, &installed, untracked, app.clock.now()).await?;
    let names: Vec<String> = installed.keys().cloned().collect();
    let catalog = Catalog::load(app, &names).await?;
    let mut plugins = BTreeMap::new();
    for (project, sent) in &names_sent {
        plugins.insert(
            sent.clone(),
            latest_for(&catalog, project, &installed[project]),
        );
    }
    let verdicts = advice
        .plugins
        .iter()
        .map(|a| {
            let sent = names_sent.get(&a.plugin).unwrap_or(&a.plugin);
            (sent.clone(), a.clone())
        })
        .collect();
    Ok(UpdateCheckAnswer {
        version: latest_for(&catalog, &core.name, &req.version),
        plugins,
        herald: UpdateCheckExtra {
            target: advice.target,
            verdicts,
            recommendation: advice.recommendation,
            core: advice.core,
            untracked: advice.untracked,
        },
    })
}

/// The core an update check is about: the one whose plugins the instance sent, else the
/// first core tracked.
fn checked_core<'a>(app: &'a App, req: &UpdateCheckRequest) -> Option<&'a Project> {
    let cores = || app.config.projects.iter().filter(|p| p.plugin_of.is_none());
    cores()
        .find(|p| {
            req.plugins.iter().any(|pl| {
                resolve(app, &pl.name).is_some_and(|t| t.plugin_of.as_deref() == Some(&p.name))
            })
        })
        .or_else(|| cores().next())
}
