//! The real PyPI and GitHub documents in `fixtures/` are read correctly: releases without
//! files, yanked releases and their reasons in both PyPI APIs, GitHub pre-release flags,
//! empty names, drafts and `Link` pagination with real headers.

use crate::common;

use std::collections::HashMap;

use common::{Upstream, World, at, run_check};
use herald::app::App;
use herald::store::{ReleaseFilter, ReleaseRow};
use serde_json::Value;

async fn releases(app: &App) -> HashMap<String, ReleaseRow> {
    app.store
        .releases(&ReleaseFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|r| (r.version.clone(), r))
        .collect()
}

fn pypi_project(upstream: &Upstream, name: &str) -> String {
    let _ = upstream;
    format!("[[project]]\nname = \"{name}\"\npypi = \"{name}\"\n")
}

#[tokio::test]
async fn luigi_json_api_keeps_file_less_releases_unavailable() {
    let dir = common::fixtures();
    let doc: Value = serde_json::from_slice(&common::read(&dir, "pypi/luigi.json")).expect("json");
    let world = World::new().await;
    let upstream = &world.upstream;
    // An index without PEP 691 JSON answers the Simple API in HTML: Herald falls back.
    upstream.put(
        "/simple/luigi/",
        "text/html",
        "<html><body><a href=\"x\">luigi-1.0.tar.gz</a></body></html>",
    );
    upstream.put(
        "/pypi/luigi/json",
        "application/json",
        common::read(&dir, "pypi/luigi.json"),
    );
    let projects = world.sandbox.projects(&pypi_project(upstream, "luigi"));
    let (app, _) = world
        .app()
        .projects(&projects)
        .at("2026-11-22T06:00:00Z")
        .build()
        .await;
    let summary = run_check(&app).await;
    assert_eq!(summary.exit_code(), 0, "{summary:#?}");
    let got = releases(&app).await;
    let map = doc["releases"].as_object().expect("releases");
    assert_eq!(got.len(), map.len(), "every version recorded");
    for (version, files) in map {
        let row = got
            .get(version)
            .unwrap_or_else(|| panic!("{version} missing"));
        let has_files = !files.as_array().expect("files").is_empty();
        assert_eq!(
            row.available_at.is_some(),
            has_files,
            "{version}: available iff it has files"
        );
        if !has_files {
            assert!(row.published_at.is_none(), "{version} has no upload time");
        }
    }
    assert!(got["1.0.8"].available_at.is_none() && got["1.0.21"].available_at.is_none());
    assert_eq!(got["3.0.0b1"].class.as_str(), "prerelease");
    assert_eq!(got["3.6.0"].class.as_str(), "feature");
    // Earliest upload among the files.
    let earliest = map["3.6.0"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["upload_time_iso_8601"].as_str())
        .map(at)
        .min();
    assert_eq!(got["3.6.0"].published_at, earliest);
}

#[tokio::test]
async fn black_yanked_release_with_its_reason_in_both_apis() {
    let dir = common::fixtures();
    for simple in [true, false] {
        let world = World::new().await;
        let upstream = &world.upstream;
        if simple {
            upstream.put(
                "/simple/black/",
                "application/vnd.pypi.simple.v1+json",
                common::read(&dir, "pypi/black.simple-v1.json"),
            );
        } else {
            upstream.put("/simple/black/", "text/html", "<html></html>");
            upstream.put(
                "/pypi/black/json",
                "application/json",
                common::read(&dir, "pypi/black.json"),
            );
        }
        let projects = world.sandbox.projects(&pypi_project(upstream, "black"));
        let (app, _) = world
            .app()
            .projects(&projects)
            .at("2026-11-22T06:00:00Z")
            .build()
            .await;
        assert_eq!(run_check(&app).await.exit_code(), 0);
        let got = releases(&app).await;
        assert_eq!(got.len(), 2, "simple={simple}");
        let yanked = &got["21.11b0"];
        assert!(yanked.yanked, "simple={simple}");
        assert_eq!(
            yanked.yanked_reason.as_deref(),
            Some("Broken regex dependency. Use 21.11b1 instead.")
        );
        assert!(!got["19.10b0"].yanked);
        assert_eq!(
            got["19.10b0"].published_at,
            Some(at("2019-10-28T23:53:54.000711Z"))
        );
    }
}

