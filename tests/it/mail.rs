//! Release mail end to end: real check runs, the real outbox and dispatcher, a real SMTP
//! server on 127.0.0.1, and every message parsed back.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::pretalx;
use common::smtp::{SmtpSink, Stage};
use common::{World, at, run_check, subscribe};
use herald::app::{App, ManualClock};
use herald::check::{self, CheckOptions, CheckOutcome, RunSummary};
use herald::model::{DigestMode, ReleaseClass, SubscriberStatus};
use herald::notify::{self, DispatchOptions, DispatchReport};
use mail_parser::MessageParser;

const BASE: &str = "https://herald.example.org/";

/// pretalx (with upgrade steps) and `other`, written to the world's sandbox.
fn projects(world: &World) -> std::path::PathBuf {
    world.pretalx_and_other(&[
        "Make a backup first.",
        "pip install --upgrade-strategy eager -U pretalx=={version}",
        "python -m pretalx migrate",
    ])
}

/// An app mailing the world's sink over at most `connections` connections.
async fn mail_app(world: &World, connections: &str) -> (App, Arc<ManualClock>) {
    world
        .app()
        .projects(&projects(world))
        .mail()
        .flags(&["--base-url", BASE, "--smtp-connections", connections])
        .build()
        .await
}

/// pretalx 2026.2.1 appears upstream, its GitHub release saying `notes`.
fn release_with_notes(world: &World, notes: &str) {
    world.release_2026_2_1();
    let mut releases = pretalx::github_releases(&world.rows);
    releases[0]["body"] = serde_json::Value::String(notes.to_string());
    pretalx::serve_github(&world.upstream, "pretalx/pretalx", &releases, 30);
}

async fn check_and_send(app: &App) -> (RunSummary, DispatchReport) {
    let summary = run_check(app).await;
    let report = notify::dispatch(app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    (summary, report)
}

use ReleaseClass::{Bugfix, Feature, Prerelease};

/// Adds a confirmed subscriber to `project` for these classes, instant or in a digest;
/// returns the subscriber's id.
async fn confirmed(
    app: &App,
    email: &str,
    project: &str,
    classes: &[ReleaseClass],
    digest: DigestMode,
) -> i64 {
    subscribe(
        app,
        email,
        &[project],
        classes,
        digest,
        SubscriberStatus::Confirmed,
    )
    .await
}

#[tokio::test]
async fn one_message_per_matching_subscriber_and_never_twice() {
    let world = World::pretalx().await;
    let (app, clock) = mail_app(&world, "2").await;
    confirmed(
        &app,
        "alice@example.org",
        "pretalx",
        &[Feature, Bugfix],
        DigestMode::Instant,
    )
    .await;
    confirmed(
        &app,
        "bob@example.org",
        "pretalx",
        &[Feature],
        DigestMode::Instant,
    )
    .await;
    confirmed(
        &app,
        "carol@example.org",
        "other",
        &[Feature, Bugfix],
        DigestMode::Instant,
    )
    .await;
    confirmed(
        &app,
        "dave@example.org",
        "pretalx",
        &[Feature, Bugfix, Prerelease],
        DigestMode::Instant,
    )
    .await;
    subscribe(
        &app,
        "erin@example.org",
        &["pretalx"],
        &[Feature, Bugfix],
        DigestMode::Instant,
        SubscriberStatus::Pending,
    )
    .await;

    let (first, mail) = check_and_send(&app).await;
    assert_eq!(first.queued(), 0, "the baseline mails nobody");
    assert_eq!(mail.sent, 0);

    clock.advance(chrono::Duration::hours(2));
    world.release_2026_2_1();
    let (second, mail) = check_and_send(&app).await;
    assert_eq!(second.queued(), 2);
    assert_eq!(
        (mail.sent, mail.retrying, mail.dead, mail.waiting),
        (2, 0, 0, 0)
    );
    for _ in 0..3 {
        clock.advance(chrono::Duration::hours(1));
        let (again, mail) = check_and_send(&app).await;
        assert_eq!((again.queued(), mail.sent), (0, 0), "re-runs send nothing");
    }
    // A pre-release reaches only the subscriber who opted in.
    world.upstream.put_json(
        "/simple/pretalx/",
        "application/vnd.pypi.simple.v1+json",
        &pretalx::simple_page(&world.rows, &[("2026.3.0rc1", "2026-07-09T10:00:00Z")]),
    );
    let (_, mail) = check_and_send(&app).await;
    assert_eq!(mail.sent, 1);
    assert_eq!(world.sink.count_for("alice@example.org"), 1);
    assert_eq!(world.sink.count_for("bob@example.org"), 0);
    assert_eq!(world.sink.count_for("carol@example.org"), 0);
    assert_eq!(world.sink.count_for("dave@example.org"), 2);
    assert_eq!(world.sink.count_for("erin@example.org"), 0);
    assert_eq!(world.sink.count(), 3);
}

fn header<'a>(parsed: &'a mail_parser::Message<'a>, name: &'a str) -> &'a str {
    parsed
        .header_raw(name)
        .unwrap_or_else(|| panic!("header {name} missing"))
        .trim()
}

