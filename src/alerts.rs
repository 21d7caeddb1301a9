//! Operator alerts: what an operator who registered an inventory (core version and plugins)
//! should do. [`advise`] builds the report for an inventory now (the `advise` command, the
//! update-check API and the mails use it); [`process`] runs after a check records new
//! releases and queues, once per release, the compatibility report for a new core feature
//! release, the follow-up when a plugin release changes a verdict, and the advice for a new
//! bugfix release (upgrade soon, or your line no longer gets fixes), with the known
//! vulnerabilities the upgrade closes.
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
use crate::inventory::Installed;
use crate::model::{Project, ReleaseClass, SourceKind, normalize_name};
use crate::sources::FetchContext;
use crate::sources::pypi::{ReleaseDoc, Vulnerability};
use crate::store::{self, InventoryMap, NewMessage, ReleaseFilter, ReleaseRow};
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
            for (project, key, doc, validators) in &fresh {
                store::put_release_doc(&mut tx, project, key, doc, now).await?;
                if let Some((url, v)) = validators {
                    store::put_validators(&mut tx, url, v, now).await?;
                }
            }
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

fn plugin_assessments(
    app: &App,
    catalog: &Catalog,
    docs: &Docs,
    core: &Project,
    target: &ReleaseRow,
    installed: &InventoryMap,
) -> Vec<Assessment> {
    let Some(target_v) = target.parsed.clone() else {
        return Vec::new();
    };
    let core_release = CoreRelease {
        version: target_v,
        published_at: target.published_at.or(target.available_at),
        requires_python: docs
            .get(
                &core.name,
                target.parsed.as_ref().unwrap_or(&Version::new([0])),
            )
            .and_then(|d| d.requires_python.clone()),
    };
    let window = Duration::days(ALONGSIDE_WINDOW_DAYS);
    installed
        .iter()
        .filter_map(|(name, ver)| {
            let plugin = app
                .config
                .project(name)
                .filter(|p| p.plugin_of.as_deref() == Some(&core.name))?;
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
            let installed_v = version::parse(ver).ok();
            Some(compat::assess(
                &core.name,
                &core_release,
                &plugin.name,
                &releases,
                installed_v.as_ref(),
                &plugin.compat,
                window,
            ))
        })
        .collect()
}

/// The core project an inventory is about: the first core whose plugins or itself appear.
fn core_of<'a>(app: &'a App, installed: &InventoryMap) -> Option<&'a Project> {
    let cores: Vec<&Project> = app
        .config
        .projects
        .iter()
        .filter(|p| p.plugin_of.is_none())
        .collect();
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
    Ok(Advice {
        core: core_advice,
        target: target.map(|t| t.version),
        plugins,
        recommendation,
        untracked,
    })
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

/// A message the alerts phase will queue.
struct Queued {
    subscriber_id: i64,
    email: String,
    kind: &'static str,
    subject_key: String,
    payload: serde_json::Value,
}

fn uses_core(app: &App, installed: &InventoryMap, core: &str) -> bool {
    installed.contains_key(core)
        || installed
            .keys()
            .filter_map(|k| app.config.project(k))
            .any(|p| p.plugin_of.as_deref() == Some(core))
}