#[tokio::test]
async fn isodate_yanked_as_a_reason_string_in_the_simple_api() {
    let dir = common::fixtures();
    let world = World::new().await;
    let upstream = &world.upstream;
    upstream.put(
        "/simple/isodate/",
        "application/vnd.pypi.simple.v1+json",
        common::read(&dir, "pypi/isodate.simple-v1.json"),
    );
    let projects = world.sandbox.projects(&pypi_project(upstream, "isodate"));
    let (app, _) = world
        .app()
        .projects(&projects)
        .at("2026-11-22T06:00:00Z")
        .build()
        .await;
    assert_eq!(run_check(&app).await.exit_code(), 0);
    let got = releases(&app).await;
    let r = &got["0.7.0"];
    assert!(r.yanked);
    assert_eq!(
        r.yanked_reason.as_deref(),
        Some("fails for py2.7 but is not marked as py3 only.")
    );
    assert_eq!(r.class.as_str(), "feature");
    // The request asked for PEP 691 JSON.
    let requests = upstream.requests().await;
    let accept = requests[0]
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(accept, "application/vnd.pypi.simple.v1+json");
}

#[tokio::test]
async fn github_releases_with_prerelease_flags_empty_names_drafts_and_pages() {
    let dir = common::fixtures();
    let mut releases_doc: Vec<Value> = serde_json::from_slice(&common::read(
        &dir,
        "github/releases_offirgolan_ember-cp-validations.json",
    ))
    .expect("json");
    assert_eq!(releases_doc.len(), 30);
    // No public recording shows a draft: flip one on a copy of a real item, as GitHub would
    // show it (no publication date).
    let mut draft = releases_doc[1].clone();
    draft["draft"] = Value::Bool(true);
    draft["published_at"] = Value::Null;
    draft["tag_name"] = Value::String("v9.9.9".into());
    releases_doc.insert(0, draft);

    // The real single release object and its real ETag from octokit's recording.
    let raw: Vec<Value> = serde_json::from_slice(&common::read(
        &dir,
        "github/octokit_release-assets.raw-fixture.json",
    ))
    .expect("json");
    let exchange = raw
        .iter()
        .find(|x| {
            x["method"] == "get"
                && x["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/releases/tags/v1.0.0"))
        })
        .expect("recorded release");
    let headers = exchange["rawHeaders"].as_array().expect("headers");
    let etag = headers
        .chunks(2)
        .find(|pair| {
            pair[0]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case("etag"))
        })
        .and_then(|pair| pair[1].as_str())
        .expect("real ETag")
        .to_string();
    let octokit_release = exchange["response"].clone();

    let world = World::new().await;
    let upstream = &world.upstream;
    let repo = "/repos/offirgolan/ember-cp-validations/releases";
    // Pages as GitHub links them: later pages live under /repositories/<id>/ (follow, never rebuild).
    let later = "/repositories/515435940/releases";
    let page_link = |page: usize, last: usize| {
        format!(
            "<{u}{later}?per_page=100&page={page}>; rel=\"next\", <{u}{later}?per_page=100&page={last}>; rel=\"last\"",
            u = upstream.url()
        )
    };
    upstream.put_with_headers(
        &format!("{repo}?per_page=100"),
        "application/json; charset=utf-8",
        serde_json::to_vec(&releases_doc[..16]).expect("json"),
        &[("link", page_link(2, 3).as_str())],
    );
    upstream.put_with_headers(
        &format!("{later}?per_page=100&page=2"),
        "application/json; charset=utf-8",
        serde_json::to_vec(&releases_doc[16..]).expect("json"),
        &[("link", page_link(3, 3).as_str())],
    );
    upstream.put_with_headers(
        &format!("{later}?per_page=100&page=3"),
        "application/json; charset=utf-8",
        serde_json::to_vec(&vec![octokit_release]).expect("json"),
        &[("etag", etag.as_str())],
    );
    let projects = world.sandbox.projects("[[project]]\nname = \"ember-cp-validations\"\ngithub = \"offirgolan/ember-cp-validations\"\n");
    let (app, _) = world
        .app()
        .projects(&projects)
        .at("2026-11-22T06:00:00Z")
        .build()
        .await;
    let summary = run_check(&app).await;
    assert_eq!(summary.exit_code(), 0, "{summary:#?}");
    let got = releases(&app).await;
    assert_eq!(
        got.len(),
        31,
        "30 real releases + the octokit one, no draft: {:?}",
        got.keys().collect::<Vec<_>>()
    );
    assert!(!got.contains_key("9.9.9"), "drafts are skipped");
    let beta = &got["4.0.0b0"];
    assert_eq!(beta.class.as_str(), "prerelease");
    assert_eq!(beta.sources[0].prerelease_flag, Some(true));
    assert_eq!(beta.sources[0].raw, "v4.0.0-beta.0");
    let flagged = got
        .values()
        .filter(|r| r.sources[0].prerelease_flag == Some(true))
        .count();
    assert_eq!(flagged, 7);
    assert_eq!(got["3.5.1"].class.as_str(), "bugfix");
    assert!(
        got["3.5.1"].sources[0]
            .notes
            .as_deref()
            .is_some_and(|n| !n.is_empty())
    );
    assert_eq!(got["1.0.0"].sources[0].raw, "v1.0.0");

    // Unchanged upstream: the real ETag goes back exactly as received.
    upstream.forget_requests().await;
    let again = run_check(&app).await;
    assert_eq!(again.requests, 1);
    assert_eq!(again.not_modified, 1);
    let requests = upstream.requests().await;
    let sent = requests[0]
        .headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .expect("validator");
    assert!(
        sent.starts_with("W/\""),
        "computed ETag of page 1 sent back: {sent}"
    );
    assert_eq!(
        requests[0]
            .headers
            .get("x-github-api-version")
            .and_then(|v| v.to_str().ok()),
        Some("2022-11-28")
    );
    let stored = app.store.validators().await.expect("validators");
    let page3 = stored
        .iter()
        .find(|(url, _)| url.ends_with("page=3"))
        .map(|(_, v)| v.etag.clone())
        .expect("page 3 validators");
    assert_eq!(page3.as_deref(), Some(etag.as_str()));
}

