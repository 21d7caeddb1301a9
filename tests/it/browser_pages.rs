//! The project history, the compatibility board and the advise form in headless Chromium, on
//! pretalx's and its plugins' real history as it stood the day pretalx 2026.2.0 came out: what
//! a person sees, an axe-core accessibility audit of every page (no "serious" or "critical"
//! violation), and screenshots at desktop and phone widths in `target/screenshots/`.
//!
//! axe-core comes from npm (`.ci/install-axe`, run by `scripts/test`); like Chromium, without it
//! the test skips loudly, except under `CI`, where it fails.

use crate::common;

use std::path::{Path, PathBuf};

use common::browser::Browser;
use common::site::{PLUGINS, Site, plugin_site, serve_plugin_world};
use common::{at, fixtures};
use herald::check::{self, CheckOptions};
use serde_json::{Value, json};

const AXE: &str = "target/axe-core/node_modules/axe-core/axe.min.js";

fn axe_source() -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(AXE);
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(err) => {
            let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
            assert!(
                !in_ci,
                "CI is set but {} is missing ({err}): run .ci/install-axe",
                path.display()
            );
            eprintln!(
                "\n!!! SKIPPED: {} missing; run `bash .ci/install-axe` !!!\n",
                path.display()
            );
            None
        }
    }
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("target/screenshots");
    dir
}

/// Runs axe-core on the page and fails on any serious or critical violation.
async fn audit(browser: &Browser, axe: &str, page: &str) {
    let violations = violations(browser, axe, page).await;
    let bad: Vec<&Value> = violations
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(bad.is_empty(), "axe on {page}: {bad:#?}");
    if !violations.is_empty() {
        eprintln!("axe on {page}: minor or moderate only: {violations:?}");
    }
}

/// axe-core's violations on the current page.
async fn violations(browser: &Browser, axe: &str, page: &str) -> Vec<Value> {
    let loaded = browser
        .client
        .execute(&format!("{axe}\nreturn typeof axe;"), vec![])
        .await
        .expect("inject axe-core");
    assert_eq!(loaded, json!("object"), "axe-core loaded on {page}");
    let result = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then(r => done(r.violations.map(v => ({
                   id: v.id, impact: v.impact, help: v.help,
                   targets: v.nodes.slice(0, 5).map(n => n.target.join(' ')) }))))
               .catch(e => done({ error: String(e) }));",
            vec![],
        )
        .await
        .expect("axe.run");
    result
        .as_array()
        .unwrap_or_else(|| panic!("axe on {page}: {result}"))
        .clone()
}

/// Desktop and phone screenshots of the current page, scrolled to `anchor` when given.
async fn shoot(browser: &Browser, name: &str, anchor: Option<&str>) {
    let dir = screenshots();
    for (width, height, suffix) in [(1280, 900, "desktop"), (390, 844, "phone")] {
        browser
            .client
            .set_window_size(width, height)
            .await
            .expect("window size");
        if let Some(id) = anchor {
            js(
                browser,
                &format!("document.getElementById('{id}').scrollIntoView(); return 0;"),
            )
            .await;
        }
        let path = dir.join(format!("{name}-{suffix}.png"));
        browser.screenshot(&path).await;
        let bytes = std::fs::read(&path).expect("screenshot");
        assert!(bytes.starts_with(b"\x89PNG"), "{}", path.display());
    }
    browser
        .client
        .set_window_size(1280, 900)
        .await
        .expect("window size");
}

async fn js(browser: &Browser, script: &str) -> Value {
    browser
        .client
        .execute(script, vec![])
        .await
        .unwrap_or_else(|err| panic!("{script}: {err}"))
}

