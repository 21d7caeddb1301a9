//! Crash safety of the real binary: `herald check` (recording and delivery) killed with
//! SIGKILL at random moments, again and again, then run to completion: every expected
//! message arrived at least once, and duplicates are bounded by the messages in flight at
//! the kills, with the default 10-minute claim window (claims of a killed dispatcher on this
//! host are taken over at once). And four `herald check` processes started at once, repeatedly, announce each
//! release exactly once. And a fan-out to mail, a webhook and a Matrix room together,
//! killed the same way: every delivery arrived, webhook duplicates share their
//! `webhook-id`, and the Matrix room shows no duplicate event (the txnId is the delivery's).
//!
//! `HERALD_CRASH_KILLS` sets the number of kills (CI: 20; the long run documented in the
//! README: 200).

use crate::common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::World;
use common::pretalx;
use common::web::{free_port, wait_healthy};
use mail_parser::MessageParser;

const SUBSCRIBERS: usize = 300;
const CONNECTIONS: usize = 4;

/// The common world (pretalx's history before 2026.2.1, a sink) with subscribers and a
/// baseline, and the real binary's arguments on it.
struct CrashWorld {
    world: World,
    args: Vec<String>,
    /// The same settings with no relay: mail stays queued.
    without_relay: Vec<String>,
}

