//! The tracked-projects file (`HERALD_PROJECTS`) and the built-in pretalx preset.
//!
//! Owns: reading the TOML, validating every entry (names, sources, URLs, `plugin_of`), and
//! error messages that name the file, the line and the problem. Does not own: what the
//! projects are used for.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::model::{GithubRepo, Project, Scheme};

/// The preset used when `HERALD_PROJECTS` is not set.
pub const PRESET: &str = include_str!("preset.toml");

/// Name shown for the preset in messages.
pub const PRESET_ORIGIN: &str = "built-in preset";

/// A projects file Herald refuses.
#[derive(Debug, thiserror::Error)]
pub enum ProjectsError {
    /// The file could not be read.
    #[error("{file}: cannot read the projects file: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file says something Herald cannot use.
    #[error("{file}:{line}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line of the problem.
        line: usize,
        /// The problem.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    project: Vec<Spanned<RawProject>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    name: Spanned<String>,
    #[serde(default)]
    scheme: Option<Scheme>,
    pypi: Option<Spanned<String>>,
    github: Option<Spanned<RawGithub>>,
    feed: Option<Spanned<String>>,
    plugin_of: Option<Spanned<String>>,
    module: Option<Spanned<String>>,
    tag_prefix: Option<Spanned<String>>,
    #[serde(default)]
    upgrade_steps: Vec<String>,
    #[serde(default)]
    compat: Vec<crate::compat::Override>,
}

/// `github = "owner/repo"`, or `github = { repo = "owner/repo", tag_prefix = "..." }`: the
/// table form gives the GitHub source its own tag prefix.
enum RawGithub {
    Repo(String),
    Table {
        repo: String,
        tag_prefix: Option<String>,
    },
}

impl RawGithub {
    fn repo(&self) -> &str {
        match self {
            RawGithub::Repo(repo) | RawGithub::Table { repo, .. } => repo,
        }
    }

    fn tag_prefix(&self) -> Option<&str> {
        match self {
            RawGithub::Repo(_) => None,
            RawGithub::Table { tag_prefix, .. } => tag_prefix.as_deref(),
        }
    }
}

