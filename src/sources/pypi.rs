//! The Python package index: the project's Simple API page in JSON (PEP 691, with PEP 700
//! `versions` and `upload-time`), falling back to the JSON API project document
//! (`/pypi/NAME/json`) when the index does not offer PEP 700.
//!
//! A release's date is the earliest upload among its files; a version with no files is
//! reported as unavailable; a release is yanked when all its files are (PEP 592 allows
//! `true` or a reason string).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use url::Url;

use super::http::{Body, Fetch, Request};
use super::{FetchContext, Fetched, Source, SourceError, json_body};
use crate::attribution::{self, Candidate, Verdict};
use crate::model::{Observation, Project, ReleaseMetadata, SourceKind, Vulnerability};
use crate::version;

const SIMPLE_JSON: &str = "application/vnd.pypi.simple.v1+json";

/// The PyPI adapter.
#[derive(Debug, Clone)]
pub struct PypiSource {
    base: Url,
}

pub use crate::model::normalize_name;

#[derive(Deserialize)]
struct SimplePage {
    #[serde(default)]
    versions: Option<Vec<String>>,
    #[serde(default)]
    files: Vec<SimpleFile>,
}

#[derive(Deserialize)]
struct SimpleFile {
    filename: String,
    #[serde(rename = "upload-time", default)]
    upload_time: Option<String>,
    #[serde(default)]
    yanked: Yanked,
}

/// PEP 592's `yanked`: absent or null, a flag, or the reason. Read by hand: an untagged enum
/// would buffer every file's value and build an error for each variant it tries.
#[derive(Default, Clone)]
enum Yanked {
    #[default]
    No,
    Flag(bool),
    Reason(String),
}

