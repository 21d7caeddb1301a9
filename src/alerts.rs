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
use crate::config::channels::{Channel, ChannelMessage};
use crate::decide::{self, CoreAlert, PassRelease};
use crate::inventory::Installed;
use crate::model::{Project, ReleaseClass, SourceKind, normalize_name};
use crate::notify::outbox::{
    AlertKind, AlertReport, Letter, Post, Trigger, queue_mail, queue_notice,
};
use crate::sources::FetchContext;
use crate::sources::pypi::{ReleaseDoc, Vulnerability};
use crate::store::{self, InventoryMap, OperatorKey, ReleaseFilter, ReleaseRow};
use crate::version;

/// How long before or after a core release a plugin release counts as released alongside.
pub const ALONGSIDE_WINDOW_DAYS: i64 = 3;
/// Plugin releases whose per-version documents are read, newest first.
const DOCS_PER_PLUGIN: usize = 3;

/// A release with a link to its notes.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseLink {
    /// Version.
    pub version: String,
    /// Publication date (`YYYY-MM-DD`).
    pub published: Option<String>,
    /// Release notes or announcement.
    pub url: Option<String>,
}

/// A vulnerability an upgrade closes.
#[derive(Debug, Clone, Serialize)]
pub struct VulnerabilityView {
    /// Advisory id.
    pub id: String,
    /// CVE ids and others.
    pub aliases: Vec<String>,
    /// One line, when known.
    pub summary: Option<String>,
    /// The versions that fix it.
    pub fixed_in: Vec<String>,
    /// Where to read about it.
    pub link: Option<String>,
}

/// Where the operator's core installation stands.
#[derive(Debug, Clone, Serialize)]
pub struct CoreAdvice {
    /// Core project.
    pub project: String,
    /// Installed version.
    pub installed: Option<String>,
    /// Newest final release.
    pub latest: Option<String>,
    /// Newest feature release.
    pub latest_feature: Option<String>,
    /// `up-to-date`, `bugfix-available`, `line-unsupported` or `not-installed`.
    pub status: &'static str,
    /// One sentence about it.
    pub summary: String,
    /// Feature releases between the installed version and the latest, oldest first.
    pub feature_releases_between: Vec<ReleaseLink>,
    /// Known vulnerabilities of the installed version that upgrading to the latest fixes.
    pub vulnerabilities_fixed: Vec<VulnerabilityView>,
}

/// The full report for one inventory.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    /// The core.
    pub core: CoreAdvice,
    /// The core feature release the plugin verdicts are for.
    pub target: Option<String>,
    /// One verdict per installed plugin.
    pub plugins: Vec<Assessment>,
    /// What to do, in one sentence.
    pub recommendation: String,
    /// Inventory entries Herald does not track.
    pub untracked: Vec<String>,
    /// The pinned upgrade command, or why to wait.
    pub upgrade: compat::UpgradePlan,
}

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
        Ok(Catalog { by_project })
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
    docs: HashMap<(String, String), ReleaseDoc>,
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

    fn get(&self, project: &str, version: &Version) -> Option<&ReleaseDoc> {
        self.docs
            .get(&(project.to_string(), version::canonical_key(version)))
    }
}

