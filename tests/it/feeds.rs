//! Feeds: every real document in `fixtures/feeds` is read as feed-rs itself expects, the
//! broken one fails only its own source, a page that links its feed is followed, and a page
//! without a feed yields its release posts.

use crate::common;

use std::path::Path;

use common::{Upstream, World, at, run_check};
use herald::check::SourceStatus;
use herald::sources::feed::{entries, read_feed};
use herald::store::ReleaseFilter;
use serde_json::Value;

fn project(name: &str) -> herald::model::Project {
    herald::model::Project {
        name: name.into(),
        scheme: herald::model::Scheme::Pep440,
        pypi: None,
        github: None,
        feed: url::Url::parse("https://example.org/feed").ok(),
        plugin_of: None,
        module: None,
        tag_prefix: None,
        upgrade_steps: Vec::new(),
        compat: Vec::new(),
    }
}

fn expected_link(entry: &Value) -> Option<String> {
    let links = entry["links"].as_array()?;
    links
        .iter()
        .find(|l| l["rel"].is_null() || l["rel"] == "alternate")
        .or(links.first())
        .and_then(|l| l["href"].as_str())
        .map(str::to_string)
}

#[test]
fn every_feed_reads_as_feed_rs_expects() {
    let dir = common::fixtures();
    let mut compared = 0;
    for entry in std::fs::read_dir(dir.join("feeds")).expect("feeds dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !(name.ends_with(".xml") || name.ends_with(".json")) || name.contains("invalid") {
            continue;
        }
        let stem = Path::new(&name)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let expected_path = dir
            .join("feeds/expected")
            .join(format!("{stem}.serde.json"));
        let Ok(expected_text) = std::fs::read(&expected_path) else {
            panic!("no expected result for {name}");
        };
        let expected: Value = serde_json::from_slice(&expected_text).expect("expected JSON");
        let got = read_feed(&std::fs::read(&path).expect("read"), &name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = expected["entries"].as_array().expect("entries");
        assert_eq!(got.len(), want.len(), "{name}: entry count");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                g.title.as_deref(),
                w["title"]["content"].as_str().map(str::trim),
                "{name}: title"
            );
            assert_eq!(g.link, expected_link(w), "{name}: link");
            let date = |v: &Value| v.as_str().map(at);
            assert_eq!(g.published, date(&w["published"]), "{name}: published");
            assert_eq!(g.updated, date(&w["updated"]), "{name}: updated");
        }
        compared += 1;
    }
    assert_eq!(compared, 5, "all five readable feeds compared");
}

#[test]
fn release_feeds_yield_versions_and_other_feeds_none() {
    let dir = common::fixtures();
    let atom = common::read(&dir, "feeds/atom_example_6.xml");
    let found = entries(&atom, "atom_example_6.xml", &project("feed-rs")).expect("reads");
    let versions: Vec<String> = found.iter().map(|o| o.version.to_string()).collect();
    assert_eq!(versions, ["0.2.0", "0.1.3", "0.1.1", "0.1.0"]);
    assert_eq!(
        found[0].url.as_deref(),
        Some("https://github.com/feed-rs/feed-rs/releases/tag/v0.2.0")
    );
    assert_eq!(found[0].published_at, Some(at("2020-01-19T05:08:59Z")));
    for (file, name) in [
        ("feeds/rss_2.0_matrix.xml", "matrix"),
        ("feeds/rss_2.0_ghost_2.xml", "ghost"),
        ("feeds/atom_example_7.xml", "gnome"),
        ("feeds/jsonfeed_example_1.json", "daringfireball"),
    ] {
        let got = entries(&common::read(&dir, file), file, &project(name)).expect("reads");
        assert!(got.is_empty(), "{file}: {got:?}");
    }
    let broken = common::read(&dir, "feeds/rss_2.0_invalid_1.xml");
    let err = entries(
        &broken,
        "https://example.org/broken.xml",
        &project("reuters"),
    )
    .expect_err("broken feed");
    assert!(
        err.to_string().contains("https://example.org/broken.xml"),
        "{err}"
    );
}

