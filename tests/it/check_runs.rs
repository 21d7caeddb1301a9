//! Check runs end to end: baseline, news, quiet re-runs, merged evidence, every fault on
//! every source (and recovery), overlapping processes, dry runs and refused configuration.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::pretalx;
use common::{Fault, World, at, run_check};
use herald::app::App;
use herald::check::{self, CheckOptions, CheckOutcome, RunSummary, SourceStatus};
use herald::model::SourceKind;
use herald::store::ReleaseFilter;

fn new_versions(summary: &RunSummary) -> Vec<(String, String)> {
    summary
        .new_releases()
        .map(|n| (n.version.clone(), n.class.as_str().to_string()))
        .collect()
}

/// Releases as (version, sources) pairs, and the evidence count.
async fn snapshot(app: &App) -> (Vec<(String, Vec<SourceKind>)>, i64) {
    let rows = app
        .store
        .releases(&ReleaseFilter::default())
        .await
        .expect("list");
    let versions: HashSet<&str> = rows.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(versions.len(), rows.len(), "a release recorded twice");
    let (_, evidence) = app.store.counts().await.expect("counts");
    let mut out: Vec<(String, Vec<SourceKind>)> = rows
        .iter()
        .map(|r| {
            (
                r.version.clone(),
                r.sources.iter().map(|s| s.source).collect(),
            )
        })
        .collect();
    out.sort();
    (out, evidence)
}

/// An app tracking pretalx on the world's upstream, at 2026-07-08 08:00 UTC.
async fn pretalx_app(world: &World) -> (App, std::sync::Arc<herald::app::ManualClock>) {
    world
        .app()
        .projects(&world.pretalx_projects(""))
        .build()
        .await
}