/// What documents an advice needs.
fn wanted_docs(
    app: &App,
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
        let Some(p) = app
            .config
            .project(name)
            .filter(|p| p.plugin_of.as_deref() == Some(&core.name))
        else {
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
    doc: Option<&ReleaseDoc>,
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
        status: "not-installed",
        summary: format!("{} is not in the inventory.", core.name),
        feature_releases_between: Vec::new(),
        vulnerabilities_fixed: Vec::new(),
    };
    let (Some(inst), Some(latest)) = (installed_v, latest) else {
        if installed.is_some() {
            advice.status = "up-to-date";
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
        advice.status = "up-to-date";
        advice.summary = format!("{} {inst} is the latest release.", core.name);
    } else if version::line(&inst) == latest.line {
        advice.status = "bugfix-available";
        advice.summary = format!(
            "{} {} fixes bugs in your {} line: upgrade soon, bugfix releases may carry security fixes.",
            core.name, latest.version, latest.line
        );
    } else {
        advice.status = "line-unsupported";
        advice.feature_releases_between = catalog
            .releases(&core.name)
            .iter()
            .rev()
            .filter(|r| {
                r.class == ReleaseClass::Feature
                    && r.parsed
                        .as_ref()
                        .is_some_and(|v| *v > inst && *v <= latest_v)
            })
            .map(|r| ReleaseLink {
                version: r.version.clone(),
                published: date(r.published_at),
                url: notes_url(r),
            })
            .collect();
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
    app: &App,
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
            let plugin = app
                .config
                .project(name)
                .filter(|p| p.plugin_of.as_deref() == Some(&core.name))?;
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
fn core_of<'a>(app: &'a App, installed: &InventoryMap) -> Option<&'a Project> {
    let cores: Vec<&Project> = app.config.cores().collect();
    cores
        .iter()
        .find(|c| installed.contains_key(&c.name))
        .or_else(|| {
            cores.iter().find(|c| {
                installed.keys().any(|k| {
                    app.config
                        .project(k)
                        .is_some_and(|p| p.plugin_of.as_deref() == Some(&c.name))
                })
            })
        })
        .copied()
}

async fn build(
    app: &App,
    docs: &mut Docs,
    installed: &InventoryMap,
    untracked: Vec<String>,
    target_key: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<Advice> {
    let Some(core) = core_of(app, installed).cloned() else {
        return Ok(Advice {
            core: CoreAdvice {
                project: String::new(),
                installed: None,
                latest: None,
                latest_feature: None,
                status: "not-installed",
                summary: "The inventory names no tracked project.".into(),
                feature_releases_between: Vec::new(),
                vulnerabilities_fixed: Vec::new(),
            },
            target: None,
            plugins: Vec::new(),
            recommendation: "Nothing to advise: none of these packages is tracked.".into(),
            untracked,
            upgrade: compat::UpgradePlan::default(),
        });
    };
    let mut names: Vec<String> = vec![core.name.clone()];
    names.extend(installed.keys().cloned());
    let catalog = Catalog::load(app, &names).await?;
    let target = match target_key {
        Some(key) => catalog.releases(&core.name).iter().find(|r| {
            r.parsed
                .as_ref()
                .is_some_and(|v| version::canonical_key(v) == key)
        }),
        None => catalog.latest_feature(&core.name),
    }
    .cloned();
    docs.gather(
        app,
        &wanted_docs(app, &catalog, &core, installed, target.as_ref()),
        now,
    )
    .await?;
    let docs = &*docs;
    let core_advice = core_advice(
        &catalog,
        docs,
        &core,
        installed.get(&core.name).map(String::as_str),
    );
    let plugins = match &target {
        Some(t) => plugin_assessments(app, &catalog, docs, &core, t, installed),
        None => Vec::new(),
    };
    let recommendation = match (&target, target.as_ref().and_then(|t| t.parsed.clone())) {
        (Some(_), Some(v)) if !plugins.is_empty() => {
            compat::recommendation(&core.name, &v, &plugins)
        }
        _ => core_advice.summary.clone(),
    };
    let upgrade = upgrade_plan(app, &catalog, &core, installed, target.as_ref(), &plugins);
    Ok(Advice {
        core: core_advice,
        target: target.map(|t| t.version),
        plugins,
        recommendation,
        untracked,
        upgrade,
    })
}

/// The pinned command: the newest final release of the target's line (else the newest final
/// release) and every plugin version the verdicts name.
fn upgrade_plan(
    app: &App,
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
        app.config
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
    build(
        app,
        &mut Docs::default(),
        &installed,
        untracked,
        None,
        app.clock.now(),
    )
    .await
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
    /// Project name.
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
    let mut wanted: Vec<(Project, String)> = features
        .iter()
        .map(|r| (core.clone(), r.version.clone()))
        .collect();
    for p in &plugins {
        for r in catalog
            .releases(&p.name)
            .iter()
            .filter(|r| r.class != ReleaseClass::Prerelease && !r.yanked)
            .take(DOCS_PER_PLUGIN)
        {
            wanted.push(((*p).clone(), r.version.clone()));
        }
    }
    let mut docs = Docs::default();
    docs.gather(app, &wanted, app.clock.now()).await?;
    let newest_feature_at = features
        .first()
        .and_then(|r| r.published_at.or(r.available_at));
    let rows = plugins
        .iter()
        .map(|plugin| {
            let latest = catalog.latest_final(&plugin.name);
            let latest_at = latest.and_then(|r| r.published_at.or(r.available_at));
            let cells = features
                .iter()
                .filter_map(|f| {
                    let release = core_release(&docs, core, f)?;
                    let a = assess_plugin(&catalog, &docs, core, &release, plugin, None);
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
        })
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

/// What [`process`] queued.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertsReport {
    /// Compatibility reports for a new core feature release.
    pub compat_reports: usize,
    /// Follow-ups after a plugin release changed a verdict.
    pub followups: usize,
    /// Bugfix advice.
    pub bugfix_advice: usize,
}

fn verdict_map(plugins: &[Assessment]) -> BTreeMap<String, String> {
    plugins
        .iter()
        .map(|a| (a.plugin.clone(), a.verdict.as_str().to_string()))
        .collect()
}

fn fingerprint(verdicts: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let text: String = verdicts.iter().map(|(k, v)| format!("{k}={v};")).collect();
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Who an operator alert goes to: a subscriber by mail, or a channel of `HERALD_CHANNELS`
/// with an inventory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// A subscriber with an inventory, by mail.
    Mail {
        /// Subscriber.
        subscriber_id: i64,
        /// Their address.
        email: String,
    },
    /// A channel with an inventory.
    Channel(String),
}

impl Target {
    /// The key of what this operator was told (`compat_state`, `channel_compat_state`).
    fn key(&self) -> OperatorKey {
        match self {
            Target::Mail { subscriber_id, .. } => OperatorKey::Subscriber(*subscriber_id),
            Target::Channel(name) => OperatorKey::Channel(name.clone()),
        }
    }
}

/// A message the alerts phase will queue.
struct Queued {
    to: Target,
    kind: AlertKind,
    subject_key: String,
    payload: AlertReport,
}

fn uses_core(app: &App, installed: &InventoryMap, core: &str) -> bool {
    installed.contains_key(core)
        || installed
            .keys()
            .filter_map(|k| app.config.project(k))
            .any(|p| p.plugin_of.as_deref() == Some(core))
}

/// Verdicts an operator was told, per (operator, core release).
type CompatStates = BTreeMap<(OperatorKey, i64), BTreeMap<String, String>>;

/// An operator: a subscriber or a channel with an inventory.
struct Operator<'a> {
    to: Target,
    installed: &'a InventoryMap,
}

/// One alerts pass: the releases it handles, what it will queue and record.
struct Pass<'a> {
    app: &'a App,
    now: DateTime<Utc>,
    docs: Docs,
    /// Feature and bugfix releases of tracked projects, in the order they were recorded.
    found: Vec<ReleaseRow>,
    states: &'a CompatStates,
    queue: Vec<Queued>,
    new_states: Vec<(OperatorKey, i64, BTreeMap<String, String>)>,
    report: AlertsReport,
}

fn key_of(release: &ReleaseRow) -> String {
    release
        .parsed
        .as_ref()
        .map(version::canonical_key)
        .unwrap_or_default()
}

impl Pass<'_> {
    /// The feature and bugfix releases of `core` this pass found, newest first.
    fn core_releases(&self, core: &Project) -> Vec<ReleaseRow> {
        let mut releases: Vec<ReleaseRow> = self
            .found
            .iter()
            .filter(|r| r.project == core.name && r.parsed.is_some())
            .cloned()
            .collect();
        releases.sort_by(|a, b| b.parsed.cmp(&a.parsed));
        releases
    }

    /// Queues the one message about `core` this pass owes an operator (see
    /// [`decide::core_alert`]); true when there is one. When the pass found several releases
    /// of the core, the message lists them (`found`, newest first).
    async fn core_message(&mut self, op: &Operator<'_>, core: &Project) -> anyhow::Result<bool> {
        let releases = self.core_releases(core);
        let pass: Vec<PassRelease> = releases
            .iter()
            .filter_map(|r| {
                Some(PassRelease {
                    release_id: r.id,
                    version: r.parsed.clone()?,
                    class: r.class,
                })
            })
            .collect();
        let installed = op
            .installed
            .get(&core.name)
            .and_then(|v| version::parse(v).ok());
        let uses = uses_core(self.app, op.installed, &core.name);
        let alert = decide::core_alert(&pass, installed.as_ref(), uses);
        let row = |id: i64| releases.iter().find(|r| r.id == id);
        let (kind, prefix, release, mut payload) = match alert {
            Some(CoreAlert::Report {
                release_id,
                upgrade_to,
            }) => {
                let Some(release) = row(release_id) else {
                    return Ok(false);
                };
                let newer = upgrade_to.and_then(row);
                let payload = self.report_payload(op, core, release, newer).await?;
                (AlertKind::CompatReport, "compat", release, payload)
            }
            Some(CoreAlert::Bugfix { release_id }) => {
                let Some(release) = row(release_id) else {
                    return Ok(false);
                };
                let advice = build(
                    self.app,
                    &mut self.docs,
                    op.installed,
                    Vec::new(),
                    None,
                    self.now,
                )
                .await?;
                self.report.bugfix_advice += 1;
                let payload = AlertReport::new(&advice)?;
                (AlertKind::BugfixAdvice, "bugfix", release, payload)
            }
            None => return Ok(false),
        };
        if releases.len() > 1 {
            payload.found = Some(releases.iter().map(|r| r.version.clone()).collect());
        }
        self.queue.push(Queued {
            to: op.to.clone(),
            kind,
            subject_key: format!("{prefix}:{}:{}", core.name, key_of(release)),
            payload,
        });
        Ok(true)
    }

    /// The compatibility report for the feature release `release`, and the verdicts it tells.
    /// With `newer`, the newest bugfix release of its line found with it, the report says to
    /// install that one (`upgrade_to`), and so does its recommendation.
    async fn report_payload(
        &mut self,
        op: &Operator<'_>,
        core: &Project,
        release: &ReleaseRow,
        newer: Option<&ReleaseRow>,
    ) -> anyhow::Result<AlertReport> {
        let mut advice = build(
            self.app,
            &mut self.docs,
            op.installed,
            Vec::new(),
            Some(&key_of(release)),
            self.now,
        )
        .await?;
        self.new_states
            .push((op.to.key(), release.id, verdict_map(&advice.plugins)));
        if let Some(newer_v) = newer.and_then(|r| r.parsed.as_ref())
            && !advice.plugins.is_empty()
        {
            advice.recommendation = compat::recommendation(&core.name, newer_v, &advice.plugins);
        }
        let mut payload = AlertReport::new(&advice)?;
        payload.upgrade_to = newer.map(|newer| newer.version.clone());
        self.report.compat_reports += 1;
        Ok(payload)
    }

    /// Re-assesses, after this pass's releases of plugins an operator runs, every release of
    /// `core` the operator was told about, and queues a follow-up for each whose verdicts
    /// changed. With `superseded` (the operator's core message of this pass carries the
    /// current verdicts already) the new verdicts are recorded and nothing more is sent.
    async fn followups(
        &mut self,
        op: &Operator<'_>,
        core: &Project,
        superseded: bool,
    ) -> anyhow::Result<()> {
        let app = self.app;
        let triggers: Vec<&ReleaseRow> = self
            .found
            .iter()
            .filter(|r| op.installed.contains_key(&r.project))
            .filter(|r| {
                app.config
                    .project(&r.project)
                    .is_some_and(|p| p.plugin_of.as_deref() == Some(&core.name))
            })
            .collect();
        if triggers.is_empty() {
            return Ok(());
        }
        let key = op.to.key();
        let told = self
            .states
            .range((key.clone(), i64::MIN)..=(key.clone(), i64::MAX));
        for ((_, core_release_id), before) in told {
            let Some(core_release) = app.store.release(*core_release_id).await? else {
                continue;
            };
            if core_release.project != core.name {
                continue;
            }
            let core_key = key_of(&core_release);
            let advice = build(
                app,
                &mut self.docs,
                op.installed,
                Vec::new(),
                Some(&core_key),
                self.now,
            )
            .await?;
            let after = verdict_map(&advice.plugins);
            if after == *before {
                continue;
            }
            let changed: Vec<String> = after
                .iter()
                .filter(|(k, v)| before.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect();
            // The plugin release behind the change, when this pass found several.
            let Some(trigger) = triggers
                .iter()
                .find(|r| changed.contains(&r.project))
                .or(triggers.first())
            else {
                continue;
            };
            let subject_key = format!(
                "compat-followup:{}:{core_key}:{}",
                core.name,
                fingerprint(&after)
            );
            self.new_states.push((key.clone(), *core_release_id, after));
            if superseded {
                continue;
            }
            let mut payload = AlertReport::new(&advice)?;
            payload.trigger = Some(Trigger {
                project: trigger.project.clone(),
                version: trigger.version.clone(),
            });
            payload.changed = Some(changed);
            self.queue.push(Queued {
                to: op.to.clone(),
                kind: AlertKind::CompatFollowup,
                subject_key,
                payload,
            });
            self.report.followups += 1;
        }
        Ok(())
    }
}

/// Decides and queues the operator alerts of every release found new and not handled yet:
/// per operator and core project, one message for the whole pass (the compatibility report
/// of the newest feature release, else advice for the newest bugfix release), or, when the
/// pass found no core release for them, the follow-ups of plugin releases that changed a
/// verdict.
pub async fn process(app: &App) -> anyhow::Result<AlertsReport> {
    let now = app.clock.now();
    let pending = app.store.releases_pending_alerts().await?;
    if pending.is_empty() {
        return Ok(AlertsReport::default());
    }
    let inventories = app.store.inventories().await?;
    let states = app.store.compat_states().await?;
    let emails: HashMap<i64, String> = app
        .store
        .subscribers()
        .await?
        .into_iter()
        .map(|s| (s.id, s.email.as_str().to_string()))
        .collect();
    let mut found = Vec::new();
    for release_id in &pending {
        if let Some(release) = app.store.release(*release_id).await?
            && release.class != ReleaseClass::Prerelease
            && app.config.project(&release.project).is_some()
        {
            found.push(release);
        }
    }
    // Decide everything first (this may fetch documents); then one transaction queues it.
    let mut pass = Pass {
        app,
        now,
        docs: Docs::default(),
        found,
        states: &states,
        queue: Vec::new(),
        new_states: Vec::new(),
        report: AlertsReport::default(),
    };
    let cores: Vec<&Project> = app.config.cores().collect();
    for (subscriber_id, installed) in &inventories {
        let Some(email) = emails.get(subscriber_id) else {
            continue;
        };
        let op = Operator {
            to: Target::Mail {
                subscriber_id: *subscriber_id,
                email: email.clone(),
            },
            installed,
        };
        for core in &cores {
            let told = pass.core_message(&op, core).await?;
            pass.followups(&op, core, told).await?;
        }
    }
    let channel_inventories: Vec<(&Channel, InventoryMap)> = app
        .config
        .channels
        .iter()
        .filter(|c| !c.installed.is_empty())
        .map(|c| (c, tracked_inventory(app, &c.installed).0))
        .collect();
    for (channel, installed) in &channel_inventories {
        let op = Operator {
            to: Target::Channel(channel.name.clone()),
            installed,
        };
        for core in &cores {
            if [
                ChannelMessage::CompatReport,
                ChannelMessage::CompatFollowup,
                ChannelMessage::BugfixAdvice,
            ]
            .iter()
            .any(|m| channel.wants_alert(*m, &core.name))
            {
                let told = pass.core_message(&op, core).await?;
                pass.followups(&op, core, told).await?;
            }
        }
    }
    // A channel gets the kinds of message it lists (the verdicts are recorded regardless).
    pass.queue.retain(|q| match &q.to {
        Target::Mail { .. } => true,
        Target::Channel(name) => app.config.channel(name).is_some_and(|c| {
            let core = q.subject_key.split(':').nth(1).unwrap_or_default();
            c.wants_alert(q.kind.channel_message(), core)
        }),
    });
    pass.report.compat_reports = pass
        .queue
        .iter()
        .filter(|q| q.kind == AlertKind::CompatReport)
        .count();
    pass.report.followups = pass
        .queue
        .iter()
        .filter(|q| q.kind == AlertKind::CompatFollowup)
        .count();
    pass.report.bugfix_advice = pass
        .queue
        .iter()
        .filter(|q| q.kind == AlertKind::BugfixAdvice)
        .count();
    let mut tx = app.store.begin().await?;
    for q in &pass.queue {
        match &q.to {
            Target::Mail {
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
            Target::Channel(name) => {
                let post = Post::alert(name, &q.subject_key, q.kind, q.payload.clone());
                queue_notice(&mut tx, &post, now).await?;
            }
        }
    }
    for (operator, core_release_id, verdicts) in &pass.new_states {
        store::put_compat_state(&mut tx, operator, *core_release_id, verdicts, now).await?;
    }
    for id in &pending {
        store::mark_alerts_done(&mut tx, *id, now).await?;
    }
    tx.commit().await.context("cannot record operator alerts")?;
    Ok(pass.report)
}

/// One plugin in pretalx's update-check payload (`name` is the plugin's module name).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CheckedPlugin {
    /// Module name, e.g. `pretalx_pages`.
    pub name: String,
    /// Installed version.
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
    /// Installed plugins.
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
    /// The core.
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
    let core = app
        .config
        .projects
        .iter()
        .find(|p| {
            p.plugin_of.is_none()
                && req.plugins.iter().any(|pl| {
                    resolve(app, &pl.name).is_some_and(|t| t.plugin_of.as_deref() == Some(&p.name))
                })
        })
        .or_else(|| app.config.projects.iter().find(|p| p.plugin_of.is_none()))
        .cloned()
        .context("no core project is tracked")?;
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
    let advice = build(
        app,
        &mut Docs::default(),
        &installed,
        untracked,
        None,
        app.clock.now(),
    )
    .await?;
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
            (
                names_sent
                    .get(&a.plugin)
                    .cloned()
                    .unwrap_or_else(|| a.plugin.clone()),
                a.clone(),
            )
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
