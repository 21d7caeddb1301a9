//! One check run, end to end: take the run lease, fetch every project x source concurrently
//! (bounded) and, as each project's last source answers, record it in one short transaction
//! (releases, evidence, validators, source health, what is new), writing only what changed.
//! Recording is a pipeline of two: while one task writes a project, the other prepares the
//! next (reads what is stored of it, plans the merge, serialises the rows). The writer keeps
//! one connection for the run ([`store::ProjectBook`]); the usual project (every source
//! answered, nothing skipped, nothing to announce) is one command to SQLite. A project whose
//! sources all answered 304 (or sent the same body again) opens no transaction: their health
//! is written for all of them in one statement at the end. No network call happens inside a
//! transaction; a failing source never blocks the others and never removes anything.
//!
//! Owns: orchestration and the run summary. Does not own: parsing (`sources`), the merge
//! rules (`merge`) or SQL (`store`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, Utc};
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use tracing::Instrument;

use crate::app::App;
use crate::attribution;
use crate::decide::{self, Delivery};
use crate::merge::{self, SourceBatch};
use crate::model::{Project, ReleaseClass, SourceKind, Subscriber};
use crate::notify::outbox::{Letter, queue_mails};
use crate::sources::http::Validators;
use crate::sources::{FetchContext, Fetched, Skipped, SourceError};
use crate::store::{self, EvidenceWrite, LeaseOutcome, ReleaseWrite, SourceState};
use crate::version;

/// How long a lease lasts without renewal.
const LEASE_TTL_SECS: i64 = 120;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Fetch and decide, but record nothing.
    pub dry_run: bool,
    /// Only these projects (all when empty).
    pub projects: Vec<String>,
    /// What started the run (`check`, `serve`, `api`).
    pub trigger: String,
    /// Counters for a progress display, updated as the run goes on.
    pub progress: Option<Arc<Progress>>,
}

/// How far a run has come, for a progress display (read while the run goes on).
#[derive(Debug, Default)]
pub struct Progress {
    /// Projects in this run.
    pub projects_total: AtomicUsize,
    /// Projects whose every source has answered (or failed).
    pub projects_fetched: AtomicUsize,
}

/// How one source fared.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    /// Answered with a document.
    Ok,
    /// Answered 304.
    Unchanged,
    /// Failed this run.
    Failed,
    /// Rate limited: not asked again until `deferred_until`.
    Deferred,
}

/// One source's report.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    /// Which source.
    pub source: SourceKind,
    /// Outcome.
    pub status: SourceStatus,
    /// Releases it listed.
    pub listed: usize,
    /// The error, for failed and deferred sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it may be asked again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred_until: Option<DateTime<Utc>>,
    /// What it skipped that no earlier run reported: one line per unreadable entry, and one
    /// line listing the entries of other packages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Entries it skipped in this run (reported or not).
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A recorded release the run withdrew: the current attribution rule gives its only evidence
/// to another package.
#[derive(Debug, Clone, Serialize)]
pub struct WithdrawnRelease {
    pub version: String,
    /// Why.
    pub reason: String,
}

/// A release the run found new.
#[derive(Debug, Clone, Serialize)]
pub struct NewRelease {
    pub project: String,
    pub version: String,
    pub class: ReleaseClass,
    pub line: String,
}

/// One project's report.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectReport {
    /// Project name.
    pub project: String,
    /// Releases found new (announced).
    pub new: Vec<NewRelease>,
    /// Releases recorded for the first time (new ones and baseline ones).
    pub recorded: usize,
    /// True when this run was a source's first fetch.
    pub baseline: bool,
    /// Messages queued for subscribers (instant delivery).
    pub queued: usize,
    /// Releases added to subscribers' digests.
    pub digest_items: usize,
    /// Releases recorded earlier that the run withdrew (never announced, kept on record).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<WithdrawnRelease>,
    /// Per source.
    pub sources: Vec<SourceReport>,
}

/// The summary of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Run id (none for dry runs).
    pub run_id: Option<i64>,
    /// Nothing was recorded.
    pub dry_run: bool,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Per project.
    pub projects: Vec<ProjectReport>,
    /// HTTP requests sent.
    pub requests: u64,
    /// Of which answered 304.
    pub not_modified: u64,
    /// Body bytes received.
    pub body_bytes: u64,
}

impl RunSummary {
    /// Every release found new.
    pub fn new_releases(&self) -> impl Iterator<Item = &NewRelease> {
        self.projects.iter().flat_map(|p| p.new.iter())
    }

