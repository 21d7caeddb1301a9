//! Operator alerts on pretalx's and its plugins' real history: verdicts on the day 2026.2.0
//! came out, one compatibility report, one follow-up when a plugin release changes a
//! verdict, bugfix advice, the vulnerabilities an upgrade fixes, inventories from `pip
//! freeze`, and the update-check answer for module names.

use crate::common;

use chrono::{DateTime, Utc};
use common::pretalx::{self, Row};
use common::site::PLUGINS;
use common::{World, at, plugins, run_check, subscribe_instant};
use herald::alerts::{self, CheckedPlugin, UpdateCheckRequest};
use herald::app::App;
use herald::compat::Verdict;
use herald::inventory;
use herald::notify::{self, DispatchOptions};
use herald::store::InventoryMap;
use mail_parser::MessageParser;
use serde_json::json;

fn projects_toml() -> String {
    let mut toml =
        "[[project]]\nname = \"pretalx\"\nscheme = \"calver\"\npypi = \"pretalx\"\n\n".to_string();
    for (dist, _) in PLUGINS {
        toml.push_str(&format!(
            "[[project]]\nname = \"{dist}\"\nplugin_of = \"pretalx\"\nmodule = \"{}\"\nscheme = \"semver\"\npypi = \"{dist}\"\n\n",
            dist.replace('-', "_")
        ));
    }
    toml.push_str("[[project]]\nname = \"pretalx-synthetic\"\nplugin_of = \"pretalx\"\nmodule = \"pretalx_synthetic\"\npypi = \"pretalx-synthetic\"\n");
    toml
}

/// Serves everything published before `cutoff`, plus `extra` plugin releases.
fn serve_until(world: &World, cutoff: DateTime<Utc>, extra: &[(&str, &str, &str)]) {
    let core: Vec<Row> = world
        .rows
        .iter()
        .filter(|r| r.published() < cutoff)
        .cloned()
        .collect();
    world.upstream.put_json(
        "/simple/pretalx/",
        "application/vnd.pypi.simple.v1+json",
        &pretalx::simple_page(&core, &[]),
    );
    for row in &core {
        let doc = plugins::version_doc(&world.fixtures, "pretalx", &row.version);
        world.upstream.put_json(
            &format!("/pypi/pretalx/{}/json", row.version),
            "application/json",
            &doc,
        );
    }
    world.upstream.put(
        "/pypi/pretalx/2.3.1/json",
        "application/json",
        common::read(&world.fixtures, "pretalx/pypi-json/2.3.1.json"),
    );
    for (dist, repo) in PLUGINS {
        let mut releases: Vec<(String, DateTime<Utc>)> =
            plugins::history(&world.fixtures, dist, repo)
                .into_iter()
                .filter(|(_, d)| *d < cutoff)
                .collect();
        for (name, version, date) in extra {
            if *name == dist {
                releases.push((version.to_string(), at(date)));
            }
        }
        plugins::serve(&world.upstream, &world.fixtures, dist, &releases);
    }
    // A plugin that declares its compatibility, released alongside 2026.1.0.
    plugins::serve_with_docs(
        &world.upstream,
        "pretalx-synthetic",
        &[
            ("1.0.0".to_string(), at("2026-04-17T22:00:00Z")),
            ("2.0.0".to_string(), at("2026-04-18T10:00:00Z")),
        ],
        |v| json!({"info": {"requires_dist": [if v == "2.0.0" { "pretalx>=2026.2" } else { "pretalx<2026.2" }, "pytest; extra == \"dev\""], "requires_python": ">=3.11"}, "vulnerabilities": []}),
    );
}

/// An app on pretalx and its plugins, mailing the world's sink, its clock at `now`.
async fn alerts_app(world: &World, now: &str) -> (App, std::sync::Arc<herald::app::ManualClock>) {
    let projects = world.sandbox.projects(&projects_toml());
    world.app().projects(&projects).at(now).mail().build().await
}

