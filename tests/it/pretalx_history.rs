//! pretalx's real history through the real binary: every one of the 48 releases recorded
//! once with the right class, a baseline that announces nothing, a served pre-release that
//! is announced as one, and a quiet re-run made of 304s.

use crate::common;

use common::World;
use common::pretalx::{self, FEATURES};
use serde_json::Value;

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "herald failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_history_is_recorded_with_the_right_classes() {
    let world = World::new().await;
    let (rows, upstream, sandbox) = (&world.rows, &world.upstream, &world.sandbox);
    assert_eq!(rows.len(), 48);
    world.release_2026_2_1();
    let projects = world.pretalx_projects("");
    let base = world.args(&projects);
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(base.iter().cloned());
        v
    };
    let args = |extra: &[&str]| with(extra);
    let run = |extra: &[&str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        sandbox.herald(&refs)
    };

    // First run: a baseline. Everything recorded, nothing announced.
    let first = json_of(&run(&["check", "--json"]));
    assert_eq!(
        first["projects"][0]["new"].as_array().map(Vec::len),
        Some(0),
        "{first:#}"
    );
    assert_eq!(first["projects"][0]["recorded"], 48);

    let listed = json_of(&run(&["releases", "--json"]));
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 48, "exactly the 48 releases");
    for row in rows {
        let found: Vec<&Value> = listed
            .iter()
            .filter(|r| r["version"] == row.version.as_str())
            .collect();
        assert_eq!(found.len(), 1, "{} listed once", row.version);
        let r = found[0];
        let expected = if FEATURES.contains(&row.version.as_str()) {
            "feature"
        } else {
            "bugfix"
        };
        assert_eq!(r["class"], expected, "class of {}", row.version);
        assert_eq!(r["project"], "pretalx");
        assert_eq!(r["yanked"], false);
        let published =
            chrono::DateTime::parse_from_rfc3339(r["published_at"].as_str().expect("date"))
                .expect("rfc3339");
        assert_eq!(published, row.published(), "date of {}", row.version);
        let sources: Vec<&str> = r["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .map(|s| s["source"].as_str().expect("source"))
            .collect();
        assert!(
            sources.contains(&"pypi") && sources.contains(&"github"),
            "{} seen on {sources:?}",
            row.version
        );
        let github = r["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .find(|s| s["source"] == "github")
            .expect("github");
        assert_eq!(
            github["url"],
            format!(
                "https://github.com/pretalx/pretalx/releases/tag/{}",
                row.git_tag
            )
        );
    }
    for (version, class, line) in [
        ("0.2.0.post1", "feature", "0.2"),
        ("2.3.2", "bugfix", "2.3"),
        ("2023.1.0", "feature", "2023.1"),
        ("2026.2.1", "bugfix", "2026.2"),
    ] {
        let r = listed
            .iter()
            .find(|r| r["version"] == version)
            .expect(version);
        assert_eq!(
            (r["class"].as_str(), r["line"].as_str()),
            (Some(class), Some(line))
        );
    }
    // Newest first.
    assert_eq!(listed[0]["version"], "2026.2.1");
    assert_eq!(listed[47]["version"], "0.1.0");
    // The blog post of a feature release also stands for its bugfix releases.
    let fix = listed
        .iter()
        .find(|r| r["version"] == "2025.2.1")
        .expect("2025.2.1");
    let feed = fix["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["source"] == "feed")
        .expect("feed evidence");
    assert_eq!(
        feed["url"],
        "https://pretalx.com/p/news/releasing-pretalx-2025-2-0/"
    );
    // The tag v0.2.0 and the post release-pretalx-v0.2 are evidence of 0.2.0.post1.
    let post = listed
        .iter()
        .find(|r| r["version"] == "0.2.0.post1")
        .expect("0.2.0.post1");
    assert_eq!(
        post["sources"].as_array().map(Vec::len),
        Some(3),
        "{post:#}"
    );

    // A second run against the unchanged upstream: validators on every request, all 304.
    upstream.forget_requests().await;
    let second = json_of(&run(&["check", "--json"]));
    assert_eq!(second["requests"], second["not_modified"], "{second:#}");
    let requests = upstream.requests().await;
    assert_eq!(
        requests.len(),
        3,
        "one request per source: {:?}",
        requests
            .iter()
            .map(|r| r.url.to_string())
            .collect::<Vec<_>>()
    );
    for req in &requests {
        assert!(
            req.headers.get("if-none-match").is_some(),
            "no validator sent to {}",
            req.url
        );
        assert!(
            req.headers.get("if-modified-since").is_some(),
            "no date validator sent to {}",
            req.url
        );
        let ua = req
            .headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(ua.starts_with("herald/"), "{ua}");
    }

    // A development release is served: announced as a prerelease.
    pretalx::serve_history(
        upstream,
        rows,
        &[("2026.3.0.dev0", "2026-11-20T10:00:00.000000Z")],
    );
    let third = run(&["check"]);
    let text = String::from_utf8_lossy(&third.stdout);
    assert!(third.status.success(), "{text}");
    assert!(
        text.contains("announced new: 2026.3.0.dev0 (prerelease)"),
        "{text}"
    );
    let listed = json_of(&run(&["releases", "--json", "--project", "pretalx"]));
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 49);
    let dev = listed
        .iter()
        .find(|r| r["version"] == "2026.3.0.dev0")
        .expect("dev release");
    assert_eq!(dev["class"], "prerelease");
    assert_eq!(dev["line"], "2026.3");

    // And again: nothing new.
    let fourth = json_of(&run(&["check", "--json"]));
    assert_eq!(
        fourth["projects"][0]["new"].as_array().map(Vec::len),
        Some(0)
    );
    let only_pre = json_of(&run(&["releases", "--json", "--class", "prerelease"]));
    assert_eq!(only_pre.as_array().map(Vec::len), Some(1));
}