/// Decides and queues the operator alerts of every release found new and not handled yet.
pub async fn process(app: &App) -> anyhow::Result<AlertsReport> {
    let now = app.clock.now();
    let mut report = AlertsReport::default();
    let pending = app.store.releases_pending_alerts().await?;
    if pending.is_empty() {
        return Ok(report);
    }
    let inventories: Vec<(i64, InventoryMap)> =
        app.store.inventories().await?.into_iter().collect();
    let states = app.store.compat_states().await?;
    let emails: HashMap<i64, String> = app
        .store
        .subscribers()
        .await?
        .into_iter()
        .map(|s| (s.id, s.email.as_str().to_string()))
        .collect();
    // Decide everything first (this may fetch documents); then one transaction queues it.
    let mut docs = Docs::default();
    let mut queue: Vec<Queued> = Vec::new();
    let mut new_states: Vec<(i64, i64, BTreeMap<String, String>)> = Vec::new();
    for release_id in pending.clone() {
        let Some(release) = app.store.release(release_id).await? else {
            continue;
        };
        let Some(project) = app.config.project(&release.project).cloned() else {
            continue;
        };
        let key = release
            .parsed
            .as_ref()
            .map(version::canonical_key)
            .unwrap_or_default();
        for (subscriber_id, installed) in inventories.clone() {
            let Some(email) = emails.get(&subscriber_id).cloned() else {
                continue;
            };
            match (project.plugin_of.clone(), release.class) {
                (None, ReleaseClass::Feature) if uses_core(app, &installed, &project.name) => {
                    let advice =
                        build(app, &mut docs, &installed, Vec::new(), Some(&key), now).await?;
                    new_states.push((subscriber_id, release.id, verdict_map(&advice.plugins)));
                    queue.push(Queued {
                        subscriber_id,
                        email,
                        kind: "compat_report",
                        subject_key: format!("compat:{}:{key}", project.name),
                        payload: serde_json::to_value(&advice)?,
                    });
                    report.compat_reports += 1;
                }
                (None, ReleaseClass::Bugfix) => {
                    let Some(inst) = installed
                        .get(&project.name)
                        .and_then(|v| version::parse(v).ok())
                    else {
                        continue;
                    };
                    if release.parsed.as_ref().is_none_or(|v| inst >= *v) {
                        continue;
                    }
                    let advice = build(app, &mut docs, &installed, Vec::new(), None, now).await?;
                    queue.push(Queued {
                        subscriber_id,
                        email,
                        kind: "bugfix_advice",
                        subject_key: format!("bugfix:{}:{key}", project.name),
                        payload: serde_json::to_value(&advice)?,
                    });
                    report.bugfix_advice += 1;
                }
                (Some(core), ReleaseClass::Feature | ReleaseClass::Bugfix)
                    if installed.contains_key(&project.name) =>
                {
                    // Re-assess every core release this operator was told about.
                    let told: Vec<(i64, BTreeMap<String, String>)> = states
                        .range((subscriber_id, i64::MIN)..=(subscriber_id, i64::MAX))
                        .map(|((_, core_release_id), before)| (*core_release_id, before.clone()))
                        .collect();
                    for (core_release_id, before) in told {
                        let Some(core_release) = app.store.release(core_release_id).await? else {
                            continue;
                        };
                        if core_release.project != core {
                            continue;
                        }
                        let core_key = core_release
                            .parsed
                            .as_ref()
                            .map(version::canonical_key)
                            .unwrap_or_default();
                        let advice =
                            build(app, &mut docs, &installed, Vec::new(), Some(&core_key), now)
                                .await?;
                        let after = verdict_map(&advice.plugins);
                        if after == before {
                            continue;
                        }
                        let changed: Vec<String> = after
                            .iter()
                            .filter(|(k, v)| before.get(*k) != Some(*v))
                            .map(|(k, _)| k.clone())
                            .collect();
                        let mut payload = serde_json::to_value(&advice)?;
                        payload["trigger"] = serde_json::json!({"project": project.name, "version": release.version});
                        payload["changed"] = serde_json::to_value(changed)?;
                        queue.push(Queued {
                            subscriber_id,
                            email: email.clone(),
                            kind: "compat_followup",
                            subject_key: format!(
                                "compat-followup:{core}:{core_key}:{}",
                                fingerprint(&after)
                            ),
                            payload,
                        });
                        new_states.push((subscriber_id, core_release_id, after));
                        report.followups += 1;
                    }
                }
                _ => {}
            }
        }
    }
    let mut tx = app.store.begin().await?;
    for q in &queue {
        let message_id = app.notifier.message_id(&q.email, &q.subject_key);
        store::enqueue(
            &mut tx,
            &NewMessage {
                subscriber_id: Some(q.subscriber_id),
                recipient: &q.email,
                kind: q.kind,
                subject_key: &q.subject_key,
                payload: &q.payload,
                message_id: &message_id,
            },
            now,
        )
        .await?;
    }
    for (subscriber_id, core_release_id, verdicts) in &new_states {
        store::put_compat_state(&mut tx, *subscriber_id, *core_release_id, verdicts, now).await?;
    }
    for id in &pending {
        store::mark_alerts_done(&mut tx, *id, now).await?;
    }
    tx.commit().await.context("cannot record operator alerts")?;
    Ok(report)
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
