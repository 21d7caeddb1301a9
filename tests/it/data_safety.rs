//! Data safety: a consistent backup while a check is writing, restored and read back; and a
//! database at every earlier schema version, with data, migrated to the latest.

use crate::common;

use std::time::Duration;

use common::{Fault, World};
use herald::check::{self, CheckOptions};
use herald::store::{ReleaseFilter, Store};
use sqlx::sqlite::SqlitePoolOptions;

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_while_a_check_writes_is_consistent_and_restores() {
    if common::sqlite_only("`herald backup` copies a SQLite file (VACUUM INTO)") {
        return;
    }
    let world = World::new().await;
    world.release_2026_2_1();
    world
        .upstream
        .fault("/p/news/", Fault::Slow(Duration::from_millis(300)));
    let sandbox = &world.sandbox;
    let projects = world.pretalx_projects("");
    let (app, _) = world
        .app()
        .projects(&projects)
        .at("2026-11-22T06:00:00Z")
        .build()
        .await;
    let writer = {
        let app = app.clone();
        tokio::spawn(async move {
            check::run(&app, &CheckOptions::default())
                .await
                .expect("check")
        })
    };
    // Copies taken while the run fetches and writes: each is one moment of the database.
    let mut seen = Vec::new();
    for i in 0..20 {
        let target = sandbox.path(&format!("backup-{i}.db"));
        app.store.backup(&target).await.expect("backup");
        let copy = Store::open(&format!("sqlite://{}", target.display()))
            .await
            .expect("open copy");
        let (releases, evidence) = copy.counts().await.expect("counts");
        assert!(
            releases == 0 || releases == 48,
            "a half-written run in a backup: {releases} releases"
        );
        seen.push((releases, evidence));
        copy.close().await;
        if writer.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    writer.await.expect("writer");
    assert!(
        seen.iter().any(|(r, _)| *r == 0),
        "at least one copy was taken during the run: {seen:?}"
    );
    let final_copy = sandbox.path("final.db");
    app.store.backup(&final_copy).await.expect("backup");
    assert!(
        app.store.backup(&final_copy).await.is_err(),
        "an existing file is never overwritten"
    );
    // Restore: run Herald on the copy and read everything back.
    let restored = Store::open(&format!("sqlite://{}", final_copy.display()))
        .await
        .expect("restore");
    let original = app
        .store
        .releases(&ReleaseFilter::default())
        .await
        .expect("original");
    let copy = restored
        .releases(&ReleaseFilter::default())
        .await
        .expect("copy");
    assert_eq!(copy.len(), 48);
    let key = |r: &herald::store::ReleaseRow| {
        (
            r.project.clone(),
            r.version.clone(),
            r.class,
            r.published_at,
            r.sources.len(),
        )
    };
    assert_eq!(
        copy.iter().map(key).collect::<Vec<_>>(),
        original.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(
        restored.validators().await.expect("validators"),
        app.store.validators().await.expect("validators")
    );
    assert_eq!(restored.recent_runs(5).await.expect("runs").len(), 1);

    // And through the command.
    let out = sandbox.herald(&[
        "backup",
        sandbox.path("cli.db").to_str().expect("utf-8"),
        "--database-url",
        &sandbox.db_url(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = sandbox.herald(&[
        "backup",
        sandbox.path("cli.db").to_str().expect("utf-8"),
        "--database-url",
        &sandbox.db_url(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

/// Rows that every schema version since the first can hold.
async fn seed(url: &str, version: i64) {
    let pool = SqlitePoolOptions::new()
        .connect(url)
        .await
        .expect("raw pool");
    let q = |sql: &'static str| sqlx::query(sql);
    q("INSERT INTO releases (project, version, version_key, class, line, published_at, first_seen_at, available_at) \
       VALUES ('pretalx', '2026.2.1', '2026.2.1', 'bugfix', '2026.2', '2026-07-08T09:52:27.000000Z', '2026-07-08T12:00:00.000000Z', '2026-07-08T12:00:00.000000Z')")
    .execute(&pool)
    .await
    .expect("release");
    q("INSERT INTO evidence (release_id, source, raw, url, first_seen_at, last_seen_at) \
       VALUES (1, 'github', 'v2026.2.1', 'https://github.com/pretalx/pretalx/releases/tag/v2026.2.1', '2026-07-08T12:00:00.000000Z', '2026-07-08T12:00:00.000000Z')")
    .execute(&pool)
    .await
    .expect("evidence");
    q("INSERT INTO http_validators (url, etag, updated_at) VALUES ('https://pypi.org/simple/pretalx/', 'W/\"1\"', '2026-07-08T12:00:00.000000Z')")
        .execute(&pool)
        .await
        .expect("validators");
    if version >= 20261122010000 {
        q("INSERT INTO subscribers (email, status, digest, classes, created_at, updated_at) \
           VALUES ('ops@example.org', 'confirmed', 'daily', 'feature,bugfix', '2026-07-01T00:00:00.000000Z', '2026-07-01T00:00:00.000000Z')")
        .execute(&pool)
        .await
        .expect("subscriber");
        q("INSERT INTO subscriber_projects (subscriber_id, project) VALUES (1, 'pretalx')")
            .execute(&pool)
            .await
            .expect("projects");
        q("INSERT INTO outbox (subscriber_id, recipient, kind, subject_key, payload, message_id, next_attempt_at, created_at, updated_at) \
           VALUES (1, 'ops@example.org', 'new_release', 'release:pretalx:2026.2.1', '{\"release_id\": 1}', '<x@example.org>', \
                   '2026-07-08T12:00:00.000000Z', '2026-07-08T12:00:00.000000Z', '2026-07-08T12:00:00.000000Z')")
        .execute(&pool)
        .await
        .expect("outbox");
    }
    pool.close().await;
}

#[tokio::test]
async fn every_earlier_schema_with_data_migrates_to_the_latest() {
    if common::sqlite_only("SQLite files written at every earlier schema version") {
        return;
    }
    let versions = Store::known_migrations();
    assert!(versions.len() >= 3);
    for (i, version) in versions.iter().enumerate().take(versions.len() - 1) {
        let world = World::new().await;
        let url = world.sandbox.db_url();
        let old = Store::connect(&url).await.expect("connect");
        old.migrate_to(*version).await.expect("old schema");
        old.close().await;
        seed(&url, *version).await;
        let store = Store::open(&url).await.expect("migrates to the latest");
        assert!(
            store.migrate().await.expect("nothing left").is_empty(),
            "from {version}"
        );
        let releases = store
            .releases(&ReleaseFilter::default())
            .await
            .expect("releases");
        assert_eq!(releases.len(), 1, "from {version}");
        assert_eq!(releases[0].sources[0].raw, "v2026.2.1");
        assert_eq!(store.validators().await.expect("validators").len(), 1);
        if i >= 1 {
            let subs = store.subscribers().await.expect("subscribers");
            assert_eq!(subs[0].email.as_str(), "ops@example.org");
            assert_eq!(subs[0].projects, ["pretalx"]);
            assert_eq!(
                store.outbox(&["queued"], 10).await.expect("outbox").len(),
                1
            );
        }
        // The newest columns work on an upgraded database.
        assert!(
            store
                .releases_pending_alerts()
                .await
                .expect("alerts column")
                .is_empty()
        );
    }
}