impl<'de> Deserialize<'de> for RawGithub {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawGithub;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`owner/repository`, or a table with `repo` and `tag_prefix`")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawGithub, E> {
                Ok(RawGithub::Repo(v.to_string()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawGithub, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Table {
                    repo: String,
                    tag_prefix: Option<String>,
                }
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawGithub::Table {
                    repo: t.repo,
                    tag_prefix: t.tag_prefix,
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

// The three patterns below are checked by hand rather than with `regex`: they run at every
// start, and compiling them touched the regex engine's code (about 0.6 MB of `herald serve`'s
// idle memory, P5) for what a scan of the bytes says as well.

/// `[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?`: a project or distribution name.
fn is_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 100
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        _ => false,
    }
}

/// `owner/repository`: `[A-Za-z0-9][A-Za-z0-9-]{0,38}` / `[A-Za-z0-9._-]{1,100}`.
fn owner_and_repository(text: &str) -> Option<(&str, &str)> {
    let (owner, repo) = text.split_once('/')?;
    let owner_ok = (1..=39).contains(&owner.len())
        && owner.as_bytes()[0].is_ascii_alphanumeric()
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let repo_ok = (1..=100).contains(&repo.len())
        && repo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (owner_ok && repo_ok).then_some((owner, repo))
}

/// A dotted Python module name: identifiers (`[A-Za-z_][A-Za-z0-9_]*`) joined by `.`.
fn is_module(text: &str) -> bool {
    text.split('.').all(|part| {
        part.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// The byte offsets of a text's line breaks, for [`line_of`].
pub(crate) fn line_breaks(text: &str) -> Vec<usize> {
    text.match_indices('\n').map(|(at, _)| at).collect()
}

/// The line a byte offset is on, from the offsets of the text's line breaks (found once: a
/// file of thousands of projects asks for a line per project).
pub(crate) fn line_of(breaks: &[usize], span: Option<Range<usize>>) -> usize {
    span.map(|s| breaks.partition_point(|b| *b < s.start) + 1)
        .unwrap_or(1)
}

/// Loads and validates a projects file.
pub fn load_file(path: &Path) -> Result<Vec<Project>, ProjectsError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ProjectsError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&text, &file)
}

/// What is wrong with one entry, and where: the span (if any) and the message.
type Flaw = (Option<Range<usize>>, String);

/// Parses and validates projects from TOML text; `origin` names the file in messages.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Project>, ProjectsError> {
    let breaks = line_breaks(text);
    let fail = |(span, message): Flaw| ProjectsError::Invalid {
        file: origin.to_string(),
        line: line_of(&breaks, span),
        message,
    };
    let raw: RawFile =
        toml::from_str(text).map_err(|err| fail((err.span(), err.message().trim().to_string())))?;
    if raw.project.is_empty() {
        return Err(fail((
            None,
            "no [[project]] entries: list at least one project to track".into(),
        )));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut projects = Vec::new();
    for entry in &raw.project {
        let name = valid_name(entry.get_ref()).map_err(fail)?;
        let name_span = entry.get_ref().name.span();
        let line = line_of(&breaks, Some(name_span.clone()));
        if let Some(first) = seen.insert(name.to_lowercase(), line) {
            return Err(fail((
                Some(name_span),
                format!("project `{name}` is listed twice (first on line {first})"),
            )));
        }
        projects.push(project(entry, name).map_err(fail)?);
    }
    check_plugins(&raw.project, &projects).map_err(fail)?;
    Ok(projects)
}

/// The entry's `name`, trimmed, if it is a valid project name.
fn valid_name(p: &RawProject) -> Result<String, Flaw> {
    let name = p.name.get_ref().trim().to_string();
    if !is_name(&name) {
        return Err((
            Some(p.name.span()),
            format!("project name `{name}` must be 1-100 letters, digits, `.`, `_` or `-`"),
        ));
    }
    Ok(name)
}

/// One validated project from its `[[project]]` entry, whose `name` is already checked.
fn project(entry: &Spanned<RawProject>, name: String) -> Result<Project, Flaw> {
    let p = entry.get_ref();
    let pypi = matching(p.pypi.as_ref(), is_name, |v| {
        format!("`pypi = \"{v}\"` is not a valid distribution name")
    })?;
    let github = github(p)?;
    let tag_prefix = tag_prefix(p)?;
    let feed = match &p.feed {
        Some(value) => Some(parse_http_url(value.get_ref()).map_err(|why| {
            (
                Some(value.span()),
                format!("`feed = \"{}\"`: {why}", value.get_ref()),
            )
        })?),
        None => None,
    };
    if pypi.is_none() && github.is_none() && feed.is_none() {
        return Err((
            Some(entry.span()),
            format!("project `{name}` has no source: set at least one of pypi, github or feed"),
        ));
    }
    let module = matching(p.module.as_ref(), is_module, |v| {
        format!("`module = \"{v}\"` is not a Python module name")
    })?;
    Ok(Project {
        name,
        scheme: p.scheme.unwrap_or_default(),
        pypi,
        github,
        feed,
        plugin_of: p.plugin_of.as_ref().map(|v| v.get_ref().trim().to_string()),
        module,
        tag_prefix,
        upgrade_steps: p
            .upgrade_steps
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        compat: p.compat.clone(),
    })
}

/// An optional string field, trimmed, that must pass `valid`.
fn matching(
    value: Option<&Spanned<String>>,
    valid: fn(&str) -> bool,
    why: impl Fn(&str) -> String,
) -> Result<Option<String>, Flaw> {
    let Some(value) = value else {
        return Ok(None);
    };
    let v = value.get_ref().trim();
    if !valid(v) {
        return Err((Some(value.span()), why(v)));
    }
    Ok(Some(v.to_string()))
}

/// The `github` field as `owner/repository`.
fn github(p: &RawProject) -> Result<Option<GithubRepo>, Flaw> {
    let Some(value) = &p.github else {
        return Ok(None);
    };
    let v = value.get_ref().repo().trim();
    let (owner, name) = owner_and_repository(v).ok_or_else(|| {
        (
            Some(value.span()),
            format!("`github = \"{v}\"` must be `owner/repository`"),
        )
    })?;
    Ok(Some(GithubRepo {
        owner: owner.to_string(),
        name: name.to_string(),
    }))
}

/// Every `plugin_of` names a tracked core project: not itself, not another plugin.
fn check_plugins(raw: &[Spanned<RawProject>], projects: &[Project]) -> Result<(), Flaw> {
    for entry in raw {
        let Some(parent) = &entry.get_ref().plugin_of else {
            continue;
        };
        let span = Some(parent.span());
        let name = entry.get_ref().name.get_ref().trim();
        let parent = parent.get_ref().trim();
        let Some(core) = projects.iter().find(|p| p.name == parent) else {
            return Err((
                span,
                format!(
                    "project `{name}` has plugin_of = \"{parent}\", but no project is named `{parent}`"
                ),
            ));
        };
        if core.name == name {
            return Err((
                span,
                format!("project `{name}` cannot be a plugin of itself"),
            ));
        }
        if let Some(grand) = &core.plugin_of {
            return Err((
                span,
                format!(
                    "project `{name}` is a plugin of `{parent}`, which is itself a plugin of `{grand}`"
                ),
            ));
        }
    }
    Ok(())
}

/// The project's tag prefix: `tag_prefix`, or the `tag_prefix` of its `github` table (one of
/// the two). Either way it applies to GitHub tags only. An empty prefix is none.
fn tag_prefix(p: &RawProject) -> Result<Option<String>, Flaw> {
    let in_table = p
        .github
        .as_ref()
        .and_then(|g| g.get_ref().tag_prefix().map(|t| (t, g.span())));
    let (prefix, span) = match (&p.tag_prefix, in_table) {
        (Some(top), Some(_)) => {
            return Err((
                Some(top.span()),
                "tag_prefix is given twice: keep either `tag_prefix` or the one in the `github` table"
                    .into(),
            ));
        }
        (Some(top), None) => (top.get_ref().as_str(), top.span()),
        (None, Some((inner, span))) => (inner, span),
        (None, None) => return Ok(None),
    };
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) || prefix.len() > 200 {
        return Err((
            Some(span),
            format!(
                "`tag_prefix = \"{}\"` must be at most 200 characters without spaces",
                prefix.escape_default()
            ),
        ));
    }
    Ok(Some(prefix.to_string()).filter(|p| !p.is_empty()))
}

/// Parses an absolute `http`/`https` URL.
pub fn parse_http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|err| format!("not a URL ({err})"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        "http" | "https" => Err("the URL has no host".into()),
        other => Err(format!(
            "scheme `{other}` is not supported (use http or https)"
        )),
    }
}

/// The preset, parsed.
pub fn preset() -> Result<Vec<Project>, ProjectsError> {
    parse(PRESET, PRESET_ORIGIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, "projects.toml")
            .expect_err("must be refused")
            .to_string()
    }

