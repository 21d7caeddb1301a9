//! Several Herald processes on one database, with the real binary: three `herald serve`
//! instances and one SMTP sink deliver a fan-out exactly once, between them, and all three
//! answer the web service and the update-check API; an instance killed with SIGKILL while its
//! check holds the run lease leaves the lease to another instance at once, not after the
//! lease's two minutes, and the fan-out still goes out once. (Four `herald check` processes at
//! once, and kills during a fan-out, are in `crash.rs`.)
//!
//! They run on the suite's database, SQLite by default and PostgreSQL in the suite's second
//! pass (`HERALD_TEST_POSTGRES_URL`), where they are the multi-instance tests of that backend:
//! SKIP LOCKED claims, and the lease as an advisory lock that the server frees when its
//! holder's session ends.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::web::{free_port, wait_healthy};
use common::{Fault, World};

const SUBSCRIBERS: usize = 500;

/// pretalx's history before 2026.2.1, a baseline, and `SUBSCRIBERS` confirmed subscribers.
async fn world() -> (World, std::path::PathBuf) {
    let world = World::pretalx().await;
    let projects = world.pretalx_operators(SUBSCRIBERS).await;
    let out = check(&world, &projects).output().await.expect("baseline");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (world, projects)
}

/// `herald serve` on `port` with the relay, a schedule firing every two seconds, and its log
/// (JSON, info) written to `log` when given.
fn serve(
    world: &World,
    projects: &std::path::Path,
    port: u16,
    log: Option<std::fs::File>,
) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::from(world.sandbox.command(&["serve"]));
    cmd.args(world.args(projects))
        .args(world.mail_flags())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--schedule", "*/2 * * * * *", "--schedule-jitter", "0"])
        .args(["--log-format", "json"])
        .env("HERALD_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(match log {
            Some(file) => std::process::Stdio::from(file),
            None => std::process::Stdio::null(),
        })
        .kill_on_drop(true);
    cmd.spawn().expect("spawn serve")
}

/// `herald check` with no relay: mail it decides waits in the outbox.
fn check(world: &World, projects: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(world.sandbox.command(&["check"]));
    cmd.args(world.args(projects)).kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn three_serve_instances_deliver_a_fan_out_once_between_them() {
    let (world, projects) = world().await;
    world.release_2026_2_1();
    // The announcement to every subscriber waits in the outbox (no relay for this run).
    let out = check(&world, &projects).output().await.expect("queue");
    assert_eq!(out.status.code(), Some(0));
    // A relay that takes 20 ms per message, so the fan-out lasts long enough for every
    // instance's dispatcher to take part.
    world.sink.pace(Duration::from_millis(20));
    // Every instance's schedule fires every two seconds; the lease lets one check run at a
    // time (each finds nothing new), and every instance dispatches.
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let logs = tempfile::tempdir().expect("tempdir");
    let mut children = Vec::new();
    for port in &ports {
        let log = std::fs::File::create(logs.path().join(format!("{port}.log"))).expect("log");
        children.push(serve(&world, &projects, *port, Some(log)));
    }
    for port in &ports {
        assert!(
            wait_healthy(*port, Duration::from_secs(30)).await,
            "instance on {port} never answered its health check"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while world.sink.count() < SUBSCRIBERS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Later schedule firings find nothing new: give them time to (wrongly) send again.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Every instance answers the update-check API from the shared database.
    let client = reqwest::Client::new();
    let payload = serde_json::json!({"id": "abc", "version": "2026.1.2", "plugins": []});
    for port in &ports {
        let answer: serde_json::Value = client
            .post(format!("http://127.0.0.1:{port}/api/update-check"))
            .json(&payload)
            .send()
            .await
            .expect("POST")
            .json()
            .await
            .expect("JSON");
        assert_eq!(answer["version"]["latest"], "2026.2.1", "instance {port}");
        assert_eq!(answer["version"]["updatable"], true, "instance {port}");
    }
    for child in &mut children {
        child.start_kill().expect("stop");
        child.wait().await.expect("reaped");
    }

    for i in 0..SUBSCRIBERS {
        assert_eq!(
            world.sink.count_for(&format!("op{i}@example.org")),
            1,
            "op{i} got the announcement exactly once"
        );
    }
    assert_eq!(world.sink.count(), SUBSCRIBERS);
    // What each instance says it sent: together every message once, and more than one
    // instance took part.
    let mut sent_by: BTreeMap<u16, u64> = BTreeMap::new();
    for port in &ports {
        let log = std::fs::read_to_string(logs.path().join(format!("{port}.log"))).expect("log");
        let sent: u64 = log
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["message"] == "mail dispatched")
            .filter_map(|event| event["sent"].as_u64())
            .sum();
        sent_by.insert(*port, sent);
    }
    eprintln!("messages sent per instance: {sent_by:?}");
    assert_eq!(
        sent_by.values().sum::<u64>(),
        SUBSCRIBERS as u64,
        "{sent_by:?}"
    );
    assert!(
        sent_by.values().filter(|n| **n > 0).count() >= 2,
        "the instances shared the dispatch: {sent_by:?}"
    );
    let announced = common::query_texts(
        &world.sandbox.db_url(),
        "SELECT version FROM releases WHERE new_in_run IS NOT NULL",
    )
    .await;
    assert_eq!(announced, ["2026.2.1"], "one release announced, by one run");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_killed_while_it_checks_leaves_the_lease_to_another_at_once() {
    let (world, projects) = world().await;
    world.release_2026_2_1();
    // Whichever instance checks first hangs on the index, holding the lease, until killed.
    world
        .upstream
        .fault("/simple/pretalx/", Fault::Slow(Duration::from_secs(60)));
    world.upstream.forget_requests().await;
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut children: Vec<tokio::process::Child> = ports
        .iter()
        .map(|port| serve(&world, &projects, *port, None))
        .collect();
    let asked_since = Instant::now();
    while !world
        .upstream
        .requests()
        .await
        .iter()
        .any(|r| r.url.path() == "/simple/pretalx/")
    {
        assert!(
            asked_since.elapsed() < Duration::from_secs(30),
            "no instance started a check"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The lease row names its holder (`host:pid:...`): kill that instance.
    let holder = common::query_texts(&world.sandbox.db_url(), "SELECT holder FROM run_lease")
        .await
        .pop()
        .expect("a lease holder");
    let pid: u32 = holder
        .split(':')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("holder names a pid");
    let at = children
        .iter()
        .position(|c| c.id() == Some(pid))
        .unwrap_or_else(|| panic!("the holder {holder} is one of the instances"));
    let mut killed = children.remove(at);
    killed.start_kill().expect("SIGKILL");
    killed.wait().await.expect("reaped");
    world.upstream.heal();
    let since_kill = Instant::now();

    // Another instance's next scheduled check takes the lease at once (the lease would expire
    // only after two minutes), finds 2026.2.1, and the fan-out goes out once.
    let deadline = Instant::now() + Duration::from_secs(90);
    while world.sink.count() < SUBSCRIBERS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = since_kill.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for child in &mut children {
        child.start_kill().expect("stop");
        child.wait().await.expect("reaped");
    }
    eprintln!("after the kill, the fan-out was complete in {took:?}");
    for i in 0..SUBSCRIBERS {
        assert_eq!(
            world.sink.count_for(&format!("op{i}@example.org")),
            1,
            "op{i}"
        );
    }
    assert!(
        took < Duration::from_secs(60),
        "{took:?}: the lease was not taken over at once"
    );
}
