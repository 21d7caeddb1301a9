//! The one test world every integration test builds its app from: pretalx's real history
//! (from `tests/fixtures`) served by a local [`Upstream`], a [`Sandbox`] holding the
//! database and projects file, and a real [`SmtpSink`] on 127.0.0.1. Apps come from
//! [`World::app`] (a builder over `App::build`); the real binary from [`World::args`] and
//! [`Sandbox::command`]. A test that needs another upstream (a proxy, a hostile server, a
//! closed port) says so with [`AppBuilder::upstream`], and one that needs a second database
//! (a restored backup) with [`AppBuilder::sandbox`]. Also the helpers every test file needs:
//! a check run that must complete ([`run_check`]) and a subscriber ([`subscribe`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald::app::{App, ManualClock};
use herald::check::{self, CheckOptions, CheckOutcome, RunSummary};
use herald::config::Config;
use herald::model::{DigestMode, EmailAddress, ReleaseClass, SubscriberStatus};
use herald::store::SubscriberWrite;

use super::pretalx::{self, Row};
use super::smtp::SmtpSink;
use super::{Sandbox, Upstream, at};

/// The sender every test app mails from.
pub const FROM: &str = "herald@example.org";

/// pretalx's releases before 2026.2.1: the first 47 rows of its history.
pub const BEFORE_2026_2_1: usize = 47;

/// A local upstream, a sandbox and an SMTP sink, with pretalx's history at hand.
pub struct World {
    pub fixtures: PathBuf,
    /// pretalx's whole release history (48 releases, the last one 2026.2.1).
    pub rows: Vec<Row>,
    pub upstream: Upstream,
    pub sandbox: Sandbox,
    pub sink: SmtpSink,
}

impl World {
    /// A world whose upstream serves nothing yet.
    pub async fn new() -> World {
        let fixtures = super::fixtures();
        let rows = pretalx::rows(&fixtures);
        World {
            fixtures,
            rows,
            upstream: Upstream::start().await,
            sandbox: Sandbox::new(),
            sink: SmtpSink::start().await,
        }
    }

    /// A world whose upstream serves pretalx's history as it stood before 2026.2.1 (PyPI,
    /// GitHub releases and the blog feed).
    pub async fn pretalx() -> World {
        let world = World::new().await;
        world.serve_history(BEFORE_2026_2_1);
        world
    }

    /// The projects file tracking pretalx, and `count` confirmed instant subscribers to it,
    /// `op0@example.org`, `op1@...`: the fan-out the crash and multi-instance tests send.
    pub async fn pretalx_operators(&self, count: usize) -> PathBuf {
        let projects = self.pretalx_projects("");
        let (app, _) = self
            .app()
            .projects(&projects)
            .at("2026-11-22T06:00:00Z")
            .build()
            .await;
        for i in 0..count {
            subscribe_instant(&app, &format!("op{i}@example.org"), "pretalx").await;
        }
        app.store.close().await;
        projects
    }

    /// Serves the first `served` releases of pretalx's history.
    pub fn serve_history(&self, served: usize) {
        pretalx::serve_history(&self.upstream, &self.rows[..served], &[]);
    }

    /// pretalx 2026.2.1 (a bugfix release) appears upstream.
    pub fn release_2026_2_1(&self) {
        self.serve_history(self.rows.len());
    }

    /// The projects file tracking pretalx on all three sources, then `extra` (more keys of
    /// pretalx's entry, or more projects), written to the sandbox.
    pub fn pretalx_projects(&self, extra: &str) -> PathBuf {
        let mut toml = pretalx::projects_toml(&self.upstream);
        toml.push_str(extra);
        self.sandbox.projects(&toml)
    }

    /// pretalx with these upgrade steps, and a project `other` with no releases that the
    /// upstream serves too.
    pub fn pretalx_and_other(&self, upgrade_steps: &[&str]) -> PathBuf {
        self.upstream.put_json(
            "/simple/other/",
            "application/vnd.pypi.simple.v1+json",
            &serde_json::json!({"meta": {"api-version": "1.1"}, "name": "other", "versions": [], "files": []}),
        );
        let steps: Vec<String> = upgrade_steps.iter().map(|s| format!("\"{s}\"")).collect();
        self.pretalx_projects(&format!(
            "upgrade_steps = [{}]\n\n[[project]]\nname = \"other\"\npypi = \"other\"\n",
            steps.join(", ")
        ))
    }