impl std::ops::Deref for CrashWorld {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

async fn world() -> CrashWorld {
    let world = World::pretalx().await;
    let projects = world.pretalx_operators(SUBSCRIBERS).await;
    let mut args = world.args(&projects);
    let without_relay = args.clone();
    args.extend(world.mail_flags());
    args.extend(["--smtp-connections".into(), CONNECTIONS.to_string()]);
    let w = CrashWorld {
        world,
        args,
        without_relay,
    };
    let out = w.check().output().await.expect("baseline");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w
}

impl CrashWorld {
    /// `herald serve` on a free port, with a schedule that never fires during the test.
    fn serve(&self, listen: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.sandbox.command(&["serve"]));
        cmd.args(&self.args)
            .args(["--listen", listen, "--schedule", "0 0 1 1 *"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    fn check(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.sandbox.command(&["check"]));
        cmd.args(&self.args).kill_on_drop(true);
        cmd
    }
}

/// xorshift: deterministic kill moments, so a failure can be replayed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_loses_nothing() {
    let w = world().await;
    let kills: usize = std::env::var("HERALD_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let (mut killed, mut finished) = (0, 0);
    let versions: Vec<String> = (0..kills).map(|k| format!("2026.2.{}", k + 2)).collect();
    for k in 0..kills {
        // Every run has work: one more bugfix release for 40 subscribers.
        let extra: Vec<(&str, &str)> = versions[..=k]
            .iter()
            .map(|v| (v.as_str(), "2026-07-10T10:00:00Z"))
            .collect();
        pretalx::serve_history(&w.upstream, &w.rows[..47], &extra);
        let mut child = w
            .check()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let delay = Duration::from_millis(next(&mut seed) % 300);
        tokio::select! {
            _ = child.wait() => finished += 1,
            _ = tokio::time::sleep(delay) => {
                child.start_kill().expect("SIGKILL");
                child.wait().await.expect("reaped");
                killed += 1;
            }
        }
    }
    // Default settings (a 10-minute claim window): the claims of killed dispatchers on this
    // host are taken over at once, so one plain run finishes the job.
    let out = w.check().output().await.expect("final run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A release a killed run had found is announced with the next run's, in one message per
    // subscriber: every subscriber must have been told about every release.
    let (app, _) = w.app().at("2026-11-22T06:00:00Z").build().await;
    let rows = app.store.outbox(&[], i64::MAX).await.expect("outbox");
    let mut releases_of: HashMap<&str, Vec<String>> = HashMap::new();
    for row in &rows {
        let ids = row.payload["release_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
            .unwrap_or_else(|| Vec::from_iter(row.payload["release_id"].as_i64()));
        for id in ids {
            let release = app.store.release(id).await.expect("release").expect("row");
            releases_of
                .entry(row.message_id.as_str())
                .or_default()
                .push(release.version);
        }
    }
    let expected = rows.len();
    let received = w.sink.count();
    let mut delivered: HashSet<(String, String)> = HashSet::new();
    let mut told: HashMap<String, HashSet<String>> = HashMap::new();
    for message in w.sink.messages() {
        let parsed = MessageParser::default()
            .parse(&message.data)
            .expect("parses");
        let id = format!("<{}>", parsed.message_id().expect("Message-ID"));
        for rcpt in &message.rcpt_to {
            delivered.insert((rcpt.clone(), id.clone()));
            told.entry(rcpt.clone())
                .or_default()
                .extend(releases_of.get(id.as_str()).cloned().unwrap_or_default());
        }
    }
    let mut short = Vec::new();
    for i in 0..SUBSCRIBERS {
        let email = format!("op{i}@example.org");
        let heard = told.remove(&email).unwrap_or_default();
        let missing = versions.iter().filter(|v| !heard.contains(*v)).count();
        if missing > 0 {
            short.push((i, missing));
        }
    }
    let duplicates = received.saturating_sub(delivered.len());
    eprintln!(
        "crash test: {kills} runs, {killed} killed with SIGKILL, {finished} finished; {received} messages received for {expected} expected, {duplicates} duplicates"
    );
    assert!(
        short.is_empty(),
        "lost releases (subscriber, releases never told): {short:?}"
    );
    assert_eq!(delivered.len(), expected, "every queued message arrived");
    // Never a combined and a single message (or two combined ones) for the same release.
    let mut announced: HashMap<(&str, &str), usize> = HashMap::new();
    for (rcpt, id) in &delivered {
        for version in releases_of.get(id.as_str()).into_iter().flatten() {
            *announced.entry((rcpt, version)).or_default() += 1;
        }
    }
    let twice: Vec<_> = announced.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "announced twice: {twice:?}");
    assert!(
        duplicates <= killed * CONNECTIONS,
        "{duplicates} duplicates for {killed} kills"
    );
    let counts = app.store.outbox_counts().await.expect("counts");
    assert_eq!(counts.get("sent"), Some(&(expected as i64)), "{counts:?}");
    assert_eq!(
        counts.len(),
        1,
        "nothing left queued, claimed or dead: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn four_checks_at_once_announce_each_release_once() {
    let w = world().await;
    let rounds = ["2026.2.2", "2026.2.3", "2026.2.4"];
    for (i, _) in rounds.iter().enumerate() {
        let extra: Vec<(&str, &str)> = rounds[..=i]
            .iter()
            .map(|v| (*v, "2026-07-10T10:00:00Z"))
            .collect();
        pretalx::serve_history(&w.upstream, &w.rows[..47], &extra);
        let runs: Vec<_> = (0..4).map(|_| w.check().output()).collect();
        for out in futures::future::join_all(runs).await {
            let out = out.expect("run");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A run that found the lease taken leaves delivery to the next one.
        let out = w.check().output().await.expect("settle");
        assert_eq!(out.status.code(), Some(0));
    }
    for i in 0..SUBSCRIBERS {
        assert_eq!(
            w.sink.count_for(&format!("op{i}@example.org")),
            rounds.len(),
            "op{i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_herald_serve_loses_nothing() {
    let w = world().await;
    let kills: usize = std::env::var("HERALD_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // Three new releases, recorded with no relay configured: their mail waits in the outbox.
    let versions = ["2026.2.2", "2026.2.3", "2026.2.4"];
    let extra: Vec<(&str, &str)> = versions
        .iter()
        .map(|v| (*v, "2026-07-10T10:00:00Z"))
        .collect();
    pretalx::serve_history(&w.upstream, &w.rows[..47], &extra);
    let mut queue = tokio::process::Command::from(w.sandbox.command(&["check"]));
    let out = queue.args(&w.without_relay).output().await.expect("queue");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One message per subscriber naming the three releases (one run found them together).
    let expected = SUBSCRIBERS;

    // herald serve's dispatcher, killed with SIGKILL at random moments, again and again.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..kills {
        let mut child = w.serve("127.0.0.1:0").spawn().expect("spawn serve");
        tokio::time::sleep(Duration::from_millis(next(&mut seed) % 300)).await;
        child.start_kill().expect("SIGKILL");
        child.wait().await.expect("reaped");
    }
    // A plain restart (default claim window) finishes the job, then stops on SIGTERM.
    let port = free_port();
    let mut child = w
        .serve(&format!("127.0.0.1:{port}"))
        .spawn()
        .expect("spawn serve");
    // Up (signal handlers installed) once it answers its health check.
    assert!(
        wait_healthy(port, Duration::from_secs(30)).await,
        "serve never listened"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while (0..SUBSCRIBERS).any(|i| w.sink.count_for(&format!("op{i}@example.org")) < 1)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().expect("pid") as i32;
    // SAFETY: kill(2) on the pid of a child this test owns.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().await.expect("serve exits");
    assert_eq!(
        status.code(),
        Some(0),
        "herald serve stops cleanly on SIGTERM"
    );

    let mut short = Vec::new();
    for i in 0..SUBSCRIBERS {
        let got = w.sink.count_for(&format!("op{i}@example.org"));
        if got < 1 {
            short.push((i, got));
        }
    }
    for message in w.sink.messages() {
        let text = String::from_utf8_lossy(&message.data);
        assert!(
            text.contains("pretalx 2026.2.4 and 2 more releases"),
            "one message names the three releases"
        );
    }
    let duplicates = w.sink.count().saturating_sub(expected);
    eprintln!(
        "serve crash test: {kills} kills; {} messages received for {expected} expected, {duplicates} duplicates",
        w.sink.count()
    );
    assert!(short.is_empty(), "lost messages: {short:?}");
    assert!(
        duplicates <= kills * CONNECTIONS,
        "{duplicates} duplicates for {kills} kills"
    );
    let (app, _) = w.app().at("2026-11-22T06:00:00Z").build().await;
    let counts = app.store.outbox_counts().await.expect("counts");
    assert_eq!(counts.get("sent"), Some(&(expected as i64)), "{counts:?}");
    assert_eq!(
        counts.len(),
        1,
        "nothing left queued, claimed or dead: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_fan_out_to_mail_and_channels_loses_nothing() {
    use common::receivers::{self, Kind, Receiver};
    let mut w = world().await;
    let hook = Receiver::start(Kind::Webhook, Some(receivers::WHSEC)).await;
    let room = Receiver::start(Kind::Matrix, Some(receivers::TOKEN)).await;
    let channels = w.sandbox.path("channels.toml");
    std::fs::write(
        &channels,
        format!(
            "[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{}\"\n\n\
             [[channel]]\nname = \"room\"\nkind = \"matrix\"\nurl = \"{}\"\nroom = \"{}\"\nsecret = \"{}\"\n",
            hook.url(),
            receivers::WHSEC,
            room.url(),
            receivers::ROOM,
            receivers::TOKEN
        ),
    )
    .expect("write channels");
    w.args
        .extend(["--channels".to_string(), channels.display().to_string()]);
    let kills: usize = std::env::var("HERALD_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut seed = 0x5851_f42d_4c95_7f2d_u64;
    let versions: Vec<String> = (0..kills).map(|k| format!("2026.2.{}", k + 2)).collect();
    let mut killed = 0;
    for k in 0..kills {
        let extra: Vec<(&str, &str)> = versions[..=k]
            .iter()
            .map(|v| (v.as_str(), "2026-07-10T10:00:00Z"))
            .collect();
        pretalx::serve_history(&w.upstream, &w.rows[..47], &extra);
        let mut child = w
            .check()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let delay = Duration::from_millis(next(&mut seed) % 300);
        tokio::select! {
            _ = child.wait() => {}
            _ = tokio::time::sleep(delay) => {
                child.start_kill().expect("SIGKILL");
                child.wait().await.expect("reaped");
                killed += 1;
            }
        }
    }
    let out = w.check().output().await.expect("final run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (app, _) = w.app().at("2026-11-22T06:00:00Z").build().await;
    let rows = app.store.outbox(&[], i64::MAX).await.expect("outbox");
    let counts = app.store.outbox_counts().await.expect("counts");
    assert_eq!(counts.len(), 1, "everything sent: {counts:?}");
    let ids_of = |channel: &str| -> HashSet<String> {
        rows.iter()
            .filter(|r| r.channel.as_deref() == Some(channel))
            .map(|r| r.message_id.clone())
            .collect()
    };
    // Webhook: every delivery arrived; a delivery sent twice carries the same webhook-id and
    // the same event; every release is in exactly one delivery.
    let mut by_id: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for got in hook.accepted() {
        by_id
            .entry(got.header("webhook-id").expect("webhook-id"))
            .or_default()
            .push(got.json()["data"].clone());
    }
    let expected = ids_of("hook");
    assert_eq!(by_id.keys().cloned().collect::<HashSet<_>>(), expected);
    let mut announced: HashMap<String, usize> = HashMap::new();
    for (id, copies) in &by_id {
        assert!(
            copies.iter().all(|c| *c == copies[0]),
            "{id}: duplicates differ"
        );
        for r in copies[0]["releases"].as_array().expect("releases") {
            *announced
                .entry(r["version"].as_str().expect("version").to_string())
                .or_default() += 1;
        }
    }
    for v in &versions {
        assert_eq!(announced.get(v), Some(&1), "webhook: {v} in {announced:?}");
    }
    // Matrix: one event per delivery (the homeserver deduplicates txnIds), no release twice.
    let events = room.events();
    assert_eq!(events.len(), ids_of("room").len());
    let version = regex::Regex::new(r"pretalx (2026\.2\.\d+):").expect("regex");
    let mut in_room: HashMap<String, usize> = HashMap::new();
    for e in &events {
        for caps in version.captures_iter(e["body"].as_str().expect("body")) {
            *in_room.entry(caps[1].to_string()).or_default() += 1;
        }
    }
    for v in &versions {
        assert_eq!(in_room.get(v), Some(&1), "matrix: {v} in {in_room:?}");
    }
    // Mail: every subscriber heard of every release.
    let mail_rows = rows.iter().filter(|r| r.channel.is_none()).count();
    let delivered: HashSet<(String, String)> = w
        .sink
        .messages()
        .iter()
        .flat_map(|m| {
            let parsed = MessageParser::default().parse(&m.data).expect("parses");
            let id = parsed.message_id().expect("Message-ID").to_string();
            m.rcpt_to
                .iter()
                .map(move |r| (r.clone(), id.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(delivered.len(), mail_rows, "every queued mail arrived");
    eprintln!(
        "channel crash test: {kills} runs, {killed} killed; webhook {} requests for {} deliveries, matrix {} requests for {} events",
        hook.accepted().len(),
        expected.len(),
        room.requests().len(),
        events.len()
    );
}