#[tokio::test]
async fn a_release_mail_is_well_formed_with_working_links() {
    let world = World::pretalx().await;
    let (app, clock) = mail_app(&world, "2").await;
    let id = confirmed(
        &app,
        "alice@example.org",
        "pretalx",
        &[Feature, Bugfix],
        DigestMode::Instant,
    )
    .await;
    check_and_send(&app).await;
    clock.advance(chrono::Duration::hours(2));
    let notes = "## Fixes\n\n* Schedule export fixed <script>alert('pwned')</script>\n* <img src=x onerror=\"steal()\"> inline HTML\n\nSee [the docs](https://docs.pretalx.org/).";
    release_with_notes(&world, notes);
    let (_, mail) = check_and_send(&app).await;
    assert_eq!(mail.sent, 1);
    let received = world.sink.messages();
    let raw = &received[0].data;
    let raw_text = String::from_utf8_lossy(raw);
    let parsed = MessageParser::default().parse(raw).expect("parses");

    assert_eq!(
        parsed.subject(),
        Some("pretalx 2026.2.1 released (bugfix release)")
    );
    assert!(raw_text.contains("multipart/alternative"), "{raw_text}");
    assert_eq!(parsed.text_body_count(), 1);
    assert_eq!(parsed.html_body_count(), 1);
    assert_eq!(received[0].rcpt_to, ["alice@example.org"]);
    assert_eq!(received[0].mail_from, "herald@example.org");

    // Headers.
    let expected_id = app
        .notifier
        .message_id("alice@example.org", "release:pretalx:2026.2.1");
    assert_eq!(
        format!("<{}>", parsed.message_id().expect("Message-ID")),
        expected_id
    );
    assert_eq!(header(&parsed, "Auto-Submitted"), "auto-generated");
    assert_eq!(
        header(&parsed, "List-Id"),
        "Herald release mail <releases.example.org>"
    );
    assert_eq!(
        header(&parsed, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    let unsubscribe = header(&parsed, "List-Unsubscribe");
    let link = unsubscribe
        .split(',')
        .map(|s| s.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|s| s.starts_with("https://"))
        .expect("https link");
    assert!(link.starts_with(&format!("{BASE}unsubscribe/")), "{link}");
    assert!(
        unsubscribe.contains("<mailto:herald@example.org?subject=unsubscribe>"),
        "{unsubscribe}"
    );
    let token = link.rsplit('/').next().expect("token");
    assert_eq!(
        app.notifier.signer.verify("unsubscribe", token),
        Some(id),
        "the link carries a valid signed token"
    );

    // Both parts: class in words, links, notes, upgrade steps.
    let text = parsed.body_text(0).expect("text").into_owned();
    // HTML escaping writes `/` as `&#x2f;` inside attributes; compare decoded.
    let html = parsed.body_html(0).expect("html").replace("&#x2f;", "/");
    for part in [&text, &html] {
        assert!(part.contains("bugfix release"), "{part}");
        assert!(
            part.contains("It may carry security fixes: upgrade soon."),
            "{part}"
        );
        assert!(
            part.contains("https://github.com/pretalx/pretalx/releases/tag/v2026.2.1"),
            "{part}"
        );
        assert!(
            part.contains("https://pretalx.com/p/news/releasing-pretalx-2026-2-0/"),
            "{part}"
        );
        assert!(
            part.contains(&format!(
                "{}/project/pretalx/2026.2.1/",
                world.upstream.url()
            )),
            "{part}"
        );
        assert!(
            part.contains("pip install --upgrade-strategy eager -U pretalx==2026.2.1"),
            "{part}"
        );
        assert!(part.contains("python -m pretalx migrate"), "{part}");
        assert!(part.contains(link), "unsubscribe link in the body");
    }
    // Notes: sanitised in HTML, readable in text.
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("onerror"), "{html}");
    assert!(
        html.contains(
            "<a href=\"https://docs.pretalx.org/\" rel=\"noopener noreferrer\">the docs</a>"
        ),
        "{html}"
    );
    assert!(
        text.contains("See [the docs](https://docs.pretalx.org/)."),
        "{text}"
    );
    assert!(text.contains("Schedule export fixed"), "{text}");
}

#[tokio::test]
async fn three_releases_in_one_run_make_one_message_per_subscriber() {
    let world = World::pretalx().await;
    // rows[45] is 2026.1.2: the baseline knows everything before it.
    assert_eq!(world.rows[45].version, "2026.1.2");
    pretalx::serve_history(&world.upstream, &world.rows[..45], &[]);
    let (app, clock) = mail_app(&world, "2").await;
    let (baseline, _) = check_and_send(&app).await;
    assert!(baseline.new_releases().next().is_none());
    confirmed(
        &app,
        "alice@example.org",
        "pretalx",
        &[Feature, Bugfix],
        DigestMode::Instant,
    )
    .await;
    confirmed(
        &app,
        "bob@example.org",
        "pretalx",
        &[Feature],
        DigestMode::Instant,
    )
    .await;
    confirmed(
        &app,
        "dave@example.org",
        "pretalx",
        &[Feature, Bugfix],
        DigestMode::Daily,
    )
    .await;

    // 2026.1.2, 2026.2.0 and 2026.2.1 are out when the next run looks.
    clock.advance(chrono::Duration::hours(2));
    world.release_2026_2_1();
    let (summary, mail) = check_and_send(&app).await;
    let found: Vec<&str> = summary.new_releases().map(|r| r.version.as_str()).collect();
    assert_eq!(found, ["2026.1.2", "2026.2.0", "2026.2.1"]);
    assert_eq!(summary.queued(), 2, "one message for alice, one for bob");
    assert_eq!(
        summary.projects[0].digest_items, 3,
        "digests list each release"
    );
    assert_eq!((mail.sent, mail.retrying, mail.dead), (2, 0, 0));
    assert_eq!(world.sink.count_for("alice@example.org"), 1);
    assert_eq!(world.sink.count_for("bob@example.org"), 1);
    let received = world.sink.messages();
    let of = |addr: &str| {
        let raw = &received
            .iter()
            .find(|m| m.rcpt_to == [addr])
            .unwrap_or_else(|| panic!("no mail for {addr}"))
            .data;
        MessageParser::default().parse(raw).expect("parses")
    };

    let alice = of("alice@example.org");
    assert_eq!(
        alice.subject(),
        Some("pretalx 2026.2.1 and 2 more releases")
    );
    assert_eq!(
        format!("<{}>", alice.message_id().expect("Message-ID")),
        app.notifier
            .message_id("alice@example.org", "release:pretalx:2026.2.1"),
        "the newest release's subject key"
    );
    assert_eq!(header(&alice, "Auto-Submitted"), "auto-generated");
    assert!(header(&alice, "List-Unsubscribe").contains(&format!("{BASE}unsubscribe/")));
    let text = alice.body_text(0).expect("text").into_owned();
    let html = alice.body_html(0).expect("html").replace("&#x2f;", "/");
    assert!(
        text.starts_with(
            "3 new releases of pretalx, newest first: 2026.2.1 (bugfix release), 2026.2.0 (feature release), 2026.1.2 (bugfix release)."
        ),
        "{text}"
    );
    for part in [&text, &html] {
        let mut last = 0;
        for (version, class) in [
            ("2026.2.1", "bugfix release"),
            ("2026.2.0", "feature release"),
            ("2026.1.2", "bugfix release"),
        ] {
            // Newest first, each with its class, notes and links.
            let at = part
                .find(&format!("Release notes of pretalx {version}."))
                .unwrap_or_else(|| panic!("notes of {version} in {part}"));
            assert!(at > last, "{version} out of order in {part}");
            last = at;
            assert!(part.contains(class), "{part}");
            assert!(
                part.contains(&format!(
                    "https://github.com/pretalx/pretalx/releases/tag/v{version}"
                )),
                "{part}"
            );
            assert!(
                part.contains(&format!(
                    "{}/project/pretalx/{version}/",
                    world.upstream.url()
                )),
                "{part}"
            );
        }
        // Only the newest is the one to install.
        assert!(
            part.contains("pip install --upgrade-strategy eager -U pretalx==2026.2.1"),
            "{part}"
        );
        assert!(!part.contains("pretalx==2026.2.0"), "{part}");
        assert!(!part.contains("pretalx==2026.1.2"), "{part}");
        assert!(
            part.contains("Superseded by pretalx 2026.2.1, above: upgrade to that one instead."),
            "{part}"
        );
    }

    // Bob wants feature releases only: one of the three, mailed as a release found alone.
    let bob = of("bob@example.org");
    assert_eq!(
        bob.subject(),
        Some("pretalx 2026.2.0 released (feature release)")
    );
    assert_eq!(
        format!("<{}>", bob.message_id().expect("Message-ID")),
        app.notifier
            .message_id("bob@example.org", "release:pretalx:2026.2")
    );
    let text = bob.body_text(0).expect("text");
    assert!(
        text.starts_with("pretalx 2026.2.0: a feature release")
            && text.contains("-U pretalx==2026.2.0")
            && !text.contains("2026.2.1"),
        "{text}"
    );

    // Re-runs send nothing; the digest is as it always was.
    for _ in 0..2 {
        clock.advance(chrono::Duration::hours(1));
        let (again, mail) = check_and_send(&app).await;
        assert_eq!((again.queued(), mail.sent), (0, 0), "re-runs send nothing");
    }
    clock.set(at("2026-07-09T06:00:00Z"));
    let (_, mail) = check_and_send(&app).await;
    assert_eq!((mail.sent, mail.digests_queued), (1, 1));
    let digest = world
        .sink
        .messages()
        .into_iter()
        .find(|m| m.rcpt_to == ["dave@example.org"])
        .expect("digest");
    let parsed = MessageParser::default()
        .parse(&digest.data)
        .expect("parses");
    assert_eq!(
        parsed.subject(),
        Some(
            "Daily digest for 2026-07-08: 3 new releases (pretalx 2026.1.2, pretalx 2026.2.0, pretalx 2026.2.1)"
        )
    );
    assert_eq!(world.sink.count(), 3);
}

#[tokio::test]
async fn digests_list_their_period_and_empty_periods_send_nothing() {
    let world = World::pretalx().await;
    let (app, clock) = mail_app(&world, "2").await;
    confirmed(
        &app,
        "daily@example.org",
        "pretalx",
        &[Feature, Bugfix, Prerelease],
        DigestMode::Daily,
    )
    .await;
    confirmed(
        &app,
        "weekly@example.org",
        "pretalx",
        &[Feature, Bugfix, Prerelease],
        DigestMode::Weekly,
    )
    .await;
    check_and_send(&app).await;
    // Two releases on Wednesday 2026-07-08.
    clock.set(at("2026-07-08T10:00:00Z"));
    world.release_2026_2_1();
    let (summary, mail) = check_and_send(&app).await;
    assert_eq!(summary.projects[0].digest_items, 2);
    assert_eq!(mail.sent, 0, "the day is not over");
    clock.set(at("2026-07-08T20:00:00Z"));
    world.upstream.put_json(
        "/simple/pretalx/",
        "application/vnd.pypi.simple.v1+json",
        &pretalx::simple_page(&world.rows, &[("2026.3.0.dev0", "2026-07-08T19:00:00Z")]),
    );
    check_and_send(&app).await;
    assert_eq!(world.sink.count(), 0);
    // After midnight: the daily digest, once, listing both.
    clock.set(at("2026-07-09T06:00:00Z"));
    let (_, mail) = check_and_send(&app).await;
    assert_eq!((mail.sent, mail.digests_queued), (1, 1));
    let msgs = world.sink.messages();
    assert_eq!(msgs[0].rcpt_to, ["daily@example.org"]);
    let parsed = MessageParser::default()
        .parse(&msgs[0].data)
        .expect("parses");
    assert_eq!(
        parsed.subject(),
        Some(
            "Daily digest for 2026-07-08: 2 new releases (pretalx 2026.2.1, pretalx 2026.3.0.dev0)"
        )
    );
    let text = parsed.body_text(0).expect("text");
    assert!(
        text.contains("pretalx 2026.2.1: a bugfix release")
            && text.contains("pretalx 2026.3.0.dev0: a pre-release"),
        "{text}"
    );
    // An empty day: nothing.
    clock.set(at("2026-07-10T06:00:00Z"));
    let (_, mail) = check_and_send(&app).await;
    assert_eq!((mail.sent, mail.digests_queued), (0, 0));
    // The week ends Sunday night: the weekly digest lists the same two.
    clock.set(at("2026-07-13T00:00:01Z"));
    let (_, mail) = check_and_send(&app).await;
    assert_eq!(mail.sent, 1);
    let weekly = world
        .sink
        .messages()
        .into_iter()
        .find(|m| m.rcpt_to == ["weekly@example.org"])
        .expect("weekly");
    let parsed = MessageParser::default()
        .parse(&weekly.data)
        .expect("parses");
    assert!(
        parsed
            .subject()
            .is_some_and(|s| s.starts_with("Weekly digest for 2026-W28: 2 new releases")),
        "{:?}",
        parsed.subject()
    );
    clock.set(at("2026-07-20T00:00:01Z"));
    let (_, mail) = check_and_send(&app).await;
    assert_eq!(mail.sent, 0, "an empty week sends nothing");
    assert_eq!(world.sink.count(), 2);
}

async fn three_subscribers_and_a_release(
    world: &World,
    connections: &str,
) -> (App, Arc<ManualClock>) {
    let (app, clock) = mail_app(world, connections).await;
    for name in ["ann", "ben", "cat"] {
        subscribe(
            &app,
            &format!("{name}@example.org"),
            &["pretalx"],
            &[Feature, Bugfix],
            DigestMode::Instant,
            SubscriberStatus::Confirmed,
        )
        .await;
    }
    check_and_send(&app).await;
    world.release_2026_2_1();
    (app, clock)
}

#[tokio::test]
async fn server_down_keeps_mail_queued_until_a_later_run() {
    let world = World::pretalx().await;
    let (app, clock) = three_subscribers_and_a_release(&world, "2").await;
    let port = world.sink.port();
    world.sink.stop().await;
    let (summary, mail) = check_and_send(&app).await;
    assert_eq!(summary.queued(), 3);
    assert_eq!(
        (mail.sent, mail.retrying, mail.dead, mail.waiting),
        (0, 3, 0, 3)
    );
    let rows = app.store.outbox(&["retrying"], 10).await.expect("outbox");
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r.attempts == 1
            && r.next_attempt_at == app.clock.now() + chrono::Duration::seconds(60))
    );
    assert!(
        rows[0]
            .last_response
            .as_deref()
            .is_some_and(|r| r.contains("onnect")),
        "{:?}",
        rows[0].last_response
    );
    let sink = SmtpSink::start_on(port).await;
    // Not due yet: nothing happens.
    let early = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    assert_eq!(early.sent, 0);
    clock.advance(chrono::Duration::days(1));
    let (_, later) = check_and_send(&app).await;
    assert_eq!(later.sent, 3);
    assert_eq!(sink.count(), 3);
}

