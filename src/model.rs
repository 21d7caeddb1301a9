//! Domain types shared by every layer: tracked projects, sources, release classes and the
//! observations an upstream yields.
//!
//! Owns: plain data and the small rules that belong to the data itself (which source is a
//! project's primary, how a class is spelled). Does not own: parsing upstream documents
//! (`sources`), version rules (`version`), or persistence (`store`). This module does no I/O.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use pep440_rs::Version;
use serde::{Deserialize, Serialize};
use url::Url;

/// Where a release was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The Python package index (Simple API JSON, or the JSON API as a fallback).
    Pypi,
    /// GitHub releases of the project's repository.
    Github,
    /// The project's blog or news feed.
    Feed,
}

impl SourceKind {
    /// Every source, in primary-preference order.
    pub const ALL: [SourceKind; 3] = [SourceKind::Pypi, SourceKind::Github, SourceKind::Feed];

    /// The stable lower-case name used in the database, JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Pypi => "pypi",
            SourceKind::Github => "github",
            SourceKind::Feed => "feed",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pypi" => Ok(SourceKind::Pypi),
            "github" => Ok(SourceKind::Github),
            "feed" => Ok(SourceKind::Feed),
            other => Err(format!(
                "unknown source `{other}` (expected pypi, github or feed)"
            )),
        }
    }
}

/// The class of a release, as defined in the operator contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseClass {
    /// A final release whose numbers after the second are all zero.
    Feature,
    /// Any other final release.
    Bugfix,
    /// Any alpha, beta, release-candidate or development version.
    Prerelease,
}

impl ReleaseClass {
    /// The stable lower-case name used in the database and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseClass::Feature => "feature",
            ReleaseClass::Bugfix => "bugfix",
            ReleaseClass::Prerelease => "prerelease",
        }
    }
}

impl fmt::Display for ReleaseClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReleaseClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "feature" => Ok(ReleaseClass::Feature),
            "bugfix" => Ok(ReleaseClass::Bugfix),
            "prerelease" => Ok(ReleaseClass::Prerelease),
            other => Err(format!(
                "unknown release class `{other}` (expected feature, bugfix or prerelease)"
            )),
        }
    }
}

/// How a project numbers its releases. All schemes are parsed as PEP 440; the scheme tells
/// readers how to interpret the numbers (CalVer `YEAR.NUMBER.PATCH` or `MAJOR.MINOR.PATCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `YEAR.NUMBER.PATCH`, as pretalx does.
    Calver,
    /// `MAJOR.MINOR.PATCH`, as the pretalx plugins do.
    Semver,
    /// Any PEP 440 version.
    #[default]
    Pep440,
}

/// A GitHub repository, `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubRepo {
    /// The account or organisation.
    pub owner: String,
    /// The repository name.
    pub name: String,
}

impl fmt::Display for GithubRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// One tracked project, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// Unique name, used in the database, the CLI and mails.
    pub name: String,
    /// How the project numbers releases.
    pub scheme: Scheme,
    /// Distribution name on the package index.
    pub pypi: Option<String>,
    /// GitHub repository publishing releases.
    pub github: Option<GithubRepo>,
    /// A feed URL, or a page that links its feed.
    pub feed: Option<Url>,
    /// The core project this one is a plugin of.
    pub plugin_of: Option<String>,
    /// The module name the core project reports for this plugin.
    pub module: Option<String>,
    /// Only GitHub tags starting with this prefix belong to the project (monorepos).
    pub tag_prefix: Option<String>,
    /// How operators upgrade, one step per entry; `{version}` is replaced. Empty: a generic
    /// `pip install` step.
    pub upgrade_steps: Vec<String>,
    /// Operator overrides of plugin compatibility verdicts (`[[project.compat]]`).
    pub compat: Vec<Override>,
}

impl Project {
    /// The source whose releases count as "available": PyPI when configured, else GitHub,
    /// else the feed.
    pub fn primary(&self) -> Option<SourceKind> {
        self.sources().into_iter().next()
    }

    /// The configured sources, primary first.
    pub fn sources(&self) -> Vec<SourceKind> {
        SourceKind::ALL
            .into_iter()
            .filter(|kind| self.has_source(*kind))
            .collect()
    }

    /// Whether the given source is configured for this project.
    pub fn has_source(&self, kind: SourceKind) -> bool {
        match kind {
            SourceKind::Pypi => self.pypi.is_some(),
            SourceKind::Github => self.github.is_some(),
            SourceKind::Feed => self.feed.is_some(),
        }
    }

