//! `herald serve` as operators run it: it starts, answers its health check, and on SIGTERM
//! finishes in-flight work and exits 0; a dispatcher told to stop finishes the message in
//! flight and gives the rest back, and a restarted one sends them.

use crate::common;

use std::time::Duration;

use common::web::{serve_command, wait_healthy};
use common::{World, subscribe};
use herald::model::{DigestMode, EmailAddress, ReleaseClass, SubscriberStatus};
use herald::notify::{self, DispatchOptions};
use herald::store::NewMessage;

#[tokio::test(flavor = "multi_thread")]
async fn serve_starts_answers_and_stops_cleanly_on_sigterm() {
    let world = World::new().await;
    world.upstream.put_json(
        "/simple/demo/",
        "application/vnd.pypi.simple.v1+json",
        &serde_json::json!({"meta": {"api-version": "1.1"}, "name": "demo", "versions": [], "files": []}),
    );
    let projects = world
        .sandbox
        .projects("[[project]]\nname = \"demo\"\npypi = \"demo\"\n");
    let (mut command, port) = serve_command(
        &world.sandbox,
        &world.upstream.url(),
        &projects,
        Some("0 6 * * *"),
    );
    let mut child = command.spawn().expect("spawn herald serve");
    assert!(
        wait_healthy(port, Duration::from_secs(10)).await,
        "herald serve never answered its health check"
    );
    // The missed 06:00 run happened at start (no run was ever recorded).
    let mut ran = false;
    for _ in 0..100 {
        let (app, _) = world
            .app()
            .projects(&projects)
            .at("2026-11-22T06:00:00Z")
            .build()
            .await;
        if app
            .store
            .recent_runs(5)
            .await
            .expect("runs")
            .iter()
            .any(|r| r.trigger == "serve" && r.finished_at.is_some())
        {
            ran = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ran, "the catch-up run did not happen");
    let pid = child.id().expect("pid");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    // A schedule or time zone Herald cannot read stops it at start, naming the variable.
    for (flag, value, name) in [
        ("--schedule", "every morning", "HERALD_SCHEDULE"),
        ("--timezone", "Mars/Olympus", "HERALD_TIMEZONE"),
    ] {
        let out = world
            .sandbox
            .herald(&["serve", flag, value, "--listen", "127.0.0.1:0"]);
        assert_eq!(out.status.code(), Some(1), "{flag}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(name),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The lease was released: a check can run right away.
    let out = world.sandbox.herald(&[
        "check",
        "--projects",
        projects.to_str().expect("utf-8"),
        "--pypi-url",
        &format!("{}/", world.upstream.url()),
    ]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("already running"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_dispatcher_loses_nothing_and_a_restarted_one_picks_up() {
    let world = World::new().await;
    let sink = &world.sink;
    let projects = world
        .sandbox
        .projects("[[project]]\nname = \"demo\"\npypi = \"demo\"\n");
    let (app, _) = world
        .app()
        .projects(&projects)
        .at("2026-11-22T06:00:00Z")
        .mail()
        .flags(&["--smtp-connections", "1"])
        .build()
        .await;
    for i in 0..5 {
        let email: EmailAddress = format!("op{i}@example.org").parse().expect("email");
        let id = subscribe(
            &app,
            email.as_str(),
            &["demo"],
            &[ReleaseClass::Feature],
            DigestMode::Instant,
            SubscriberStatus::Confirmed,
        )
        .await;
        let payload = serde_json::json!({"sent_at": "now"});
        let key = format!("test:{i}");
        let message_id = app.notifier.message_id(email.as_str(), &key);
        app.store
            .enqueue(
                &NewMessage {
                    subscriber_id: Some(id),
                    recipient: email.as_str(),
                    kind: "test_message",
                    subject_key: &key,
                    payload: &payload,
                    message_id: &message_id,
                },
                app.clock.now(),
            )
            .await
            .expect("enqueue");
    }
    // The stop signal is already up: the first message in flight is finished, the rest given back.
    let (tx, rx) = tokio::sync::watch::channel(true);
    let first = notify::dispatch(
        &app,
        &DispatchOptions {
            stop: Some(rx),
            ..DispatchOptions::default()
        },
    )
    .await
    .expect("dispatch");
    drop(tx);
    assert_eq!(first.sent, 1);
    assert_eq!(
        first.waiting, 4,
        "the untried messages are queued again at once, not left claimed"
    );
    let again = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    assert_eq!(again.sent, 4);
    assert_eq!(sink.count(), 5);
    for i in 0..5 {
        assert_eq!(sink.count_for(&format!("op{i}@example.org")), 1);
    }
}
