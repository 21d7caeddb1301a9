//! The official pretalx plugins' real release history (`fixtures/pretalx/plugins.md` for the
//! versions on the index, `plugin_git_tags.csv` for their dates, `metadata/` for their
//! `Requires-Dist` and `Requires-Python`), served in the PyPI shapes.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Upstream;

/// (version, publication time) of a plugin's releases that are on the index and have a
/// dated tag, oldest first.
pub fn history(fixtures: &Path, dist: &str, repo: &str) -> Vec<(String, DateTime<Utc>)> {
    let md = std::fs::read_to_string(fixtures.join("pretalx/plugins.md")).expect("plugins.md");
    let section = md
        .split(&format!("## {dist}\n"))
        .nth(1)
        .expect("plugin section");
    let versions_line = section
        .lines()
        .find(|l| l.starts_with("versions ("))
        .expect("versions line");
    let versions: Vec<&str> = versions_line
        .split("): ")
        .nth(1)
        .expect("list")
        .split(", ")
        .collect();
    let tags = std::fs::read_to_string(fixtures.join("pretalx/plugin_git_tags.csv")).expect("tags");
    let mut out: Vec<(String, DateTime<Utc>)> = tags
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.first() == Some(&repo)).then(|| {
                (
                    f[1].trim_start_matches("v.")
                        .trim_start_matches('v')
                        .to_string(),
                    f[2],
                )
            })
        })
        .filter(|(v, _)| versions.contains(&v.as_str()))
        .map(|(v, d)| {
            (
                v,
                DateTime::parse_from_rfc3339(d)
                    .expect("date")
                    .with_timezone(&Utc),
            )
        })
        .collect();
    out.sort_by_key(|(_, d)| *d);
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// The per-version document of a release: `Requires-Dist`/`Requires-Python` from its real
/// METADATA when the fixtures have it, else `null` (as the index answers for old uploads).
pub fn version_doc(fixtures: &Path, dist: &str, version: &str) -> Value {
    let file = fixtures.join("pretalx/metadata").join(format!(
        "{}-{version}-py3-none-any.METADATA",
        dist.replace('-', "_")
    ));
    let (mut dist_lines, mut python) = (Vec::new(), None);
    let mut found = false;
    if let Ok(text) = std::fs::read_to_string(&file) {
        found = true;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("Requires-Dist: ") {
                dist_lines.push(v.to_string());
            }
            if let Some(v) = line.strip_prefix("Requires-Python: ") {
                python = Some(v.to_string());
            }
        }
    }
    json!({
        "info": {
            "name": dist,
            "version": version,
            "requires_dist": if found { json!(dist_lines) } else { Value::Null },
            "requires_python": python,
        },
        "vulnerabilities": [],
    })
}

/// Serves a plugin's Simple API page and per-version documents.
pub fn serve(
    upstream: &Upstream,
    fixtures: &Path,
    dist: &str,
    releases: &[(String, DateTime<Utc>)],
) {
    serve_with_docs(upstream, dist, releases, |v| version_doc(fixtures, dist, v));
}

/// Serves a distribution with per-version documents from `doc`.
pub fn serve_with_docs(
    upstream: &Upstream,
    dist: &str,
    releases: &[(String, DateTime<Utc>)],
    doc: impl Fn(&str) -> Value,
) {
    let files: Vec<Value> = releases
        .iter()
        .map(|(v, d)| {
            json!({"filename": format!("{}-{v}-py3-none-any.whl", dist.replace('-', "_")),
                   "url": "https://files.pypi-mirror.test/x.whl", "hashes": {},
                   "upload-time": d.to_rfc3339(), "yanked": false})
        })
        .collect();
    let versions: Vec<&str> = releases.iter().map(|(v, _)| v.as_str()).collect();
    upstream.put_json(
        &format!("/simple/{dist}/"),
        "application/vnd.pypi.simple.v1+json",
        &json!({"meta": {"api-version": "1.1"}, "name": dist, "versions": versions, "files": files}),
    );
    for (v, _) in releases {
        upstream.put_json(
            &format!("/pypi/{dist}/{v}/json"),
            "application/json",
            &doc(v),
        );
    }
}