    /// Messages queued for instant delivery by this run.
    pub fn queued(&self) -> usize {
        self.projects.iter().map(|p| p.queued).sum()
    }

    /// (project, report) of every failed or deferred source.
    pub fn failed_sources(&self) -> impl Iterator<Item = (&str, &SourceReport)> {
        self.projects.iter().flat_map(|p| {
            p.sources
                .iter()
                .filter(|s| matches!(s.status, SourceStatus::Failed | SourceStatus::Deferred))
                .map(move |s| (p.project.as_str(), s))
        })
    }

    /// `0` when every source answered, `2` otherwise (the contract's exit codes).
    pub fn exit_code(&self) -> u8 {
        if self.failed_sources().next().is_some() {
            2
        } else {
            0
        }
    }
}

/// The result of asking for a run.
#[derive(Debug, Clone)]
pub enum CheckOutcome {
    /// The run happened.
    Completed(RunSummary),
    /// Another check holds the lease; nothing was done.
    Busy {
        /// Its holder.
        holder: String,
        /// Since when.
        since: DateTime<Utc>,
    },
}

enum Outcome {
    Fetched(Fetched),
    Failed(SourceError),
    StillDeferred(DateTime<Utc>),
}

pub use crate::store::host_name;

fn selected<'a>(app: &'a App, names: &[String]) -> anyhow::Result<Vec<&'a Project>> {
    if names.is_empty() {
        return Ok(app.config.projects.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            app.config.project(name).ok_or_else(|| {
                let tracked: Vec<&str> = app
                    .config
                    .projects
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect();
                anyhow::anyhow!("unknown project `{name}` (tracked: {})", tracked.join(", "))
            })
        })
        .collect()
}

/// Runs one check. Returns [`CheckOutcome::Busy`] without doing anything when another check
/// holds the lease (dry runs take no lease: they write nothing).
pub async fn run(app: &App, opts: &CheckOptions) -> anyhow::Result<CheckOutcome> {
    let projects = selected(app, &opts.projects)?;
    let started = Instant::now();
    let started_at = app.clock.now();
    let holder = format!(
        "{}:{}:{}",
        host_name(),
        std::process::id(),
        started_at.timestamp_micros()
    );
    let ttl = Duration::seconds(LEASE_TTL_SECS);

    let mut renewer = None;
    if !opts.dry_run {
        match app
            .store
            .acquire_lease(&holder, &host_name(), started_at, ttl)
            .await?
        {
            LeaseOutcome::Acquired => {}
            LeaseOutcome::Held { holder, since, .. } => {
                return Ok(CheckOutcome::Busy { holder, since });
            }
        }
        let store = app.store.clone();
        let clock = app.clock.clone();
        let holder = holder.clone();
        renewer = Some(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(std::time::Duration::from_secs((LEASE_TTL_SECS / 3) as u64));
            tick.tick().await;
            loop {
                tick.tick().await;
                match store.renew_lease(&holder, clock.now(), ttl).await {
                    Ok(true) => {}
                    Ok(false) => tracing::error!(holder = %holder, "the run lease was taken over"),
                    Err(err) => tracing::warn!(error = %err, "cannot renew the run lease"),
                }
            }
        }));
    }

    // Every event of the run carries its id (in the JSON log format, under `span`).
    let span =
        tracing::info_span!("check", run_id = tracing::field::Empty, trigger = %opts.trigger);
    let result = run_locked(app, opts, &projects, started_at)
        .instrument(span)
        .await;
    if let Some(task) = renewer {
        task.abort();
    }
    let summary = match result {
        Ok(summary) => summary,
        Err(err) => {
            if !opts.dry_run {
                let _ = app.store.release_lease(&holder).await;
            }
            return Err(err);
        }
    };
    let mut summary = summary;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    if let Some(run_id) = summary.run_id {
        let status = if summary.exit_code() == 0 {
            "ok"
        } else {
            "partial"
        };
        let json = serde_json::to_value(&summary).context("cannot encode the run summary")?;
        app.store
            .finish_run(run_id, status, &json, app.clock.now())
            .await?;
    }
    if !opts.dry_run {
        app.store.release_lease(&holder).await?;
    }
    Ok(CheckOutcome::Completed(summary))
}

/// Source states by (project, source).
type States = HashMap<(String, String), SourceState>;

/// One answer of a source: the project's index, the source, what it said.
type Answer = (usize, SourceKind, Outcome);