#[tokio::test]
async fn temporary_refusals_are_retried_with_backoff() {
    let world = World::pretalx().await;
    let (app, clock) = three_subscribers_and_a_release(&world, "1").await;
    world.sink.fail_next(
        Stage::Greeting,
        421,
        "4.3.2 Service not available, closing channel",
        1,
    );
    world.sink.fail_next(
        Stage::MailFrom,
        451,
        "4.3.0 Mail server temporarily rejected message",
        1,
    );
    let (_, first) = check_and_send(&app).await;
    assert_eq!((first.sent, first.retrying), (1, 2), "{first:?}");
    let retrying = app.store.outbox(&["retrying"], 10).await.expect("outbox");
    let answers: Vec<&str> = retrying
        .iter()
        .filter_map(|r| r.last_response.as_deref())
        .collect();
    assert!(answers.iter().any(|a| a.contains("421")), "{answers:?}");
    assert!(answers.iter().any(|a| a.contains("451")), "{answers:?}");
    // Backoff doubles: a second 451 pushes the next attempt two minutes further.
    clock.advance(chrono::Duration::seconds(61));
    world
        .sink
        .fail_next(Stage::MailFrom, 451, "4.3.0 try later", 1);
    let second = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    assert_eq!((second.sent, second.retrying), (1, 1));
    let again = app.store.outbox(&["retrying"], 10).await.expect("outbox");
    assert_eq!(again[0].attempts, 2);
    assert_eq!(
        again[0].next_attempt_at,
        app.clock.now() + chrono::Duration::seconds(120)
    );
    clock.advance(chrono::Duration::seconds(121));
    let third = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    assert_eq!(third.sent, 1);
    assert_eq!(world.sink.count(), 3);
    for name in ["ann", "ben", "cat"] {
        assert_eq!(world.sink.count_for(&format!("{name}@example.org")), 1);
    }
}

