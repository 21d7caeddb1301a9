//! Attribution: which tags, release names, feed titles, page links and URL slugs belong to a
//! project, and which belong to another package published from the same repository or feed.
//!
//! One rule, [`attribute`], applied the same way by every source:
//!
//! - A GitHub release is the project's when its tag, after `tag_prefix`, is a version
//!   (`1.2.3`, `v1.2.3`, `V1.2.3`, `v.1.2.3`) or one of the project's own names (its `name`,
//!   PyPI name or repository name, compared after PEP 503 normalisation) followed by one
//!   separator (`-`, `_`, `.`, `@`, `/`) and a version (`pretalx-2.3.1`, `pretalx@2.3.1`,
//!   `pretalx/2.3.1`, `pretalx_v2.3.1`).
//! - A tag that names anything else before its version (`other@5.0.0`, `@scope/other@1.2.3`,
//!   `providers-google/10.0.0`, `constraints-2.7.3`, `Pkg.Sub.2.4.0` under `Pkg.`), or that does
//!   not start with `tag_prefix`, is another package's, whatever the release is called.
//! - Only a tag with no dotted version in it at all (`stable`, `latest-release`) falls back to
//!   the release name, and only when the name is a version, starts with one, or is the
//!   project's own name followed by a version (`Tokio v1.49.0`, `pretalx 2.3.1`).
//! - A feed entry (or a link on a news page) is the project's version when its title starts
//!   with a version followed by a separator or the end (`5.7-rc4: mainline`,
//!   `2.1.0 (2024-05-01)`, `v3.2 - notes`); a word of the title shaped like a tag decides as a
//!   tag does (`eslint-plugin-react-hooks@5.0.0 (Oct 11, 2024)` is another package's); else the
//!   title rules of [`version::from_title`] (the project's name as a whole word before the
//!   version, release words) and the slug rules of [`version::from_slug`] apply.
//! - A version the package index lists for the project's distribution is the project's.
//!
//! Owns: those verdicts and [`RULE_VERSION`]. Does not own: what a version string means
//! (`version`), where the strings come from (`sources`), or what happens to skipped ones
//! (`check`). Pure: no I/O, no clock.

use std::sync::LazyLock;

use pep440_rs::Version;
use regex::Regex;

use crate::model::{Project, normalize_name};
use crate::version::{self, VersionError};

/// The version of the rule. A source last read under an older rule is read once more in full
/// (without conditional requests), so what the older rule accepted is judged again.
pub const RULE_VERSION: i64 = 1;

/// Something a source found, to attribute.
#[derive(Debug, Clone, Copy)]
pub enum Candidate<'a> {
    /// A version the package index lists for the project's distribution.
    IndexVersion(&'a str),
    /// A GitHub release: its tag and its name.
    Release {
        /// `tag_name`.
        tag: &'a str,
        /// `name`, when the release has one.
        name: Option<&'a str>,
    },
    /// A feed entry (title and link) or a link on a news page (its text and URL).
    Entry {
        /// The title or link text.
        title: &'a str,
        /// The entry's URL.
        link: Option<&'a str>,
    },
}

/// Whose it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The project's release of this version.
    Own(Version),
    /// Another package's: skipped. The text says why (`names another package (`x`)`).
    Other(String),
    /// A tag that is not a version, with no release name that names one: skipped.
    Unreadable(VersionError),
    /// A feed entry or link that announces no version: not a release.
    NotARelease,
}

/// The one attribution rule (see the module documentation).
pub fn attribute(project: &Project, candidate: Candidate<'_>) -> Verdict {
    match candidate {
        Candidate::IndexVersion(raw) => match version::parse(raw) {
            Ok(v) => Verdict::Own(v),
            Err(err) => Verdict::Unreadable(err),
        },
        Candidate::Release { tag, name } => release(project, tag, name),
        Candidate::Entry { title, link } => entry(project, title, link),
    }
}

/// A version at the start of a string: digits, a dot, digits (after an optional `v`).
static VERSION_START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[vV]?\.?\d+\.\d").expect("static regex"));

/// A dotted number anywhere: the string carries a version of some package.
static DOTTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d\.\d").expect("static regex"));

/// The project's names, PEP 503-normalised.
fn own_names(project: &Project) -> Vec<String> {
    project
        .aliases()
        .iter()
        .map(|a| normalize_name(a))
        .collect()
}

fn is_own(names: &[String], name: &str) -> bool {
    let name = normalize_name(name);
    !name.is_empty() && names.contains(&name)
}