impl<'de> Deserialize<'de> for Yanked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Yanked;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("null, true, false or a reason")
            }
            fn visit_unit<E>(self) -> Result<Yanked, E> {
                Ok(Yanked::No)
            }
            fn visit_none<E>(self) -> Result<Yanked, E> {
                Ok(Yanked::No)
            }
            fn visit_bool<E>(self, flag: bool) -> Result<Yanked, E> {
                Ok(Yanked::Flag(flag))
            }
            fn visit_str<E>(self, reason: &str) -> Result<Yanked, E> {
                Ok(Yanked::Reason(reason.to_string()))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

impl Yanked {
    fn state(&self) -> (bool, Option<String>) {
        match self {
            Yanked::No | Yanked::Flag(false) => (false, None),
            Yanked::Flag(true) => (true, None),
            Yanked::Reason(reason) => (true, Some(reason.clone()).filter(|r| !r.is_empty())),
        }
    }
}

#[derive(Deserialize)]
struct JsonProject {
    releases: Option<HashMap<String, Vec<JsonFile>>>,
}

#[derive(Deserialize)]
struct JsonFile {
    #[serde(default)]
    upload_time_iso_8601: Option<String>,
    #[serde(default)]
    upload_time: Option<String>,
    #[serde(default)]
    yanked: bool,
    #[serde(default)]
    yanked_reason: Option<String>,
}

/// One file's facts, whichever API reported them.
struct FileFacts {
    uploaded: Option<DateTime<Utc>>,
    yanked: (bool, Option<String>),
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

const ARCHIVES: [&str; 8] = [
    ".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar", ".tar.Z", ".rpm",
];

/// The version a distribution file is for: wheels and eggs carry it as the second dash
/// field; sdists after the (possibly hyphenated) project name.
pub fn file_version(filename: &str, project: &str) -> Option<String> {
    let normalized = normalize_name(project);
    for ext in [".whl", ".egg"] {
        if let Some(stem) = filename.strip_suffix(ext) {
            return stem.split('-').nth(1).map(str::to_string);
        }
    }
    let stem = ARCHIVES
        .iter()
        .find_map(|ext| filename.strip_suffix(ext))
        .or_else(|| {
            // bdist_wininst / msi: name-1.0.win32.exe, name-1.0.win32-py2.7.exe
            let s = filename
                .strip_suffix(".exe")
                .or_else(|| filename.strip_suffix(".msi"))?;
            s.find(".win").map(|at| &s[..at])
        })?;
    stem.char_indices()
        .filter(|(_, c)| *c == '-')
        .find(|(at, _)| normalize_name(&stem[..*at]) == normalized)
        .map(|(at, _)| stem[at + 1..].to_string())
}

fn observation(
    raw: &str,
    files: &[FileFacts],
    page: Option<String>,
    fetched: &mut Fetched,
    project: &Project,
) -> Option<Observation> {
    let version = match attribution::attribute(project, Candidate::IndexVersion(raw)) {
        Verdict::Own(v) => v,
        Verdict::Unreadable(err) => {
            fetched.skip_unreadable(raw, format!("{}: pypi: skipped {err}", project.name));
            return None;
        }
        // The index lists one distribution: the rule gives none of its versions away.
        Verdict::Other(_) | Verdict::NotARelease => return None,
    };
    let mut obs = Observation::new(raw, version);
    obs.published_at = files.iter().filter_map(|f| f.uploaded).min();
    obs.available = !files.is_empty();
    if !files.is_empty() && files.iter().all(|f| f.yanked.0) {
        obs.yanked = true;
        obs.yanked_reason = files.iter().find_map(|f| f.yanked.1.clone());
    }
    obs.url = page;
    Some(obs)
}

impl PypiSource {
    /// An adapter for the index at `base`.
    pub fn new(base: Url) -> PypiSource {
        PypiSource { base }
    }

    fn join(&self, path: &str) -> Result<Url, SourceError> {
        self.base.join(path).map_err(|err| {
            SourceError::document(&self.base, format!("cannot build URL for `{path}`: {err}"))
        })
    }

    fn page(&self, name: &str, version: &str) -> Option<String> {
        let plain = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+!".contains(&b))
        };
        // The common case written directly: what `join` gives for a base ending in `/` and
        // segments that need no escaping. Anything else goes through `join`.
        if self.base.path().ends_with('/')
            && self.base.query().is_none()
            && self.base.fragment().is_none()
            && plain(name)
            && plain(version)
            && version != "."
            && version != ".."
            && name != "."
            && name != ".."
        {
            return Some(format!("{}project/{name}/{version}/", self.base));
        }
        self.base
            .join(&format!("project/{name}/{version}/"))
            .ok()
            .map(|u| u.to_string())
    }

    fn read_simple(
        &self,
        project: &Project,
        name: &str,
        page: SimplePage,
        versions: Vec<String>,
    ) -> Fetched {
        let mut fetched = Fetched::default();
        let mut by_key: HashMap<String, Vec<FileFacts>> = HashMap::new();
        for file in page.files {
            let Some(key) = file_version(&file.filename, name)
                .and_then(|v| version::parse(&v).ok())
                .map(|v| version::canonical_key(&v))
            else {
                tracing::debug!(project = %project.name, file = %file.filename, "file name names no version");
                continue;
            };
            by_key.entry(key).or_default().push(FileFacts {
                uploaded: file.upload_time.as_deref().and_then(parse_time),
                yanked: file.yanked.state(),
            });
        }
        for raw in versions {
            let files = version::parse(&raw)
                .ok()
                .and_then(|v| by_key.remove(&version::canonical_key(&v)))
                .unwrap_or_default();
            let page = self.page(name, &raw);
            let obs = observation(&raw, &files, page, &mut fetched, project);
            fetched.observations.extend(obs);
        }
        fetched
    }

    fn read_json(
        &self,
        project: &Project,
        name: &str,
        body: &Body,
    ) -> Result<Fetched, SourceError> {
        let doc: JsonProject = json_body(body)?;
        let releases = doc.releases.ok_or_else(|| {
            SourceError::document(&body.url, "the project document has no `releases` map")
        })?;
        let mut fetched = Fetched::default();
        for (raw, files) in releases {
            let facts: Vec<FileFacts> = files
                .into_iter()
                .map(|f| FileFacts {
                    uploaded: f
                        .upload_time_iso_8601
                        .as_deref()
                        .or(f.upload_time.as_deref())
                        .and_then(parse_time),
                    yanked: (f.yanked, f.yanked_reason.filter(|r| !r.is_empty())),
                })
                .collect();
            let page = self.page(name, &raw);
            let obs = observation(&raw, &facts, page, &mut fetched, project);
            fetched.observations.extend(obs);
        }
        Ok(fetched)
    }

    async fn fetch_project(
        &self,
        project: &Project,
        cx: FetchContext<'_>,
    ) -> Result<Fetched, SourceError> {
        let Some(dist) = project.pypi.as_deref() else {
            return Ok(Fetched::default());
        };
        let name = normalize_name(dist);
        let simple_url = self.join(&format!("simple/{name}/"))?;
        let simple = cx
            .http
            .get(
                &Request {
                    url: &simple_url,
                    accept: SIMPLE_JSON,
                    headers: Vec::new(),
                    validators: cx.validators_for(simple_url.as_str()),
                },
                cx.now,
            )
            .await?;
        let mut body = match simple {
            Fetch::NotModified => {
                return Ok(Fetched {
                    not_modified: true,
                    ..Fetched::default()
                });
            }
            Fetch::Modified(body) => body,
        };
        let speaks_json = body
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.contains("json"));
        if speaks_json {
            // Parsing a long history is the CPU-heavy part of a check: it runs on the blocking
            // pool, beside the fetches and the writes of other projects.
            let (this, owned, name) = (self.clone(), project.clone(), name.clone());
            let parsed = tokio::task::spawn_blocking(move || {
                let page: SimplePage = json_body(&body)?;
                let Some(versions) = page.versions.clone() else {
                    return Ok(Err(body));
                };
                let mut fetched = this.read_simple(&owned, &name, page, versions);
                fetched.validators.push((body.url, body.validators));
                Ok::<_, SourceError>(Ok(fetched))
            })
            .await
            .map_err(|err| {
                SourceError::document(&simple_url, format!("reading the index page failed: {err}"))
            })??;
            match parsed {
                Ok(fetched) => return Ok(fetched),
                Err(page) => body = page,
            }
        }
        // The index has no PEP 700 version list: read the JSON API project document.
        let json_url = self.join(&format!("pypi/{name}/json"))?;
        let json = cx
            .http
            .get(
                &Request {
                    url: &json_url,
                    accept: "application/json",
                    headers: Vec::new(),
                    validators: None,
                },
                cx.now,
            )
            .await?;
        let Fetch::Modified(json_body) = json else {
            return Err(SourceError::document(
                &json_url,
                "answered 304 to a request without validators",
            ));
        };
        let mut fetched = self.read_json(project, &name, &json_body)?;
        fetched.validators.push((body.url, body.validators));
        Ok(fetched)
    }
}