/// The verdict of each plugin in the board's column for `release`.
async fn column(browser: &Browser, release: &str) -> Vec<(String, String)> {
    let cells = js(
        browser,
        &format!(
            "return Array.from(document.querySelectorAll('tr.plugin')).map(r =>
               [r.dataset.plugin, r.querySelector('td[data-release=\"{release}\"]').dataset.verdict]);"
        ),
    )
    .await;
    let mut out: Vec<(String, String)> = cells
        .as_array()
        .expect("rows")
        .iter()
        .map(|c| {
            (
                c[0].as_str().expect("plugin").to_string(),
                c[1].as_str().expect("verdict").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn herald_advise_json(site: &Site, freeze: &Path) -> Value {
    let sandbox = site.sandbox();
    let mut args: Vec<String> = vec![
        "advise".into(),
        "--json".into(),
        "--freeze".into(),
        freeze.display().to_string(),
    ];
    args.extend(sandbox.args(&site.upstream.url(), Some(&sandbox.path("projects.toml"))));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sandbox.herald(&refs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn history_board_and_advice_in_a_browser_pass_an_accessibility_audit() {
    let site = plugin_site("2026-07-09T00:00:00Z", "2026-07-09T06:00:00Z").await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let Some(axe) = axe_source() else {
        browser.close().await;
        return;
    };

    // The start page links the new pages.
    browser.goto(&site.base).await;
    browser.click("nav a[href$='compat']").await;
    browser.find("#board").await;
    browser.goto(&site.base).await;
    audit(&browser, &axe, "/").await;
    // The audit can fail: an image without text and an unnamed button are critical.
    js(
        &browser,
        "document.body.insertAdjacentHTML('beforeend', '<img src=\"x.png\"><button></button>'); return 0;",
    )
    .await;
    let found = violations(&browser, &axe, "/ (broken on purpose)").await;
    assert!(
        found
            .iter()
            .any(|v| v["id"] == "image-alt" && v["impact"] == "critical"),
        "{found:?}"
    );

    // The self-service pages too: subscribed, preferences, unsubscribe, an invalid link.
    browser.goto(&site.base).await;
    browser.fill("#email", "person@example.org").await;
    browser.click("#subscribe-button").await;
    browser.find("#check-inbox").await;
    audit(&browser, &axe, "/subscribe (answer)").await;
    let id = common::subscribe_instant(&site.app, "ops@example.org", "pretalx").await;
    let signer = &site.app.notifier.signer;
    for (path, element) in [
        (
            format!("preferences/{}", signer.sign("preferences", id)),
            "#preferences",
        ),
        (
            format!("unsubscribe/{}", signer.sign("unsubscribe", id)),
            "#unsubscribe",
        ),
        ("confirm/not-a-token".to_string(), "#message"),
    ] {
        browser.goto(&format!("{}{path}", site.base)).await;
        browser.find(element).await;
        audit(&browser, &axe, &path).await;
    }

    // pretalx's history: 48 releases, 48 marks whose titles name version and class.
    browser
        .goto(&format!("{}projects/pretalx", site.base))
        .await;
    browser.find("#timeline").await;
    let rows = js(
        &browser,
        "return document.querySelectorAll('#releases tr.release').length;",
    )
    .await;
    assert_eq!(rows, json!(48));
    let titles = js(
        &browser,
        "return Array.from(document.querySelectorAll('#timeline .mark')).map(m =>
           [m.getAttribute('class'), m.querySelector('title').textContent]);",
    )
    .await;
    let titles = titles.as_array().expect("marks");
    assert_eq!(titles.len(), 48);
    for row in &site.rows {
        let class = if common::pretalx::FEATURES.contains(&row.version.as_str()) {
            "feature"
        } else {
            "bugfix"
        };
        let title = format!("pretalx {}: {class} release, ", row.version);
        assert!(
            titles.iter().any(|t| t[0] == json!(format!("mark {class}"))
                && t[1].as_str().is_some_and(|s| s.starts_with(&title))),
            "a {class} mark titled {title:?}"
        );
    }
    let classes = js(
        &browser,
        "return Array.from(document.querySelectorAll('#releases tr.release td.class')).map(c => c.textContent);",
    )
    .await;
    let features = classes
        .as_array()
        .expect("classes")
        .iter()
        .filter(|c| *c == "feature")
        .count();
    assert_eq!(features, common::pretalx::FEATURES.len());
    // Release notes open without JavaScript (details/summary).
    browser.click("tr.notes summary").await;
    assert!(
        browser
            .text_of("tr.notes .notes-body")
            .await
            .contains("Release notes of pretalx 2026.2.1.")
    );
    audit(&browser, &axe, "/projects/pretalx").await;
    shoot(&browser, "project", None).await;

    // The board the day 2026.2.0 came out.
    browser.goto(&format!("{}compat", site.base)).await;
    browser.find("#board").await;
    let day = column(&browser, "2026.2.0").await;
    assert_eq!(
        day,
        [
            ("pretalx-media-ccc-de".to_string(), "likely".to_string()),
            ("pretalx-pages".into(), "unknown".into()),
            ("pretalx-public-voting".into(), "unknown".into()),
            ("pretalx-venueless".into(), "likely".into()),
        ]
    );
    // The evidence opens on click (and on keyboard focus: it is a summary element).
    browser
        .click("tr.plugin[data-plugin='pretalx-pages'] td[data-release='2026.2.0'] summary")
        .await;
    let evidence = browser
        .text_of("tr.plugin[data-plugin='pretalx-pages'] td[data-release='2026.2.0'] .evidence")
        .await;
    assert!(
        evidence.contains("1.9.0") && evidence.contains("2026-04-17"),
        "{evidence}"
    );
    audit(&browser, &axe, "/compat").await;
    shoot(&browser, "compat", None).await;

    // The advise form with a real pip freeze.
    let freeze_path = fixtures().join("pretalx/pip_freeze_pretalx_2026.1.2.txt");
    let freeze = std::fs::read_to_string(&freeze_path).expect("freeze fixture");
    browser.goto(&format!("{}advise", site.base)).await;
    browser.find("#freeze").await;
    audit(&browser, &axe, "/advise").await;
    browser
        .client
        .execute(
            "document.getElementById('freeze').value = arguments[0];",
            vec![json!(freeze)],
        )
        .await
        .expect("paste");
    browser.click("#advise-button").await;
    browser.find("#report").await;
    let cli = herald_advise_json(&site, &freeze_path);
    let shown = js(
        &browser,
        "return Array.from(document.querySelectorAll('#verdicts tr.plugin')).map(r => [r.dataset.plugin, r.dataset.verdict]);",
    )
    .await;
    let mut shown: Vec<(String, String)> = shown
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().into(),
                r[1].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    shown.sort();
    let mut expected: Vec<(String, String)> = cli["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .map(|p| {
            (
                p["plugin"].as_str().unwrap_or_default().into(),
                p["verdict"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(
        shown, expected,
        "the page and `herald advise --freeze` agree"
    );
    assert_eq!(shown, day, "and the board agrees");
    let command = browser.text_of("#command").await;
    assert_eq!(
        command,
        cli["upgrade"]["command"].as_str().expect("command")
    );
    assert!(command.starts_with("pip install --upgrade-strategy eager -U pretalx==2026.2.1 "));
    assert!(
        browser
            .text_of("#wait")
            .await
            .contains("pretalx-pages and pretalx-public-voting")
    );
    audit(&browser, &axe, "/advise (report)").await;
    shoot(&browser, "advise", Some("report")).await;

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
    browser.goto(&format!("{}compat", site.base)).await;
    browser.find("#board").await;
    let after = column(&browser, "2026.2.0").await;
    let pages = after
        .iter()
        .find(|(p, _)| p == "pretalx-pages")
        .expect("pages");
    assert_eq!(pages.1, "likely");
    assert!(
        browser
            .text_of("tr.plugin[data-plugin='pretalx-pages'] th")
            .await
            .contains("new since 2026.2.0")
    );
    assert_eq!(PLUGINS.len(), after.len());
    browser.close().await;
}
