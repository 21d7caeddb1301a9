//! The project history, the compatibility board and the advise form over real HTTP, on
//! pretalx's and its plugins' real history: what they show, their conditional answers (`304`
//! on a matching `If-None-Match` / `If-Modified-Since`, a new `ETag` after a new release), and
//! hostile input (script in release notes, a 100,000-character version, 64 KiB of garbage for
//! `pip freeze`) answered without a 500.

use crate::common;

use common::pretalx::{self, FEATURES};
use common::site::{PLUGINS, plugin_site, serve_plugin_world, site};
use common::{at, fixtures, read};
use herald::check::{self, CheckOptions};
use reqwest::StatusCode;

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test]
async fn the_pretalx_page_lists_48_releases_and_draws_48_marks() {
    let site = site(48).await;
    let (status, body, headers) = site.get("/projects/pretalx").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    assert_eq!(count(&body, "<tr class=\"release "), 48, "{body}");
    assert_eq!(count(&body, "class=\"mark "), 48);
    for row in &site.rows {
        let class = if FEATURES.contains(&row.version.as_str()) {
            "feature"
        } else {
            "bugfix"
        };
        assert!(
            body.contains(&format!(
                "<tr class=\"release {class}\" data-version=\"{}\">",
                row.version
            )),
            "{} as {class}",
            row.version
        );
        assert!(
            body.contains(&format!(
                "<title>pretalx {}: {class} release, ",
                row.version
            )),
            "a mark titled for {}",
            row.version
        );
    }
    assert_eq!(count(&body, "class=\"mark feature\""), FEATURES.len());
    // Newest first: 2026.2.1 comes before 2026.2.0, which comes before 0.1.0.
    let pos = |v: &str| {
        body.find(&format!("data-version=\"{v}\""))
            .unwrap_or_else(|| panic!("{v}"))
    };
    assert!(pos("2026.2.1") < pos("2026.2.0") && pos("2026.2.0") < pos("0.1.0"));
    // Lines are spans; links go to the package page, the GitHub release and the blog post.
    assert!(body.contains("<title>line 2025.2: "), "a span for 2025.2");
    // minijinja escapes `/` in attributes as `&#x2f;`.
    let row_2026_2_0 = body[pos("2026.2.0")..pos("2026.1.2")].replace("&#x2f;", "/");
    assert!(
        row_2026_2_0.contains("https://github.com/pretalx/pretalx/releases/tag/v2026.2.0"),
        "{row_2026_2_0}"
    );
    assert!(body.contains("Release notes of pretalx 2026.2.0."));
    let (status, _, _) = site.get("/projects/pretalx-pages").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = site.get("/projects/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("No such project"), "{body}");
    let (status, _, _) = site.get("/projects/pretalx?page=2").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "48 releases fit on one page");
    let (status, _, _) = site.get("/projects/pretalx?page=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The `ETag` and `Last-Modified` of an answer, and its `Cache-Control`.
fn validators(headers: &reqwest::header::HeaderMap) -> (String, String, String) {
    let get = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .expect("ascii")
            .to_string()
    };
    (get("etag"), get("last-modified"), get("cache-control"))
}

#[tokio::test]
async fn feeds_and_pages_answer_304_and_a_new_release_changes_the_etag() {
    let site = site(47).await;
    let paths = [
        "/releases.atom",
        "/releases.json",
        "/releases.json?project=pretalx&class=feature",
        "/compat.json",
        "/projects/pretalx",
        "/compat",
    ];
    let mut before = Vec::new();
    for path in paths {
        let (status, body, headers) = site.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let (etag, modified, cache) = validators(&headers);
        if path.starts_with("/releases") || path.starts_with("/compat.json") {
            assert_eq!(
                cache, "public, max-age=900",
                "{path}: feeds may be kept a while"
            );
        } else {
            assert_eq!(cache, "no-cache", "{path}: pages are revalidated each time");
        }
        // A second request renders nothing new: the same validators.
        let (_, again, headers) = site.get(path).await;
        assert_eq!(validators(&headers).0, etag, "{path}");
        assert_eq!(again, body, "{path}");
        let list = format!("\"other\", W/{etag}");
        for conditional in [
            vec![("if-none-match", etag.as_str())],
            vec![("if-modified-since", modified.as_str())],
            vec![("if-none-match", list.as_str())],
        ] {
            let (status, body, headers) = site.get_with(path, &conditional).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{path} {conditional:?}");
            assert!(body.is_empty());
            assert_eq!(validators(&headers).0, etag);
        }
        let (status, _, _) = site
            .get_with(path, &[("if-none-match", "\"not-it\"")])
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{path}: another ETag gets the answer"
        );
        before.push((path, etag, modified, body));
    }

    // pretalx 2026.2.1 comes out and is recorded: every answer changes.
    pretalx::serve_history(&site.upstream, &site.rows, &[]);
    site.clock.advance(chrono::Duration::hours(1));
    check::run(&site.app, &CheckOptions::default())
        .await
        .expect("check");
    for (path, etag, modified, old_body) in &before {
        let (status, body, headers) = site.get_with(path, &[("if-none-match", etag)]).await;
        if [
            "/compat.json",
            "/compat",
            "/releases.json?project=pretalx&class=feature",
        ]
        .contains(path)
        {
            // A bugfix release adds no column to the board and nothing to a feed of feature
            // releases: they are unchanged and still a 304.
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
            assert_eq!(&validators(&headers).1, modified, "{path} keeps its date");
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_ne!(&validators(&headers).0, etag, "{path}: a new ETag");
        assert_ne!(&body, old_body);
        if *path != "/releases.json?project=pretalx&class=feature" {
            assert!(body.contains("2026.2.1"), "{path}");
        }
        let (status, _, _) = site
            .get_with(path, &[("if-modified-since", modified)])
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{path}: modified since the old date"
        );
    }
}