async fn run_locked(
    app: &App,
    opts: &CheckOptions,
    projects: &[&Project],
    now: DateTime<Utc>,
) -> anyhow::Result<RunSummary> {
    let stats = app.http.stats();
    let stats_before = (
        stats.requests.load(Ordering::Relaxed),
        stats.not_modified.load(Ordering::Relaxed),
        stats.body_bytes.load(Ordering::Relaxed),
    );
    let run_id = if opts.dry_run {
        None
    } else {
        let id = app.store.start_run(&opts.trigger, now).await?;
        tracing::Span::current().record("run_id", id);
        Some(id)
    };
    let validators = app.store.validators().await?;
    let states = app.store.source_states().await?;
    let pending = pending_sources(opts, projects);
    // A listing last read under an older attribution rule is read in full once: no validators.
    let no_validators = HashMap::new();
    let reading = Reading {
        app,
        opts,
        states: &states,
        validators: &validators,
        no_validators: &no_validators,
        pending: &pending,
        now,
    };
    let fetches = reading.fetches(projects);

    // Each project is recorded as soon as its last source has answered, while the others are
    // still being fetched: the network and the database work side by side.
    let concurrency = app.config.http.concurrency.max(1);
    let (sender, receiver) = tokio::sync::mpsc::channel(concurrency * 2);
    let fetching = async move {
        let mut answers = futures::stream::iter(fetches).buffer_unordered(concurrency);
        while let Some(answer) = answers.next().await {
            if sender.send(answer).await.is_err() {
                break; // recording failed: the run is over
            }
        }
    };
    let recorder = Recorder {
        app: app.clone(),
        run_id,
        dry_run: opts.dry_run,
        now,
    };
    let recording = recorder.record_all(projects, &states, receiver);
    let ((), reports) = tokio::join!(fetching, recording);
    let reports = reports?;

    Ok(RunSummary {
        run_id,
        dry_run: opts.dry_run,
        started_at: now,
        duration_ms: 0,
        projects: reports,
        requests: stats.requests.load(Ordering::Relaxed) - stats_before.0,
        not_modified: stats.not_modified.load(Ordering::Relaxed) - stats_before.1,
        body_bytes: stats.body_bytes.load(Ordering::Relaxed) - stats_before.2,
    })
}

/// How many sources of each project are still to answer; the progress display starts with
/// the projects that have none.
fn pending_sources(opts: &CheckOptions, projects: &[&Project]) -> Vec<AtomicUsize> {
    let pending: Vec<AtomicUsize> = projects
        .iter()
        .map(|p| AtomicUsize::new(p.sources().len()))
        .collect();
    if let Some(progress) = &opts.progress {
        let sourceless = pending
            .iter()
            .filter(|n| n.load(Ordering::Relaxed) == 0)
            .count();
        progress
            .projects_total
            .store(projects.len(), Ordering::Relaxed);
        progress
            .projects_fetched
            .store(sourceless, Ordering::Relaxed);
    }
    pending
}

/// What every source's fetch in one run shares.
struct Reading<'a> {
    app: &'a App,
    opts: &'a CheckOptions,
    states: &'a States,
    validators: &'a HashMap<String, Validators>,
    no_validators: &'a HashMap<String, Validators>,
    pending: &'a [AtomicUsize],
    now: DateTime<Utc>,
}