async fn run(app: &App) -> (usize, herald::alerts::AlertsReport, usize) {
    let queued = run_check(app).await.queued();
    let alerts = alerts::process(app).await.expect("alerts");
    let mail = notify::dispatch(app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    (queued, alerts, mail.sent)
}

fn inventory(items: &[(&str, &str)]) -> Vec<inventory::Installed> {
    items
        .iter()
        .map(|(n, v)| inventory::parse_installed(&format!("{n}=={v}")).expect("spec"))
        .collect()
}

const OPERATOR: [(&str, &str); 5] = [
    ("pretalx", "2026.1.2"),
    ("pretalx-pages", "1.9.0"),
    ("pretalx-venueless", "1.8.0"),
    ("pretalx-public-voting", "1.10.0"),
    ("pretalx-media-ccc-de", "1.7.0"),
];

#[tokio::test]
async fn verdicts_on_the_day_2026_2_0_came_out_match_what_happened() {
    let world = World::new().await;
    serve_until(&world, at("2026-07-09T00:00:00Z"), &[]);
    let (app, _) = alerts_app(&world, "2026-07-09T06:00:00Z").await;
    run(&app).await;
    let advice = alerts::advise(&app, &inventory(&OPERATOR))
        .await
        .expect("advice");
    assert_eq!(advice.target.as_deref(), Some("2026.2.0"));
    let verdict = |name: &str| {
        advice
            .plugins
            .iter()
            .find(|p| p.plugin == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    for (name, install) in [
        ("pretalx-venueless", "1.9.0"),
        ("pretalx-media-ccc-de", "1.8.0"),
    ] {
        let v = verdict(name);
        assert_eq!(v.verdict, Verdict::Likely, "{v:?}");
        assert_eq!(v.install.as_deref(), Some(install), "{v:?}");
        assert!(
            v.evidence.contains(install) && v.evidence.contains("2026-07-08"),
            "{v:?}"
        );
    }
    for (name, latest) in [
        ("pretalx-pages", "1.9.0"),
        ("pretalx-public-voting", "1.10.0"),
    ] {
        let v = verdict(name);
        assert_eq!(v.verdict, Verdict::Unknown, "{v:?}");
        assert!(
            v.evidence.contains(latest) && v.evidence.contains("2026-04-17"),
            "names the last release: {v:?}"
        );
    }
    // Requires-Python is a hint, never decisive.
    assert!(
        verdict("pretalx-venueless")
            .hints
            .iter()
            .any(|h| h.contains(">=3.13") && h.contains(">=3.11")),
        "{:?}",
        verdict("pretalx-venueless")
    );
    assert!(
        advice.recommendation.contains("pretalx-pages")
            && advice.recommendation.contains("pretalx-public-voting"),
        "{}",
        advice.recommendation
    );
    assert_eq!(advice.core.status.as_str(), "line-unsupported");
    assert_eq!(advice.core.latest.as_deref(), Some("2026.2.1"));
    let between: Vec<&str> = advice
        .core
        .feature_releases_between
        .iter()
        .map(|r| r.version.as_str())
        .collect();
    assert_eq!(between, ["2026.2.0"]);

    // An operator already on the 2026.2 line is told to take the bugfix release soon.
    let same_line = alerts::advise(&app, &inventory(&[("pretalx", "2026.2.0")]))
        .await
        .expect("advice");
    assert_eq!(same_line.core.status.as_str(), "bugfix-available");
    assert!(
        same_line.core.summary.contains("upgrade soon"),
        "{}",
        same_line.core.summary
    );
    assert!(same_line.core.feature_releases_between.is_empty());

    // The same report through the binary, as JSON and as text.
    let projects = world.sandbox.path("projects.toml");
    let mut args: Vec<String> = vec!["advise".into(), "--json".into()];
    for (n, v) in OPERATOR {
        args.push("--installed".into());
        args.push(format!("{n}=={v}"));
    }
    args.extend(world.args(&projects));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = world.sandbox.herald(&refs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let pages = json["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["plugin"] == "pretalx-pages")
        .expect("pages");
    assert_eq!(pages["verdict"], "unknown");
}

#[tokio::test]
async fn declared_requirements_make_a_plugin_ready_or_blocked() {
    let world = World::new().await;
    serve_until(&world, at("2026-07-09T00:00:00Z"), &[]);
    let (app, _) = alerts_app(&world, "2026-07-09T06:00:00Z").await;
    run(&app).await;
    let advice = alerts::advise(
        &app,
        &inventory(&[("pretalx", "2026.1.2"), ("pretalx-synthetic", "1.0.0")]),
    )
    .await
    .expect("advice");
    let synthetic = &advice.plugins[0];
    assert_eq!(synthetic.verdict, Verdict::Ready, "{synthetic:?}");
    assert_eq!(synthetic.install.as_deref(), Some("2.0.0"));
    assert!(
        synthetic.evidence.contains("pretalx>=2026.2"),
        "{synthetic:?}"
    );
}

#[tokio::test]
async fn one_report_one_follow_up_and_silence_after() {
    let world = World::new().await;
    serve_until(&world, at("2026-07-07T00:00:00Z"), &[]);
    let (app, clock) = alerts_app(&world, "2026-07-07T06:00:00Z").await;
    let id = common::subscribe_instant(&app, "ops@example.org", "pretalx").await;
    let map: InventoryMap = OPERATOR
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    app.store
        .set_inventory(id, &map, app.clock.now())
        .await
        .expect("inventory");
    let (_, alerts, sent) = run(&app).await;
    assert_eq!(
        (alerts.compat_reports, sent),
        (0, 0),
        "the baseline alerts nobody"
    );

    // 2026.2.0 and 2026.2.1 come out, with some plugin releases, and one run finds both.
    clock.set(at("2026-07-09T06:00:00Z"));
    serve_until(&world, at("2026-07-09T00:00:00Z"), &[]);
    let (_, alerts, sent) = run(&app).await;
    assert_eq!(
        (
            alerts.compat_reports,
            alerts.bugfix_advice,
            alerts.followups
        ),
        (1, 0, 0),
        "{alerts:?}"
    );
    assert_eq!(
        sent, 2,
        "one release announcement for both, one compatibility report that is also the advice"
    );
    let msgs = world.sink.messages();
    let parsed: Vec<_> = msgs
        .iter()
        .map(|m| MessageParser::default().parse(&m.data).expect("parses"))
        .collect();
    let subjects: Vec<String> = parsed
        .iter()
        .map(|p| p.subject().unwrap_or_default().to_string())
        .collect();
    assert!(
        subjects.contains(&"pretalx 2026.2.1 and 1 more release".to_string()),
        "{subjects:?}"
    );
    let report = parsed
        .iter()
        .find(|p| {
            p.subject()
                .is_some_and(|s| s.starts_with("pretalx 2026.2.0 and 2026.2.1 are out:"))
        })
        .unwrap_or_else(|| panic!("no compatibility report in {subjects:?}"));
    assert_eq!(
        report.subject(),
        Some(
            "pretalx 2026.2.0 and 2026.2.1 are out: 2 of your 4 plugins have compatible releases, pretalx-pages, pretalx-public-voting have none yet"
        )
    );
    let text = report.body_text(0).expect("text");
    assert!(
        text.contains("pretalx-venueless (installed 1.8.0): LIKELY, install 1.9.0"),
        "{text}"
    );
    assert!(
        text.contains("pretalx-pages (installed 1.9.0): UNKNOWN"),
        "{text}"
    );
    // The pinned command, after the reason to wait.
    assert!(
        text.contains("Reason to wait: pretalx-pages and pretalx-public-voting have no release known to work with pretalx 2026.2.1 yet"),
        "{text}"
    );
    assert!(
        text.contains("    pip install --upgrade-strategy eager -U pretalx==2026.2.1 pretalx-media-ccc-de==1.8.0 pretalx-venueless==1.9.0"),
        "{text}"
    );
    let html = report.body_html(0).expect("html");
    assert!(
        html.contains("<table") && html.contains("pretalx-media-ccc-de"),
        "{html}"
    );
    // What the bugfix advice said is in the report, about the newest release.
    let text = report.body_text(0).expect("text");
    assert!(
        text.contains("Feature releases since your version") && text.contains("pretalx 2026.2.0"),
        "{text}"
    );
    assert!(
        text.contains("and so is 2026.2.1, which fixes bugs in it: install 2026.2.1.")
            && text.contains("Installed: 2026.1.2. Latest: 2026.2.1."),
        "{text}"
    );

    // A pretalx-pages release twelve days later flips its verdict: exactly one follow-up.
    clock.set(at("2026-07-21T06:00:00Z"));
    serve_until(
        &world,
        at("2026-07-09T00:00:00Z"),
        &[("pretalx-pages", "1.10.0", "2026-07-20T10:00:00Z")],
    );
    let (_, alerts, sent) = run(&app).await;
    assert_eq!((alerts.followups, sent), (1, 1), "{alerts:?}");
    let all = world.sink.messages();
    let follow = MessageParser::default()
        .parse(&all[2].data)
        .expect("parses");
    assert_eq!(
        follow.subject(),
        Some(
            "pretalx-pages 1.10.0 is out: 3 of your 4 plugins now have compatible releases for pretalx 2026.2.0"
        )
    );
    assert!(
        follow
            .body_text(0)
            .expect("text")
            .contains("(changed: pretalx-pages)")
    );

    // However often check runs now, nothing more.
    for _ in 0..3 {
        clock.advance(chrono::Duration::hours(6));
        let (_, alerts, sent) = run(&app).await;
        assert_eq!(
            (
                alerts.compat_reports + alerts.followups + alerts.bugfix_advice,
                sent
            ),
            (0, 0)
        );
    }
    // A plugin release that changes no verdict sends nothing either.
    serve_until(
        &world,
        at("2026-07-09T00:00:00Z"),
        &[
            ("pretalx-pages", "1.10.0", "2026-07-20T10:00:00Z"),
            ("pretalx-venueless", "1.9.1", "2026-07-22T10:00:00Z"),
        ],
    );
    clock.set(at("2026-07-23T06:00:00Z"));
    let (_, alerts, sent) = run(&app).await;
    assert_eq!((alerts.followups, sent), (0, 0));
    assert_eq!(world.sink.count_for("ops@example.org"), 3);
}

#[tokio::test]
async fn three_core_releases_in_one_run_give_an_operator_one_advice() {
    let world = World::new().await;
    // rows[45] is 2026.1.2: the history before it, then a run that finds 2026.1.2, 2026.2.0
    // and 2026.2.1 at once.
    assert_eq!(world.rows[45].version, "2026.1.2");
    serve_until(&world, world.rows[45].published(), &[]);
    let (app, clock) = alerts_app(&world, "2026-04-30T06:00:00Z").await;
    let (_, alerts, sent) = run(&app).await;
    assert_eq!((alerts.compat_reports + alerts.bugfix_advice, sent), (0, 0));
    let id = common::subscribe_instant(&app, "ops@example.org", "pretalx").await;
    let mut map: InventoryMap = OPERATOR
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    map.insert("pretalx".into(), "2026.1.1".into());
    app.store
        .set_inventory(id, &map, app.clock.now())
        .await
        .expect("inventory");

    clock.set(at("2026-07-09T06:00:00Z"));
    serve_until(&world, at("2026-07-09T00:00:00Z"), &[]);
    let (queued, alerts, sent) = run(&app).await;
    assert_eq!(queued, 1, "one release mail for the three releases");
    assert_eq!(
        (
            alerts.compat_reports,
            alerts.bugfix_advice,
            alerts.followups
        ),
        (1, 0, 0),
        "{alerts:?}"
    );
    assert_eq!(sent, 2);
    assert_eq!(world.sink.count_for("ops@example.org"), 2);
    let parsed: Vec<_> = world
        .sink
        .messages()
        .iter()
        .map(|m| MessageParser::default().parse(&m.data).expect("parses"))
        .map(|p| {
            (
                p.subject().unwrap_or_default().to_string(),
                p.body_text(0).expect("text").into_owned(),
                p.body_html(0).expect("html").into_owned(),
            )
        })
        .collect();
    let subjects: Vec<&str> = parsed.iter().map(|(s, _, _)| s.as_str()).collect();
    assert!(
        subjects.contains(&"pretalx 2026.2.1 and 2 more releases"),
        "{subjects:?}"
    );
    // The one advice: the compatibility report for 2026.2.0, about 2026.2.1.
    let (subject, text, html) = parsed
        .iter()
        .find(|(s, _, _)| s.starts_with("pretalx 2026.2.0 and 2026.2.1 are out:"))
        .unwrap_or_else(|| panic!("no compatibility report in {subjects:?}"));
    assert_eq!(
        subject,
        "pretalx 2026.2.0 and 2026.2.1 are out: 2 of your 4 plugins have compatible releases, pretalx-pages, pretalx-public-voting have none yet"
    );
    for needle in [
        "and so is 2026.2.1, which fixes bugs in it: install 2026.2.1.",
        "This check found 3 releases of pretalx at once (2026.2.1, 2026.2.0, 2026.1.2)",
        "Installed: 2026.1.1. Latest: 2026.2.1.",
        "pretalx-venueless (installed 1.8.0): LIKELY, install 1.9.0",
        "pretalx-pages (installed 1.9.0): UNKNOWN",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert!(html.contains("<table"), "{html}");
    // Nothing recommends what 2026.2.1 superseded.
    for (subject, text, html) in &parsed {
        for stale in [
            "pretalx 2026.1.2 is out",
            "pretalx==2026.1.2",
            "pretalx==2026.2.0",
            "upgrade to 2026.1.2",
        ] {
            assert!(
                !subject.contains(stale) && !text.contains(stale) && !html.contains(stale),
                "{stale} in {subject}: {text}"
            );
        }
    }

    // Re-runs send nothing.
    for _ in 0..2 {
        clock.advance(chrono::Duration::hours(6));
        let (queued, alerts, sent) = run(&app).await;
        assert_eq!(
            (
                queued,
                alerts.compat_reports + alerts.followups + alerts.bugfix_advice,
                sent
            ),
            (0, 0, 0)
        );
    }
    assert_eq!(world.sink.count(), 2);
}

#[tokio::test]
async fn a_core_bugfix_and_a_plugin_release_in_one_run_give_one_advice() {
    let world = World::new().await;
    serve_until(&world, at("2026-07-07T00:00:00Z"), &[]);
    let (app, clock) = alerts_app(&world, "2026-07-07T06:00:00Z").await;
    let id = subscribe_instant(&app, "ops@example.org", "pretalx-pages").await;
    let map: InventoryMap = OPERATOR
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    app.store
        .set_inventory(id, &map, app.clock.now())
        .await
        .expect("inventory");
    run(&app).await;
    clock.set(at("2026-07-09T06:00:00Z"));
    serve_until(&world, at("2026-07-09T00:00:00Z"), &[]);
    let (_, alerts, _) = run(&app).await;
    assert_eq!(alerts.compat_reports, 1, "{alerts:?}");

    // One run finds a pretalx-pages release that changes its verdict and a core bugfix
    // release: the bugfix advice carries the new verdicts; no follow-up beside it.
    clock.set(at("2026-07-21T06:00:00Z"));
    let pages = [("pretalx-pages", "1.10.0", "2026-07-20T10:00:00Z")];
    serve_until(&world, at("2026-07-09T00:00:00Z"), &pages);
    let core: Vec<Row> = world.rows.clone();
    world.upstream.put_json(
        "/simple/pretalx/",
        "application/vnd.pypi.simple.v1+json",
        &pretalx::simple_page(&core, &[("2026.2.2", "2026-07-20T12:00:00Z")]),
    );
    let (queued, alerts, sent) = run(&app).await;
    assert_eq!(
        (
            queued,
            alerts.bugfix_advice,
            alerts.followups,
            alerts.compat_reports,
            sent
        ),
        (1, 1, 0, 0, 2),
        "the pretalx-pages release mail and one advice: {alerts:?}"
    );
    let all = world.sink.messages();
    let advice = all
        .iter()
        .map(|m| MessageParser::default().parse(&m.data).expect("parses"))
        .find(|p| {
            p.subject()
                .is_some_and(|s| s.starts_with("pretalx 2026.2.2 is out:"))
        })
        .expect("the bugfix advice");
    let text = advice.body_text(0).expect("text");
    assert!(
        text.contains("pretalx-pages (installed 1.9.0): LIKELY, install 1.10.0"),
        "{text}"
    );
    // The bugfix advice pins the new bugfix release and the plugin release that came with it.
    assert!(
        text.contains("pip install --upgrade-strategy eager -U pretalx==2026.2.2 pretalx-media-ccc-de==1.8.0 pretalx-pages==1.10.0 pretalx-venueless==1.9.0"),
        "{text}"
    );
    // The change was told: it never comes back as a follow-up.
    clock.advance(chrono::Duration::hours(6));
    serve_until(
        &world,
        at("2026-07-09T00:00:00Z"),
        &[
            pages[0],
            ("pretalx-venueless", "1.9.1", "2026-07-21T08:00:00Z"),
        ],
    );
    world.upstream.put_json(
        "/simple/pretalx/",
        "application/vnd.pypi.simple.v1+json",
        &pretalx::simple_page(&core, &[("2026.2.2", "2026-07-20T12:00:00Z")]),
    );
    let (_, alerts, _) = run(&app).await;
    assert_eq!(alerts.followups, 0, "{alerts:?}");
}

#[tokio::test]
async fn the_vulnerabilities_an_upgrade_fixes_are_listed() {
    let world = World::new().await;
    let doc = herald::sources::pypi::parse_release_doc(&herald::sources::http::Body {
        url: "https://pypi-mirror.test/pypi/pretalx/2.3.1/json".into(),
        final_url: url::Url::parse("https://pypi-mirror.test/pypi/pretalx/2.3.1/json")
            .expect("url"),
        content_type: Some("application/json".into()),
        bytes: common::read(&world.fixtures, "pretalx/pypi-json/2.3.1.json"),
        validators: Default::default(),
        next_link: None,
    })
    .expect("parses");
    assert_eq!(doc.vulnerabilities.len(), 4);
    assert!(
        doc.vulnerabilities.iter().all(|v| v.fixed_in == ["2.3.2"]),
        "{:?}",
        doc.vulnerabilities
    );

    serve_until(&world, at("2026-07-09T00:00:00Z"), &[]);
    let (app, _) = alerts_app(&world, "2026-07-09T06:00:00Z").await;
    run(&app).await;
    let advice = alerts::advise(&app, &inventory(&[("pretalx", "2.3.1")]))
        .await
        .expect("advice");
    let ids: Vec<&str> = advice
        .core
        .vulnerabilities_fixed
        .iter()
        .map(|v| v.id.as_str())
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    for id in [
        "GHSA-23fx-92m6-4f2g",
        "GHSA-wh3w-jcc7-mhmf",
        "PYSEC-2023-41",
        "PYSEC-2023-40",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(
        advice
            .core
            .vulnerabilities_fixed
            .iter()
            .all(|v| v.fixed_in == ["2.3.2"])
    );
    let between: Vec<&str> = advice
        .core
        .feature_releases_between
        .iter()
        .map(|r| r.version.as_str())
        .collect();
    assert_eq!(between.first(), Some(&"2023.1.0"));
    assert_eq!(between.last(), Some(&"2026.2.0"));
}

#[tokio::test]
async fn a_pip_freeze_file_becomes_an_inventory() {
    let world = World::new().await;
    serve_until(&world, at("2026-07-09T00:00:00Z"), &[]);
    let freeze = "# This file was generated by pip freeze\r\n\
        amqp==5.3.1\n\
        Django==5.2.4\n\
        -e git+https://github.com/pretalx/pretalx-youtube.git@abc123#egg=pretalx_youtube\n\
        pretalx[postgres,redis]==2026.1.2 \\\n    --hash=sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
        Pretalx_Pages==1.9.0  # pinned for the theme\n\
        pretalx.venueless==1.8.0 ; python_version >= \"3.11\"\n\
        pretalx-media-ccc-de==1.7.0\n";
    let path = world.sandbox.path("freeze.txt");
    std::fs::write(&path, freeze).expect("write");
    let projects = world.sandbox.path("projects.toml");
    std::fs::write(&projects, projects_toml()).expect("projects");
    let mut args: Vec<String> = vec![
        "subscribe".into(),
        "ops@example.org".into(),
        "--freeze".into(),
        path.display().to_string(),
    ];
    args.extend(world.args(&projects));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = world.sandbox.herald(&refs);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Inventory: pretalx==2026.1.2, pretalx-media-ccc-de==1.7.0, pretalx-pages==1.9.0, pretalx-venueless==1.8.0."),
        "{text}"
    );
    assert!(
        text.contains("Not tracked by Herald (ignored): amqp, django."),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("editable install of pretalx-youtube skipped"),
        "the editable line is reported: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_update_check_answers_for_module_names() {
    let world = World::new().await;
    serve_until(&world, at("2026-07-09T00:00:00Z"), &[]);
    let (app, _) = alerts_app(&world, "2026-07-09T06:00:00Z").await;
    run(&app).await;
    // The exact shape pretalx sends.
    let payload = json!({
        "id": "1c6e0d2a9f0b4c0e8b5f3f5d6e7a8b9c",
        "version": "2026.1.2",
        "python_version": "3.13.5",
        "database": "postgresql",
        "events": 4,
        "plugins": [{"name": "pretalx_pages", "version": "1.9.0"}, {"name": "pretalx_venueless", "version": "1.8.0"}, {"name": "pretalx_unknown", "version": "0.1"}]
    });
    let req: UpdateCheckRequest = serde_json::from_value(payload).expect("accepted");
    assert_eq!(req.plugins.len(), 3);
    let _: &CheckedPlugin = &req.plugins[0];
    let answer = alerts::update_check(&app, &req).await.expect("answer");
    let value = serde_json::to_value(&answer).expect("json");
    assert_eq!(
        value["version"],
        json!({"latest": "2026.2.1", "updatable": true})
    );
    assert_eq!(
        value["plugins"]["pretalx_pages"],
        json!({"latest": "1.9.0", "updatable": false})
    );
    assert_eq!(
        value["plugins"]["pretalx_venueless"],
        json!({"latest": "1.9.0", "updatable": true})
    );
    assert!(value["plugins"].get("pretalx_unknown").is_none());
    assert_eq!(value["herald"]["untracked"], json!(["pretalx_unknown"]));
    assert_eq!(
        value["herald"]["verdicts"]["pretalx_pages"]["verdict"],
        "unknown"
    );
    assert_eq!(
        value["herald"]["verdicts"]["pretalx_venueless"]["verdict"],
        "likely"
    );
    assert_eq!(value["herald"]["target"], "2026.2.0");
}

#[tokio::test]
async fn a_channel_with_an_inventory_gets_its_report_and_follow_up_and_nothing_twice() {
    use common::receivers::{self, Kind, Receiver};
    let world = World::new().await;
    let hook = Receiver::start(Kind::Webhook, Some(receivers::WHSEC)).await;
    let room = Receiver::start(Kind::Matrix, Some(receivers::TOKEN)).await;
    let installed: Vec<String> = OPERATOR
        .iter()
        .map(|(n, v)| format!("\"{n}=={v}\""))
        .collect();
    let channels = world.sandbox.path("channels.toml");
    std::fs::write(
        &channels,
        format!(
            r#"[[channel]]
name = "ops-hook"
kind = "webhook"
url = "{}"
secret = "{}"
messages = ["release", "compat_report", "compat_followup", "bugfix_advice"]
installed = [{}]

[[channel]]
name = "compat-room"
kind = "matrix"
url = "{}"
room = "{}"
secret = "{}"
messages = ["compat_report"]
installed = [{}]
"#,
            hook.url(),
            receivers::WHSEC,
            installed.join(", "),
            room.url(),
            receivers::ROOM,
            receivers::TOKEN,
            installed.join(", "),
        ),
    )
    .expect("write channels");
    serve_until(&world, at("2026-07-07T00:00:00Z"), &[]);
    let projects = world.sandbox.projects(&projects_toml());
    let channels = channels.display().to_string();
    let (app, clock) = world
        .app()
        .projects(&projects)
        .at("2026-07-07T06:00:00Z")
        .flags(&["--channels", &channels])
        .build()
        .await;
    run(&app).await;
    assert!(
        hook.requests().is_empty() && room.requests().is_empty(),
        "the baseline alerts nobody"
    );

    let of_type = |t: &str| -> Vec<serde_json::Value> {
        hook.accepted()
            .iter()
            .map(|g| g.json())
            .filter(|e| e["type"] == t)
            .collect()
    };
    clock.set(at("2026-07-09T06:00:00Z"));
    serve_until(&world, at("2026-07-09T00:00:00Z"), &[]);
    let (_, alerts, _) = run(&app).await;
    assert_eq!(
        (
            alerts.compat_reports,
            alerts.bugfix_advice,
            alerts.followups
        ),
        (2, 0, 0),
        "{alerts:?}"
    );
    let reports = of_type("compat.report");
    assert_eq!(reports.len(), 1, "{:?}", hook.accepted());
    let data = &reports[0]["data"];
    assert_eq!(data["target"], "2026.2.0");
    assert_eq!(data["upgrade_to"], "2026.2.1");
    assert_eq!(data["channel"], "ops-hook");
    let pages = data["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["plugin"] == "pretalx-pages")
        .expect("pages");
    assert_eq!(pages["verdict"], "unknown");
    assert!(
        data["text"].as_str().is_some_and(
            |t| t.starts_with("pretalx 2026.2.0 and 2026.2.1 are out: 2 of your 4 plugins")
        ),
        "{data}"
    );
    assert!(!of_type("release.published").is_empty(), "the releases too");
    let events = room.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0]["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("pretalx 2026.2.0 and 2026.2.1 are out:")
                && b.contains("pretalx-venueless: likely, install 1.9.0")),
        "{events:?}"
    );

    // A pretalx-pages release flips its verdict: a follow-up for the channel that wants one.
    clock.set(at("2026-07-21T06:00:00Z"));
    serve_until(
        &world,
        at("2026-07-09T00:00:00Z"),
        &[("pretalx-pages", "1.10.0", "2026-07-20T10:00:00Z")],
    );
    let (_, alerts, _) = run(&app).await;
    assert_eq!(alerts.followups, 1, "{alerts:?}");
    let follow = of_type("compat.followup");
    assert_eq!(follow.len(), 1);
    assert_eq!(
        follow[0]["data"]["changed"],
        serde_json::json!(["pretalx-pages"])
    );
    assert_eq!(room.events().len(), 1, "compat-room takes reports only");

    // Re-runs send nothing anywhere.
    let before = (hook.requests().len(), room.requests().len());
    for _ in 0..2 {
        clock.advance(chrono::Duration::hours(6));
        let (_, alerts, _) = run(&app).await;
        assert_eq!(
            alerts.compat_reports + alerts.followups + alerts.bugfix_advice,
            0
        );
    }
    assert_eq!((hook.requests().len(), room.requests().len()), before);
}