#[tokio::test]
async fn a_refused_recipient_is_dead_lettered_and_the_others_get_theirs() {
    let world = World::pretalx().await;
    let (app, _) = three_subscribers_and_a_release(&world, "2").await;
    world.sink.reject_recipient(
        "ben@example.org",
        550,
        "5.1.1 <ben@example.org>: Recipient address rejected: User unknown",
    );
    let (_, mail) = check_and_send(&app).await;
    assert_eq!((mail.sent, mail.dead, mail.retrying), (2, 1, 0));
    assert_eq!(world.sink.count_for("ann@example.org"), 1);
    assert_eq!(world.sink.count_for("cat@example.org"), 1);
    let dead = app.store.outbox(&["dead"], 10).await.expect("outbox");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].recipient, "ben@example.org");
    assert!(
        dead[0]
            .last_response
            .as_deref()
            .is_some_and(|r| r.contains("550") && r.contains("User unknown")),
        "{:?}",
        dead[0].last_response
    );

    // `herald outbox` shows it with the server's answer.
    let out = world
        .sandbox
        .herald(&["outbox", "--database-url", &world.sandbox.db_url()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("dead") && text.contains("ben@example.org") && text.contains("User unknown"),
        "{text}"
    );
    let json = world.sandbox.herald(&[
        "outbox",
        "--json",
        "--database-url",
        &world.sandbox.db_url(),
    ]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    assert_eq!(rows[0]["status"], "dead");
}

#[tokio::test]
async fn a_connection_dropped_during_data_is_retried_not_lost() {
    let world = World::pretalx().await;
    let (app, clock) = three_subscribers_and_a_release(&world, "1").await;
    world.sink.drop_during_data(1);
    let (_, mail) = check_and_send(&app).await;
    assert_eq!((mail.sent, mail.retrying), (2, 1), "{mail:?}");
    clock.advance(chrono::Duration::minutes(2));
    let later = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    assert_eq!(later.sent, 1);
    for name in ["ann", "ben", "cat"] {
        assert_eq!(
            world.sink.count_for(&format!("{name}@example.org")),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_crash_between_acceptance_and_commit_duplicates_at_most_that_message() {
    let world = World::pretalx().await;
    let (app, clock) = three_subscribers_and_a_release(&world, "1").await;
    match check::run(&app, &CheckOptions::default())
        .await
        .expect("check")
    {
        CheckOutcome::Completed(s) => assert_eq!(s.queued(), 3),
        CheckOutcome::Busy { .. } => panic!("busy"),
    }
    let crash = notify::dispatch(
        &app,
        &DispatchOptions {
            crash_after_accepting: Some(2),
            ..DispatchOptions::default()
        },
    )
    .await;
    assert!(crash.is_err(), "the dispatcher stopped as a crash would");
    assert_eq!(world.sink.count(), 2);
    // The crashed dispatcher (still a live process here, as one on another host would be)
    // had claimed only what it was about to send: the message it never claimed goes out at
    // once; its claim on the message accepted but not recorded is left alone until it
    // expires, then that message goes out again.
    let early = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    assert_eq!(early.sent, 1);
    clock.advance(chrono::Duration::seconds(notify::CLAIM_SECS + 1));
    let after = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    assert_eq!(after.sent, 1);
    let received = world.sink.wait_for(4, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 4, "three messages, one of them twice");
    let counts: Vec<usize> = ["ann", "ben", "cat"]
        .iter()
        .map(|n| world.sink.count_for(&format!("{n}@example.org")))
        .collect();
    assert_eq!(counts.iter().filter(|c| **c == 2).count(), 1, "{counts:?}");
    assert!(counts.iter().all(|c| *c >= 1), "nothing lost: {counts:?}");
    assert!(
        app.store
            .outbox(&["queued", "retrying", "sending", "dead"], 10)
            .await
            .expect("outbox")
            .is_empty()
    );
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_mail_settings_and_templates_are_refused_at_start() {
    let world = World::new().await;
    let sandbox = &world.sandbox;
    let db = sandbox.db_url();
    for (url, needle) in [
        ("http://mail.example.org", "HERALD_SMTP_URL"),
        ("smtp://user:hunter2@:25", "HERALD_SMTP_URL"),
        ("not a url at all", "HERALD_SMTP_URL: not a URL"),
    ] {
        let out = sandbox.herald(&["releases", "--database-url", &db, "--smtp-url", url]);
        assert_eq!(out.status.code(), Some(1), "{url}");
        let err = stderr(&out);
        assert!(err.contains(needle), "{url}: {err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
    }
    let out = sandbox.herald(&[
        "releases",
        "--database-url",
        &db,
        "--from",
        "not an address",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("HERALD_FROM"), "{}", stderr(&out));

    let dir = sandbox.path("templates");
    std::fs::create_dir_all(dir.join("new_release")).expect("mkdir");
    let broken = dir.join("new_release/body.html.j2");
    for (source, needle) in [
        ("<p>{% if release.version %}unclosed</p>\n", "syntax error"),
        ("<p>{{ release.no_such_field }}</p>\n", "undefined"),
    ] {
        std::fs::write(&broken, source).expect("write");
        let out = sandbox.herald(&[
            "releases",
            "--database-url",
            &db,
            "--templates-dir",
            dir.to_str().expect("utf-8"),
        ]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("new_release/body.html.j2") && err.contains(&broken.display().to_string()),
            "{err}"
        );
        assert!(err.to_lowercase().contains(needle), "{err}");
    }
    std::fs::remove_file(&broken).expect("rm");
    std::fs::write(dir.join("new_release/subjet.txt.j2"), "typo").expect("write");
    let out = sandbox.herald(&[
        "releases",
        "--database-url",
        &db,
        "--templates-dir",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("overrides no template"),
        "{}",
        stderr(&out)
    );
    // A valid override is used.
    std::fs::remove_file(dir.join("new_release/subjet.txt.j2")).expect("rm");
    std::fs::write(
        dir.join("new_release/subject.txt.j2"),
        "[{{ release.project }}] {{ release.version }}",
    )
    .expect("write");
    let out = sandbox.herald(&[
        "releases",
        "--database-url",
        &db,
        "--templates-dir",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_commands_and_the_test_message() {
    let world = World::new().await;
    let (sink, sandbox) = (&world.sink, &world.sandbox);
    let db = sandbox.db_url();
    let url = sink.url();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--database-url",
            db.as_str(),
            "--smtp-url",
            url.as_str(),
            "--from",
            "herald@example.org",
        ]);
        sandbox.herald(&all)
    };
    let out = run(&[
        "subscribe",
        "ops@example.org",
        "--digest",
        "weekly",
        "--class",
        "feature",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("Subscribed ops@example.org (confirmed): pretalx; feature; weekly.")
    );
    let out = run(&[
        "subscribe",
        "ops@example.org",
        "--project",
        "pretalx-pages",
        "--project",
        "pretalx",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("Updated ops@example.org"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["subscribe", "bad\r\nBcc: x@example.org"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a valid email address"),
        "{}",
        stderr(&out)
    );
    let out = run(&["subscribe", "x@example.org", "--project", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&["subscribers", "--json"]);
    let subs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(subs[0]["email"], "ops@example.org");
    assert_eq!(subs[0]["status"], "confirmed");
    assert_eq!(subs[0]["digest"], "instant");
    assert_eq!(
        subs[0]["projects"],
        serde_json::json!(["pretalx", "pretalx-pages"])
    );

    let out = run(&["send-test-email", "ops@example.org"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("The relay answered: 250"), "{text}");
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    let parsed = MessageParser::default()
        .parse(&got[0].data)
        .expect("parses");
    assert_eq!(parsed.subject(), Some("Herald test message"));

    sink.stop().await;
    let out = run(&["send-test-email", "ops@example.org"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("was not sent through smtp://127.0.0.1"),
        "{}",
        stderr(&out)
    );

    let out = run(&["unsubscribe", "ops@example.org"]);
    assert!(out.status.success());
    let out = run(&["unsubscribe", "ops@example.org"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not subscribed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_relay_mail_stays_queued_and_the_run_says_so() {
    let world = World::pretalx().await;
    let projects = projects(&world);
    let mut base = world.args(&projects);
    base.extend(["--from".to_string(), "herald@example.org".to_string()]);
    let run = |extra: &[&str]| {
        let mut all: Vec<&str> = extra.to_vec();
        all.extend(base.iter().map(String::as_str));
        world.sandbox.herald(&all)
    };
    assert!(run(&["subscribe", "ops@example.org"]).status.success());
    let first = run(&["check"]);
    assert!(
        String::from_utf8_lossy(&first.stdout)
            .contains("Mail: nothing to send (no SMTP relay configured).")
    );
    world.release_2026_2_1();
    let dry = run(&["check", "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("Mail: would queue 1 message."),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );
    let second = run(&["check"]);
    let text = String::from_utf8_lossy(&second.stdout);
    assert_eq!(second.status.code(), Some(0), "{text}");
    assert!(text.contains("Mail: 1 message waiting in the outbox; no SMTP relay is configured (set HERALD_SMTP_URL)."), "{text}");
    let outbox = run(&["outbox"]);
    let text = String::from_utf8_lossy(&outbox.stdout);
    assert!(
        text.contains("Outbox: 1 queued.") && text.contains("release:pretalx:2026.2.1"),
        "{text}"
    );
    // Configured later: the next run delivers it.
    let url = world.sink.url();
    let third = run(&["check", "--smtp-url", &url]);
    assert!(
        String::from_utf8_lossy(&third.stdout).contains("1 sent"),
        "{}",
        String::from_utf8_lossy(&third.stdout)
    );
    assert_eq!(world.sink.count_for("ops@example.org"), 1);
}

/// An operator report as the alerts of releases up to 0.x queued it.
fn queued_report(extra: serde_json::Value) -> serde_json::Value {
    let mut report = serde_json::json!({
        "core": {
            "project": "pretalx", "installed": "2026.1.2", "latest": "2026.2.1", "latest_feature": "2026.2.0",
            "status": "line-unsupported", "summary": "Your 2026.1 line no longer gets bugfix releases.",
            "feature_releases_between": [{"version": "2026.2.0", "published": "2026-07-07", "url": "https://github.com/pretalx/pretalx/releases/tag/v2026.2.0"}],
            "vulnerabilities_fixed": []
        },
        "target": "2026.2.0",
        "plugins": [{"plugin": "pretalx-pages", "installed": "1.9.0", "verdict": "unknown", "install": null, "evidence": "No release since.", "hints": []}],
        "recommendation": "Wait: pretalx-pages shows no compatible release yet.",
        "untracked": [],
        "upgrade": {"command": "pip install -U pretalx==2026.2.1", "wait": null}
    });
    for (key, value) in extra.as_object().expect("object") {
        report[key] = value.clone();
    }
    report
}

#[tokio::test]
async fn mail_queued_before_the_typed_outbox_is_still_sent() {
    if common::sqlite_only("outbox rows an earlier Herald wrote into a SQLite file") {
        return;
    }
    let world = World::pretalx().await;
    let (app, _clock) = mail_app(&world, "1").await;
    let id = confirmed(
        &app,
        "alice@example.org",
        "pretalx",
        &[Feature, Bugfix],
        DigestMode::Instant,
    )
    .await;
    check_and_send(&app).await;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(&world.sandbox.db_url())
        .await
        .expect("raw pool");
    let newest: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM releases WHERE project = 'pretalx' ORDER BY id DESC LIMIT 2",
    )
    .fetch_all(&pool)
    .await
    .expect("releases");
    // Each row exactly as the string-kinded outbox wrote it: kind literal, `json!` payload.
    let rows = [
        (
            "new_release",
            serde_json::json!({ "release_id": newest[0] }),
        ),
        ("new_releases", serde_json::json!({ "release_ids": newest })),
        (
            "digest",
            serde_json::json!({"period": "daily:2026-07-08", "release_ids": [newest[1], newest[0]]}),
        ),
        (
            "test_message",
            serde_json::json!({ "sent_at": "2026-07-08 08:00:00 UTC" }),
        ),
        (
            "confirm_subscription",
            serde_json::json!({"confirm_url": "https://herald.example.org/confirm/TOKEN", "expires_at": "2026-07-10 08:00 UTC", "projects": ["pretalx"]}),
        ),
        (
            "compat_report",
            queued_report(
                serde_json::json!({"found": ["2026.2.1", "2026.2.0"], "upgrade_to": "2026.2.1"}),
            ),
        ),
        (
            "compat_followup",
            queued_report(
                serde_json::json!({"trigger": {"project": "pretalx-pages", "version": "1.10.0"}, "changed": []}),
            ),
        ),
        ("bugfix_advice", queued_report(serde_json::json!({}))),
    ];
    for (i, (kind, payload)) in rows.iter().enumerate() {
        sqlx::query(
            "INSERT INTO outbox (subscriber_id, recipient, kind, subject_key, payload, message_id, \
             next_attempt_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
        )
        .bind(id)
        .bind("alice@example.org")
        .bind(*kind)
        .bind(format!("old:{i}"))
        .bind(payload.to_string())
        .bind(format!("<old{i}@example.org>"))
        .bind("2026-07-08T08:00:00.000000Z")
        .execute(&pool)
        .await
        .expect("old row");
    }
    pool.close().await;

    let report = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    assert_eq!((report.sent, report.dead), (rows.len(), 0), "{report:?}");
    let subjects: Vec<String> = world
        .sink
        .messages()
        .iter()
        .map(|m| {
            let parsed = MessageParser::default().parse(&m.data).expect("parses");
            parsed.subject().expect("subject").to_string()
        })
        .collect();
    assert_eq!(subjects.len(), rows.len());
    assert!(subjects.iter().all(|s| !s.is_empty()), "{subjects:?}");
    let outbox = app.store.outbox(&[], 100).await.expect("outbox");
    assert!(outbox.iter().all(|row| row.status == "sent"), "{outbox:?}");
    let confirmation = outbox
        .iter()
        .find(|row| row.kind == "confirm_subscription")
        .expect("confirmation");
    assert_eq!(confirmation.payload, serde_json::json!({}));
}
