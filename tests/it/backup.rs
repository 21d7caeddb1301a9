//! Backups that restore: `herald backup FILE` (the real binary) of a database whose subscriber
//! already got a release mail, restored into another folder as `herald.db` and `.secret`, keeps
//! that mail's one-click unsubscribe link working in a web service started on the copy; the
//! same copy restored without the key refuses the link. And the key's file: mode 0600, never
//! overwritten, left out (and said so) when the key is `HERALD_SECRET`.

use crate::common;

use std::path::Path;

use common::web::WebListener;
use common::{Sandbox, World};
use herald::app::App;
use herald::check::{self, CheckOptions};
use herald::notify::{self, DispatchOptions};
use mail_parser::MessageParser;
use reqwest::StatusCode;

const BASE: &str = "https://herald.example.org/";

/// A live instance that mailed one release to one subscriber: the app, its world, and the
/// path of the `https` link in the mail's `List-Unsubscribe` header.
struct Mailed {
    app: App,
    world: World,
    projects: std::path::PathBuf,
    subscriber: i64,
    unsubscribe_path: String,
}

async fn live_instance_that_mailed_a_release() -> Mailed {
    let world = World::pretalx().await;
    let projects = world.pretalx_projects("");
    let (app, clock) = world
        .app()
        .projects(&projects)
        .at("2026-07-08T08:00:00Z")
        .mail()
        .flags(&["--base-url", BASE])
        .build()
        .await;
    let subscriber = common::subscribe_instant(&app, "ops@example.org", "pretalx").await;
    check::run(&app, &CheckOptions::default())
        .await
        .expect("baseline");
    clock.advance(chrono::Duration::hours(2));
    world.release_2026_2_1();
    check::run(&app, &CheckOptions::default())
        .await
        .expect("check");
    let sent = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    assert_eq!(sent.sent, 1, "the release mail went out");
    let message = &world.sink.messages()[0];
    let parsed = MessageParser::default()
        .parse(&message.data)
        .expect("parses");
    let header = parsed
        .header_raw("List-Unsubscribe")
        .expect("List-Unsubscribe");
    let link = header
        .split(',')
        .map(|s| s.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|s| s.starts_with(BASE))
        .unwrap_or_else(|| panic!("no {BASE} link in {header}"));
    Mailed {
        app,
        world,
        projects,
        subscriber,
        unsubscribe_path: link[BASE.len()..].to_string(),
    }
}

/// A web service on 127.0.0.1 over `sandbox`'s database (a restored copy of the live
/// instance's); stops when the sender drops.
async fn serve(
    sandbox: &Sandbox,
    mailed: &Mailed,
) -> (App, String, tokio::sync::oneshot::Sender<()>) {
    let (app, _) = mailed
        .world
        .app()
        .sandbox(sandbox)
        .projects(&mailed.projects)
        .at("2026-07-09T08:00:00Z")
        .flags(&["--base-url", BASE])
        .build()
        .await;
    let listener = WebListener::bind().await;
    let base = listener.base.clone();
    let stop = listener.serve(&app);
    (app, base, stop)
}

