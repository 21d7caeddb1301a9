//! pretalx's real release history (`fixtures/pretalx/pretalx_releases.csv`), served in the
//! shapes of the PyPI Simple API, GitHub's releases API and an RSS feed of its blog posts.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::Upstream;

/// One row of the CSV.
#[derive(Debug, Clone)]
pub struct Row {
    pub version: String,
    pub date: String,
    pub git_tag: String,
    pub git_tag_datetime: DateTime<Utc>,
    pub requires_python: Option<String>,
    pub files: Vec<String>,
    pub blog: Option<String>,
    pub upload: Option<DateTime<Utc>>,
}

impl Row {
    /// The upload time Herald should report: the first file's, else the tag's.
    pub fn published(&self) -> DateTime<Utc> {
        self.upload.unwrap_or(self.git_tag_datetime)
    }
}

/// Reads the 48 rows.
pub fn rows(fixtures: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures.join("pretalx/pretalx_releases.csv")).expect("csv");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    assert!(
        header.starts_with("version,date,source-of-date,git_tag"),
        "{header}"
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.splitn(10, ',').collect();
            assert_eq!(f.len(), 10, "{line}");
            let parse = |t: &str| DateTime::parse_from_rfc3339(t).map(|d| d.with_timezone(&Utc));
            Row {
                version: f[0].to_string(),
                date: f[1].to_string(),
                git_tag: f[3].to_string(),
                git_tag_datetime: parse(f[4]).expect("tag time"),
                requires_python: Some(f[5].to_string()).filter(|s| !s.is_empty()),
                files: f[6].split_whitespace().map(str::to_string).collect(),
                blog: Some(f[7].to_string()).filter(|s| !s.is_empty()),
                upload: Some(f[8])
                    .filter(|s| !s.is_empty())
                    .map(|t| parse(t).expect("upload time")),
            }
        })
        .collect()
}

/// The Simple API (PEP 691 JSON with PEP 700 fields) page for these rows plus `extra`
/// versions (each with one wheel uploaded at the given time).
pub fn simple_page(rows: &[Row], extra: &[(&str, &str)]) -> Value {
    let mut versions: Vec<String> = rows.iter().map(|r| r.version.clone()).collect();
    let mut files = Vec::new();
    for r in rows {
        for name in &r.files {
            files.push(json!({
                "filename": name,
                "url": format!("https://files.pypi-mirror.test/packages/{name}"),
                "hashes": {},
                "requires-python": r.requires_python,
                "upload-time": r.published().to_rfc3339(),
                "yanked": false,
            }));
        }
    }
    for (version, uploaded) in extra {
        versions.push(version.to_string());
        files.push(json!({
            "filename": format!("pretalx-{version}-py3-none-any.whl"),
            "url": "https://files.pypi-mirror.test/packages/x.whl",
            "hashes": {},
            "upload-time": uploaded,
            "yanked": false,
        }));
    }
    json!({
        "meta": {"api-version": "1.4", "_last-serial": 1},
        "name": "pretalx",
        "versions": versions,
        "files": files,
    })
}

/// GitHub release objects, newest first.
pub fn github_releases(rows: &[Row]) -> Vec<Value> {
    let mut out: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "id": 1000 + i,
                "tag_name": r.git_tag,
                "name": r.git_tag,
                "draft": false,
                "prerelease": false,
                "created_at": r.git_tag_datetime.to_rfc3339(),
                "published_at": r.git_tag_datetime.to_rfc3339(),
                "html_url": format!("https://github.com/pretalx/pretalx/releases/tag/{}", r.git_tag),
                "body": format!("Release notes of pretalx {}.", r.version),
            })
        })
        .collect();
    out.reverse();
    out
}

/// Serves GitHub releases in pages of `per_page`, linked by `Link` headers.
pub fn serve_github(upstream: &Upstream, repo: &str, releases: &[Value], per_page: usize) {
    let base = format!("/repos/{repo}/releases");
    let pages: Vec<&[Value]> = releases.chunks(per_page).collect();
    let pages = if pages.is_empty() {
        vec![&releases[..0]]
    } else {
        pages
    };
    for (i, page) in pages.iter().enumerate() {
        let path = if i == 0 {
            format!("{base}?per_page=100")
        } else {
            format!("{base}?per_page=100&page={}", i + 1)
        };
        let mut links = Vec::new();
        if i + 1 < pages.len() {
            links.push(format!(
                "<{}{base}?per_page=100&page={}>; rel=\"next\"",
                upstream.url(),
                i + 2
            ));
            links.push(format!(
                "<{}{base}?per_page=100&page={}>; rel=\"last\"",
                upstream.url(),
                pages.len()
            ));
        }
        let link = links.join(", ");
        let headers: Vec<(&str, &str)> = if link.is_empty() {
            vec![]
        } else {
            vec![("link", link.as_str())]
        };
        upstream.put_with_headers(
            &path,
            "application/json; charset=utf-8",
            serde_json::to_vec(&Value::Array(page.to_vec())).expect("json"),
            &headers,
        );
    }
}

/// An RSS 2.0 feed with one item per distinct blog post of the history.
pub fn blog_feed(rows: &[Row]) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut items = String::new();
    for r in rows.iter().rev() {
        let Some(url) = &r.blog else { continue };
        if !seen.insert(url.clone()) {
            continue;
        }
        let date = NaiveDate::parse_from_str(&r.date, "%Y-%m-%d").expect("date");
        let pub_date = date
            .and_hms_opt(12, 0, 0)
            .expect("time")
            .and_utc()
            .to_rfc2822();
        items.push_str(&format!(
            "<item><title>News from the pretalx blog</title><link>{url}</link><guid>{url}</guid><pubDate>{pub_date}</pubDate><description>A post.</description></item>\n"
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>pretalx news</title><link>https://pretalx.com/p/news/</link><description>News</description>\n{items}</channel></rss>\n"
    )
}

/// A projects file tracking pretalx on all three sources of `upstream`.
pub fn projects_toml(upstream: &Upstream) -> String {
    format!(
        "[[project]]\nname = \"pretalx\"\nscheme = \"calver\"\npypi = \"pretalx\"\ngithub = \"pretalx/pretalx\"\nfeed = \"{}/p/news/feed/\"\n",
        upstream.url()
    )
}

/// Serves everything for pretalx's history.
pub fn serve_history(upstream: &Upstream, rows: &[Row], extra: &[(&str, &str)]) {
    upstream.put_json(
        "/simple/pretalx/",
        "application/vnd.pypi.simple.v1+json",
        &simple_page(rows, extra),
    );
    serve_github(upstream, "pretalx/pretalx", &github_releases(rows), 30);
    upstream.put("/p/news/feed/", "application/rss+xml", blog_feed(rows));
}

/// The features among the 48 versions, by the contract's rule (the rest are bugfixes).
pub const FEATURES: [&str; 23] = [
    "0.1.0",
    "0.2.0.post1",
    "0.3.0",
    "0.4.0",
    "0.5.0",
    "0.6.0",
    "0.7.0",
    "0.8.0",
    "0.9.0",
    "1.0.0",
    "1.1.0",
    "2.0.0",
    "2.1.0",
    "2.2.0",
    "2.3.0",
    "2023.1.0",
    "2024.1.0",
    "2024.2.0",
    "2024.3.0",
    "2025.1.0",
    "2025.2.0",
    "2026.1.0",
    "2026.2.0",
];