impl<'a> Reading<'a> {
    /// One future per project and source, each fetching (or skipping a deferred source).
    fn fetches(&self, projects: &[&'a Project]) -> Vec<futures::future::BoxFuture<'a, Answer>> {
        let mut fetches = Vec::new();
        for (index, project) in projects.iter().enumerate() {
            for kind in project.sources() {
                fetches.push(self.fetch(index, project, kind));
            }
        }
        fetches
    }

    // Boxed one by one so each future's Send-ness is checked with concrete lifetimes.
    fn fetch(
        &self,
        index: usize,
        project: &'a Project,
        kind: SourceKind,
    ) -> futures::future::BoxFuture<'a, Answer> {
        let Reading {
            app,
            opts,
            states,
            pending,
            now,
            ..
        } = *self;
        let state = states.get(&(project.name.clone(), kind.as_str().to_string()));
        let validators = if state.is_some_and(|s| s.attribution_rule < attribution::RULE_VERSION) {
            self.no_validators
        } else {
            self.validators
        };
        // Counts a project as fetched when its last source has answered.
        let fetched_one = move || {
            if pending[index].fetch_sub(1, Ordering::Relaxed) == 1
                && let Some(progress) = &opts.progress
            {
                progress.projects_fetched.fetch_add(1, Ordering::Relaxed);
            }
        };
        async move {
            if let Some(until) = state
                .and_then(|s| s.deferred_until)
                .filter(|until| *until > now)
            {
                fetched_one();
                return (index, kind, Outcome::StillDeferred(until));
            }
            let cx = FetchContext {
                http: &app.http,
                validators,
                resolved_url: state.and_then(|s| s.resolved_url.as_deref()),
                now,
            };
            let outcome = match app.sources.get(kind).fetch(project, cx).await {
                Ok(fetched) => Outcome::Fetched(fetched),
                Err(err) => Outcome::Failed(err),
            };
            fetched_one();
            (index, kind, outcome)
        }
        .boxed()
    }
}

/// What every project's recording in one run shares. Owned, so the writing half runs in a
/// task of its own.
#[derive(Clone)]
struct Recorder {
    app: App,
    run_id: Option<i64>,
    dry_run: bool,
    now: DateTime<Utc>,
}

/// One source's answer, made ready to write: what it listed has gone into the plan.
struct ReadSource {
    kind: SourceKind,
    outcome: Outcome,
    /// Entries it listed.
    listed: usize,
    /// It had a successful fetch before this run.
    had_baseline: bool,
}

/// One project's answers, made ready to write outside any transaction: the merge planned and
/// the rows that change serialised.
struct Prepared {
    index: usize,
    project: String,
    sources: Vec<ReadSource>,
    plan: merge::Plan,
    rows: store::ReleaseRows,
}

/// The task writing prepared projects: their reports by project index, or the first error.
type Writing = tokio::task::JoinHandle<anyhow::Result<Vec<(usize, ProjectReport)>>>;

/// Waits for the writing task to write what it was handed; the preparation's error `failed`
/// (which stopped the handing) comes first, then the writer's own.
async fn finish_writing(
    writing: Writing,
    failed: Option<anyhow::Error>,
) -> anyhow::Result<Vec<(usize, ProjectReport)>> {
    let written = writing
        .await
        .context("the task writing the check's results stopped")?;
    match failed {
        Some(err) => Err(err),
        None => written,
    }
}

/// What the sources of one project said, with their health already written.
#[derive(Default)]
struct SourceFindings {
    reports: Vec<SourceReport>,
    rejected: Vec<(SourceKind, Vec<(String, String)>)>,
    baseline: bool,
}

/// What recording a plan found new.
#[derive(Default)]
struct Recorded {
    new: Vec<NewRelease>,
    announced: Vec<decide::NewRelease>,
    rows: usize,
}

/// Whether a source's answer changes nothing: a 304 (or the same body again) with nothing
/// skipped and no validators to store.
fn changes_nothing(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Fetched(f)
        if f.not_modified && f.validators.is_empty() && f.skipped.is_empty() && f.resolved_url.is_none())
}

impl Recorder {
    /// Records each project as soon as all its sources have answered; then marks the
    /// sources that answered "unchanged".
    ///
    /// Two halves work side by side: this task prepares a project (reads what is stored of
    /// it, plans the merge, serialises the rows) while a task of its own writes the previous
    /// one in its transaction, so the database's thread is not kept waiting for the
    /// preparation, nor the preparation for the database.
    async fn record_all(
        &self,
        projects: &[&Project],
        states: &States,
        mut receiver: tokio::sync::mpsc::Receiver<Answer>,
    ) -> anyhow::Result<Vec<ProjectReport>> {
        let expected: Vec<usize> = projects.iter().map(|p| p.sources().len()).collect();
        if let Some(index) = expected.iter().position(|n| *n == 0) {
            bail!("project {} has no source configured", projects[index].name);
        }
        let with_history: HashSet<&str> = states.keys().map(|(p, _)| p.as_str()).collect();
        let mut reports: Vec<Option<ProjectReport>> = projects.iter().map(|_| None).collect();
        let mut unchanged: Vec<(String, SourceKind)> = Vec::new();
        let mut waiting: HashMap<usize, Vec<(SourceKind, Outcome)>> = HashMap::new();

        let (to_writer, writing) = self.writer();
        let mut failed = None;
        while let Some((index, kind, outcome)) = receiver.recv().await {
            let outcomes = waiting.entry(index).or_default();
            outcomes.push((kind, outcome));
            if outcomes.len() < expected[index] {
                continue;
            }
            let mut outcomes = waiting.remove(&index).unwrap_or_default();
            outcomes.sort_by_key(|(kind, _)| *kind);
            let project = projects[index];
            if outcomes.iter().all(|(_, o)| changes_nothing(o)) {
                // Nothing to write: the sources' health is written with the others' at the
                // end of the run.
                unchanged.extend(outcomes.iter().map(|(k, _)| (project.name.clone(), *k)));
                reports[index] = Some(ProjectReport::quiet(project, &outcomes));
                continue;
            }
            let history = with_history.contains(project.name.as_str());
            match self
                .prepare(index, project, outcomes, states, history)
                .await
            {
                Ok(ready) => {
                    if to_writer.send(ready).await.is_err() {
                        break; // the writer failed: its error is returned below
                    }
                }
                Err(err) => {
                    let name = &project.name;
                    failed = Some(err.context(format!("cannot record the results for {name}")));
                    break;
                }
            }
        }
        drop(to_writer);
        for (index, report) in finish_writing(writing, failed).await? {
            reports[index] = Some(report);
        }
        if !self.dry_run {
            self.app
                .store
                .sources_unchanged(&unchanged, self.now)
                .await?;
        }
        Ok(reports.into_iter().flatten().collect())
    }

