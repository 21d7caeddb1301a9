//! Delivery benchmark: one release announced to 10,000 subscribers through a local SMTP sink.
//!
//! `cargo bench --bench delivery` (set `HERALD_BENCH_SUBSCRIBERS` for another count). It
//! records a release through a real check run against a local upstream (which queues one
//! message per subscriber in the same transaction), then times the dispatcher draining the
//! outbox through the pooled relay, and, as a peer, a plain loop sending the same number of
//! pre-built messages over one connection.

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros, unused_imports)]
mod common;

use std::time::{Duration, Instant};

use common::{Sandbox, Upstream, at};
use herald::check::{self, CheckOptions, CheckOutcome};
use herald::model::{DigestMode, EmailAddress, ReleaseClass, SubscriberStatus};
use herald::notify::{self, DispatchOptions};
use herald::store::SubscriberWrite;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

fn simple(versions: &[&str]) -> serde_json::Value {
    let files: Vec<_> = versions
        .iter()
        .map(|v| {
            json!({"filename": format!("pretalx-{v}-py3-none-any.whl"), "url": "https://files.example/x.whl",
                   "hashes": {}, "upload-time": "2026-07-08T10:00:00Z", "yanked": false})
        })
        .collect();
    json!({"meta": {"api-version": "1.1"}, "name": "pretalx", "versions": versions, "files": files})
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("HERALD_BENCH_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // lettre writes a message's body and its final dot separately, so every message waits
    // for the receiver's delayed ACK (about 40 ms on Linux) on its connection: throughput
    // grows with the number of connections.
    let connections = std::env::var("HERALD_BENCH_CONNECTIONS").unwrap_or_else(|_| "32".into());
    let upstream = Upstream::start().await;
    upstream.put_json(
        "/simple/pretalx/",
        "application/vnd.pypi.simple.v1+json",
        &simple(&["2026.2.0"]),
    );
    let sink = common::smtp::SmtpSink::start().await;
    let sandbox = Sandbox::new();
    let projects = sandbox
        .projects("[[project]]\nname = \"pretalx\"\nscheme = \"calver\"\npypi = \"pretalx\"\n");
    let url = sink.url();
    let (app, _) = sandbox
        .app_with(
            &upstream.url(),
            Some(&projects),
            at("2026-07-08T12:00:00Z"),
            &[
                "--smtp-url",
                &url,
                "--from",
                "herald@example.org",
                "--smtp-connections",
                &connections,
            ],
        )
        .await;

    let setup = Instant::now();
    let projects = vec!["pretalx".to_string()];
    let classes = [ReleaseClass::Feature, ReleaseClass::Bugfix];
    for i in 0..count {
        let email: EmailAddress = format!("operator{i}@example.org").parse().expect("email");
        app.store
            .upsert_subscriber(
                &SubscriberWrite {
                    email: &email,
                    projects: &projects,
                    classes: &classes,
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
    let run = |app| async move {
        match check::run(app, &CheckOptions::default())
            .await
            .expect("check")
        {
            CheckOutcome::Completed(s) => s,
            CheckOutcome::Busy { .. } => panic!("busy"),
        }
    };
    run(&app).await; // baseline
    eprintln!(
        "setup: {count} subscribers in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    upstream.put_json(
        "/simple/pretalx/",
        "application/vnd.pypi.simple.v1+json",
        &simple(&["2026.2.0", "2026.2.1"]),
    );
    let t = Instant::now();
    let summary = run(&app).await;
    let queue_time = t.elapsed();
    assert_eq!(summary.queued(), count, "one message per subscriber queued");

    let t = Instant::now();
    let report = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    let herald_time = t.elapsed();
    assert_eq!(report.sent, count, "{report:?}");
    assert_eq!(sink.count(), count);

    // Peer: pre-built messages over one connection, one after another (at most 1,000: the
    // rate is what matters).
    let peer_count = count.min(1_000);
    let peer_sink = common::smtp::SmtpSink::start().await;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&peer_sink.url())
        .expect("url")
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(1))
        .build();
    let from: Mailbox = "herald@example.org".parse().expect("from");
    let t = Instant::now();
    for i in 0..peer_count {
        let message = Message::builder()
            .from(from.clone())
            .to(format!("operator{i}@example.org").parse().expect("to"))
            .subject("pretalx 2026.2.1 released (bugfix release)")
            .multipart(MultiPart::alternative_plain_html(
                "text".to_string(),
                "<p>html</p>".to_string(),
            ))
            .expect("message");
        transport.send(message).await.expect("peer send");
    }
    let peer_time = t.elapsed();
    assert_eq!(peer_sink.count(), peer_count);

    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    let peer_rate = peer_count as f64 / peer_time.as_secs_f64();
    println!("P4 delivery, {count} subscribers, one release, local SMTP sink:");
    println!(
        "  queue (check run recording the release + {count} outbox rows): {:>8.2} s",
        queue_time.as_secs_f64()
    );
    println!(
        "  herald dispatch ({connections} connections, render + send + record): {:>8.2} s  {:>8.0} messages/s",
        herald_time.as_secs_f64(),
        rate(herald_time)
    );
    println!(
        "  peer: one connection, {peer_count} pre-built messages, nothing recorded: {:>6.2} s  {:>8.0} messages/s",
        peer_time.as_secs_f64(),
        peer_rate
    );
    println!(
        "  goal: all {count} within 20 s -> {}",
        if (queue_time + herald_time).as_secs_f64() <= 20.0 {
            "met"
        } else {
            "MISSED"
        }
    );
}