fn cell<'a>(board: &'a serde_json::Value, plugin: &str, release: &str) -> &'a serde_json::Value {
    let row = board["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["name"] == plugin)
        .unwrap_or_else(|| panic!("{plugin} on the board"));
    &row["cells"][release]
}

#[tokio::test]
async fn the_board_on_the_day_2026_2_0_came_out_and_after_pages_1_10_0() {
    let site = plugin_site("2026-07-09T00:00:00Z", "2026-07-09T06:00:00Z").await;
    let (status, body, headers) = site.get("/compat.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let etag = validators(&headers).0;
    let board: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(board["core"], "pretalx");
    let releases: Vec<&str> = board["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        releases,
        [
            "2026.2.0", "2026.1.0", "2025.2.0", "2025.1.0", "2024.3.0", "2024.2.0"
        ]
    );
    for (plugin, install) in [
        ("pretalx-venueless", "1.9.0"),
        ("pretalx-media-ccc-de", "1.8.0"),
    ] {
        let c = cell(&board, plugin, "2026.2.0");
        assert_eq!(c["verdict"], "likely", "{plugin}: {c}");
        assert_eq!(c["install"], install, "{plugin}: {c}");
        assert_eq!(c["override"], false);
        assert!(
            c["evidence"]
                .as_str()
                .expect("evidence")
                .contains("2026-07-08"),
            "{c}"
        );
    }
    for plugin in ["pretalx-pages", "pretalx-public-voting"] {
        let c = cell(&board, plugin, "2026.2.0");
        assert_eq!(c["verdict"], "unknown", "{plugin}: {c}");
        assert!(c["install"].is_null());
        assert!(
            c["evidence"]
                .as_str()
                .expect("evidence")
                .contains("2026-04-17"),
            "{c}"
        );
    }
    // The module names pretalx reports are on each row.
    assert!(
        board["plugins"]
            .as_array()
            .expect("rows")
            .iter()
            .any(|p| p["module"] == "pretalx_pages")
    );
    // The same cells as `herald advise` gives an operator with these plugins.
    let items: Vec<_> = std::iter::once("pretalx==2026.1.2".to_string())
        .chain(PLUGINS.iter().map(|(d, _)| format!("{d}==1.0.0")))
        .map(|s| herald::inventory::parse_installed(&s).expect("spec"))
        .collect();
    let advice = herald::alerts::advise(&site.app, &items)
        .await
        .expect("advice");
    for a in &advice.plugins {
        let c = cell(&board, &a.plugin, "2026.2.0");
        assert_eq!(c["verdict"], a.verdict.as_str(), "{}", a.plugin);
        assert_eq!(c["install"].as_str(), a.install.as_deref(), "{}", a.plugin);
    }
    let (_, page, _) = site.get("/compat").await;
    assert_eq!(
        count(&page, "data-verdict=\"likely\""),
        count(&body, "\"verdict\":\"likely\"")
    );
    let new_since = |board: &serde_json::Value, plugin: &str| {
        board["plugins"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|p| p["name"] == plugin)
            .is_some_and(|p| p["new_since_feature"] == true)
    };
    // venueless 1.9.0 and media-ccc-de 1.8.0 came out the day after 2026.2.0.
    assert!(new_since(&board, "pretalx-venueless") && new_since(&board, "pretalx-media-ccc-de"));
    assert!(!new_since(&board, "pretalx-pages"));
    assert_eq!(count(&page, "new since 2026.2.0"), 2);

    // pretalx-pages 1.10.0 comes out: the board changes.
    serve_plugin_world(
        &site.upstream,
        &site.rows,
        at("2026-07-09T00:00:00Z"),
        &[("pretalx-pages", "1.10.0", "2026-07-20T10:00:00Z")],
    );
    site.clock.advance(chrono::Duration::days(12));
    check::run(&site.app, &CheckOptions::default())
        .await
        .expect("check");
    let (status, body, headers) = site
        .get_with("/compat.json", &[("if-none-match", &etag)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(validators(&headers).0, etag);
    let board: serde_json::Value = serde_json::from_str(&body).expect("json");
    let c = cell(&board, "pretalx-pages", "2026.2.0");
    assert_eq!(c["verdict"], "likely", "{c}");
    assert_eq!(c["install"], "1.10.0");
    assert!(new_since(&board, "pretalx-pages"));
    assert_eq!(
        cell(&board, "pretalx-public-voting", "2026.2.0")["verdict"],
        "unknown"
    );
    let (_, page, _) = site.get("/compat").await;
    assert_eq!(count(&page, "new since 2026.2.0"), 3);

    let (status, _, _) = site.get("/compat?core=pretalx-pages").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a plugin is no core");
    let (status, _, _) = site.get("/compat.json?releases=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_operator_override_is_marked_on_the_board() {
    let site = plugin_site("2026-07-09T00:00:00Z", "2026-07-09T06:00:00Z").await;
    let mut toml = std::fs::read_to_string(site.sandbox().path("projects.toml")).expect("projects");
    toml.push_str(
        "\n[[project.compat]]\ncore = \"2026.2\"\nverdict = \"ready\"\ninstall = \"1.10.0\"\nnote = \"tested on our staging instance\"\n",
    );
    // The override belongs to the last project of the file: pretalx-media-ccc-de.
    let path = site.sandbox().projects(&toml);
    let config = site
        .sandbox()
        .config_with(&site.upstream.url(), Some(&path), &[]);
    let app = herald::app::App::build(config).await.expect("app");
    let board = herald::alerts::board(&app, app.config.project("pretalx").expect("pretalx"), 3)
        .await
        .expect("board");
    let json = serde_json::to_value(&board).expect("json");
    let c = cell(&json, "pretalx-media-ccc-de", "2026.2.0");
    assert_eq!(c["verdict"], "ready");
    assert_eq!(c["override"], true);
    assert_eq!(c["install"], "1.10.0");
    assert!(
        c["evidence"]
            .as_str()
            .expect("evidence")
            .contains("staging")
    );
    assert_eq!(
        cell(&json, "pretalx-media-ccc-de", "2026.1.0")["override"],
        false
    );
}

#[tokio::test]
async fn the_advise_form_gives_the_same_report_as_herald_advise_for_a_real_pip_freeze() {
    let site = plugin_site("2026-07-09T00:00:00Z", "2026-07-09T06:00:00Z").await;
    let freeze = String::from_utf8(read(&fixtures(), "pretalx/pip_freeze_pretalx_2026.1.2.txt"))
        .expect("utf-8");
    let (status, page) = site.post_form("/advise", &[("freeze", &freeze)]).await;
    assert_eq!(status, StatusCode::OK, "{page}");

    // The binary, on the same database and projects, with the same file.
    let sandbox = site.sandbox();
    let file = fixtures().join("pretalx/pip_freeze_pretalx_2026.1.2.txt");
    let mut args: Vec<String> = vec![
        "advise".into(),
        "--json".into(),
        "--freeze".into(),
        file.display().to_string(),
    ];
    args.extend(sandbox.args(&site.upstream.url(), Some(&sandbox.path("projects.toml"))));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sandbox.herald(&refs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let plugins = cli["plugins"].as_array().expect("plugins");
    assert_eq!(plugins.len(), 4, "{cli}");
    for p in plugins {
        let name = p["plugin"].as_str().expect("name");
        let verdict = p["verdict"].as_str().expect("verdict");
        assert!(
            page.contains(&format!(
                "data-plugin=\"{name}\" data-verdict=\"{verdict}\""
            )),
            "{name} {verdict} on the page"
        );
    }
    let verdict_of = |name: &str| {
        plugins
            .iter()
            .find(|p| p["plugin"] == name)
            .map(|p| p["verdict"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(verdict_of("pretalx-venueless"), "likely");
    assert_eq!(verdict_of("pretalx-media-ccc-de"), "likely");
    assert_eq!(verdict_of("pretalx-pages"), "unknown");
    assert_eq!(verdict_of("pretalx-public-voting"), "unknown");
    let command = cli["upgrade"]["command"].as_str().expect("command");
    assert_eq!(
        command,
        "pip install --upgrade-strategy eager -U pretalx==2026.2.1 pretalx-media-ccc-de==1.8.0 pretalx-venueless==1.9.0"
    );
    assert!(page.contains(command), "the page shows the pinned command");
    let wait = cli["upgrade"]["wait"].as_str().expect("wait");
    assert!(
        wait.contains("pretalx-pages and pretalx-public-voting"),
        "{wait}"
    );
    assert!(page.contains("Reason to wait"), "{page}");
    assert!(
        page.contains("Not tracked by Herald (ignored): amqp"),
        "dependencies are named"
    );
    // Nothing pasted is stored: no subscriber, no inventory.
    assert!(
        site.app
            .store
            .subscribers()
            .await
            .expect("subscribers")
            .is_empty()
    );
    assert!(
        site.app
            .store
            .inventories()
            .await
            .expect("inventories")
            .is_empty()
    );
}

#[tokio::test]
async fn hostile_input_is_escaped_bounded_and_answered_clearly() {
    let site = site(48).await;
    // Release notes that try to run a script.
    let mut releases = pretalx::github_releases(&site.rows);
    releases[0]["body"] =
        "Fixed.<script>alert('notes')</script><img src=x onerror=alert(1)> [x](javascript:alert(2))"
            .into();
    pretalx::serve_github(&site.upstream, "pretalx/pretalx", &releases, 30);
    // A release whose version is 100,000 characters long, recorded in the project. Herald's
    // parser refuses versions over 128 bytes, so an upstream cannot record one (tests/hostile.rs);
    // written straight into the store, the page must still bound it.
    let long =
        <pep440_rs::Version as std::str::FromStr>::from_str(&format!("{}1", "1.".repeat(49_999)))
            .expect("a long version");
    let text = long.to_string();
    assert!(text.len() >= 99_999, "{}", text.len());
    {
        let mut tx = site.app.store.begin().await.expect("tx");
        let now = site.app.clock.now();
        herald::store::write_releases(
            &mut tx,
            "pretalx",
            &[],
            &[herald::store::ReleaseWrite {
                version: &long,
                key: &text,
                class: herald::model::ReleaseClass::Bugfix,
                line: "1.1",
                primary_published_at: Some(now),
                other_published_at: None,
                available_at: Some(now),
                yanked: None,
                baseline: true,
                new_in_run: None,
                attributed: true,
                evidence: &[],
            }],
            now,
        )
        .await
        .expect("write");
        tx.commit().await.expect("commit");
    }
    site.clock.advance(chrono::Duration::hours(1));
    check::run(&site.app, &CheckOptions::default())
        .await
        .expect("check");
    let (status, body, _) = site.get("/projects/pretalx").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("<script>alert"), "no script from notes");
    assert!(!body.contains("onerror"), "no handlers from notes");
    assert!(!body.contains("javascript:"), "no script links from notes");
    assert!(body.contains("Fixed."), "the notes themselves are there");
    assert!(
        !body.contains(&text[..1000]),
        "the long version is shortened"
    );
    assert!(body.contains("(shortened)"));
    assert!(
        body.len() < 200_000,
        "the page stays small: {} bytes",
        body.len()
    );

    // A 60,000-character name in the path and the queries (the longest URI the client sends).
    let name = "a".repeat(60_000);
    for path in [
        format!("/projects/{name}"),
        format!("/releases.json?project={name}"),
        format!("/releases.atom?class={name}"),
        format!("/compat?core={name}"),
        format!("/compat.json?releases={name}"),
    ] {
        let (status, body, _) = site.get(&path).await;
        assert!(status.is_client_error(), "{}: {status}", &path[..30]);
        assert!(body.len() < 1_000, "{}: {body}", &path[..30]);
    }

    // 64 KiB of garbage for pip freeze: a clear message, no 500.
    let mut garbage = String::new();
    let mut seed: u32 = 7;
    while garbage.len() < 64 * 1024 - 1 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let c = char::from_u32(32 + (seed >> 16) % 95).unwrap_or('x');
        garbage.push(c);
        if seed.is_multiple_of(53) {
            garbage.push('\n');
        }
    }
    let (status, page) = site.post_form("/advise", &[("freeze", &garbage)]).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(
        page.contains("No NAME==VERSION line found"),
        "a clear message"
    );
    assert!(page.matches("<li>").count() <= 21, "notes are bounded");
    // A longer paste: refused with a clear message; a body over the cap is not even read.
    let big = "x".repeat(70 * 1024);
    let (status, page) = site.post_form("/advise", &[("freeze", &big)]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        page.contains("paste at most 64 KiB"),
        "{}",
        &page[..200.min(page.len())]
    );
    let huge = "x".repeat(300 * 1024);
    let (status, _) = site.post_form("/advise", &[("freeze", &huge)]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Not UTF-8, not a form: still a clear answer.
    let r = site
        .client
        .post(format!("{}advise", site.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'=', 0x80, b'&', b'%', b'z'])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The form is rate limited like /subscribe.
    let mut limited = false;
    for _ in 0..8 {
        let (status, _) = site
            .post_form("/advise", &[("freeze", "pretalx==2026.1.2")])
            .await;
        limited |= status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "a burst of reports is limited");
}
