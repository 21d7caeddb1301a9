//! `herald copy-db`: a SQLite database written by the real binary over pretalx's real history
//! (a baseline, subscribers with digests and an inventory, a release announced and mailed, a
//! second one queued with no relay) moves to PostgreSQL with everything in it: the same
//! `releases --json`, `subscribers --json` and `outbox --all --json`, and the next check on
//! PostgreSQL announces nothing old again but delivers what was queued. A non-empty target is
//! refused, and so is a target that is not PostgreSQL (before anything is opened).
//!
//! The copies need a PostgreSQL server, so they run in the suite's PostgreSQL pass
//! (`HERALD_TEST_POSTGRES_URL`, set by `scripts/with-postgres`).

use crate::common;

use common::{Sandbox, World, pretalx};

/// Runs the binary with `args` then the sandbox's own arguments; asserts it succeeded.
fn run(world: &World, sandbox: &Sandbox, args: &[&str], mail: bool) -> String {
    let projects = world.sandbox.path("projects.toml");
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
    all.extend(sandbox.args(&world.upstream.url(), Some(&projects)));
    if mail {
        all.extend(world.mail_flags());
    }
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = sandbox.herald(&refs);
    assert!(
        out.status.success(),
        "herald {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_database_moves_to_postgres_with_everything_in_it() {
    if common::postgres_server().is_none() {
        eprintln!("needs HERALD_TEST_POSTGRES_URL: runs in the suite's PostgreSQL pass");
        return;
    }
    let world = World::pretalx().await;
    world.pretalx_projects("");
    let source = Sandbox::sqlite();
    assert!(!source.on_postgres());
    let target = &world.sandbox;
    assert!(target.on_postgres());

    // Real runs on SQLite: subscribers, a baseline, 2026.2.1 announced and mailed.
    run(&world, &source, &["subscribe", "alice@example.org"], false);
    run(
        &world,
        &source,
        &["subscribe", "bob@example.org", "--digest", "weekly"],
        false,
    );
    run(
        &world,
        &source,
        &[
            "subscribe",
            "carol@example.org",
            "--installed",
            "pretalx==2026.1.0",
        ],
        false,
    );
    run(&world, &source, &["check"], true);
    world.release_2026_2_1();
    run(&world, &source, &["check"], true);
    let mailed = world.sink.count();
    assert!(mailed >= 2, "alice and carol were told of 2026.2.1");
    // 2026.2.2 with no relay: its mail waits in the outbox.
    pretalx::serve_history(
        &world.upstream,
        &world.rows,
        &[("2026.2.2", "2026-07-20T10:00:00Z")],
    );
    run(&world, &source, &["check"], false);

    let listings = |sandbox: &Sandbox| {
        [
            ["releases", "--json", ""],
            ["subscribers", "--json", ""],
            ["outbox", "--all", "--json"],
        ]
        .map(|args| {
            let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
            json(&run(&world, sandbox, &args, false))
        })
    };
    let before = listings(&source);
    assert!(
        before[2]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["status"] == "queued")),
        "mail is waiting: {}",
        before[2]
    );

    let report = run(
        &world,
        &source,
        &["copy-db", "--to", &target.db_url()],
        false,
    );
    assert!(report.contains("counts verified"), "{report}");
    assert!(report.contains("releases"), "{report}");
    let after = listings(target);
    for (i, name) in ["releases", "subscribers", "outbox"].iter().enumerate() {
        assert_eq!(
            before[i], after[i],
            "`herald {name} --json` differs after the copy"
        );
    }

    // The next check on PostgreSQL: nothing new, nothing old announced again; the queued
    // mail of 2026.2.2 goes out.
    let summary = json(&run(&world, target, &["check", "--json"], true));
    for project in summary["projects"].as_array().expect("projects") {
        assert_eq!(
            project["new"].as_array().map(Vec::len),
            Some(0),
            "{project}"
        );
    }
    let texts: Vec<String> = world
        .sink
        .messages()
        .iter()
        .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        .collect();
    let about = |version: &str| texts.iter().filter(|t| t.contains(version)).count();
    assert!(about("2026.2.2") >= 1, "the queued mail was delivered");
    assert_eq!(
        texts.len(),
        mailed + about("2026.2.2"),
        "nothing but the queued mail was sent after the copy"
    );

    // A second copy into the same (now non-empty) database is refused and changes nothing.
    let projects = world.sandbox.path("projects.toml");
    let mut args = vec!["copy-db".to_string(), "--to".into(), target.db_url()];
    args.extend(source.args(&world.upstream.url(), Some(&projects)));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = source.herald(&refs);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(listings(target)[0], after[0]);
}

/// A SQLite database that took text with a NUL character (before the store removed them)
/// still moves to PostgreSQL, whose text cannot hold one: the text arrives without it.
#[tokio::test]
async fn text_with_nul_in_sqlite_arrives_without_it() {
    if common::postgres_server().is_none() {
        eprintln!("needs HERALD_TEST_POSTGRES_URL: runs in the suite's PostgreSQL pass");
        return;
    }
    let source = Sandbox::sqlite();
    let target = Sandbox::new();
    assert!(target.on_postgres());
    let from = herald::store::Store::open(&source.db_url())
        .await
        .expect("open SQLite");
    let inserted = common::query_texts(
        &source.db_url(),
        "INSERT INTO skipped_entries (project, source, entry, first_seen_at) \
         VALUES ('react', 'github', 'v1' || char(0) || '.0-odd', '2026-11-22T06:00:00.000000Z') \
         RETURNING entry",
    )
    .await;
    assert_eq!(inserted, ["v1\0.0-odd"]);
    let to = herald::store::Store::open(&target.db_url())
        .await
        .expect("open PostgreSQL");
    from.copy_to(&to).await.expect("copy");
    let copied = common::query_texts(&target.db_url(), "SELECT entry FROM skipped_entries").await;
    assert_eq!(copied, ["v1.0-odd"]);
}

#[test]
fn copy_db_fills_only_postgres_and_touches_nothing_else() {
    let sandbox = Sandbox::sqlite();
    let target = sandbox.path("copy.db");
    let to = format!("sqlite://{}", target.display());
    let url = sandbox.db_url();
    let out = sandbox.herald(&["copy-db", "--to", &to, "--database-url", &url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("copy-db fills a PostgreSQL database"),
        "{stderr}"
    );
    assert!(
        !target.exists(),
        "no SQLite file was created for the refused target"
    );
    assert!(
        !sandbox.path("herald.db").exists(),
        "nor was the source opened"
    );
}