impl Source for PypiSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Pypi
    }

    fn fetch<'a>(
        &'a self,
        project: &'a Project,
        cx: FetchContext<'a>,
    ) -> BoxFuture<'a, Result<Fetched, SourceError>> {
        self.fetch_project(project, cx).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_pages_are_what_joining_the_base_gives() {
        for base in [
            "https://pypi.org/",
            "http://127.0.0.1:8080/",
            "https://mirror.example/pypi/",
            "https://mirror.example/pypi",
            "https://mirror.example/?q=1",
        ] {
            let source = PypiSource::new(Url::parse(base).expect("base"));
            for (name, version) in [
                ("pretalx", "2025.2.0"),
                ("luigi", "1.0.8"),
                ("x", "1.0+local.7"),
                ("x", "1!2.0rc1"),
                ("x", "1.0 beta"),
                ("x", ".."),
                ("x", "1.0/../2"),
                ("x", "ünïcode"),
            ] {
                let joined = source
                    .base
                    .join(&format!("project/{name}/{version}/"))
                    .ok()
                    .map(|u| u.to_string());
                assert_eq!(
                    source.page(name, version),
                    joined,
                    "{base} {name} {version}"
                );
            }
        }
    }

    #[test]
    fn names_normalise() {
        assert_eq!(normalize_name("pretalx_pages"), "pretalx-pages");
        assert_eq!(normalize_name("Pretalx.__Pages"), "pretalx-pages");
        assert_eq!(normalize_name("black"), "black");
    }

    #[test]
    fn file_names_carry_versions() {
        assert_eq!(
            file_version("black-19.10b0-py36-none-any.whl", "black").as_deref(),
            Some("19.10b0")
        );
        assert_eq!(
            file_version("pretalx-pages-1.0.0.tar.gz", "pretalx-pages").as_deref(),
            Some("1.0.0")
        );
        assert_eq!(
            file_version("pretalx_pages-1.5.0.tar.gz", "pretalx-pages").as_deref(),
            Some("1.5.0")
        );
        assert_eq!(
            file_version("pretalx_pages-1.9.0-py3-none-any.whl", "pretalx-pages").as_deref(),
            Some("1.9.0")
        );
        assert_eq!(
            file_version("celery-3.1.26-1.tar.gz", "celery").as_deref(),
            Some("3.1.26-1")
        );
        assert_eq!(
            file_version("foo-1.0.win32-py2.7.exe", "foo").as_deref(),
            Some("1.0")
        );
        assert_eq!(file_version("README.txt", "foo"), None);
    }

    #[test]
    fn upload_times_with_and_without_fractions() {
        assert!(parse_time("2024-10-26T22:36:58.740650Z").is_some());
        assert!(parse_time("2019-10-28T23:53:54Z").is_some());
        assert!(parse_time("2019-10-28T23:53:54").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}

/// One vulnerability record of a per-version document (from OSV), as the index sends it.
#[derive(Deserialize)]
struct OsvRecord {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    fixed_in: Vec<String>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
}

impl From<OsvRecord> for Vulnerability {
    fn from(r: OsvRecord) -> Vulnerability {
        Vulnerability {
            id: r.id,
            aliases: r.aliases,
            summary: r.summary,
            fixed_in: r.fixed_in,
            link: r.link,
            withdrawn: r.withdrawn,
        }
    }
}

#[derive(Deserialize)]
struct VersionDocument {
    info: VersionInfo,
    #[serde(default)]
    vulnerabilities: Vec<OsvRecord>,
}

#[derive(Deserialize)]
struct VersionInfo {
    #[serde(default)]
    requires_dist: Option<Vec<String>>,
    #[serde(default)]
    requires_python: Option<String>,
}

/// Reads a per-version JSON document.
pub fn parse_release_doc(body: &Body) -> Result<ReleaseMetadata, SourceError> {
    let doc: VersionDocument = json_body(body)?;
    Ok(ReleaseMetadata {
        requires_dist: doc.info.requires_dist,
        requires_python: doc.info.requires_python.filter(|s| !s.trim().is_empty()),
        vulnerabilities: doc
            .vulnerabilities
            .into_iter()
            .filter(|v| v.withdrawn.is_none())
            .map(Vulnerability::from)
            .collect(),
    })
}

impl PypiSource {
    /// Fetches `/pypi/NAME/VERSION/json` (conditionally); `Ok(None)` when unchanged since the
    /// validators were issued. The second value is the URL and its new validators.
    pub async fn release_doc(
        &self,
        cx: FetchContext<'_>,
        dist: &str,
        version: &str,
    ) -> Result<
        (
            Option<ReleaseMetadata>,
            Option<(String, crate::sources::http::Validators)>,
        ),
        SourceError,
    > {
        let url = self.join(&format!("pypi/{}/{version}/json", normalize_name(dist)))?;
        let answer = cx
            .http
            .get(
                &Request {
                    url: &url,
                    accept: "application/json",
                    headers: Vec::new(),
                    validators: cx.validators_for(url.as_str()),
                },
                cx.now,
            )
            .await?;
        match answer {
            Fetch::NotModified => Ok((None, None)),
            Fetch::Modified(body) => {
                let doc = parse_release_doc(&body)?;
                Ok((Some(doc), Some((body.url.clone(), body.validators.clone()))))
            }
        }
    }
}

impl PypiSource {
    /// Reads one index answer for `project` exactly as the adapter does after its GET of
    /// `/simple/NAME/`: a JSON body (by `Content-Type`) is read as a Simple API page, and
    /// when that page lists `versions` (PEP 700) its files give dates and yanks; otherwise
    /// the same body is read as the JSON API project document (`/pypi/NAME/json`), which
    /// the adapter would fetch next. No I/O: for tests and fuzzing of the parsers.
    pub fn parse_index_document(
        &self,
        project: &Project,
        body: &Body,
    ) -> Result<Fetched, SourceError> {
        let Some(dist) = project.pypi.as_deref() else {
            return Ok(Fetched::default());
        };
        let name = normalize_name(dist);
        let speaks_json = body
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.contains("json"));
        if speaks_json {
            let page: SimplePage = json_body(body)?;
            if let Some(versions) = page.versions.clone() {
                return Ok(self.read_simple(project, &name, page, versions));
            }
        }
        self.read_json(project, &name, body)
    }
}
