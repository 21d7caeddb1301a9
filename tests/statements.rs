//! The check's write path is set-based: SQL statements per project, counted from sqlx's own
//! statement log (every command sqlx runs is one `sqlx::query` event; a command of several
//! statements, such as a project's whole transaction, counts each of them), for a cold and a warm
//! check of 500 projects, and for an upstream that sends no validators (an unchanged body is
//! recognised by its digest: no parsing, no writes).
//!
//! Its own test binary: the counter is a process-wide tracing subscriber, and the tests take
//! turns through one lock so that each counts only its own statements.

#[allow(dead_code, unused_imports)]
mod common;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{World, run_check};
use herald::check::SourceStatus;
use tracing_subscriber::layer::{Context, SubscriberExt};

const PROJECTS: usize = 500;

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Counts the statements of sqlx's statement events.
struct Counter;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Counter {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            let mut sql = Sql::default();
            event.record(&mut sql);
            STATEMENTS.fetch_add(sql.statements(), Ordering::Relaxed);
        }
    }
}

/// What one statement event says it ran: a short command in full as its summary, a longer
/// one in `db.statement`.
#[derive(Default)]
struct Sql {
    summary: String,
    statement: String,
}

impl Sql {
    /// The statements of the command (at least one).
    fn statements(&self) -> usize {
        let text = if self.statement.trim().is_empty() {
            &self.summary
        } else {
            &self.statement
        };
        text.split(';')
            .filter(|s| !s.trim().is_empty())
            .count()
            .max(1)
    }
}

impl tracing::field::Visit for Sql {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "db.statement" => self.statement = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

fn install_counter() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Counter))
            .expect("the only subscriber of this binary");
    });
}

/// Statements run by `f`, and its result.
async fn counted<T>(f: impl std::future::Future<Output = T>) -> (usize, T) {
    let before = STATEMENTS.load(Ordering::SeqCst);
    let out = f.await;
    (STATEMENTS.load(Ordering::SeqCst) - before, out)
}

/// A PEP 700 index page of `project` with `count` releases (1.0.0, 1.0.1, ...).
fn page(project: &str, count: usize) -> serde_json::Value {
    let versions: Vec<String> = (0..count)
        .map(|i| format!("1.{}.{}", i / 10, i % 10))
        .collect();
    let files: Vec<serde_json::Value> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::json!({
                "filename": format!("{project}-{v}.tar.gz"),
                "url": format!("https://files.pypi-mirror.test/{project}-{v}.tar.gz"),
                "hashes": {},
                "upload-time": format!("2025-{:02}-{:02}T10:00:00.000000Z", 1 + i % 12, 1 + i % 28),
                "yanked": false,
            })
        })
        .collect();
    serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": project,
        "versions": versions,
        "files": files,
    })
}

/// The world's upstream serving `PROJECTS` projects of 30 releases each, and an app on them.
async fn app_on(world: &World) -> herald::app::App {
    let mut toml = String::new();
    for i in 0..PROJECTS {
        toml.push_str(&format!(
            "[[project]]\nname = \"p{i}\"\npypi = \"p{i}\"\n\n"
        ));
        world.upstream.put_json(
            &format!("/simple/p{i}/"),
            "application/vnd.pypi.simple.v1+json",
            &page(&format!("p{i}"), 30),
        );
    }
    let projects = world.sandbox.projects(&toml);
    let (app, _) = world
        .app()
        .projects(&projects)
        .at("2026-11-30T06:00:00Z")
        .flags(&["--http-timeout", "30"])
        .build()
        .await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_check_writes_in_sets_and_a_warm_one_almost_not_at_all() {
    let _turn = TURN.lock().await;
    install_counter();
    let world = World::new().await;
    let upstream = &world.upstream;
    let app = app_on(&world).await;

    let (cold, summary) = counted(run_check(&app)).await;
    assert_eq!(summary.exit_code(), 0, "{summary:#?}");
    let recorded: usize = summary.projects.iter().map(|p| p.recorded).sum();
    assert_eq!(recorded, PROJECTS * 30, "every release recorded");
    let per_project = cold as f64 / PROJECTS as f64;
    println!("cold: {cold} statements, {per_project:.2} per project");
    assert!(
        per_project < 10.0,
        "cold: {per_project:.2} statements per project"
    );

    let (warm, summary) = counted(run_check(&app)).await;
    assert_eq!(summary.exit_code(), 0);
    assert_eq!(
        summary.not_modified as usize, PROJECTS,
        "every answer a 304"
    );
    let per_project = warm as f64 / PROJECTS as f64;
    println!("warm: {warm} statements, {per_project:.2} per project");
    assert!(
        per_project < 3.0,
        "warm: {per_project:.2} statements per project"
    );

    // One document one release longer: that project alone writes, two rows.
    upstream.put_json(
        "/simple/p7/",
        "application/vnd.pypi.simple.v1+json",
        &page("p7", 31),
    );
    let (changed, summary) = counted(run_check(&app)).await;
    let p7 = summary
        .projects
        .iter()
        .find(|p| p.project == "p7")
        .expect("p7");
    assert_eq!(p7.recorded, 1, "{p7:#?}");
    assert_eq!(p7.new.len(), 1);
    assert_eq!(p7.new[0].version, "1.3.0");
    assert!(
        changed < warm + 20,
        "one changed document: {changed} statements against {warm} warm"
    );
    let releases = app
        .store
        .releases(&herald::store::ReleaseFilter {
            projects: vec!["p7".into()],
            ..Default::default()
        })
        .await
        .expect("releases");
    assert_eq!(releases.len(), 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_validators_an_unchanged_body_costs_no_parsing_and_no_writes() {
    let _turn = TURN.lock().await;
    install_counter();
    let world = World::new().await;
    let upstream = &world.upstream;
    upstream.send_validators(false);
    let app = app_on(&world).await;

    let (_, cold) = counted(run_check(&app)).await;
    assert_eq!(cold.exit_code(), 0);
    assert_eq!(cold.not_modified, 0, "this upstream never answers 304");

    let (again, summary) = counted(run_check(&app)).await;
    assert_eq!(summary.exit_code(), 0);
    assert_eq!(summary.not_modified, 0);
    assert!(
        summary.body_bytes > 0,
        "the bodies were downloaded in full again"
    );
    for project in &summary.projects {
        assert_eq!(project.recorded, 0);
        assert!(
            project
                .sources
                .iter()
                .all(|s| s.status == SourceStatus::Unchanged),
            "{project:#?}"
        );
    }
    let per_project = again as f64 / PROJECTS as f64;
    println!("unchanged bodies: {again} statements, {per_project:.2} per project");
    assert!(per_project < 3.0, "{per_project:.2} statements per project");

    // A changed body is read: its new release is found.
    upstream.put_json(
        "/simple/p3/",
        "application/vnd.pypi.simple.v1+json",
        &page("p3", 31),
    );
    let (_, summary) = counted(run_check(&app)).await;
    let p3 = summary
        .projects
        .iter()
        .find(|p| p.project == "p3")
        .expect("p3");
    assert_eq!(p3.sources[0].status, SourceStatus::Ok);
    assert_eq!(p3.new.len(), 1, "{p3:#?}");
    let others_read = summary
        .projects
        .iter()
        .filter(|p| {
            p.sources
                .iter()
                .any(|s| s.status != SourceStatus::Unchanged)
        })
        .count();
    assert_eq!(others_read, 1, "only the changed body was read");
}