    /// The upgrade steps for `version`.
    pub fn upgrade_steps_for(&self, version: &str) -> Vec<String> {
        if !self.upgrade_steps.is_empty() {
            return self
                .upgrade_steps
                .iter()
                .map(|s| s.replace("{version}", version))
                .collect();
        }
        let mut steps = vec!["Make a backup before you upgrade.".to_string()];
        if let Some(dist) = &self.pypi {
            steps.push(format!("pip install -U {dist}=={version}"));
        }
        steps.push("Restart the services that run it.".to_string());
        steps
    }

    /// Names under which the project may appear in titles and URL slugs, lower-case.
    pub fn aliases(&self) -> Vec<String> {
        let mut names = vec![self.name.to_lowercase()];
        if let Some(pypi) = &self.pypi {
            names.push(pypi.to_lowercase());
        }
        if let Some(repo) = &self.github {
            names.push(repo.name.to_lowercase());
        }
        names.sort();
        names.dedup();
        names
    }
}

/// One release as one source reported it, already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The spelling the source used (a version, a tag, a title or a URL).
    pub raw: String,
    /// The parsed version.
    pub version: Version,
    /// When the source says the release was published.
    pub published_at: Option<DateTime<Utc>>,
    /// A page about this release on that source.
    pub url: Option<String>,
    /// Release notes (Markdown on GitHub, a summary in feeds).
    pub notes: Option<String>,
    /// Whether the release is withdrawn (PyPI yanked).
    pub yanked: bool,
    /// Why, when the index says.
    pub yanked_reason: Option<String>,
    /// Whether the release can be installed from this source (PyPI: it has files).
    pub available: bool,
    /// The source's own pre-release flag (GitHub), kept as evidence only.
    pub prerelease_flag: Option<bool>,
    /// True when this evidence applies to a whole release line (a feed post reused by the
    /// bugfix releases of the feature release it announces).
    pub line_post: bool,
}

impl Observation {
    /// A minimal observation of `version`, spelled `raw`.
    pub fn new(raw: impl Into<String>, version: Version) -> Self {
        Observation {
            raw: raw.into(),
            version,
            published_at: None,
            url: None,
            notes: None,
            yanked: false,
            yanked_reason: None,
            available: true,
            prerelease_flag: None,
            line_post: false,
        }
    }
}

/// A validated email address: RFC 5321 syntax (through lettre), at most 254 bytes, no
/// control characters, so it can never smuggle a header.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An address as logs show it above `debug`: the local part's first character, `***`, and the
/// domain (`o***@example.org`), enough to tell a domain's trouble apart without exposing who.
pub fn mask_email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// `text` with every address in it masked as [`mask_email`] does (a relay's answer often
/// quotes the recipient: `550 5.1.1 <ops@example.org>: Recipient address rejected`).
pub fn mask_emails_in(text: &str) -> String {
    static ADDRESS: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?",
        )
        .ok()
    });
    match ADDRESS.as_ref() {
        Some(re) => re
            .replace_all(text, |caps: &regex::Captures<'_>| mask_email(&caps[0]))
            .into_owned(),
        // The pattern is a constant; should it ever fail to compile, hide the whole text.
        None => "[text hidden: it may name a recipient]".to_string(),
    }
}

impl FromStr for EmailAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("an email address is required".into());
        }
        if s.len() > 254 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "`{}` is not a valid email address",
                s.escape_default()
            ));
        }
        lettre::Address::from_str(s)
            .map(|_| EmailAddress(s.to_string()))
            .map_err(|err| format!("`{s}` is not a valid email address ({err})"))
    }
}

/// How a subscriber receives release mail.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DigestMode {
    /// One mail per release, as soon as it is found.
    #[default]
    Instant,
    /// One mail a day listing the day's releases (sent after midnight UTC).
    Daily,
    /// One mail a week listing the week's releases (sent after Sunday, UTC).
    Weekly,
}

impl DigestMode {
    /// The stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestMode::Instant => "instant",
            DigestMode::Daily => "daily",
            DigestMode::Weekly => "weekly",
        }
    }
}

impl FromStr for DigestMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "instant" => Ok(DigestMode::Instant),
            "daily" => Ok(DigestMode::Daily),
            "weekly" => Ok(DigestMode::Weekly),
            other => Err(format!(
                "unknown digest mode `{other}` (expected instant, daily or weekly)"
            )),
        }
    }
}

/// Whether a subscriber confirmed their address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    /// Waiting for the confirmation link to be followed.
    Pending,
    /// Receives mail.
    Confirmed,
}