    /// The writing half of [`Recorder::record_all`]: a task that writes each project it is
    /// handed, in order, and returns their reports (index, report), or the first error.
    fn writer(&self) -> (tokio::sync::mpsc::Sender<Prepared>, Writing) {
        let (to_writer, mut prepared) = tokio::sync::mpsc::channel::<Prepared>(1);
        let writer = self.clone();
        let writing = tokio::spawn(
            async move {
                let mut written = Vec::new();
                let mut book = writer.app.store.project_book();
                while let Some(project) = prepared.recv().await {
                    let (index, name) = (project.index, project.project.clone());
                    let report = writer
                        .write_project(&mut book, project)
                        .await
                        .with_context(|| format!("cannot record the results for {name}"))?;
                    written.push((index, report));
                }
                anyhow::Ok(written)
            }
            .instrument(tracing::Span::current()),
        );
        (to_writer, writing)
    }

    /// Everything of recording one project that needs no transaction: what is stored of it
    /// (read on a connection of its own, see [`store::Store::known_releases`]), the merge's
    /// plan and the rows it changes.
    async fn prepare(
        &self,
        index: usize,
        project: &Project,
        outcomes: Vec<(SourceKind, Outcome)>,
        states: &States,
        history: bool,
    ) -> anyhow::Result<Prepared> {
        let had_baseline = |k: SourceKind| {
            states
                .get(&(project.name.clone(), k.as_str().to_string()))
                .is_some_and(|s| s.baseline_at.is_some())
        };
        let known = if history {
            self.app.store.known_releases(&project.name).await?
        } else {
            Vec::new()
        };
        let mut batches = Vec::new();
        let sources = outcomes
            .into_iter()
            .map(|(kind, mut outcome)| {
                let mut listed = 0;
                let had_baseline = had_baseline(kind);
                if let Outcome::Fetched(fetched) = &mut outcome {
                    listed = fetched.observations.len();
                    let observations = std::mem::take(&mut fetched.observations);
                    if !fetched.not_modified {
                        batches.push(SourceBatch {
                            kind,
                            observations,
                            had_baseline,
                        });
                    }
                }
                ReadSource {
                    kind,
                    outcome,
                    listed,
                    had_baseline,
                }
            })
            .collect();
        let plan = merge::plan(project, &known, batches);
        let rows = self.release_rows(&known, &plan)?;
        Ok(Prepared {
            index,
            project: project.name.clone(),
            sources,
            plan,
            rows,
        })
    }

    /// The rows the plan changes.
    fn release_rows(
        &self,
        known: &[store::KnownRelease],
        plan: &merge::Plan,
    ) -> anyhow::Result<store::ReleaseRows> {
        let evidence: Vec<Vec<EvidenceWrite<'_>>> = plan
            .releases
            .iter()
            .map(|r| {
                r.evidence
                    .iter()
                    .map(|e| EvidenceWrite {
                        kind: e.kind,
                        observation: &e.observation,
                        inherited: e.inherited,
                    })
                    .collect()
            })
            .collect();
        let writes: Vec<ReleaseWrite<'_>> = plan
            .releases
            .iter()
            .zip(&evidence)
            .map(|(release, evidence)| ReleaseWrite {
                version: &release.version,
                key: &release.key,
                class: release.class,
                line: &release.line,
                primary_published_at: release.primary_published_at,
                other_published_at: release.other_published_at,
                available_at: release.becomes_available.then_some(self.now),
                yanked: release.yanked.clone(),
                baseline: release.baseline,
                new_in_run: if release.announce { self.run_id } else { None },
                attributed: release.evidence.iter().any(|e| !e.inherited),
                evidence,
            })
            .collect();
        Ok(store::release_rows(known, &writes)?)
    }