async fn one_click(base: &str, path: &str) -> (StatusCode, String) {
    let answer = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("POST");
    let status = answer.status();
    (status, answer.text().await.expect("body"))
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn backup(sandbox: &Sandbox, file: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = sandbox.command(&["backup", file.to_str().expect("utf-8")]);
    cmd.env("HERALD_DATABASE_URL", sandbox.db_url());
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("run herald backup")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_backup_keeps_the_unsubscribe_links_already_mailed_working() {
    if common::sqlite_only("`herald backup` copies a SQLite file and its .secret") {
        return;
    }
    let mailed = live_instance_that_mailed_a_release().await;
    let live_key = std::fs::read(mailed.world.sandbox.path(".secret")).expect("live .secret");

    // The backup, taken by the real binary while the live instance keeps its database open.
    let backups = tempfile::tempdir().expect("tempdir");
    let file = backups.path().join("herald-2026-07-09.db");
    let key_file = backups.path().join("herald-2026-07-09.db.secret");
    let out = backup(&mailed.world.sandbox, &file, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("to {}.", file.display()))
            && stdout.contains(&format!("to {} (mode 0600)", key_file.display()))
            && stdout.contains("To restore")
            && stdout.contains("to .secret beside it"),
        "{stdout}"
    );
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(&file), 0o600, "the copy holds addresses: owner only");
    assert_eq!(std::fs::read(&key_file).expect("key copy"), live_key);

    // Restored on another path: the copy as herald.db, the key as .secret beside it.
    let restored = Sandbox::new();
    std::fs::copy(&file, restored.path("herald.db")).expect("restore database");
    std::fs::copy(&key_file, restored.path(".secret")).expect("restore key");
    assert_eq!(mode(&restored.path(".secret")), 0o600);
    let (app, base, _stop) = serve(&restored, &mailed).await;
    let before = app.store.subscribers().await.expect("subscribers");
    assert_eq!(
        before.iter().map(|s| s.id).collect::<Vec<_>>(),
        [mailed.subscriber]
    );
    let page = reqwest::get(format!("{base}{}", mailed.unsubscribe_path))
        .await
        .expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .expect("page")
            .contains("unsubscribe-button")
    );
    let (status, answer) = one_click(&base, &mailed.unsubscribe_path).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.contains("You are unsubscribed"), "{answer}");
    assert!(
        app.store
            .subscribers()
            .await
            .expect("subscribers")
            .is_empty(),
        "the link from before the backup unsubscribed on the restored instance"
    );
    // The live instance is untouched by the restore.
    assert_eq!(mailed.app.store.subscribers().await.expect("live").len(), 1);

    // The same copy without its key: a new key, and the mailed link is refused.
    let keyless = Sandbox::new();
    std::fs::copy(&file, keyless.path("herald.db")).expect("restore database only");
    let (app, base, _stop) = serve(&keyless, &mailed).await;
    let (status, answer) = one_click(&base, &mailed.unsubscribe_path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer.contains("This link does not work"), "{answer}");
    assert_eq!(
        app.store.subscribers().await.expect("subscribers").len(),
        1,
        "nobody was unsubscribed"
    );
    assert_ne!(
        std::fs::read(keyless.path(".secret")).expect("new key"),
        live_key
    );
}

#[tokio::test]
async fn the_key_file_is_never_overwritten_and_a_configured_key_stays_out_of_the_backup() {
    if common::sqlite_only("`herald backup` copies a SQLite file and its .secret") {
        return;
    }
    let world = World::new().await;
    let sandbox = &world.sandbox;
    let backups = tempfile::tempdir().expect("tempdir");

    // An existing FILE.secret refuses the whole backup: no database copy is left behind.
    let file = backups.path().join("a.db");
    let key_file = backups.path().join("a.db.secret");
    std::fs::write(&key_file, "someone else's key").expect("write");
    let out = backup(sandbox, &file, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: the backup file already exists",
            key_file.display()
        )),
        "{stderr}"
    );
    assert!(!file.exists(), "nothing half-written");
    assert_eq!(
        std::fs::read_to_string(&key_file).expect("read"),
        "someone else's key"
    );

    // A first backup of a database that never signed anything yet still carries the key it
    // will sign with.
    let file = backups.path().join("b.db");
    let out = backup(sandbox, &file, &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(backups.path().join("b.db.secret")).expect("key copy"),
        std::fs::read(sandbox.path(".secret")).expect("generated key")
    );

    // HERALD_SECRET: the key is the configuration's, not the backup's, and the report says so.
    let file = backups.path().join("c.db");
    let out = backup(
        sandbox,
        &file,
        &[(
            "HERALD_SECRET",
            "a-configured-key-that-is-long-enough-0123456789",
        )],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(file.is_file());
    assert!(!backups.path().join("c.db.secret").exists());
    assert!(
        stdout.contains("The signing key is HERALD_SECRET, so it is not in this backup")
            && stdout.contains("keep it with the configuration"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("configured-key"),
        "the key is never printed"
    );
}

#[tokio::test]
async fn on_postgres_backup_refuses_and_names_pg_dump() {
    let world = World::new().await;
    if !world.sandbox.on_postgres() {
        eprintln!("PostgreSQL only: runs in the suite's PostgreSQL pass");
        return;
    }
    let file = world.sandbox.path("copy.db");
    let shown = file.display().to_string();
    let url = world.sandbox.db_url();
    let out = world
        .sandbox
        .herald(&["backup", &shown, "--database-url", &url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("pg_dump --format=custom --file={shown}")),
        "{stderr}"
    );
    assert!(!file.exists(), "nothing written");
}
