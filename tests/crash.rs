//! Crash safety of the real binary: `herald check` (recording and delivery) killed with
//! SIGKILL at random moments, again and again, then run to completion: every expected
//! message arrived at least once, and duplicates are bounded by the messages in flight at
//! the kills, with the default 10-minute claim window (claims of a killed dispatcher on this
//! host are taken over at once). And four `herald check` processes started at once, repeatedly, announce each
//! release exactly once.
//!
//! `HERALD_CRASH_KILLS` sets the number of kills (CI: 20; the long run documented in the
//! README: 200).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::pretalx::{self, Row};
use common::smtp::SmtpSink;
use common::{Sandbox, Upstream, at};
use herald::model::{DigestMode, EmailAddress, ReleaseClass, SubscriberStatus};
use herald::store::SubscriberWrite;
use mail_parser::MessageParser;

const SUBSCRIBERS: usize = 40;
const CONNECTIONS: usize = 4;

struct World {
    rows: Vec<Row>,
    upstream: Upstream,
    sandbox: Sandbox,
    sink: SmtpSink,
    args: Vec<String>,
}

async fn world() -> World {
    let fixtures = common::fixtures();
    let rows = pretalx::rows(&fixtures);
    let upstream = Upstream::start().await;
    pretalx::serve_history(&upstream, &rows[..47], &[]);
    let sandbox = Sandbox::new();
    let sink = SmtpSink::start().await;
    let projects = sandbox.projects(&pretalx::projects_toml(&upstream));
    let (app, _) = sandbox
        .app(&upstream.url(), Some(&projects), at("2026-11-22T06:00:00Z"))
        .await;
    for i in 0..SUBSCRIBERS {
        let email: EmailAddress = format!("op{i}@example.org").parse().expect("email");
        app.store
            .upsert_subscriber(
                &SubscriberWrite {
                    email: &email,
                    projects: &["pretalx".to_string()],
                    classes: &[ReleaseClass::Feature, ReleaseClass::Bugfix],
                    digest: DigestMode::Instant,
                    status: SubscriberStatus::Confirmed,
                    token_hash: None,
                    token_expires_at: None,
                },
                app.clock.now(),
            )
            .await
            .expect("subscribe");
    }
    app.store.close().await;
    let mut args = sandbox.args(&upstream.url(), Some(&projects));
    args.extend([
        "--smtp-url".into(),
        sink.url(),
        "--from".into(),
        "herald@example.org".into(),
        "--smtp-connections".into(),
        CONNECTIONS.to_string(),
    ]);
    let w = World {
        rows,
        upstream,
        sandbox,
        sink,
        args,
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

impl World {
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
    let (app, _) = w
        .sandbox
        .app(&w.upstream.url(), None, at("2026-11-22T06:00:00Z"))
        .await;
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