fn feed_projects(upstream: &Upstream, feeds: &[(&str, &str)]) -> String {
    feeds
        .iter()
        .map(|(name, path)| {
            format!(
                "[[project]]\nname = \"{name}\"\nfeed = \"{}{path}\"\n\n",
                upstream.url()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_broken_feed_fails_only_its_source() {
    let dir = common::fixtures();
    let world = World::new().await;
    let upstream = &world.upstream;
    upstream.put(
        "/broken.xml",
        "application/rss+xml",
        common::read(&dir, "feeds/rss_2.0_invalid_1.xml"),
    );
    upstream.put(
        "/feed-rs/releases.atom",
        "application/atom+xml",
        common::read(&dir, "feeds/atom_example_6.xml"),
    );
    let projects = world.sandbox.projects(&feed_projects(
        upstream,
        &[
            ("reuters", "/broken.xml"),
            ("feed-rs", "/feed-rs/releases.atom"),
        ],
    ));
    let (app, _) = world
        .app()
        .projects(&projects)
        .at("2026-11-22T06:00:00Z")
        .build()
        .await;
    let summary = run_check(&app).await;
    assert_eq!(summary.exit_code(), 2);
    let failed: Vec<_> = summary.failed_sources().collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "reuters");
    let error = failed[0].1.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("/broken.xml") && error.contains("not a readable"),
        "{error}"
    );
    let recorded = app
        .store
        .releases(&ReleaseFilter::default())
        .await
        .expect("list");
    assert_eq!(recorded.len(), 4);
    assert!(recorded.iter().all(|r| r.project == "feed-rs"));
}

#[tokio::test]
async fn a_page_that_links_its_feed_is_followed() {
    let dir = common::fixtures();
    let world = World::new().await;
    let upstream = &world.upstream;
    upstream.put(
        "/feed-rs/",
        "text/html; charset=utf-8",
        std::fs::read("tests/fixtures/news_page_with_feed.html").expect("page"),
    );
    upstream.put(
        "/feed-rs/releases.atom",
        "application/atom+xml",
        common::read(&dir, "feeds/atom_example_6.xml"),
    );
    let projects = world
        .sandbox
        .projects(&feed_projects(upstream, &[("feed-rs", "/feed-rs/")]));
    let (app, _) = world
        .app()
        .projects(&projects)
        .at("2026-11-22T06:00:00Z")
        .build()
        .await;
    let summary = run_check(&app).await;
    assert_eq!(summary.exit_code(), 0, "{summary:#?}");
    let recorded = app
        .store
        .releases(&ReleaseFilter::default())
        .await
        .expect("list");
    let versions: Vec<&str> = recorded.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(versions, ["0.2.0", "0.1.3", "0.1.1", "0.1.0"]);
    assert_eq!(
        recorded[0].sources[0].url.as_deref(),
        Some("https://github.com/feed-rs/feed-rs/releases/tag/v0.2.0")
    );

    // The next run goes straight to the feed it found, with validators: a 304.
    upstream.forget_requests().await;
    let again = run_check(&app).await;
    assert_eq!(again.projects[0].sources[0].status, SourceStatus::Unchanged);
    let requests = upstream.requests().await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), "/feed-rs/releases.atom");
}

#[tokio::test]
async fn a_page_without_a_feed_yields_its_release_posts() {
    let world = World::new().await;
    let upstream = &world.upstream;
    upstream.put(
        "/p/news/",
        "text/html; charset=utf-8",
        std::fs::read("tests/fixtures/news_page.html").expect("page"),
    );
    let projects = world.sandbox.projects(&format!(
        "[[project]]\nname = \"pretalx\"\nfeed = \"{}/p/news/\"\n",
        upstream.url()
    ));
    let (app, _) = world
        .app()
        .projects(&projects)
        .at("2026-11-22T06:00:00Z")
        .build()
        .await;
    let summary = run_check(&app).await;
    assert_eq!(summary.exit_code(), 0, "{summary:#?}");
    let mut recorded = app
        .store
        .releases(&ReleaseFilter::default())
        .await
        .expect("list");
    recorded.sort_by(|a, b| a.parsed.cmp(&b.parsed));
    let found: Vec<(&str, Option<&str>)> = recorded
        .iter()
        .map(|r| (r.version.as_str(), r.sources[0].url.as_deref()))
        .collect();
    let base = upstream.url();
    assert_eq!(
        found,
        [
            (
                "2025.2.0",
                Some(format!("{base}/p/news/releasing-pretalx-2025-2-0/").as_str())
            ),
            (
                "2026.1",
                Some(format!("{base}/p/news/releasing-pretalx-2026-1-0/").as_str())
            ),
            (
                "2026.2.0",
                Some(format!("{base}/p/news/releasing-pretalx-2026-2-0/").as_str())
            ),
        ]
    );
}
