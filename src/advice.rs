//! The report Herald gives an operator about an inventory (core version and plugins): where
//! the core stands, the plugin verdicts for a core feature release, and the pinned upgrade.
//! `alerts` builds it, the `advise` command and page and the update-check API show it, and the
//! outbox stores it inside operator alerts, which `notify` reads back: hence plain data here,
//! below all of them, serialised exactly as the templates and the JSON API read it.
//!
//! Every field has a default, so a report queued by an older Herald (or a partial one in a
//! test) still reads.

use serde::{Deserialize, Serialize};

use crate::compat::{Assessment, UpgradePlan};

/// Where an installed core version stands against the newest release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoreStatus {
    /// The installed version is the newest release (or none is recorded yet).
    UpToDate,
    /// A newer bugfix release of the installed feature line exists.
    BugfixAvailable,
    /// A newer feature release exists; the installed line gets no more bugfix releases.
    LineUnsupported,
    /// The inventory does not name the core.
    #[default]
    NotInstalled,
}

impl CoreStatus {
    /// The name used in JSON and templates (`up-to-date`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CoreStatus::UpToDate => "up-to-date",
            CoreStatus::BugfixAvailable => "bugfix-available",
            CoreStatus::LineUnsupported => "line-unsupported",
            CoreStatus::NotInstalled => "not-installed",
        }
    }
}

/// A release with a link to its notes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReleaseLink {
    pub version: String,
    /// Publication date (`YYYY-MM-DD`).
    pub published: Option<String>,
    /// Release notes or announcement.
    pub url: Option<String>,
}

/// A vulnerability an upgrade closes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VulnerabilityView {
    /// `GHSA-...` or `PYSEC-...`.
    pub id: String,
    /// CVE ids and others.
    pub aliases: Vec<String>,
    /// One line, when known.
    pub summary: Option<String>,
    /// The versions that fix it.
    pub fixed_in: Vec<String>,
    /// Where to read about it.
    pub link: Option<String>,
}

/// Where the operator's core installation stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CoreAdvice {
    /// The core project's name (empty when the inventory names no tracked project).
    pub project: String,
    /// The version the inventory names, when it names the core.
    pub installed: Option<String>,
    /// Newest final release.
    pub latest: Option<String>,
    /// Newest feature release.
    pub latest_feature: Option<String>,
    /// Where the installed version stands.
    pub status: CoreStatus,
    /// One sentence about it.
    pub summary: String,
    /// Feature releases between the installed version and the latest, oldest first.
    pub feature_releases_between: Vec<ReleaseLink>,
    /// Known vulnerabilities of the installed version that upgrading to the latest fixes.
    pub vulnerabilities_fixed: Vec<VulnerabilityView>,
}

/// The full report for one inventory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Advice {
    /// Where the core installation stands.
    pub core: CoreAdvice,
    /// The core feature release the plugin verdicts are for.
    pub target: Option<String>,
    /// One verdict per installed plugin.
    pub plugins: Vec<Assessment>,
    /// What to do, in one sentence.
    pub recommendation: String,
    /// Inventory entries Herald does not track.
    pub untracked: Vec<String>,
    /// The pinned upgrade command, or why to wait.
    pub upgrade: UpgradePlan,
}