#[tokio::test]
async fn baseline_then_exactly_the_new_release_then_quiet() {
    let world = World::pretalx().await;
    let (app, clock) = pretalx_app(&world).await;

    let first = run_check(&app).await;
    assert_eq!(first.exit_code(), 0);
    assert!(
        new_versions(&first).is_empty(),
        "the baseline announces nothing"
    );
    assert!(first.projects[0].baseline);
    assert_eq!(first.projects[0].recorded, 47);

    clock.advance(chrono::Duration::hours(4));
    world.release_2026_2_1();
    let second = run_check(&app).await;
    assert_eq!(
        new_versions(&second),
        [("2026.2.1".to_string(), "bugfix".to_string())]
    );
    let rows = app
        .store
        .releases(&ReleaseFilter {
            new_in_run: second.run_id,
            ..ReleaseFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(rows.len(), 1, "the database says which release is new");
    assert_eq!(rows[0].version, "2026.2.1");
    // v2026.2.1 on GitHub and 2026.2.1 on PyPI are one release with two evidence rows (and
    // the line's blog post).
    let sources: Vec<SourceKind> = rows[0].sources.iter().map(|s| s.source).collect();
    assert_eq!(
        sources,
        [SourceKind::Feed, SourceKind::Github, SourceKind::Pypi]
    );
    assert_eq!(
        rows[0]
            .sources
            .iter()
            .find(|s| s.source == SourceKind::Github)
            .map(|s| s.raw.as_str()),
        Some("v2026.2.1")
    );
    assert!(
        rows[0]
            .sources
            .iter()
            .find(|s| s.source == SourceKind::Feed)
            .is_some_and(|s| s.inherited)
    );

    for _ in 0..3 {
        let again = run_check(&app).await;
        assert!(new_versions(&again).is_empty());
        assert_eq!(
            again.requests, again.not_modified,
            "unchanged upstream: all 304"
        );
    }
    let runs = app.store.recent_runs(10).await.expect("runs");
    assert_eq!(runs.len(), 5);
    assert!(
        runs.iter()
            .all(|r| r.status == "ok" && r.finished_at.is_some())
    );
    let summary = runs[3].summary.as_ref().expect("summary stored");
    assert_eq!(summary["projects"][0]["new"][0]["version"], "2026.2.1");
}

#[tokio::test]
async fn a_release_seen_first_on_github_is_new_when_pypi_offers_it() {
    let world = World::pretalx().await;
    let (app, _) = pretalx_app(&world).await;
    run_check(&app).await;
    // GitHub and the blog know 2026.2.1; the index does not have it yet.
    pretalx::serve_github(
        &world.upstream,
        "pretalx/pretalx",
        &pretalx::github_releases(&world.rows),
        30,
    );
    let early = run_check(&app).await;
    assert!(
        new_versions(&early).is_empty(),
        "not installable yet: not news"
    );
    let rows = app
        .store
        .releases(&ReleaseFilter::default())
        .await
        .expect("list");
    let pending = rows
        .iter()
        .find(|r| r.version == "2026.2.1")
        .expect("recorded from GitHub");
    assert!(pending.available_at.is_none());
    world.release_2026_2_1();
    let later = run_check(&app).await;
    assert_eq!(
        new_versions(&later),
        [("2026.2.1".to_string(), "bugfix".to_string())]
    );
}

async fn fault_scenario(kind: SourceKind, fault: Fault) {
    let world = World::pretalx().await;
    let (app, clock) = pretalx_app(&world).await;
    let prefix = match kind {
        SourceKind::Pypi => "/simple/",
        SourceKind::Github => "/repos/",
        SourceKind::Feed => "/p/news/",
    };
    assert_eq!(run_check(&app).await.exit_code(), 0);
    let before = snapshot(&app).await;

    clock.advance(chrono::Duration::hours(1));
    world.release_2026_2_1();
    world.upstream.fault(prefix, fault.clone());
    let faulty = run_check(&app).await;
    assert_eq!(faulty.exit_code(), 2, "{kind} {fault:?}: {faulty:#?}");
    let failed: Vec<_> = faulty.failed_sources().collect();
    assert_eq!(failed.len(), 1, "{kind} {fault:?}: only that source fails");
    assert_eq!(failed[0].1.source, kind);
    let error = failed[0].1.error.clone().unwrap_or_default();
    assert!(
        error.contains(&world.upstream.url()),
        "{kind} {fault:?}: error names the URL: {error}"
    );
    let deferred = matches!(fault, Fault::RateLimited(_) | Fault::GithubLimit(_));
    assert_eq!(
        failed[0].1.status == SourceStatus::Deferred,
        deferred,
        "{error}"
    );
    // The other sources answered; nothing recorded was lost.
    let during = snapshot(&app).await;
    for (version, sources) in &before.0 {
        let now = during
            .0
            .iter()
            .find(|(v, _)| v == version)
            .expect("release kept");
        assert!(
            sources.iter().all(|s| now.1.contains(s)),
            "{version}: evidence kept"
        );
    }
    assert!(during.1 >= before.1);
    // The new release is announced only when the primary source offers it.
    let announced_now = !new_versions(&faulty).is_empty();
    assert_eq!(announced_now, kind != SourceKind::Pypi, "{kind} {fault:?}");

    // Healthy again (and past any Retry-After): the source recovers.
    world.upstream.heal();
    clock.advance(chrono::Duration::hours(1));
    let healed = run_check(&app).await;
    assert_eq!(healed.exit_code(), 0, "{kind} {fault:?}: {healed:#?}");
    let total_announced = new_versions(&faulty).len() + new_versions(&healed).len();
    assert_eq!(
        total_announced, 1,
        "{kind} {fault:?}: 2026.2.1 announced exactly once"
    );
    let after = snapshot(&app).await;
    let fix = after
        .0
        .iter()
        .find(|(v, _)| v == "2026.2.1")
        .expect("2026.2.1");
    assert_eq!(
        fix.1,
        [SourceKind::Feed, SourceKind::Github, SourceKind::Pypi]
    );
    assert_eq!(after.0.len(), 48);
    let states = app.store.source_states().await.expect("states");
    let state = &states[&("pretalx".to_string(), kind.as_str().to_string())];
    assert_eq!(state.consecutive_failures, 0);
    assert!(state.last_error.is_none() && state.deferred_until.is_none());
}

macro_rules! fault_tests {
    ($($name:ident: $kind:expr, $fault:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            fault_scenario($kind, $fault).await;
        }
    )*};
}

fault_tests! {
    pypi_500: SourceKind::Pypi, Fault::Status(500);
    pypi_timeout: SourceKind::Pypi, Fault::Delay(Duration::from_secs(3));
    pypi_truncated_json: SourceKind::Pypi, Fault::Truncated;
    pypi_html_error_page: SourceKind::Pypi, Fault::HtmlErrorPage;
    pypi_429: SourceKind::Pypi, Fault::RateLimited(120);
    github_500: SourceKind::Github, Fault::Status(500);
    github_timeout: SourceKind::Github, Fault::Delay(Duration::from_secs(3));
    github_truncated_json: SourceKind::Github, Fault::Truncated;
    github_html_error_page: SourceKind::Github, Fault::HtmlErrorPage;
    github_429: SourceKind::Github, Fault::RateLimited(120);
    feed_500: SourceKind::Feed, Fault::Status(500);
    feed_timeout: SourceKind::Feed, Fault::Delay(Duration::from_secs(3));
    feed_truncated: SourceKind::Feed, Fault::Truncated;
    feed_html_error_page: SourceKind::Feed, Fault::HtmlErrorPage;
    feed_429: SourceKind::Feed, Fault::RateLimited(120);
    pypi_502: SourceKind::Pypi, Fault::Status(502);
    github_502: SourceKind::Github, Fault::Status(502);
    feed_502: SourceKind::Feed, Fault::Status(502);
    pypi_403: SourceKind::Pypi, Fault::Status(403);
    github_403_rate_limit: SourceKind::Github, Fault::GithubLimit(at("2026-07-08T09:30:00Z").timestamp());
    feed_403: SourceKind::Feed, Fault::Status(403);
    pypi_redirect_loop: SourceKind::Pypi, Fault::RedirectLoop;
    github_redirect_loop: SourceKind::Github, Fault::RedirectLoop;
    feed_redirect_loop: SourceKind::Feed, Fault::RedirectLoop;
    pypi_oversized_body: SourceKind::Pypi, Fault::Oversized;
    github_oversized_body: SourceKind::Github, Fault::Oversized;
    feed_oversized_body: SourceKind::Feed, Fault::Oversized;
}

#[tokio::test]
async fn an_empty_release_list_removes_nothing() {
    let world = World::pretalx().await;
    let (app, _) = pretalx_app(&world).await;
    run_check(&app).await;
    let before = snapshot(&app).await;
    world.upstream.put_json(
        "/simple/pretalx/",
        "application/vnd.pypi.simple.v1+json",
        &serde_json::json!({"meta": {"api-version": "1.1"}, "name": "pretalx", "versions": [], "files": []}),
    );
    pretalx::serve_github(&world.upstream, "pretalx/pretalx", &[], 30);
    world.upstream.put(
        "/p/news/feed/",
        "application/rss+xml",
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>x</title></channel></rss>",
    );
    let empty = run_check(&app).await;
    assert_eq!(empty.exit_code(), 0);
    assert!(new_versions(&empty).is_empty());
    assert_eq!(snapshot(&app).await, before, "nothing recorded is lost");
}

#[tokio::test]
async fn a_deferred_source_is_not_asked_before_its_time() {
    let world = World::pretalx().await;
    let (app, clock) = pretalx_app(&world).await;
    run_check(&app).await;
    world
        .upstream
        .fault("/repos/", Fault::GithubLimit(4102444800));
    let limited = run_check(&app).await;
    let (_, report) = limited.failed_sources().next().expect("deferred");
    assert_eq!(report.status, SourceStatus::Deferred);
    assert_eq!(
        report.deferred_until,
        Some(at("2100-01-01T00:00:00Z")),
        "x-ratelimit-reset honoured"
    );
    world.upstream.heal();
    world.upstream.forget_requests().await;
    clock.advance(chrono::Duration::days(1));
    let waiting = run_check(&app).await;
    assert_eq!(waiting.exit_code(), 2, "still deferred: reported");
    let asked: Vec<String> = world
        .upstream
        .requests()
        .await
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert!(
        asked.iter().all(|p| !p.starts_with("/repos/")),
        "GitHub asked while deferred: {asked:?}"
    );
    clock.set(at("2100-01-01T00:00:01Z"));
    assert_eq!(run_check(&app).await.exit_code(), 0);
}

#[tokio::test]
async fn dry_runs_record_nothing() {
    let world = World::pretalx().await;
    let (app, _) = pretalx_app(&world).await;
    let dry = match check::run(
        &app,
        &CheckOptions {
            dry_run: true,
            ..CheckOptions::default()
        },
    )
    .await
    .expect("runs")
    {
        CheckOutcome::Completed(s) => s,
        CheckOutcome::Busy { .. } => panic!("busy"),
    };
    assert!(dry.dry_run && dry.run_id.is_none());
    assert_eq!(dry.projects[0].recorded, 47, "it says what it would record");
    assert_eq!(app.store.counts().await.expect("counts"), (0, 0));
    assert!(app.store.recent_runs(5).await.expect("runs").is_empty());
    assert!(app.store.validators().await.expect("validators").is_empty());
    assert!(app.store.source_states().await.expect("states").is_empty());
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_and_messages_of_the_binary() {
    let world = World::pretalx().await;
    let projects = world
        .sandbox
        .projects(&pretalx::projects_toml(&world.upstream));
    let args = world.args(&projects);
    let herald = |extra: &[&str]| {
        let mut all: Vec<&str> = extra.to_vec();
        all.extend(args.iter().map(String::as_str));
        world.sandbox.herald(&all)
    };
    let ok = herald(&["check"]);
    assert_eq!(ok.status.code(), Some(0), "{}{}", stdout(&ok), stderr(&ok));
    assert!(
        stdout(&ok).contains("first look: 47 releases recorded as known"),
        "{}",
        stdout(&ok)
    );

    world.upstream.fault("/simple/", Fault::Status(500));
    let partial = herald(&["check"]);
    assert_eq!(partial.status.code(), Some(2));
    let err = stderr(&partial);
    let expected = format!(
        "pretalx: pypi failed: GET {}/simple/pretalx/: HTTP 500",
        world.upstream.url()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(stdout(&partial).contains("FAILED"), "{}", stdout(&partial));

    let unknown = herald(&["check", "--project", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("unknown project `nope` (tracked: pretalx)"),
        "{}",
        stderr(&unknown)
    );

    let bad = world
        .sandbox
        .projects("[[project]]\nname = \"x\"\npypi = \"x\"\nplugin_of = \"y\"\n");
    let refused = world
        .sandbox
        .herald(&["check", "--projects", bad.to_str().expect("utf-8 path")]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(&format!(
            "{}:4: project `x` has plugin_of = \"y\"",
            bad.display()
        )),
        "{}",
        stderr(&refused)
    );

    let bad_url = world
        .sandbox
        .herald(&["check", "--pypi-url", "ftp://example.org"]);
    assert_eq!(bad_url.status.code(), Some(1));
    assert!(
        stderr(&bad_url).contains("HERALD_PYPI_URL: `ftp://example.org`"),
        "{}",
        stderr(&bad_url)
    );

    let unreachable_db =
        world
            .sandbox
            .herald(&["check", "--database-url", "sqlite:///nonexistent/dir/h.db"]);
    assert_eq!(unreachable_db.status.code(), Some(1));
    assert!(
        stderr(&unreachable_db).contains("/nonexistent/dir"),
        "{}",
        stderr(&unreachable_db)
    );

    std::fs::write(
        world.sandbox.path(".env"),
        "HERALD_PYPI_URL='unterminated\n",
    )
    .expect("write .env");
    let broken_env = world.sandbox.herald(&["releases"]);
    assert_eq!(broken_env.status.code(), Some(1));
    assert!(
        stderr(&broken_env).contains(".env"),
        "{}",
        stderr(&broken_env)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_started_together_run_once() {
    let world = World::pretalx().await;
    let projects = world
        .sandbox
        .projects(&pretalx::projects_toml(&world.upstream));
    let args = world.args(&projects);
    // Slow answers keep the first run busy while the second starts.
    world
        .upstream
        .fault("/p/news/", Fault::Slow(Duration::from_millis(400)));
    for round in 0..3 {
        let spawn = || {
            let mut cmd = world.sandbox.command(&["check"]);
            cmd.args(&args);
            tokio::process::Command::from(cmd).output()
        };
        let (a, b) = tokio::join!(spawn(), spawn());
        let (a, b) = (a.expect("first"), b.expect("second"));
        assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
        assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
        let busy = [&a, &b]
            .iter()
            .filter(|o| stdout(o).contains("A check is already running"))
            .count();
        assert_eq!(
            busy,
            1,
            "round {round}: exactly one run skipped\n{}\n{}",
            stdout(&a),
            stdout(&b)
        );
        let skipped = if stdout(&a).contains("already running") {
            &a
        } else {
            &b
        };
        assert!(
            stderr(skipped).contains("a check is already running"),
            "{}",
            stderr(skipped)
        );
    }
    let (app, _) = pretalx_app(&world).await;
    let (releases, evidence) = snapshot(&app).await;
    assert_eq!(releases.len(), 47);
    assert_eq!(app.store.counts().await.expect("counts"), (47, evidence));
    assert_eq!(
        app.store.recent_runs(10).await.expect("runs").len(),
        3,
        "one run per round"
    );
}

/// Releases recorded per project.
async fn per_project(app: &App) -> std::collections::BTreeMap<String, usize> {
    let rows = app
        .store
        .releases(&ReleaseFilter::default())
        .await
        .expect("list");
    let mut counts = std::collections::BTreeMap::new();
    for row in rows {
        *counts.entry(row.project).or_insert(0) += 1;
    }
    counts
}

/// The database refuses one project's releases (a trigger): the run ends with an error that
/// names the project and the database's reason; every project written before it keeps all
/// its releases and none is half-written; the lease is released, and once the fault is gone
/// the next run records everything, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_the_database_refuses_ends_the_run_and_loses_nothing_written() {
    let world = World::new().await;
    common::site::serve_plugin_world(
        &world.upstream,
        &world.rows,
        at("2026-11-22T00:00:00Z"),
        &[],
    );
    let mut plugins = String::new();
    for (dist, _) in common::site::PLUGINS {
        plugins.push_str(&format!(
            "\n[[project]]\nname = \"{dist}\"\nplugin_of = \"pretalx\"\nmodule = \"{}\"\nscheme = \"semver\"\npypi = \"{dist}\"\n",
            dist.replace('-', "_")
        ));
    }
    let projects = world.pretalx_projects(&plugins);
    let (app, clock) = world
        .app()
        .projects(&projects)
        .at("2026-11-22T06:00:00Z")
        .build()
        .await;
    let url = world.sandbox.db_url();
    const REFUSED: &str = "pretalx-public-voting";
    if world.sandbox.on_postgres() {
        common::execute(
            &url,
            &[
                "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.project = 'pretalx-public-voting' THEN \
                 RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$",
                "CREATE TRIGGER refuse_one BEFORE INSERT ON releases FOR EACH ROW \
                 EXECUTE FUNCTION refuse_one()",
            ],
        )
        .await;
    } else {
        common::execute(
            &url,
            &["CREATE TRIGGER refuse_one BEFORE INSERT ON releases \
               WHEN NEW.project = 'pretalx-public-voting' \
               BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"],
        )
        .await;
    }

    let err = match check::run(&app, &CheckOptions::default()).await {
        Err(err) => format!("{err:#}"),
        Ok(outcome) => panic!("the run went through: {outcome:?}"),
    };
    assert!(
        err.contains(&format!("cannot record the results for {REFUSED}")),
        "{err}"
    );
    assert!(err.contains("refused by the test"), "{err}");
    let before = per_project(&app).await;
    assert!(!before.contains_key(REFUSED), "{before:?}");

    if world.sandbox.on_postgres() {
        common::execute(&url, &["DROP TRIGGER refuse_one ON releases"]).await;
    } else {
        common::execute(&url, &["DROP TRIGGER refuse_one"]).await;
    }
    clock.advance(chrono::Duration::minutes(5));
    let again = run_check(&app).await;
    assert_eq!(again.exit_code(), 0, "{again:#?}");
    let after = per_project(&app).await;
    assert_eq!(after.len(), 1 + common::site::PLUGINS.len(), "{after:?}");
    for (project, count) in &before {
        assert_eq!(
            after.get(project),
            Some(count),
            "{project} was half-written"
        );
    }
    assert!(after[REFUSED] > 0, "{after:?}");
    let rows = app
        .store
        .releases(&ReleaseFilter::default())
        .await
        .expect("list");
    let distinct: HashSet<(&str, &str)> = rows
        .iter()
        .map(|r| (r.project.as_str(), r.version.as_str()))
        .collect();
    assert_eq!(distinct.len(), rows.len(), "a release recorded twice");
}