    /// Writes one prepared project in one transaction: its sources' health and validators,
    /// the rows that change, withdrawals and who hears about what is new.
    async fn write_project(
        &self,
        book: &mut store::ProjectBook,
        prepared: Prepared,
    ) -> anyhow::Result<ProjectReport> {
        if let Some(fetches) = self.plain(&prepared) {
            let report = self.write_plain(book, &prepared, &fetches).await?;
            return Ok(report);
        }
        let Prepared {
            project,
            sources,
            plan,
            rows,
            ..
        } = prepared;
        let mut tx = self.app.store.begin().await?;
        let found = self.record_sources(&mut tx, &project, &sources).await?;
        store::write_release_rows(&mut tx, &project, &rows, self.now).await?;
        let recorded = self.recorded(&mut tx, &project, &plan).await?;
        let withdrawn = self
            .record_withdrawals(&mut tx, &project, &found.rejected)
            .await?;
        // Who hears about it is decided in the same transaction that records it.
        let (mut queued, digest_items) =
            queue_release_mail(&self.app, &mut tx, &project, &recorded.announced, self.now).await?;
        queued += crate::notify::channels::queue_releases(
            &self.app.config.channels,
            &mut tx,
            &recorded.announced,
            self.now,
        )
        .await?;
        if self.dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(ProjectReport {
            project,
            new: recorded.new,
            recorded: recorded.rows,
            baseline: found.baseline,
            queued,
            digest_items,
            withdrawn,
            sources: found.reports,
        })
    }