    /// The hand-written checks accept exactly what the patterns they replace accept: every
    /// string of up to three characters from an alphabet of edge cases, and the lengths
    /// around each limit.
    #[test]
    fn name_checks_agree_with_their_patterns() {
        let name =
            regex::Regex::new(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$").expect("pattern");
        let github =
            regex::Regex::new(r"^([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/([A-Za-z0-9._-]{1,100})$")
                .expect("pattern");
        let module = regex::Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
            .expect("pattern");
        let alphabet = ["a", "Z", "0", ".", "_", "-", "/", " ", "é", "+"];
        let mut cases = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = cases
                .iter()
                .flat_map(|c| alphabet.iter().map(move |a| format!("{c}{a}")))
                .collect();
            cases.extend(longer);
        }
        for n in [38, 39, 40, 98, 99, 100, 101] {
            for fill in ["a", "-", "."] {
                let middle = fill.repeat(n - 2);
                cases.push(format!("a{middle}a"));
                cases.push(format!("{}/x", "a".repeat(n)));
                cases.push(format!("o/{}", "r".repeat(n)));
                cases.push(format!("a{middle}a/b{middle}b"));
            }
        }
        cases.extend(
            [
                "pretalx/pretalx",
                "a/b/c",
                "pretalx_pages.signals",
                "_a._b",
                "a..b",
            ]
            .map(String::from),
        );
        for case in &cases {
            assert_eq!(is_name(case), name.is_match(case), "name {case:?}");
            let captured = github
                .captures(case)
                .map(|c| (c.get(1).map(|m| m.as_str()), c.get(2).map(|m| m.as_str())));
            let split = owner_and_repository(case).map(|(o, r)| (Some(o), Some(r)));
            assert_eq!(split, captured, "github {case:?}");
            assert_eq!(is_module(case), module.is_match(case), "module {case:?}");
        }
        assert!(cases.len() > 1_000, "{}", cases.len());
    }

    #[test]
    fn preset_tracks_pretalx_and_its_plugins() {
        let projects = preset().expect("preset parses");
        let core = &projects[0];
        assert_eq!(core.name, "pretalx");
        assert_eq!(core.scheme, Scheme::Calver);
        assert_eq!(
            core.feed.as_ref().map(|u| u.as_str()),
            Some("https://pretalx.com/p/news/")
        );
        let plugins: Vec<_> = projects
            .iter()
            .filter(|p| p.plugin_of.as_deref() == Some("pretalx"))
            .collect();
        assert_eq!(plugins.len(), 11);
        for plugin in plugins {
            let module = plugin.module.as_deref().expect("module");
            assert_eq!(
                module,
                plugin.pypi.as_deref().expect("pypi").replace('-', "_")
            );
            assert!(plugin.github.is_some());
        }
    }