#[tokio::test]
async fn a_link_to_another_host_is_not_followed() {
    let world = World::new().await;
    let upstream = &world.upstream;
    upstream.put_with_headers(
        "/repos/o/r/releases?per_page=100",
        "application/json",
        r#"[{"tag_name": "v1.0.0", "name": "", "draft": false, "prerelease": false, "published_at": "2026-01-01T00:00:00Z", "html_url": "https://github.com/o/r/releases/tag/v1.0.0", "body": null}]"#,
        &[("link", "<https://evil.example/steal?page=2>; rel=\"next\"")],
    );
    let projects = world
        .sandbox
        .projects("[[project]]\nname = \"r\"\ngithub = \"o/r\"\n");
    let config = world
        .app()
        .projects(&projects)
        .flags(&["--github-token", "ghp_secret_token_value"])
        .config();
    let app = App::build(config).await.expect("app");
    let summary = run_check(&app).await;
    assert_eq!(summary.exit_code(), 2);
    let (_, failed) = summary.failed_sources().next().expect("github failed");
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("another host"), "{error}");
    assert!(!error.contains("ghp_secret"), "{error}");
    let requests = upstream.requests().await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer ghp_secret_token_value")
    );
}

#[tokio::test]
async fn limits_retries_compression_and_unreadable_tags() {
    let world = World::new().await;
    let upstream = &world.upstream;
    upstream.put(
        "/simple/big/",
        "application/vnd.pypi.simple.v1+json",
        vec![b' '; 10_000],
    );
    upstream.put(
        "/repos/o/r/releases?per_page=100",
        "application/json",
        r#"[{"tag_name": "nightly", "name": "", "draft": false, "prerelease": true, "published_at": "2026-01-01T00:00:00Z"},
            {"tag_name": "v1.0.0", "name": "", "draft": false, "prerelease": false, "published_at": "2026-01-01T00:00:00Z"}]"#,
    );
    upstream.fault("/simple/down/", common::Fault::Status(503));
    let projects = world.sandbox.projects(
        "[[project]]\nname = \"big\"\npypi = \"big\"\n\n[[project]]\nname = \"r\"\ngithub = \"o/r\"\n\n[[project]]\nname = \"down\"\npypi = \"down\"\n",
    );
    let config = world
        .app()
        .projects(&projects)
        .flags(&["--max-body-bytes", "2048"])
        .config();
    let app = App::build(config).await.expect("app");
    let summary = run_check(&app).await;
    let report = |name: &str| {
        summary
            .projects
            .iter()
            .find(|p| p.project == name)
            .map(|p| p.sources[0].clone())
            .expect("report")
    };
    let big = report("big").error.unwrap_or_default();
    assert!(big.contains("larger than the 2048-byte limit"), "{big}");
    let r = report("r");
    assert_eq!(r.listed, 1);
    assert_eq!(r.warnings.len(), 1);
    assert!(
        r.warnings[0].contains("`nightly` is not a PEP 440 version"),
        "{:?}",
        r.warnings
    );
    let down = report("down").error.unwrap_or_default();
    assert!(down.contains("HTTP 503"), "{down}");
    let requests = upstream.requests().await;
    let tries = requests
        .iter()
        .filter(|q| q.url.path() == "/simple/down/")
        .count();
    assert_eq!(
        tries, 2,
        "one retry after a 5xx (HERALD_HTTP_RETRIES=1 in tests)"
    );
    for q in &requests {
        let enc = q
            .headers
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(enc.contains("gzip"), "{enc}");
    }
}