    /// The answers of a project whose transaction is the usual one: every source answered
    /// and skipped nothing, nothing is announced, and the run records (not a dry run).
    fn plain<'p>(&self, prepared: &'p Prepared) -> Option<Vec<&'p Fetched>> {
        if self.dry_run || prepared.plan.announced().next().is_some() {
            return None;
        }
        prepared
            .sources
            .iter()
            .map(|source| match &source.outcome {
                Outcome::Fetched(fetched) if fetched.skipped.is_empty() => Some(fetched),
                _ => None,
            })
            .collect()
    }

    /// Writes a project whose transaction is the usual one through the book (see
    /// [`store::ProjectBook`]): the same rows [`Recorder::write_project`] writes for it.
    async fn write_plain(
        &self,
        book: &mut store::ProjectBook,
        prepared: &Prepared,
        fetches: &[&Fetched],
    ) -> anyhow::Result<ProjectReport> {
        let mut successes = Vec::new();
        let mut validators = Vec::new();
        let mut reports = Vec::new();
        for (source, fetched) in prepared.sources.iter().zip(fetches) {
            successes.push(success(source.kind, fetched));
            validators.extend(fetched.validators.iter().cloned());
            reports.push(fetched_report(
                source.kind,
                fetched,
                source.listed,
                Vec::new(),
            ));
        }
        let plain = store::PlainProject {
            project: &prepared.project,
            successes: &successes,
            validators: &validators,
            rows: &prepared.rows,
        };
        book.write(&plain, self.now).await?;
        Ok(ProjectReport {
            project: prepared.project.clone(),
            new: Vec::new(),
            recorded: prepared.plan.new_rows(),
            baseline: prepared.sources.iter().any(|s| !s.had_baseline),
            queued: 0,
            digest_items: 0,
            withdrawn: Vec::new(),
            sources: reports,
        })
    }

    /// Writes each source's health and validators; returns their reports.
    async fn record_sources(
        &self,
        tx: &mut store::Tx,
        project: &str,
        sources: &[ReadSource],
    ) -> anyhow::Result<SourceFindings> {
        let (run_id, now) = (self.run_id, self.now);
        let mut found = SourceFindings::default();
        let mut validators = Vec::new();
        let mut successes = Vec::new();
        for source in sources {
            let kind = source.kind;
            match &source.outcome {
                Outcome::Fetched(fetched) => {
                    let warnings = skip_warnings(tx, project, kind, &fetched.skipped, now).await?;
                    for warning in &warnings {
                        tracing::warn!(project = %project, source = %kind, run_id, "{warning}");
                    }
                    found
                        .rejected
                        .push((kind, rejections(kind, &fetched.skipped)));
                    successes.push(success(kind, fetched));
                    found.baseline |= !source.had_baseline;
                    found
                        .reports
                        .push(fetched_report(kind, fetched, source.listed, warnings));
                    validators.extend(fetched.validators.iter().cloned());
                }
                Outcome::Failed(err) => {
                    let until = err.deferred_until();
                    let message = err.to_string();
                    // The one report of the failure: `herald check` prints no second one.
                    if let Some(until) = until {
                        tracing::warn!(project = %project, source = %kind, state = "deferred", run_id, %until, "{project}: {kind} deferred: {message}");
                    } else {
                        tracing::warn!(project = %project, source = %kind, state = "failed", run_id, "{project}: {kind} failed: {message}");
                    }
                    store::source_failed(tx, project, kind, &message, until, now).await?;
                    found
                        .reports
                        .push(SourceReport::failed(kind, message, until));
                }
                Outcome::StillDeferred(until) => {
                    let message = format!("rate limited earlier; not asked again before {until}");
                    tracing::warn!(project = %project, source = %kind, state = "deferred", run_id, %until, "{project}: {kind} deferred: {message}");
                    found
                        .reports
                        .push(SourceReport::failed(kind, message, Some(*until)));
                }
            }
        }
        store::sources_succeeded(tx, project, &successes, now).await?;
        store::put_validators(tx, &validators, now).await?;
        Ok(found)
    }

    /// What the plan's written releases make new: the ones to announce, with their row ids.
    async fn recorded(
        &self,
        tx: &mut store::Tx,
        project: &str,
        plan: &merge::Plan,
    ) -> anyhow::Result<Recorded> {
        let keys: Vec<&str> = plan.announced().map(|r| r.key.as_str()).collect();
        let ids = store::release_ids(tx, project, &keys).await?;
        let mut recorded = Recorded {
            rows: plan.new_rows(),
            ..Recorded::default()
        };
        for release in plan.announced() {
            let release_id = ids.get(&release.key).copied().with_context(|| {
                format!("no row for {project} {} after writing it", release.key)
            })?;
            recorded.announced.push(decide::NewRelease {
                release_id,
                project: project.to_string(),
                key: release.key.clone(),
                version: release.version.clone(),
                class: release.class,
            });
            tracing::info!(project = %project, version = %release.version, class = %release.class, run_id = self.run_id, "new release");
            recorded.new.push(NewRelease {
                project: project.to_string(),
                version: release.version.to_string(),
                class: release.class,
                line: release.line.clone(),
            });
        }
        Ok(recorded)
    }

    /// Withdraws the releases whose only evidence the current attribution rule rejects.
    async fn record_withdrawals(
        &self,
        tx: &mut store::Tx,
        project: &str,
        rejected: &[(SourceKind, Vec<(String, String)>)],
    ) -> anyhow::Result<Vec<WithdrawnRelease>> {
        let mut withdrawn = Vec::new();
        for (kind, rejected) in rejected {
            for w in store::withdraw_rejected(tx, project, *kind, rejected, self.now).await? {
                tracing::warn!(project = %project, source = %kind, run_id = self.run_id, version = %w.version, "withdrawn: {}", w.reason);
                withdrawn.push(WithdrawnRelease {
                    version: w.version,
                    reason: w.reason,
                });
            }
        }
        Ok(withdrawn)
    }
}

impl SourceReport {
    fn unchanged(source: SourceKind) -> SourceReport {
        SourceReport {
            source,
            status: SourceStatus::Unchanged,
            listed: 0,
            error: None,
            deferred_until: None,
            warnings: Vec::new(),
            skipped: 0,
        }
    }

    fn failed(source: SourceKind, error: String, until: Option<DateTime<Utc>>) -> SourceReport {
        SourceReport {
            source,
            status: if until.is_some() {
                SourceStatus::Deferred
            } else {
                SourceStatus::Failed
            },
            listed: 0,
            error: Some(error),
            deferred_until: until,
            warnings: Vec::new(),
            skipped: 0,
        }
    }
}

impl ProjectReport {
    /// A project none of whose sources changed.
    fn quiet(project: &Project, outcomes: &[(SourceKind, Outcome)]) -> ProjectReport {
        let sources = outcomes
            .iter()
            .map(|(kind, _)| SourceReport::unchanged(*kind))
            .collect();
        ProjectReport {
            project: project.name.clone(),
            new: Vec::new(),
            recorded: 0,
            baseline: false,
            queued: 0,
            digest_items: 0,
            withdrawn: Vec::new(),
            sources,
        }
    }
}

/// A source's successful fetch, as its state records it: the listing judged under the current
/// attribution rule when a body was read.
fn success(kind: SourceKind, fetched: &Fetched) -> store::SourceSuccess<'_> {
    store::SourceSuccess {
        source: kind,
        resolved_url: fetched.resolved_url.as_deref(),
        attribution_rule: (!fetched.not_modified).then_some(attribution::RULE_VERSION),
    }
}