    /// The flags that send mail to this world's sink, from [`FROM`].
    pub fn mail_flags(&self) -> Vec<String> {
        vec![
            "--smtp-url".into(),
            self.sink.url(),
            "--from".into(),
            FROM.into(),
        ]
    }

    /// The real binary's arguments pointing at this upstream and sandbox, with `projects`.
    pub fn args(&self, projects: &Path) -> Vec<String> {
        self.sandbox.args(&self.upstream.url(), Some(projects))
    }

    /// An in-process app on this world: its upstream and sandbox, no projects file, mail not
    /// configured, the clock at 2026-07-08 08:00 UTC unless the builder says otherwise.
    pub fn app(&self) -> AppBuilder<'_> {
        AppBuilder {
            world: self,
            upstream: self.upstream.url(),
            sandbox: &self.sandbox,
            projects: None,
            now: at("2026-07-08T08:00:00Z"),
            flags: Vec::new(),
        }
    }
}

/// Settings of an app on a [`World`]; [`AppBuilder::build`] makes it through `App::build`.
pub struct AppBuilder<'w> {
    world: &'w World,
    upstream: String,
    sandbox: &'w Sandbox,
    projects: Option<PathBuf>,
    now: DateTime<Utc>,
    flags: Vec<String>,
}

impl<'w> AppBuilder<'w> {
    /// Points PyPI and GitHub at `url` instead of the world's upstream (a proxy, a hostile
    /// server, a closed port when no check runs).
    pub fn upstream(mut self, url: &str) -> Self {
        self.upstream = url.to_string();
        self
    }

    /// Keeps the database (and `.secret`) in `sandbox` instead of the world's: a second
    /// instance beside the first, such as a restored backup.
    pub fn sandbox(mut self, sandbox: &'w Sandbox) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// Reads this projects file.
    pub fn projects(mut self, path: &Path) -> Self {
        self.projects = Some(path.to_path_buf());
        self
    }

    /// Starts the manual clock at `now` (RFC 3339).
    pub fn at(self, now: &str) -> Self {
        self.now(at(now))
    }

    /// Starts the manual clock at `now`.
    pub fn now(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// Sends mail to the world's sink, from [`FROM`].
    pub fn mail(mut self) -> Self {
        self.flags.extend(self.world.mail_flags());
        self
    }

    /// Adds command-line flags.
    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.flags.extend(flags.iter().map(|f| f.to_string()));
        self
    }

    /// The app, and the manual clock it reads.
    pub async fn build(self) -> (App, Arc<ManualClock>) {
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.sandbox
            .app_with(&self.upstream, self.projects.as_deref(), self.now, &flags)
            .await
    }

    /// Only the validated settings, for a test that builds its app with `App::build` itself
    /// (on the system clock: the builder's clock is not part of them).
    pub fn config(self) -> Config {
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.sandbox
            .config_with(&self.upstream, self.projects.as_deref(), &flags)
    }
}

/// One check run with default options, which must complete (not find another run busy).
pub async fn run_check(app: &App) -> RunSummary {
    match check::run(app, &CheckOptions::default())
        .await
        .expect("check runs")
    {
        CheckOutcome::Completed(summary) => summary,
        CheckOutcome::Busy { .. } => panic!("unexpectedly busy"),
    }
}

/// Adds a subscriber to `projects`; returns the subscriber's id.
pub async fn subscribe(
    app: &App,
    email: &str,
    projects: &[&str],
    classes: &[ReleaseClass],
    digest: DigestMode,
    status: SubscriberStatus,
) -> i64 {
    let email: EmailAddress = email.parse().expect("email");
    let projects: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
    app.store
        .upsert_subscriber(
            &SubscriberWrite {
                email: &email,
                projects: &projects,
                classes,
                digest,
                status,
                token_hash: None,
                token_expires_at: None,
            },
            app.clock.now(),
        )
        .await
        .expect("subscribe")
        .0
}

/// Adds a confirmed instant subscriber to `project` for feature and bugfix releases (the
/// defaults an operator gets); returns the subscriber's id.
pub async fn subscribe_instant(app: &App, email: &str, project: &str) -> i64 {
    subscribe(
        app,
        email,
        &[project],
        &[ReleaseClass::Feature, ReleaseClass::Bugfix],
        DigestMode::Instant,
        SubscriberStatus::Confirmed,
    )
    .await
}