/// A subscriber and what they follow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscriber {
    /// `subscribers.id`.
    pub id: i64,
    pub email: EmailAddress,
    /// Pending or confirmed.
    pub status: SubscriberStatus,
    /// Mail at once or in a daily or weekly digest.
    pub digest: DigestMode,
    /// Classes they want.
    pub classes: Vec<ReleaseClass>,
    /// Projects they follow.
    pub projects: Vec<String>,
    /// When they first asked.
    pub created_at: DateTime<Utc>,
    /// When they confirmed the address, if they have.
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// PEP 503 normalisation of a distribution name: lower-case, runs of `-`, `_` and `.` become
/// one `-` (`Pretalx_Pages` is `pretalx-pages`).
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// How ready a plugin is for a core release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// A plugin release declares a requirement on the core that admits the release.
    Ready,
    /// A plugin release came out alongside or after the core release; nothing is declared.
    Likely,
    /// No sign either way.
    Unknown,
    /// The plugin's newest declaration excludes the core release.
    Blocked,
}

impl Verdict {
    /// The stable lower-case name used in JSON, the database and mails.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ready => "ready",
            Verdict::Likely => "likely",
            Verdict::Unknown => "unknown",
            Verdict::Blocked => "blocked",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator's override from the projects file (`[[project.compat]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The core release it applies to: a line such as `2026.2` (every `2026.2.x`) or an exact
    /// version such as `2026.2.1`. An exact version wins over a line.
    pub core: String,
    /// The verdict to report.
    pub verdict: Verdict,
    /// The plugin version to install with that core.
    #[serde(default)]
    pub install: Option<String>,
    /// Why, shown as the evidence.
    #[serde(default)]
    pub note: Option<String>,
}

/// What Herald keeps of one release's per-version metadata (table `release_metadata`): its
/// requirements and its known vulnerabilities. Herald's own shape, whatever index served it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReleaseMetadata {
    /// `Requires-Dist`, when the index has it.
    pub requires_dist: Option<Vec<String>>,
    /// `Requires-Python`, when declared.
    pub requires_python: Option<String>,
    /// Known vulnerabilities of this version (withdrawn reports left out).
    pub vulnerabilities: Vec<Vulnerability>,
}

/// One known vulnerability of a release, as stored (a JSON array of these per release in
/// `release_metadata.vulnerabilities`; rows written before this type existed have the same
/// field names, and every field but `id` may be missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// Advisory id: `GHSA-...` or `PYSEC-...`.
    pub id: String,
    /// CVE ids and other names of the same advisory.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One line, when given.
    #[serde(default)]
    pub summary: Option<String>,
    /// Versions that fix it.
    #[serde(default)]
    pub fixed_in: Vec<String>,
    /// Where to read about it.
    #[serde(default)]
    pub link: Option<String>,
    /// When the report was retracted, if it was.
    #[serde(default)]
    pub withdrawn: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_for_logs() {
        assert_eq!(mask_email("ops@example.org"), "o***@example.org");
        assert_eq!(mask_email("ü@example.org"), "ü***@example.org");
        assert_eq!(mask_email("no-at-sign"), "***");
        assert_eq!(
            mask_emails_in("550 5.1.1 <ops.team+x@mail.example.org>: Recipient address rejected"),
            "550 5.1.1 <o***@mail.example.org>: Recipient address rejected"
        );
        assert_eq!(mask_emails_in("421 try later"), "421 try later");
    }

    /// The JSON of `release_metadata.vulnerabilities` as rows already hold it (written when
    /// the column held the index's own records): it decodes, and is written back unchanged.
    #[test]
    fn stored_vulnerabilities_keep_their_shape() {
        let stored = r#"[{"id":"GHSA-2c2p-8w9x-2x8q","aliases":["CVE-2024-1234"],"summary":"XSS in the schedule editor","fixed_in":["2024.1.1"],"link":"https://osv.dev/vulnerability/GHSA-2c2p-8w9x-2x8q","withdrawn":null}]"#;
        let read: Vec<Vulnerability> = serde_json::from_str(stored).expect("decodes");
        assert_eq!(read[0].id, "GHSA-2c2p-8w9x-2x8q");
        assert_eq!(read[0].fixed_in, ["2024.1.1"]);
        assert_eq!(serde_json::to_string(&read).expect("encodes"), stored);
        let sparse: Vec<Vulnerability> =
            serde_json::from_str(r#"[{"id":"PYSEC-2021-1"}]"#).expect("decodes");
        assert_eq!(sparse[0].aliases, Vec::<String>::new());
        assert_eq!(sparse[0].link, None);
    }
}