    #[test]
    fn operators_can_override_compatibility_verdicts() {
        let projects = parse(
            "[[project]]\nname = \"pretalx\"\npypi = \"pretalx\"\n\n[[project]]\nname = \"pretalx-pages\"\nplugin_of = \"pretalx\"\npypi = \"pretalx-pages\"\n\n[[project.compat]]\ncore = \"2026.2\"\nverdict = \"ready\"\ninstall = \"1.9.0\"\nnote = \"tested on our staging instance\"\n",
            "projects.toml",
        )
        .expect("parses");
        assert_eq!(projects[1].compat.len(), 1);
        assert_eq!(projects[1].compat[0].verdict, crate::compat::Verdict::Ready);
        let e = err(
            "[[project]]\nname = \"p\"\npypi = \"p\"\n[[project.compat]]\ncore = \"1.0\"\nverdict = \"maybe\"\n",
        );
        assert!(
            e.starts_with("projects.toml:6: ") && e.contains("maybe"),
            "{e}"
        );
    }

    #[test]
    fn a_github_table_gives_the_github_source_its_tag_prefix() {
        let projects = parse(
            "[[project]]\nname = \"apache-airflow-providers-google\"\npypi = \"apache-airflow-providers-google\"\ngithub = { repo = \"apache/airflow\", tag_prefix = \"providers-google/\" }\n\n[[project]]\nname = \"changesets-cli\"\ngithub = \"changesets/changesets\"\ntag_prefix = \"@changesets/cli@\"\n\n[[project]]\nname = \"plain\"\ngithub = { repo = \"o/plain\" }\n",
            "projects.toml",
        )
        .expect("parses");
        assert_eq!(projects[0].tag_prefix.as_deref(), Some("providers-google/"));
        assert_eq!(
            projects[0]
                .github
                .as_ref()
                .map(|g| g.to_string())
                .as_deref(),
            Some("apache/airflow")
        );
        assert_eq!(
            projects[0].pypi.as_deref(),
            Some("apache-airflow-providers-google")
        );
        assert_eq!(projects[1].tag_prefix.as_deref(), Some("@changesets/cli@"));
        assert_eq!(projects[2].tag_prefix, None);

        let e = err(
            "[[project]]\nname = \"p\"\ntag_prefix = \"a-\"\ngithub = { repo = \"o/p\", tag_prefix = \"b-\" }\n",
        );
        assert!(
            e.starts_with("projects.toml:3: ") && e.contains("twice"),
            "{e}"
        );
        let e = err("[[project]]\nname = \"p\"\ngithub = { repo = \"o/p\", prefix = \"b-\" }\n");
        assert!(
            e.starts_with("projects.toml:3: ") && e.contains("prefix"),
            "{e}"
        );
        let e =
            err("[[project]]\nname = \"p\"\ngithub = { repo = \"o/p\", tag_prefix = \"a b\" }\n");
        assert!(
            e.starts_with("projects.toml:3: ") && e.contains("without spaces"),
            "{e}"
        );
        let e = err("[[project]]\nname = \"p\"\ngithub = { tag_prefix = \"b-\" }\n");
        assert!(
            e.starts_with("projects.toml:3: ") && e.contains("repo"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        let e = err(
            "[[project]]\nname = \"a\"\npypi = \"a\"\n\n[[project]]\nname = \"a\"\npypi = \"b\"\n",
        );
        assert_eq!(
            e,
            "projects.toml:6: project `a` is listed twice (first on line 2)"
        );

        let e = err("[[project]]\nname = \"p\"\nplugin_of = \"core\"\npypi = \"p\"\n");
        assert!(e.starts_with("projects.toml:3: "), "{e}");
        assert!(e.contains("no project is named `core`"), "{e}");

        let e = err("[[project]]\nname = \"p\"\nfeed = \"ftp://example.org/feed\"\n");
        assert!(e.starts_with("projects.toml:3: "), "{e}");
        assert!(e.contains("scheme `ftp`"), "{e}");

        let e = err("[[project]]\nname = \"p\"\nfeed = \"not a url\"\n");
        assert!(
            e.starts_with("projects.toml:3: ") && e.contains("not a URL"),
            "{e}"
        );

        let e = err("[[project]]\nname = \"p\"\npypi = \"p\"\nscheme = \"roman\"\n");
        assert!(
            e.starts_with("projects.toml:4: ") && e.contains("roman"),
            "{e}"
        );

        let e = err("[[project]]\nname = \"p\"\npypi = \"p\"\nhomepage = \"x\"\n");
        assert!(
            e.starts_with("projects.toml:4: ") && e.contains("homepage"),
            "{e}"
        );

        let e = err("[[project]]\nname = \"p\"\npypi = \"p\n");
        assert!(e.starts_with("projects.toml:3: "), "{e}");

        let e = err("[[project]]\nname = \"p\"\ngithub = \"just-a-name\"\n");
        assert!(
            e.starts_with("projects.toml:3: ") && e.contains("owner/repository"),
            "{e}"
        );

        let e = err("[[project]]\nname = \"lonely\"\n");
        assert!(e.contains("has no source"), "{e}");

        assert!(err("").contains("no [[project]] entries"));
    }
}