/// Splits `name<sep>version` at the first separator after which a version starts, when what
/// comes before it is a name (it has a letter and is not a version itself):
/// `tokio-util-0.7.16` is (`tokio-util`, 0.7.16), `@scope/pkg@1.2.3` is (`@scope/pkg`, 1.2.3).
fn split_name_version(word: &str) -> Option<(&str, Result<Version, VersionError>)> {
    word.char_indices()
        .filter(|(_, c)| matches!(c, '-' | '_' | '.' | '@' | '/'))
        .map(|(at, c)| (&word[..at], &word[at + c.len_utf8()..]))
        .find(|(name, tail)| {
            VERSION_START.is_match(tail)
                && name.chars().any(char::is_alphabetic)
                && version::parse_v(name).is_err()
        })
        .map(|(name, tail)| (name, version::parse_v(tail)))
}

/// The version a text starts with, followed by a separator (`:`, a space, `(`, `,`, `–`, ...)
/// or the end; a `-` may also end it (`0.9.0-python3.5` starts with 0.9.0 only when
/// `0.9.0-python3.5` is not a version itself). Dates are not versions.
fn version_led(text: &str) -> Option<Version> {
    let text = text.trim_start();
    let end = text
        .find(|c: char| {
            c.is_whitespace() || matches!(c, ':' | '(' | ')' | '[' | ',' | ';' | '–' | '—')
        })
        .unwrap_or(text.len());
    let token = &text[..end];
    if !VERSION_START.is_match(token) || token.len() > 2 * version::MAX_VERSION_LEN {
        return None;
    }
    std::iter::once(token.len())
        .chain(token.rmatch_indices('-').map(|(at, _)| at))
        .map(|cut| &token[..cut])
        .filter(|candidate| !version::is_date(candidate.trim_start_matches(['v', 'V'])))
        .find_map(|candidate| version::parse_v(candidate).ok())
}

/// The words of a title, cut at spaces and at the punctuation that ends a tag in prose.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';' | '[' | ']'))
        .map(|w| w.trim_end_matches([':', '.']))
        .filter(|w| !w.is_empty())
}

fn other_package(name: &str) -> Verdict {
    let name = name.trim_end_matches(['-', '_', '.', '@', '/']);
    Verdict::Other(format!(
        "names another package (`{}`)",
        version::shorten(name)
    ))
}

fn release(project: &Project, tag: &str, name: Option<&str>) -> Verdict {
    let tag = tag.trim();
    let prefix = project.tag_prefix.as_deref().filter(|p| !p.is_empty());
    let err = match version::parse_tag(tag, prefix) {
        None => {
            return Verdict::Other(format!(
                "is outside tag_prefix `{}`",
                prefix.unwrap_or_default()
            ));
        }
        Some(Ok(v)) => return Verdict::Own(v),
        Some(Err(err)) => err,
    };
    let rest = prefix.and_then(|p| tag.strip_prefix(p)).unwrap_or(tag);
    let names = own_names(project);
    if let Some((head, parsed)) = split_name_version(rest) {
        let spelled = format!("{}{head}", prefix.unwrap_or_default());
        if !is_own(&names, head) && !is_own(&names, &spelled) {
            return other_package(&spelled);
        }
        return match parsed {
            Ok(v) => Verdict::Own(v),
            Err(_) => Verdict::Unreadable(err),
        };
    }
    if !DOTTED.is_match(rest)
        && let Some(v) = name.and_then(|n| from_release_name(project, &names, n))
    {
        return Verdict::Own(v);
    }
    Verdict::Unreadable(err)
}

/// The version a release name gives a tag without one: the name is a version or starts with
/// one, starts with a tag of the project (`pretalx-2.3.1 ...`), or is one of the project's
/// names as a whole word followed by a version (`Tokio v1.49.0`).
fn from_release_name(project: &Project, names: &[String], name: &str) -> Option<Version> {
    let name = name.trim();
    if let Some(v) = version_led(name) {
        return Some(v);
    }
    if let Some((head, Ok(v))) = words(name).next().and_then(split_name_version)
        && is_own(names, head)
    {
        return Some(v);
    }
    let lower = name.to_lowercase();
    project
        .aliases()
        .iter()
        .flat_map(|alias| [alias.clone(), alias.replace(['-', '_'], " ")])
        .filter_map(|alias| lower.strip_prefix(alias.as_str()).map(str::to_string))
        .filter(|rest| rest.starts_with(char::is_whitespace))
        .find_map(|rest| version_led(&rest))
}

fn entry(project: &Project, title: &str, link: Option<&str>) -> Verdict {
    let title = title.trim();
    if let Some(v) = version_led(title) {
        return Verdict::Own(v);
    }
    let names = own_names(project);
    if let Some((head, parsed)) = words(title).find_map(split_name_version) {
        if !is_own(&names, head) {
            return other_package(head);
        }
        if let Ok(v) = parsed {
            return Verdict::Own(v);
        }
    }
    let aliases = project.aliases();
    version::from_title(title, &aliases)
        .or_else(|| link.and_then(|l| version::from_slug(l, &aliases)))
        .map_or(Verdict::NotARelease, Verdict::Own)
}

#[cfg(test)]
mod tests;