/// The report of a source that answered.
fn fetched_report(
    kind: SourceKind,
    fetched: &Fetched,
    listed: usize,
    warnings: Vec<String>,
) -> SourceReport {
    let mut report = SourceReport::unchanged(kind);
    report.listed = listed;
    report.warnings = warnings;
    report.skipped = fetched.skipped.len();
    if !fetched.not_modified {
        report.status = SourceStatus::Ok;
    }
    report
}

/// Most entries of other packages named in one warning line.
const LISTED_SKIPS: usize = 10;

/// The warning lines for what a source skipped that no earlier run reported: each unreadable
/// entry on its own line, the entries of other packages together on one. Entries reported
/// before are logged at debug level only.
async fn skip_warnings(
    tx: &mut store::Tx,
    project: &str,
    kind: SourceKind,
    skipped: &[Skipped],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let raws: Vec<&str> = skipped.iter().map(|s| s.raw.as_str()).collect();
    let mut first = store::first_reports(tx, project, kind, &raws, now).await?;
    // Each entry once, even when a listing repeats it.
    let fresh: Vec<&Skipped> = skipped
        .iter()
        .filter(|s| first.remove(&store::skip_key(&s.raw)))
        .collect();
    if fresh.len() < skipped.len() {
        tracing::debug!(project = %project, source = %kind, "skipped {} entries reported by an earlier run", skipped.len() - fresh.len());
    }
    let mut lines: Vec<String> = fresh
        .iter()
        .filter(|s| !s.other_package)
        .map(|s| s.why.clone())
        .collect();
    let others: Vec<String> = fresh
        .iter()
        .filter(|s| s.other_package)
        .map(|s| version::shorten(&s.raw))
        .collect();
    if !others.is_empty() {
        let what = match (kind, others.len()) {
            (SourceKind::Feed, 1) => "feed entry",
            (SourceKind::Feed, _) => "feed entries",
            (_, 1) => "tag",
            _ => "tags",
        };
        let mut list = others[..others.len().min(LISTED_SKIPS)].join(", ");
        if others.len() > LISTED_SKIPS {
            list.push_str(&format!(" and {} more", others.len() - LISTED_SKIPS));
        }
        lines.push(format!(
            "{}: {kind}: skipped {} {what} of other packages: {list}",
            project,
            others.len()
        ));
    }
    Ok(lines)
}

/// What the current rule rejects of what a source listed, with the reason to record on a
/// release an earlier rule gave to the project from it.
fn rejections(kind: SourceKind, skipped: &[Skipped]) -> Vec<(String, String)> {
    let what = match kind {
        SourceKind::Github => "tag",
        SourceKind::Feed => "entry",
        SourceKind::Pypi => "version",
    };
    skipped
        .iter()
        .map(|s| {
            let why = if s.other_package {
                s.why.clone()
            } else {
                "is not a version".to_string()
            };
            (
                s.raw.clone(),
                format!("the {kind} {what} `{}` {why}", version::shorten(&s.raw)),
            )
        })
        .collect()
}

/// Queues, in the run's transaction, one message per instant subscriber for all the releases
/// of this run and a digest item per release for the others; returns (messages, items).
async fn queue_release_mail(
    app: &App,
    tx: &mut store::Tx,
    project: &str,
    announced: &[decide::NewRelease],
    now: DateTime<Utc>,
) -> anyhow::Result<(usize, usize)> {
    let (mut queued, mut digest_items) = (0, 0);
    if announced.is_empty() {
        return Ok((queued, digest_items));
    }
    let subscribers = store::subscribers_following(tx, project).await?;
    let by_id: HashMap<i64, &Subscriber> = subscribers.iter().map(|s| (s.id, s)).collect();
    let deliveries = decide::decide(announced, &subscribers, now);
    let letters: Vec<Letter> = decide::instant_messages(announced, &deliveries)
        .iter()
        .filter_map(|message| {
            let sub = by_id.get(&message.subscriber_id)?;
            Some(Letter::releases(sub.email.as_str(), message))
        })
        .collect();
    queued += queue_mails(tx, &app.notifier.from, &letters, now).await?;
    for delivery in deliveries {
        if let Delivery::Digest {
            subscriber_id,
            release_id,
            period,
            due_at,
        } = delivery
        {
            digest_items += usize::from(
                store::add_digest_item(tx, subscriber_id, release_id, &period, due_at, now).await?,
            );
        }
    }
    Ok((queued, digest_items))
}
