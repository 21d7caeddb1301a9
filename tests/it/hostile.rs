//! Hostile upstream documents: entity expansion, deeply nested JSON, endless bodies, invalid
//! UTF-8 and absurd version strings each end as a clear source error (or a skipped entry),
//! with bounded memory, while the rest of the run goes on.

use crate::common;

use common::{World, run_check};
use herald::check::{RunSummary, SourceStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One check run on `world`'s sandbox against `upstream`.
async fn run_with(
    world: &World,
    upstream: &str,
    projects_toml: &str,
    extra: &[&str],
) -> (RunSummary, herald::app::App) {
    let projects = world.sandbox.projects(projects_toml);
    let (app, _) = world
        .app()
        .upstream(upstream)
        .projects(&projects)
        .at("2026-11-22T06:00:00Z")
        .flags(extra)
        .build()
        .await;
    let summary = run_check(&app).await;
    (summary, app)
}

fn error_of(summary: &RunSummary, project: &str) -> String {
    let p = summary
        .projects
        .iter()
        .find(|p| p.project == project)
        .expect("project");
    assert_eq!(p.sources[0].status, SourceStatus::Failed, "{p:?}");
    p.sources[0].error.clone().unwrap_or_default()
}

#[tokio::test]
async fn entity_expansion_nesting_invalid_utf8_and_absurd_versions() {
    let world = World::new().await;
    let upstream = &world.upstream;
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]>
<rss version="2.0"><channel><title>&lol9;</title><item><title>Releasing laughs 1.0.0 &lol9;</title><link>https://example.org/releasing-laughs-1-0-0/</link></item></channel></rss>"#;
    upstream.put("/laughs.xml", "application/rss+xml", laughs);
    // 100,000 levels, once where Herald reads (versions) and once in a field it skips.
    let nested = format!(
        "{{\"versions\": {}\"1.0\"{}, \"files\": []}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let skipped = format!(
        "{{\"versions\": [\"1.0\"], \"files\": [], \"x\": {}1{}}}",
        "{\"x\": ".repeat(100_000),
        "}".repeat(100_000)
    );
    upstream.put(
        "/simple/skipped/",
        "application/vnd.pypi.simple.v1+json",
        skipped,
    );
    upstream.put(
        "/simple/nested/",
        "application/vnd.pypi.simple.v1+json",
        nested,
    );
    let mut invalid = br#"{"meta": {"api-version": "1.1"}, "name": "bad", "versions": ["1.0"], "files": [{"filename": "bad-1.0.tar.gz", "upload-time": "2026-01-01T00:00:00Z", "yanked": ""#.to_vec();
    invalid.extend([0xff, 0xfe, 0xfd]);
    invalid.extend(br#""}]}"#);
    upstream.put(
        "/simple/badutf/",
        "application/vnd.pypi.simple.v1+json",
        invalid,
    );
    let long = "1.".repeat(50_000) + "0";
    upstream.put_json(
        "/simple/long/",
        "application/vnd.pypi.simple.v1+json",
        &serde_json::json!({"meta": {"api-version": "1.1"}, "name": "long", "versions": [long, "2.0.0"],
            "files": [{"filename": "long-2.0.0.tar.gz", "upload-time": "2026-01-01T00:00:00Z", "yanked": false}]}),
    );
    let mut broken_title = b"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>x</title><item><title>Releasing utf 1.2.0 ".to_vec();
    broken_title.extend([0xc3, 0x28]);
    broken_title.extend(
        b"</title><link>https://example.org/releasing-utf-1-2-0/</link></item></channel></rss>",
    );
    upstream.put("/utf.xml", "application/rss+xml", broken_title);

    let base = upstream.url();
    let toml = format!(
        "[[project]]\nname = \"laughs\"\nfeed = \"{base}/laughs.xml\"\n\n[[project]]\nname = \"nested\"\npypi = \"nested\"\n\n\
         [[project]]\nname = \"badutf\"\npypi = \"badutf\"\n\n[[project]]\nname = \"long\"\npypi = \"long\"\n\n\
         [[project]]\nname = \"utf\"\nfeed = \"{base}/utf.xml\"\n\n[[project]]\nname = \"skipped\"\npypi = \"skipped\"\n"
    );
    let (summary, app) = run_with(&world, &base, &toml, &[]).await;
    let nested = error_of(&summary, "nested");
    assert!(
        nested.contains("/simple/nested/") && nested.contains("malformed JSON"),
        "{nested}"
    );
    let skipped = summary
        .projects
        .iter()
        .find(|p| p.project == "skipped")
        .expect("skipped");
    assert_eq!(
        (skipped.sources[0].status.clone(), skipped.sources[0].listed),
        (SourceStatus::Ok, 1),
        "{skipped:?}"
    );
    let bad = error_of(&summary, "badutf");
    assert!(
        bad.contains("/simple/badutf/") && bad.contains("malformed JSON"),
        "{bad}"
    );
    // Entities are not expanded: the document is refused or read literally, never blown up.
    let laughs = summary
        .projects
        .iter()
        .find(|p| p.project == "laughs")
        .expect("laughs");
    if laughs.sources[0].status == SourceStatus::Failed {
        assert!(
            laughs.sources[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("/laughs.xml"))
        );
    }
    // The absurd version is skipped with one warning; the sane one is recorded.
    let long = summary
        .projects
        .iter()
        .find(|p| p.project == "long")
        .expect("long");
    assert_eq!(long.sources[0].status, SourceStatus::Ok);
    assert_eq!(long.sources[0].warnings.len(), 1);
    assert!(
        long.sources[0].warnings[0].len() < 300,
        "the warning quotes a short excerpt"
    );
    let releases = app
        .store
        .releases(&herald::store::ReleaseFilter {
            projects: vec!["long".into()],
            ..Default::default()
        })
        .await
        .expect("releases");
    assert_eq!(
        releases
            .iter()
            .map(|r| r.version.as_str())
            .collect::<Vec<_>>(),
        ["2.0.0"]
    );
    // Invalid UTF-8 in a feed title never crashes the run.
    assert!(summary.projects.iter().any(|p| p.project == "utf"));
}

/// A server that promises or streams far more than any cap allows; stops on its own.
async fn endless_server(chunked: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = if chunked {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n".to_string()
                };
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let block = vec![b' '; 64 * 1024];
                // At most 256 MiB, then give up: the client must have hung up long before.
                for _ in 0..4096 {
                    let sent = if chunked {
                        let mut framed = format!("{:x}\r\n", block.len()).into_bytes();
                        framed.extend(&block);
                        framed.extend(b"\r\n");
                        socket.write_all(&framed).await
                    } else {
                        socket.write_all(&block).await
                    };
                    if sent.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_gigabyte_body_is_cut_off_at_the_cap() {
    for chunked in [false, true] {
        let server = endless_server(chunked).await;
        let world = World::new().await;
        let (summary, _) = run_with(
            &world,
            &server,
            "[[project]]\nname = \"huge\"\npypi = \"huge\"\n",
            &["--max-body-bytes", "1048576"],
        )
        .await;
        let err = error_of(&summary, "huge");
        assert!(
            err.contains("larger than the 1048576-byte limit"),
            "chunked={chunked}: {err}"
        );
        assert!(err.contains("/simple/huge/"), "{err}");
    }
}

/// GitHub release notes with a NUL character (which PostgreSQL's text cannot hold) and a tag
/// spelled with one: the check succeeds on either backend, the release is recorded with its
/// notes minus the NUL, the odd tag is a skipped entry, and the same listing read again
/// (another serialisation, so its body digest differs) writes nothing.
#[tokio::test]
async fn release_notes_and_tags_with_nul_are_recorded_without_it() {
    const PATH: &str = "/repos/facebook/react/releases?per_page=100";
    let world = World::new().await;
    let listing = serde_json::json!([
        {
            "html_url": "https://github.com/facebook/react/releases/tag/v18.3.1",
            "tag_name": "v18.3.1",
            "name": "18.3.1\u{0}(April 26, 2024)",
            "draft": false,
            "prerelease": false,
            "published_at": "2024-04-26T19:53:42Z",
            "body": "- Export `act`\u{0} from `react`"
        },
        {
            "html_url": "https://github.com/facebook/react/releases/tag/v18.3.0",
            "tag_name": "v18\u{0}.3.0-odd",
            "name": null,
            "draft": false,
            "prerelease": false,
            "published_at": "2024-04-25T18:22:56Z",
            "body": null
        }
    ]);
    world.upstream.put_json(PATH, "application/json", &listing);
    let projects = world
        .sandbox
        .projects("[[project]]\nname = \"react\"\ngithub = \"facebook/react\"\n");
    let (app, clock) = world
        .app()
        .upstream(&world.upstream.url())
        .projects(&projects)
        .at("2026-11-22T06:00:00Z")
        .build()
        .await;
    let first = run_check(&app).await;
    let report = &first.projects[0].sources[0];
    assert_eq!(report.status, SourceStatus::Ok, "{report:?}");
    assert_eq!(report.skipped, 1, "{report:?}");
    let rows = app
        .store
        .releases(&herald::store::ReleaseFilter::default())
        .await
        .expect("releases");
    let versions: Vec<&str> = rows.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(versions, ["18.3.1"]);
    assert_eq!(
        rows[0].sources[0].notes.as_deref(),
        Some("- Export `act` from `react`")
    );
    let url = world.sandbox.db_url();
    const SEEN: &str = "SELECT CAST(last_seen_at AS TEXT) FROM evidence";
    let seen = common::query_texts(&url, SEEN).await;
    let skipped = common::query_texts(&url, "SELECT entry FROM skipped_entries").await;
    assert_eq!(skipped, ["v18.3.0-odd"]);

    clock.advance(chrono::Duration::hours(1));
    let compact = serde_json::to_vec(&listing).expect("listing");
    world.upstream.put(PATH, "application/json", compact);
    let second = run_check(&app).await;
    let report = &second.projects[0].sources[0];
    assert_eq!(report.status, SourceStatus::Ok, "{report:?}");
    assert!(report.warnings.is_empty(), "reported once: {report:?}");
    assert_eq!(app.store.counts().await.expect("counts"), (1, 1));
    assert_eq!(
        common::query_texts(&url, SEEN).await,
        seen,
        "nothing rewritten"
    );
}
