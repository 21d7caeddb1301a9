//! Attribution end to end, through the real binary against the local upstream: two packages
//! tagged side by side in one repository, a changesets-style package tag among `vX.Y.Z` tags,
//! feeds whose titles start with the version, a run that sees only other packages' new tags
//! (nothing is sent), and a database recorded under the earlier rule (its wrong releases are
//! withdrawn, kept and never mailed).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::World;
use herald::store::Store;
use serde_json::{Value, json};

const FLURL: &str = "/repos/tmenier/Flurl/releases?per_page=100";
const REACT: &str = "/repos/facebook/react/releases?per_page=100";

fn fixture(rel: &str) -> Vec<Value> {
    serde_json::from_slice(&common::read(&common::fixtures(), rel)).expect("fixture JSON")
}

/// Runs the real binary with the world's flags (its upstream and sandbox), `extra` flags, then `args`.
async fn herald(
    world: &World,
    projects: &std::path::Path,
    extra: &[String],
    args: &[&str],
) -> std::process::Output {
    let mut all = world.args(projects);
    all.extend(extra.iter().cloned());
    all.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    tokio::process::Command::from(world.sandbox.command(&refs))
        .output()
        .await
        .expect("run herald")
}

/// `herald check --json`: the run summary, and what was logged on stderr.
async fn check(world: &World, projects: &std::path::Path, extra: &[String]) -> (Value, String) {
    let out = herald(world, projects, extra, &["check", "--json"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let summary = serde_json::from_slice(&out.stdout).expect("summary JSON");
    (summary, stderr)
}

/// `herald releases --json`.
async fn releases(world: &World, projects: &std::path::Path) -> Vec<Value> {
    let out = herald(world, projects, &[], &["releases", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("releases JSON")
}

/// `herald outbox --all --json`.
async fn outbox(world: &World, projects: &std::path::Path) -> Value {
    let out = herald(world, projects, &[], &["outbox", "--all", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("outbox JSON")
}

/// The project's source report in a run summary.
fn source<'a>(summary: &'a Value, project: &str, source: &str) -> &'a Value {
    summary["projects"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["project"] == project))
        .and_then(|p| p["sources"].as_array())
        .and_then(|ss| ss.iter().find(|s| s["source"] == source))
        .unwrap_or_else(|| panic!("{project}/{source} in {summary:#}"))
}

fn warnings(report: &Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|l| l.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// project -> {version: [github raw spellings]}.
fn by_project(rows: &[Value]) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for r in rows {
        let raws = r["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .map(|s| s["raw"].as_str().unwrap_or_default().to_string())
            .collect();
        out.entry(r["project"].as_str().unwrap_or_default().to_string())
            .or_default()
            .insert(r["version"].as_str().unwrap_or_default().to_string(), raws);
    }
    out
}

/// The PEP 440 normal form Herald records for a Flurl tag's version.
fn normal(version: &str) -> String {
    herald::version::parse(version)
        .expect("fixture version")
        .to_string()
}

#[tokio::test]
async fn two_packages_tagged_side_by_side_each_get_exactly_their_own_releases() {
    let listing = fixture("github/releases_tmenier_Flurl.json");
    assert_eq!(listing.len(), 30);
    let world = World::new().await;
    let upstream = &world.upstream;
    upstream.put_json(FLURL, "application/json", &Value::Array(listing.clone()));
    let sandbox = &world.sandbox;
    // `Flurl.` is a prefix of `Flurl.Http.`: both spellings of the prefix setting.
    let projects = sandbox.projects(
        "[[project]]\nname = \"Flurl\"\ngithub = \"tmenier/Flurl\"\ntag_prefix = \"Flurl.\"\n\n\
         [[project]]\nname = \"Flurl.Http\"\ngithub = { repo = \"tmenier/Flurl\", tag_prefix = \"Flurl.Http.\" }\n",
    );

    let (first, stderr) = check(&world, &projects, &[]).await;
    let mut want: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for r in &listing {
        let tag = r["tag_name"].as_str().expect("tag");
        let (project, version) = match tag.strip_prefix("Flurl.Http.") {
            Some(v) => ("Flurl.Http", v),
            None => ("Flurl", tag.strip_prefix("Flurl.").expect("a Flurl tag")),
        };
        want.entry(project.to_string())
            .or_default()
            .insert(normal(version), vec![tag.to_string()]);
    }
    assert_eq!(want["Flurl"].len(), 13);
    assert_eq!(want["Flurl.Http"].len(), 17);
    let got = by_project(&releases(&world, &projects).await);
    // Each project has exactly its own tags: none lost (13 + 17 = 30), none shared, and each
    // release's evidence is its own package's tag (the real Flurl 2.2.0 is not merged into
    // Flurl.Http's `2.2`).
    assert_eq!(got, want);
    assert_eq!(got["Flurl"]["2.2.0"], ["Flurl.2.2.0"]);
    assert_eq!(got["Flurl.Http"]["2.2.0"], ["Flurl.Http.2.2.0"]);

    // Each skip is reported once, as one line per project, in the summary and the log.
    let flurl = warnings(source(&first, "Flurl", "github"));
    assert_eq!(flurl.len(), 1, "{flurl:?}");
    assert!(
        flurl[0].starts_with(
            "Flurl: github: skipped 17 tags of other packages: Flurl.Http.2.4.0, Flurl.Http.2.3.2,"
        ) && flurl[0].ends_with(" and 7 more"),
        "{flurl:?}"
    );
    let http = warnings(source(&first, "Flurl.Http", "github"));
    assert_eq!(http.len(), 1, "{http:?}");
    assert!(
        http[0].starts_with("Flurl.Http: github: skipped 13 tags of other packages: Flurl.2.8.0,"),
        "{http:?}"
    );
    assert!(
        stderr.contains("skipped 17 tags of other packages"),
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped 13 tags of other packages"),
        "{stderr}"
    );

    // Nothing new (304): nothing repeated.
    let (second, stderr) = check(&world, &projects, &[]).await;
    assert_eq!(source(&second, "Flurl", "github")["status"], "unchanged");
    assert!(!stderr.contains("skipped"), "{stderr}");
    // The same tags in a changed listing (GitHub's documents change with every reaction):
    // skipped again, but not reported again at warning level.
    let mut touched = listing.clone();
    touched[0]["body"] = json!("- Improved `ConnectionLeaseTimeout` implementation (#330), edited");
    upstream.put_json(FLURL, "application/json", &Value::Array(touched));
    let (third, stderr) = check(&world, &projects, &[]).await;
    let report = source(&third, "Flurl", "github");
    assert_eq!(report["status"], "ok");
    assert_eq!(report["skipped"], 17);
    assert!(warnings(report).is_empty(), "{report:#}");
    assert!(warnings(source(&third, "Flurl.Http", "github")).is_empty());
    assert!(!stderr.contains("skipped"), "{stderr}");
    assert_eq!(by_project(&releases(&world, &projects).await), want);
}

#[tokio::test]
async fn a_changesets_style_package_tag_among_version_tags_is_skipped_with_a_warning() {
    let world = World::new().await;
    let upstream = &world.upstream;
    upstream.put_json(
        REACT,
        "application/json",
        &Value::Array(fixture("github/releases_facebook_react_mixed_tags.json")),
    );
    let sandbox = &world.sandbox;
    let projects = sandbox.projects("[[project]]\nname = \"react\"\ngithub = \"facebook/react\"\n");
    let (summary, _) = check(&world, &projects, &[]).await;
    let report = source(&summary, "react", "github");
    assert_eq!(report["listed"], 2);
    assert_eq!(
        warnings(report),
        ["react: github: skipped 1 tag of other packages: eslint-plugin-react-hooks@5.0.0"]
    );
    let got = by_project(&releases(&world, &projects).await);
    assert_eq!(
        got["react"].keys().collect::<Vec<_>>(),
        ["18.3.0", "18.3.1"],
        "5.0.0 is eslint-plugin-react-hooks', not react's"
    );
}

/// An Atom document shaped like GitHub's `releases.atom` (see fixtures/feeds/atom_example_6.xml),
/// titled with the release names, from a real release listing.
fn releases_atom(listing: &[Value]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let entries: String = listing
        .iter()
        .map(|r| {
            format!(
                "<entry><id>tag:github.com,2008:Repository/10270250/{tag}</id><updated>{date}</updated>\
                 <link rel=\"alternate\" type=\"text/html\" href=\"{url}\"/><title>{title}</title>\
                 <content type=\"html\">{body}</content></entry>\n",
                tag = esc(r["tag_name"].as_str().unwrap_or_default()),
                date = r["published_at"].as_str().unwrap_or_default(),
                url = esc(r["html_url"].as_str().unwrap_or_default()),
                title = esc(r["name"].as_str().unwrap_or_default()),
                body = esc(r["body"].as_str().unwrap_or_default()),
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\
         <id>tag:github.com,2008:https://github.com/facebook/react/releases</id>\
         <title>Release notes from react</title><updated>2024-10-11T13:32:09Z</updated>\n{entries}</feed>\n"
    )
}

#[tokio::test]
async fn a_version_feed_with_version_led_titles_records_every_entry_with_its_class() {
    let world = World::new().await;
    let upstream = &world.upstream;
    upstream.put(
        "/feeds/kdist.xml",
        "application/rss+xml",
        common::read(&common::fixtures(), "feeds/rebuilt/rss_2.0_kdist.xml"),
    );
    upstream.put(
        "/facebook/react/releases.atom",
        "application/atom+xml",
        releases_atom(&fixture("github/releases_facebook_react_mixed_tags.json")),
    );
    let sandbox = &world.sandbox;
    let projects = sandbox.projects(&format!(
        "[[project]]\nname = \"linux\"\nfeed = \"{u}/feeds/kdist.xml\"\n\n\
         [[project]]\nname = \"react\"\nfeed = \"{u}/facebook/react/releases.atom\"\n",
        u = upstream.url()
    ));
    let (summary, _) = check(&world, &projects, &[]).await;
    assert_eq!(source(&summary, "linux", "feed")["listed"], 1);
    assert!(warnings(source(&summary, "linux", "feed")).is_empty());
    assert_eq!(
        warnings(source(&summary, "react", "feed")),
        [
            "react: feed: skipped 1 feed entry of other packages: eslint-plugin-react-hooks@5.0.0 (Oct 11, 2024)"
        ]
    );
    let rows = releases(&world, &projects).await;
    let classes: BTreeSet<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["project"].as_str().unwrap_or_default().to_string(),
                r["version"].as_str().unwrap_or_default().to_string(),
                r["class"].as_str().unwrap_or_default().to_string(),
                r["published_at"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String, String)> = [
        ("linux", "5.7rc4", "prerelease", "2020-05-03T21:56:15Z"),
        ("react", "18.3.0", "feature", "2024-04-26T19:48:51Z"),
        ("react", "18.3.1", "bugfix", "2024-04-26T19:53:42Z"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(classes, want);
}

#[tokio::test]
async fn a_run_that_sees_only_other_packages_new_tags_sends_nothing() {
    let listing = fixture("github/releases_facebook_react_mixed_tags.json");
    let (hooks, v1831, v1830) = (&listing[0], &listing[1], &listing[2]);
    let world = World::new().await;
    let upstream = &world.upstream;
    upstream.put_json(REACT, "application/json", &json!([v1830]));
    let sink = &world.sink;
    let sandbox = &world.sandbox;
    let projects = sandbox.projects("[[project]]\nname = \"react\"\ngithub = \"facebook/react\"\n");
    let smtp = vec!["--smtp-url".to_string(), sink.url()];
    let out = herald(
        &world,
        &projects,
        &[],
        &[
            "subscribe",
            "ops@example.org",
            "--project",
            "react",
            "--class",
            "feature",
            "--class",
            "bugfix",
            "--class",
            "prerelease",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (baseline, _) = check(&world, &projects, &smtp).await;
    assert_eq!(baseline["projects"][0]["recorded"], 1);

    // Only another package's new release: its name mentions `react` inside another word and
    // carries a version, which the earlier rule took for react 5.0.0.
    upstream.put_json(REACT, "application/json", &json!([hooks, v1830]));
    let (only_other, _) = check(&world, &projects, &smtp).await;
    assert_eq!(only_other["projects"][0]["new"], json!([]));
    assert_eq!(only_other["projects"][0]["queued"], 0);
    assert_eq!(only_other["mail"]["sent"], 0);
    assert_eq!(sink.count(), 0, "nothing is mailed");
    assert_eq!(outbox(&world, &projects).await, json!([]));

    // The same subscriber does hear of react's own next release.
    upstream.put_json(REACT, "application/json", &json!([hooks, v1831, v1830]));
    let (own, _) = check(&world, &projects, &smtp).await;
    assert_eq!(own["projects"][0]["new"][0]["version"], "18.3.1");
    assert_eq!(own["mail"]["sent"], 1);
    assert_eq!(sink.count(), 1);
}

/// Opens `url` and runs `sql` statements on it, as an earlier Herald would have written them.
async fn write_raw(url: &str, statements: &[String]) {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(url)
        .await
        .expect("raw pool");
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    pool.close().await;
}

/// What the earlier rule recorded for `Flurl` (tag_prefix `Flurl.`) from this listing: a
/// `Flurl.Http.` tag is no version under the prefix, so its release name was read instead, and
/// `Flurl.Http 2.4.0` mentions `flurl`: Flurl 2.4.0. The first spelling of a version won, so
/// `Flurl.Http 2.2` also took the place of the real Flurl 2.2.0.
/// Returns (id, version, key, class, line, published, tag) per recorded release.
fn earlier_rule(listing: &[Value]) -> Vec<(usize, String, String, String, String, String, String)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in listing {
        let tag = r["tag_name"].as_str().expect("tag");
        let spelled = match tag.strip_prefix("Flurl.Http.") {
            Some(_) => r["name"]
                .as_str()
                .and_then(|n| n.strip_prefix("Flurl.Http "))
                .expect("a Flurl.Http release name"),
            None => tag.strip_prefix("Flurl.").expect("a Flurl tag"),
        };
        let version = herald::version::parse(spelled).expect("version");
        let key = herald::version::canonical_key(&version);
        if !seen.insert(key.clone()) {
            continue;
        }
        out.push((
            out.len() + 1,
            version.to_string(),
            key,
            herald::version::classify(&version, |_| false).to_string(),
            herald::version::line(&version),
            r["published_at"]
                .as_str()
                .expect("date")
                .replace('Z', ".000000Z"),
            tag.to_string(),
        ));
    }
    out
}

#[tokio::test]
async fn releases_recorded_under_the_earlier_rule_are_withdrawn_kept_and_never_mailed() {
    if common::sqlite_only("rows an earlier Herald wrote into a SQLite file") {
        return;
    }
    let listing = fixture("github/releases_tmenier_Flurl.json");
    let world = World::new().await;
    let upstream = &world.upstream;
    // A recorded ETag, so that a conditional request would be answered 304.
    upstream.put_with_headers(
        FLURL,
        "application/json",
        serde_json::to_vec(&listing).expect("json"),
        &[("etag", "\"flurl-page-1\"")],
    );
    let sink = &world.sink;
    let sandbox = &world.sandbox;
    let url = sandbox.db_url();

    // The schema as it stood before this rule, holding what the earlier rule recorded, the
    // listing's validator, a subscriber, and a message about Flurl.Http's 2.3.2 still waiting
    // in the outbox (no relay was configured then).
    let before = Store::known_migrations()
        .into_iter()
        .filter(|v| *v < 20261130020000)
        .max()
        .expect("an earlier schema");
    let old = Store::connect(&url).await.expect("connect");
    old.migrate_to(before).await.expect("earlier schema");
    old.close().await;
    let recorded = earlier_rule(&listing);
    assert_eq!(
        recorded.len(),
        25,
        "13 Flurl versions and 12 more from Flurl.Http"
    );
    let t = "2026-11-01T06:00:00.000000Z";
    let mut sql = Vec::new();
    for (id, version, key, class, line, published, tag) in &recorded {
        sql.push(format!(
            "INSERT INTO releases (id, project, version, version_key, class, line, published_at, first_seen_at, available_at, baseline) \
             VALUES ({id}, 'Flurl', '{version}', '{key}', '{class}', '{line}', '{published}', '{t}', '{t}', 1)"
        ));
        sql.push(format!(
            "INSERT INTO evidence (release_id, source, raw, url, first_seen_at, last_seen_at) \
             VALUES ({id}, 'github', '{tag}', 'https://github.com/tmenier/Flurl/releases/tag/{tag}', '{t}', '{t}')"
        ));
    }
    let id_of = |v: &str| {
        recorded
            .iter()
            .find(|r| r.1 == v)
            .map(|r| r.0)
            .expect("recorded")
    };
    let page = format!("{}{FLURL}", upstream.url());
    sql.extend([
        format!("INSERT INTO source_state (project, source, baseline_at, last_success_at, last_attempt_at) VALUES ('Flurl', 'github', '{t}', '{t}', '{t}')"),
        format!("INSERT INTO http_validators (url, etag, updated_at) VALUES ('{page}', '\"flurl-page-1\"', '{t}')"),
        format!("INSERT INTO subscribers (id, email, status, digest, classes, created_at, updated_at) VALUES (1, 'ops@example.org', 'confirmed', 'instant', 'feature,bugfix', '{t}', '{t}')"),
        "INSERT INTO subscriber_projects (subscriber_id, project) VALUES (1, 'Flurl')".to_string(),
        format!("INSERT INTO outbox (subscriber_id, recipient, kind, subject_key, payload, message_id, next_attempt_at, created_at, updated_at) VALUES \
            (1, 'ops@example.org', 'new_release', 'release:Flurl:2.3.2', '{{\"release_id\": {}}}', '<old@example.org>', '{t}', '{t}', '{t}')", id_of("2.3.2")),
    ]);
    write_raw(&url, &sql).await;
    let projects = sandbox.projects(
        "[[project]]\nname = \"Flurl\"\ngithub = \"tmenier/Flurl\"\ntag_prefix = \"Flurl.\"\n",
    );
    let smtp = vec!["--smtp-url".to_string(), sink.url()];

    let (run, _) = check(&world, &projects, &smtp).await;
    // The listing was read in full, without the stored validator, and judged again.
    let requests = upstream.requests().await;
    assert_eq!(requests.len(), 1);
    assert!(requests[0].headers.get("if-none-match").is_none());
    assert_eq!(source(&run, "Flurl", "github")["status"], "ok");
    let withdrawn: BTreeMap<String, String> = run["projects"][0]["withdrawn"]
        .as_array()
        .expect("withdrawn")
        .iter()
        .map(|w| {
            (
                w["version"].as_str().unwrap_or_default().to_string(),
                w["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let flurl_keys: BTreeSet<String> = listing
        .iter()
        .filter_map(|r| r["tag_name"].as_str())
        .filter(|tag| !tag.starts_with("Flurl.Http."))
        .filter_map(|tag| tag.strip_prefix("Flurl."))
        .map(|v| herald::version::canonical_key(&herald::version::parse(v).expect("version")))
        .collect();
    let only_http: BTreeMap<String, String> = recorded
        .iter()
        .filter(|r| r.6.starts_with("Flurl.Http.") && !flurl_keys.contains(&r.2))
        .map(|r| {
            (
                r.1.clone(),
                format!(
                    "the github tag `{}` names another package (`Flurl.Http`)",
                    r.6
                ),
            )
        })
        .collect();
    assert_eq!(only_http.len(), 12);
    assert_eq!(
        withdrawn, only_http,
        "exactly the releases only Flurl.Http's tags gave"
    );
    assert_eq!(run["projects"][0]["new"], json!([]));
    // The message queued under the earlier rule is not sent, and says why.
    assert_eq!(sink.count(), 0);
    let outbox = outbox(&world, &projects).await.to_string();
    assert!(
        outbox.contains("\"dead\"")
            && outbox.contains("Flurl 2.3.2 was withdrawn: the github tag `Flurl.Http.2.3.2`"),
        "{outbox}"
    );

    // Nothing is deleted: `herald releases` shows the withdrawn releases with their reasons, and
    // the real Flurl 2.2.0 and 2.4.0 now carry their own tags.
    let rows = releases(&world, &projects).await;
    assert_eq!(rows.len(), 25);
    let row = |v: &str| {
        rows.iter()
            .find(|r| r["version"] == v)
            .unwrap_or_else(|| panic!("{v} in {rows:#?}"))
    };
    assert_eq!(
        row("2.3.2")["withdrawn_reason"],
        "the github tag `Flurl.Http.2.3.2` names another package (`Flurl.Http`)"
    );
    assert!(row("2.3.2")["withdrawn_at"].is_string());
    for (version, tag) in [
        ("2.2", "Flurl.2.2.0"),
        ("2.4.0", "Flurl.2.4.0"),
        ("2.8.0", "Flurl.2.8.0"),
    ] {
        assert_eq!(row(version)["sources"][0]["raw"], tag);
        assert!(row(version).get("withdrawn_at").is_none(), "{version}");
    }
    let text = herald(&world, &projects, &[], &["releases"]).await;
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(" 2.3.2 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(
            "[withdrawn: the github tag `Flurl.Http.2.3.2` names another package (`Flurl.Http`)]"
        ),
        "{line}"
    );

    // A later run withdraws nothing more, repeats nothing, and still sends nothing.
    let (again, stderr) = check(&world, &projects, &smtp).await;
    assert!(again["projects"][0].get("withdrawn").is_none(), "{again:#}");
    assert!(
        !stderr.contains("withdrawn") && !stderr.contains("skipped"),
        "{stderr}"
    );
    assert_eq!(sink.count(), 0);
}
