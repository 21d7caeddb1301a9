//! Plugin readiness for a core feature release, with the evidence behind each verdict.
//!
//! pretalx plugins declare no machine-readable compatibility (no `compatibility` attribute, and
//! so far no `Requires-Dist: pretalx...`), so Herald reasons from evidence, strongest first:
//! an operator's override, a plugin release's declared requirement on the core, a plugin
//! release published alongside (or after) the core release, and otherwise nothing. Each
//! [`Assessment`] says which evidence decided and names versions and dates.
//!
//! Owns: the verdict rules, reading `Requires-Dist` / `Requires-Python` for that purpose, and
//! the one-sentence recommendation for a report. Does not own: fetching metadata (`sources`),
//! storing it (`store`), choosing which plugins an operator runs (`inventory`, `alerts`), or
//! version parsing itself (`version`). Pure: no I/O, no clock (dates come in as arguments).

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{MarkerExpression, Requirement, VersionOrUrl};
use serde::{Deserialize, Serialize};

use crate::model::normalize_name;
pub use crate::model::{Override, Verdict};
use crate::version::{canonical_key, line, parse};

/// A release of the core project (a feature release, usually).
#[derive(Debug, Clone, PartialEq)]
pub struct CoreRelease {
    pub version: Version,
    /// When it was published; without it, release timing cannot count as evidence.
    pub published_at: Option<DateTime<Utc>>,
    /// Its `Requires-Python`, as the index serves it.
    pub requires_python: Option<String>,
}

/// What Herald knows about one release of a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRelease {
    pub version: Version,
    /// When it was published.
    pub published_at: Option<DateTime<Utc>>,
    /// `Requires-Dist` of that release; `None` when not known (not fetched).
    pub requires_dist: Option<Vec<String>>,
    /// Its `Requires-Python`, as the index serves it.
    pub requires_python: Option<String>,
    /// Whether the index marks it yanked (yanked releases are never evidence).
    pub yanked: bool,
}

/// The verdict for one plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// The plugin, as the caller named it.
    pub plugin: String,
    /// The operator's installed version of the plugin, when known.
    pub installed: Option<String>,
    /// How ready the plugin is.
    pub verdict: Verdict,
    /// The plugin version to install with the new core (None for unknown/blocked unless an
    /// older declared-compatible one exists).
    pub install: Option<String>,
    /// One sentence: the evidence behind the verdict, naming versions and dates.
    pub evidence: String,
    /// Non-decisive remarks (Requires-Python).
    pub hints: Vec<String>,
}

/// One requirement on the core found in a `Requires-Dist` list.
struct Mention {
    specifiers: VersionSpecifiers,
    /// Whether an environment marker limits it (`; python_version < "3.12"`).
    conditional: bool,
}

/// A release's declaration about the core: whether it admits the version, and how it reads.
struct Declaration {
    admits: bool,
    /// Whether it would admit the version but for the pre-release rule.
    only_prerelease_rule: bool,
    /// `pretalx>=2026.2`, or several joined with " and ".
    text: String,
}

fn mentions_extra(requirement: &Requirement) -> bool {
    requirement
        .marker
        .to_dnf()
        .iter()
        .flatten()
        .any(|expression| matches!(expression, MarkerExpression::Extra { .. }))
}

/// The requirements on `core_name` with a version range, ignoring optional extras,
/// unparsable strings, unversioned mentions and URL references.
fn mentions(requires_dist: &[String], core_name: &str) -> Vec<Mention> {
    let wanted = normalize_name(core_name);
    requires_dist
        .iter()
        .filter_map(|raw| Requirement::<pep508_rs::VerbatimUrl>::from_str(raw.trim()).ok())
        .filter(|req| normalize_name(req.name.as_ref()) == wanted && !mentions_extra(req))
        .filter_map(|req| match req.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(specifiers)) if !specifiers.is_empty() => {
                Some(Mention {
                    specifiers,
                    conditional: !req.marker.is_true(),
                })
            }
            _ => None,
        })
        .collect()
}

/// PEP 440 containment plus its pre-release rule, which `VersionSpecifiers::contains` does not
/// apply: a set that mentions no pre-release admits no pre-release.
fn admits(specifiers: &VersionSpecifiers, version: &Version) -> bool {
    if version.any_prerelease()
        && !specifiers
            .iter()
            .any(|specifier| specifier.version().any_prerelease())
    {
        return false;
    }
    specifiers.contains(version)
}

/// Combines several requirements on the core: every unconditional one must admit the
/// version, and of those limited by environment markers at least one.
fn combine(found: &[Mention], test: impl Fn(&VersionSpecifiers) -> bool) -> bool {
    let unconditional_ok = found
        .iter()
        .filter(|m| !m.conditional)
        .all(|m| test(&m.specifiers));
    let mut conditional = found.iter().filter(|m| m.conditional).peekable();
    let conditional_ok = conditional.peek().is_none() || conditional.any(|m| test(&m.specifiers));
    unconditional_ok && conditional_ok
}

fn declaration(
    requires_dist: &[String],
    core_name: &str,
    core_version: &Version,
) -> Option<Declaration> {
    let found = mentions(requires_dist, core_name);
    if found.is_empty() {
        return None;
    }
    let admitted = combine(&found, |s| admits(s, core_version));
    let contained = combine(&found, |s| s.contains(core_version));
    let text = found
        .iter()
        .map(|m| format!("{core_name}{}", m.specifiers))
        .collect::<Vec<_>>()
        .join(" and ");
    Some(Declaration {
        admits: admitted,
        only_prerelease_rule: !admitted && contained,
        text,
    })
}

/// Whether a plugin release's Requires-Dist admits the core version: `Some(true)` admits,
/// `Some(false)` excludes, `None` when it does not name the core with a version range.
///
/// Requirements are parsed as PEP 508 (old `Name (>=1.0)` spelling included); names compare
/// after PEP 503 normalisation; requirements whose marker mentions `extra` are optional and
/// ignored, as are unversioned mentions (`pretalx`) and URL references, which say nothing
/// about versions. A set that mentions no pre-release does not admit a pre-release core
/// (`>=2026.1` does not admit `2026.2.0rc1`). When several requirements name the core, every
/// unconditional one must admit it, and of those limited by environment markers at least one.
pub fn declared(requires_dist: &[String], core_name: &str, core_version: &Version) -> Option<bool> {
    declaration(requires_dist, core_name, core_version).map(|d| d.admits)
}

fn day(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn days(n: i64) -> String {
    if n == 1 {
        "1 day".to_string()
    } else {
        format!("{n} days")
    }
}

/// "the day pretalx 2026.2.0 came out", "12 days after pretalx 2026.2.0".
fn relative_to_core(plugin_at: &DateTime<Utc>, core_at: &DateTime<Utc>, core: &str) -> String {
    let delta = *plugin_at - *core_at;
    if delta.num_days() == 0 {
        format!("the day {core} came out")
    } else if delta > Duration::zero() {
        format!("{} after {core}", days(delta.num_days()))
    } else {
        format!("{} before {core}", days(-delta.num_days()))
    }
}

fn override_for<'a>(overrides: &'a [Override], core: &Version) -> Option<&'a Override> {
    let parsed = |o: &Override| parse(&o.core).ok();
    let exact = overrides.iter().find(|o| {
        parsed(o).is_some_and(|v| v.release().len() > 2 && canonical_key(&v) == canonical_key(core))
    });
    exact.or_else(|| {
        overrides.iter().find(|o| {
            parsed(o).is_some_and(|v| {
                if v.release().len() <= 2 && !v.any_prerelease() && !v.is_post() {
                    line(&v) == line(core)
                } else {
                    canonical_key(&v) == canonical_key(core)
                }
            })
        })
    })
}

/// Candidate Python versions for the overlap check: every version either range mentions, a
/// point just above each, and every minor release of Python 2 and 3.
fn python_candidates(sets: [&VersionSpecifiers; 2]) -> Vec<Version> {
    let mut out: Vec<Version> = (0..=7u64).map(|minor| Version::new([2, minor])).collect();
    out.extend((0..=40u64).map(|minor| Version::new([3, minor])));
    out.push(Version::new([4, 0]));
    for set in sets {
        for specifier in set.iter() {
            let base = specifier.version().clone().without_local();
            let mut above: Vec<u64> = base.release().to_vec();
            above.push(1);
            out.push(base.clone().with_release(above));
            out.push(base);
        }
    }
    out
}

/// "pretalx 2026.2.0 needs Python >=3.13; pretalx-pages 1.9.0 declares >=3.11".
fn python_hint(
    core_label: &str,
    core_python: &str,
    plugin_label: &str,
    plugin_python: &str,
) -> String {
    let core_python = core_python.trim();
    let plugin_python = plugin_python.trim();
    let base =
        format!("{core_label} needs Python {core_python}; {plugin_label} declares {plugin_python}");
    match (
        VersionSpecifiers::from_str(core_python),
        VersionSpecifiers::from_str(plugin_python),
    ) {
        (Ok(core), Ok(plugin)) => {
            let overlap = python_candidates([&core, &plugin])
                .iter()
                .any(|v| core.contains(v) && plugin.contains(v));
            if overlap {
                base
            } else {
                format!("{base}, so no Python version satisfies both")
            }
        }
        _ => format!("{base} (Herald cannot read one of these ranges)"),
    }
}

/// Assesses one plugin against a core release. Rules, first match wins:
///
/// 1. an [`Override`] whose `core` is the release's line (`2026.2`) or exact version decides;
/// 2. *declared*: among the plugin's non-yanked releases, newest first, the newest whose
///    `Requires-Dist` names the core with a version range decides: it admits the release ->
///    [`Verdict::Ready`]; it excludes it -> [`Verdict::Blocked`] (installing the newest older
///    release that admits it, if any). Releases with unknown `Requires-Dist` or no mention of
///    the core are not declarations; when a newer release with known `Requires-Dist` no longer
///    names the core, the old exclusion no longer holds and the rules below decide;
/// 3. *released alongside*: a non-yanked release published at or after
///    `core.published_at - window` -> [`Verdict::Likely`], installing the newest such release;
/// 4. otherwise [`Verdict::Unknown`], naming the plugin's latest release and its date.
///
/// Plugin pre-releases are considered only when the core release is itself a pre-release.
/// Hints compare the core's `Requires-Python` with that of the plugin release to install (or
/// else its newest release) and never change the verdict.
pub fn assess(
    core_name: &str,
    core: &CoreRelease,
    plugin_name: &str,
    releases: &[PluginRelease],
    installed: Option<&Version>,
    overrides: &[Override],
    window: Duration,
) -> Assessment {
    let core_label = format!("{core_name} {}", core.version);
    let mut candidates: Vec<&PluginRelease> = releases
        .iter()
        .filter(|r| !r.yanked)
        .filter(|r| core.version.any_prerelease() || !r.version.any_prerelease())
        .collect();
    candidates.sort_by(|a, b| b.version.cmp(&a.version));

    let mut hints = Vec::new();
    let (verdict, install, evidence) = if let Some(o) = override_for(overrides, &core.version) {
        let evidence = match o.note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(note) => format!("set by the operator: {note}"),
            None => format!("set by the operator for {core_label}"),
        };
        let install = o
            .install
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_string);
        (o.verdict, install, evidence)
    } else {
        from_evidence(
            core_name,
            core,
            &core_label,
            plugin_name,
            &candidates,
            window,
            &mut hints,
        )
    };

    let install_release = install
        .as_deref()
        .and_then(|i| parse(i).ok())
        .and_then(|v| candidates.iter().find(|r| r.version == v).copied());
    if let (Some(core_python), Some(release)) = (
        core.requires_python.as_deref(),
        install_release.or_else(|| candidates.first().copied()),
    ) && let Some(plugin_python) = release.requires_python.as_deref()
    {
        hints.push(python_hint(
            &core_label,
            core_python,
            &format!("{plugin_name} {}", release.version),
            plugin_python,
        ));
    }

    let keep = match (installed, install.as_deref().and_then(|i| parse(i).ok())) {
        (Some(have), Some(want)) => canonical_key(have) == canonical_key(&want),
        _ => false,
    };
    let evidence = match installed {
        Some(have) if keep => format!("{evidence}; keep {have}"),
        _ => evidence,
    };

    Assessment {
        plugin: plugin_name.to_string(),
        installed: installed.map(ToString::to_string),
        verdict,
        install,
        evidence,
        hints,
    }
}

/// Rules 2 to 4 of [`assess`]: `candidates` are non-yanked, newest first.
fn from_evidence(
    core_name: &str,
    core: &CoreRelease,
    core_label: &str,
    plugin_name: &str,
    candidates: &[&PluginRelease],
    window: Duration,
    hints: &mut Vec<String>,
) -> Found {
    if let Some(found) = from_declarations(core_name, core, plugin_name, candidates, hints) {
        return found;
    }
    if let Some(found) = released_alongside(core, core_label, plugin_name, candidates, window) {
        return found;
    }
    no_sign(core, core_label, plugin_name, candidates)
}

/// A verdict with the version to install and the evidence sentence.
type Found = (Verdict, Option<String>, String);

/// The newest declaration on the core decides: ready when it admits the release, blocked when
/// it excludes it (unless a later release dropped the requirement: then only a hint).
fn from_declarations(
    core_name: &str,
    core: &CoreRelease,
    plugin_name: &str,
    candidates: &[&PluginRelease],
    hints: &mut Vec<String>,
) -> Option<Found> {
    let declarations: Vec<Option<Declaration>> = candidates
        .iter()
        .map(|r| {
            r.requires_dist
                .as_deref()
                .and_then(|dist| declaration(dist, core_name, &core.version))
        })
        .collect();

    if let Some(newest) = declarations.iter().position(Option::is_some) {
        let release = candidates[newest];
        if let Some(decl) = &declarations[newest] {
            if decl.admits {
                return Some((
                    Verdict::Ready,
                    Some(release.version.to_string()),
                    format!(
                        "{plugin_name} {} declares {}, which admits {}",
                        release.version, decl.text, core.version
                    ),
                ));
            }
            let dropped = candidates[..newest]
                .iter()
                .rev()
                .find(|r| r.requires_dist.is_some());
            match dropped {
                Some(later) => hints.push(format!(
                    "{plugin_name} {} required {}; {} no longer names {core_name}",
                    release.version, decl.text, later.version
                )),
                None => {
                    let excludes = if decl.only_prerelease_rule {
                        format!("which does not admit the pre-release {}", core.version)
                    } else {
                        format!("which excludes {}", core.version)
                    };
                    let older = candidates
                        .iter()
                        .zip(&declarations)
                        .skip(newest + 1)
                        .find(|(_, d)| d.as_ref().is_some_and(|d| d.admits))
                        .map(|(r, _)| r.version.to_string());
                    let evidence = match &older {
                        Some(v) => format!(
                            "{plugin_name} {} requires {}, {excludes}; the older {v} admits it",
                            release.version, decl.text
                        ),
                        None => format!(
                            "{plugin_name} {} requires {}, {excludes}",
                            release.version, decl.text
                        ),
                    };
                    return Some((Verdict::Blocked, older, evidence));
                }
            }
        }
    }

    None
}

/// Likely: a plugin release came out alongside (within `window` before) or after the core
/// release.
fn released_alongside(
    core: &CoreRelease,
    core_label: &str,
    plugin_name: &str,
    candidates: &[&PluginRelease],
    window: Duration,
) -> Option<Found> {
    if let Some(core_at) = core.published_at {
        let since = core_at - window;
        let alongside = candidates
            .iter()
            .find(|r| r.published_at.is_some_and(|at| at >= since));
        if let Some((release, at)) = alongside.and_then(|r| r.published_at.map(|at| (r, at))) {
            return Some((
                Verdict::Likely,
                Some(release.version.to_string()),
                format!(
                    "{plugin_name} {} was released {}, {}",
                    release.version,
                    day(&at),
                    relative_to_core(&at, &core_at, core_label)
                ),
            ));
        }
    }

    None
}

/// Unknown: no sign either way, saying what the latest release is.
fn no_sign(
    core: &CoreRelease,
    core_label: &str,
    plugin_name: &str,
    candidates: &[&PluginRelease],
) -> Found {
    let latest = match candidates.first() {
        None => format!("no release of {plugin_name} is known"),
        Some(r) => match r.published_at {
            Some(at) => format!("the latest is {} from {}", r.version, day(&at)),
            None => format!("the latest is {} (date unknown)", r.version),
        },
    };
    let evidence = match (core.published_at, candidates.is_empty()) {
        (_, true) => latest,
        (Some(_), false) => format!("no release of {plugin_name} since {core_label}; {latest}"),
        (None, false) => format!("the release date of {core_label} is unknown; {latest}"),
    };
    (Verdict::Unknown, None, evidence)
}

fn list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// One recommendation sentence for a whole report, e.g. "All your plugins are ready: upgrade
/// pretalx and the plugins together." or "Wait: pretalx-pages shows no compatible release
/// yet." Blocked plugins are named first, then unknown ones; likely ones call for a test.
pub fn recommendation(
    core_name: &str,
    core_version: &Version,
    assessments: &[Assessment],
) -> String {
    let named = |verdict: Verdict| -> Vec<&str> {
        assessments
            .iter()
            .filter(|a| a.verdict == verdict)
            .map(|a| a.plugin.as_str())
            .collect()
    };
    let (blocked, unknown, likely) = (
        named(Verdict::Blocked),
        named(Verdict::Unknown),
        named(Verdict::Likely),
    );
    if assessments.is_empty() {
        return format!(
            "No plugins to check: upgrade {core_name} to {core_version} when you are ready."
        );
    }
    let verb = |names: &[&str], one: &str, many: &str| -> String {
        if names.len() == 1 { one } else { many }.to_string()
    };
    let blocked_part = (!blocked.is_empty()).then(|| {
        format!(
            "{} {} {core_name} {core_version}",
            list(&blocked),
            verb(&blocked, "excludes", "exclude")
        )
    });
    let unknown_part = (!unknown.is_empty()).then(|| {
        format!(
            "{} {} no compatible release yet",
            list(&unknown),
            verb(&unknown, "shows", "show")
        )
    });
    match (blocked_part, unknown_part) {
        (Some(b), Some(u)) => format!("Wait: {b}, and {u}."),
        (Some(b), None) => format!("Wait: {b}."),
        (None, Some(u)) => format!("Wait: {u}."),
        (None, None) if likely.is_empty() => {
            format!("All your plugins are ready: upgrade {core_name} and the plugins together.")
        }
        (None, None) => format!(
            "Probably safe: {} {} likely but not declared compatible; try {core_name} {core_version} on a test instance, then upgrade {core_name} and the plugins together.",
            list(&likely),
            verb(&likely, "is", "are")
        ),
    }
}

/// Whether an operator's override decides the verdict for this core release.
pub fn overridden(overrides: &[Override], core: &Version) -> bool {
    override_for(overrides, core).is_some()
}

/// How the pinned upgrade command starts: pip's eager strategy upgrades dependencies too, as
/// pretalx's maintenance guide asks.
pub const PIP_UPGRADE: &str = "pip install --upgrade-strategy eager -U";

/// What to run, or why to wait: the one pinned command that installs the core release and
/// every plugin version the verdicts name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradePlan {
    /// `pip install --upgrade-strategy eager -U pretalx==2026.2.1 pretalx-pages==1.10.0 ...`;
    /// `None` when nothing would change.
    pub command: Option<String>,
    /// Why not yet: the plugins without a release known to work with the core release.
    pub wait: Option<String>,
}

/// The pinned command for upgrading to `core_to`: the core first, then every plugin whose
/// verdict names a version to install, by name. `plugins` pairs each assessment with the
/// plugin's distribution name. Plugins without a version to install make the reason to wait.
pub fn upgrade_plan(
    core_dist: &str,
    core_installed: Option<&Version>,
    core_to: &Version,
    plugins: &[(String, &Assessment)],
) -> UpgradePlan {
    let same =
        |have: Option<&str>, want: &str| match (have.and_then(|h| parse(h).ok()), parse(want).ok())
        {
            (Some(h), Some(w)) => canonical_key(&h) == canonical_key(&w),
            _ => false,
        };
    let mut changes =
        core_installed.is_none_or(|have| canonical_key(have) != canonical_key(core_to));
    let mut pins = vec![format!("{core_dist}=={core_to}")];
    let mut sorted: Vec<&(String, &Assessment)> = plugins.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut waiting = Vec::new();
    for (dist, a) in sorted {
        match a
            .install
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            Some(install) => {
                changes |= !same(a.installed.as_deref(), install);
                pins.push(format!("{dist}=={install}"));
                if a.verdict == Verdict::Unknown {
                    waiting.push(a.plugin.as_str());
                }
            }
            None => waiting.push(a.plugin.as_str()),
        }
    }
    let wait = (!waiting.is_empty()).then(|| {
        format!(
            "{} {} no release known to work with {core_dist} {core_to} yet: upgrading now may break {}",
            list(&waiting),
            if waiting.len() == 1 { "has" } else { "have" },
            if waiting.len() == 1 { "it" } else { "them" },
        )
    });
    UpgradePlan {
        command: changes.then(|| format!("{PIP_UPGRADE} {}", pins.join(" "))),
        wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        parse(s).expect(s)
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect(s)
            .with_timezone(&Utc)
    }

    fn dist(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| (*s).to_string()).collect()
    }

    fn release(
        version: &str,
        published: Option<&str>,
        requires_dist: Option<&[&str]>,
    ) -> PluginRelease {
        PluginRelease {
            version: v(version),
            published_at: published.map(at),
            requires_dist: requires_dist.map(dist),
            requires_python: None,
            yanked: false,
        }
    }

    /// The real pretalx 2026.2.0: uploaded 2026-07-07T22:23:51Z, `Requires-Python: >=3.13`.
    fn pretalx_2026_2_0() -> CoreRelease {
        CoreRelease {
            version: v("2026.2.0"),
            published_at: Some(at("2026-07-07T22:23:51Z")),
            requires_python: Some(">=3.13".into()),
        }
    }

    fn core(version: &str, published: &str) -> CoreRelease {
        CoreRelease {
            version: v(version),
            published_at: Some(at(published)),
            requires_python: None,
        }
    }

    /// The real `Requires-Dist` of the 2026 plugin wheels: only `dev` extras.
    const DEV_EXTRAS: &[&str] = &[
        "djangofmt; extra == \"dev\"",
        "pytest; extra == \"dev\"",
        "pytest-cov; extra == \"dev\"",
        "pytest-django; extra == \"dev\"",
        "ruff; extra == \"dev\"",
    ];

    fn window() -> Duration {
        Duration::days(2)
    }

    fn run(core: &CoreRelease, releases: &[PluginRelease]) -> Assessment {
        assess("pretalx", core, "pretalx-x", releases, None, &[], window())
    }

    #[test]
    fn a_declared_lower_bound_is_ready_for_that_release_and_blocks_older_ones() {
        let releases = [
            release(
                "1.3.0",
                Some("2026-07-08T10:00:00Z"),
                Some(&["pretalx>=2026.2", "PyJWT"]),
            ),
            release(
                "1.2.0",
                Some("2026-04-17T21:50:00Z"),
                Some(&["pretalx>=2026.1"]),
            ),
        ];
        let ready = run(&core("2026.2.0", "2026-07-07T22:23:51Z"), &releases);
        assert_eq!(ready.verdict, Verdict::Ready, "{ready:?}");
        assert_eq!(ready.install.as_deref(), Some("1.3.0"));
        assert_eq!(
            ready.evidence,
            "pretalx-x 1.3.0 declares pretalx>=2026.2, which admits 2026.2.0"
        );

        let blocked = run(&core("2026.1.1", "2026-05-01T00:00:00Z"), &releases);
        assert_eq!(blocked.verdict, Verdict::Blocked, "{blocked:?}");
        // The older 1.2.0 declares a range that admits 2026.1.1: it is the one to install.
        assert_eq!(blocked.install.as_deref(), Some("1.2.0"));
        assert_eq!(
            blocked.evidence,
            "pretalx-x 1.3.0 requires pretalx>=2026.2, which excludes 2026.1.1; the older 1.2.0 admits it"
        );
    }

    #[test]
    fn an_upper_bound_blocks_the_new_release() {
        let releases = [release(
            "1.3.0",
            Some("2026-07-08T10:00:00Z"),
            Some(&["pretalx<2026.2"]),
        )];
        let a = run(&pretalx_2026_2_0(), &releases);
        assert_eq!(a.verdict, Verdict::Blocked);
        assert_eq!(a.install, None);
        assert_eq!(
            a.evidence,
            "pretalx-x 1.3.0 requires pretalx<2026.2, which excludes 2026.2.0"
        );
    }

    #[test]
    fn declarations_follow_pep_440_pre_release_rule() {
        let rc = v("2026.2.0rc1");
        // `VersionSpecifiers::contains` alone would admit the pre-release.
        let specifiers = VersionSpecifiers::from_str(">=2026.1").expect("specifiers");
        assert!(specifiers.contains(&rc));
        assert_eq!(
            declared(&dist(&["pretalx>=2026.1"]), "pretalx", &rc),
            Some(false)
        );
        assert_eq!(
            declared(&dist(&["pretalx>=2026.1"]), "pretalx", &v("2026.2.0")),
            Some(true)
        );
        assert_eq!(
            declared(&dist(&["pretalx>=2026.2.0rc1"]), "pretalx", &rc),
            Some(true)
        );
        assert_eq!(
            declared(&dist(&["pretalx>=2026.2.dev0"]), "pretalx", &rc),
            Some(true)
        );

        let rc_core = core("2026.2.0rc1", "2026-06-20T00:00:00Z");
        let releases = [release(
            "1.3.0",
            Some("2026-04-17T21:50:00Z"),
            Some(&["pretalx>=2026.1"]),
        )];
        let a = run(&rc_core, &releases);
        assert_eq!(a.verdict, Verdict::Blocked);
        assert_eq!(
            a.evidence,
            "pretalx-x 1.3.0 requires pretalx>=2026.1, which does not admit the pre-release 2026.2.0rc1"
        );
    }

    #[test]
    fn extras_unversioned_mentions_and_other_names_are_not_declarations() {
        let core_v = v("2026.2.0");
        let extra_only = dist(&[
            "pretalx; extra == \"pretalx\"",
            "pretalx<2020; extra == 'dev'",
        ]);
        assert_eq!(declared(&extra_only, "pretalx", &core_v), None);
        // An extra combined with another marker is still optional.
        let mixed = dist(&["pretalx<2020; python_version >= '3.8' and extra == 'dev'"]);
        assert_eq!(declared(&mixed, "pretalx", &core_v), None);
        assert_eq!(declared(&dist(&["pretalx"]), "pretalx", &core_v), None);
        assert_eq!(
            declared(
                &dist(&["pretalx @ https://example.org/pretalx.whl"]),
                "pretalx",
                &core_v
            ),
            None
        );
        assert_eq!(
            declared(&dist(&["pretalx-pages>=9"]), "pretalx", &core_v),
            None
        );
        assert_eq!(
            declared(&dist(&["not a requirement ((("]), "pretalx", &core_v),
            None
        );
        assert_eq!(declared(&[], "pretalx", &core_v), None);
        // Names compare after PEP 503 normalisation, both ways.
        assert_eq!(
            declared(&dist(&["Pretalx>=2026.2"]), "pretalx", &core_v),
            Some(true)
        );
        assert_eq!(
            declared(&dist(&["my.core<1"]), "My_Core", &v("1.0")),
            Some(false)
        );

        // The real plugin wheels: dev extras only, so timing decides.
        let releases = [release(
            "1.9.0",
            Some("2026-04-17T21:49:03Z"),
            Some(DEV_EXTRAS),
        )];
        assert_eq!(
            run(&pretalx_2026_2_0(), &releases).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn old_parenthesised_requirements_parse() {
        let old = dist(&["Django (~=3.2.0)", "pretalx (>=2.2.0,<2.3)"]);
        assert_eq!(declared(&old, "django", &v("3.2.19")), Some(true));
        assert_eq!(declared(&old, "django", &v("3.3")), Some(false));
        assert_eq!(declared(&old, "pretalx", &v("2.2.1")), Some(true));
        assert_eq!(declared(&old, "pretalx", &v("2.3.0")), Some(false));
    }

    #[test]
    fn markers_other_than_extras_count() {
        let core_v = v("2026.2.0");
        // Unconditional requirements all apply.
        let both = dist(&["pretalx>=2026.1", "pretalx<2026.2"]);
        assert_eq!(declared(&both, "pretalx", &core_v), Some(false));
        // Of conditional ones, one environment's applies.
        let split = dist(&[
            "pretalx>=2026.2; python_version >= '3.13'",
            "pretalx<2026.2; python_version < '3.13'",
        ]);
        assert_eq!(declared(&split, "pretalx", &core_v), Some(true));
    }

    #[test]
    fn released_alongside_is_likely_and_silence_is_unknown() {
        let pretalx = pretalx_2026_2_0();
        // pretalx-venueless: `Requires-Dist: PyJWT` plus dev extras, 1.9.0 uploaded the
        // morning after pretalx 2026.2.0.
        let mut venueless_dist = vec!["PyJWT"];
        venueless_dist.extend_from_slice(DEV_EXTRAS);
        let venueless = [
            release("1.9.0", Some("2026-07-08T10:01:22Z"), Some(&venueless_dist)),
            release("1.8.0", Some("2026-04-17T21:50:09Z"), Some(&venueless_dist)),
            release("1.7.0", Some("2025-11-30T20:57:02Z"), Some(&["PyJWT"])),
        ];
        let a = assess(
            "pretalx",
            &pretalx,
            "pretalx-venueless",
            &venueless,
            Some(&v("1.8.0")),
            &[],
            window(),
        );
        assert_eq!(a.verdict, Verdict::Likely);
        assert_eq!(a.install.as_deref(), Some("1.9.0"));
        assert_eq!(a.installed.as_deref(), Some("1.8.0"));
        assert_eq!(
            a.evidence,
            "pretalx-venueless 1.9.0 was released 2026-07-08, the day pretalx 2026.2.0 came out"
        );

        // pretalx-pages: nothing since 1.9.0 (tag v1.9.0, 2026-04-17T23:49:03+02:00).
        let mut pages = vec![
            release("1.9.0", Some("2026-04-17T21:49:03Z"), Some(DEV_EXTRAS)),
            release("1.8.0", Some("2025-11-30T20:32:05Z"), Some(&[])),
        ];
        let a = assess(
            "pretalx",
            &pretalx,
            "pretalx-pages",
            &pages,
            Some(&v("1.9.0")),
            &[],
            window(),
        );
        assert_eq!(a.verdict, Verdict::Unknown);
        assert_eq!(a.install, None);
        assert_eq!(
            a.evidence,
            "no release of pretalx-pages since pretalx 2026.2.0; the latest is 1.9.0 from 2026-04-17"
        );

        // Later, pretalx-pages 1.10.0 (on the index; its date here is made up) makes it likely.
        pages.insert(0, release("1.10.0", Some("2026-07-20T09:00:00Z"), None));
        let a = assess(
            "pretalx",
            &pretalx,
            "pretalx-pages",
            &pages,
            Some(&v("1.9.0")),
            &[],
            window(),
        );
        assert_eq!(a.verdict, Verdict::Likely);
        assert_eq!(a.install.as_deref(), Some("1.10.0"));
        assert_eq!(
            a.evidence,
            "pretalx-pages 1.10.0 was released 2026-07-20, 12 days after pretalx 2026.2.0"
        );

        // Within the window before the core release also counts; outside it does not.
        let before = [release("2.0.0", Some("2026-07-06T12:00:00Z"), Some(&[]))];
        let a = run(&pretalx, &before);
        assert_eq!(a.verdict, Verdict::Likely);
        assert_eq!(
            a.evidence,
            "pretalx-x 2.0.0 was released 2026-07-06, 1 day before pretalx 2026.2.0"
        );
        let a = assess(
            "pretalx",
            &pretalx,
            "pretalx-x",
            &before,
            None,
            &[],
            Duration::hours(12),
        );
        assert_eq!(a.verdict, Verdict::Unknown);
    }

    #[test]
    fn unknown_says_what_little_is_known() {
        let a = run(&pretalx_2026_2_0(), &[]);
        assert_eq!(a.verdict, Verdict::Unknown);
        assert_eq!(a.evidence, "no release of pretalx-x is known");

        let undated = CoreRelease {
            published_at: None,
            ..pretalx_2026_2_0()
        };
        let a = run(&undated, &[release("1.0.0", None, None)]);
        assert_eq!(a.verdict, Verdict::Unknown);
        assert_eq!(
            a.evidence,
            "the release date of pretalx 2026.2.0 is unknown; the latest is 1.0.0 (date unknown)"
        );
    }

    #[test]
    fn yanked_releases_are_ignored() {
        let mut yanked = release(
            "1.3.0",
            Some("2026-07-08T10:00:00Z"),
            Some(&["pretalx>=2026.2"]),
        );
        yanked.yanked = true;
        let old = release("1.2.0", Some("2026-04-17T21:50:00Z"), Some(&[]));
        let a = run(&pretalx_2026_2_0(), &[yanked.clone(), old.clone()]);
        assert_eq!(a.verdict, Verdict::Unknown, "{a:?}");
        assert_eq!(
            a.evidence,
            "no release of pretalx-x since pretalx 2026.2.0; the latest is 1.2.0 from 2026-04-17"
        );

        // A yanked exclusion does not block either.
        let mut yanked_pin = release(
            "1.4.0",
            Some("2026-07-09T00:00:00Z"),
            Some(&["pretalx<2026.2"]),
        );
        yanked_pin.yanked = true;
        let fine = release(
            "1.3.1",
            Some("2026-07-08T00:00:00Z"),
            Some(&["pretalx>=2026.2"]),
        );
        assert_eq!(
            run(&pretalx_2026_2_0(), &[yanked_pin, fine]).verdict,
            Verdict::Ready
        );
    }

    #[test]
    fn plugin_pre_releases_count_only_for_a_pre_release_core() {
        let releases = [
            release(
                "2.0.0b1",
                Some("2026-07-08T00:00:00Z"),
                Some(&["pretalx>=2026.2"]),
            ),
            release("1.9.0", Some("2026-04-17T21:50:00Z"), Some(&[])),
        ];
        assert_eq!(
            run(&pretalx_2026_2_0(), &releases).verdict,
            Verdict::Unknown
        );
        let rc = core("2026.2.0rc1", "2026-06-20T00:00:00Z");
        let releases = [release(
            "2.0.0b1",
            Some("2026-06-21T00:00:00Z"),
            Some(&["pretalx>=2026.2.0rc1"]),
        )];
        assert_eq!(run(&rc, &releases).verdict, Verdict::Ready);
    }

    #[test]
    fn a_dropped_pin_no_longer_blocks() {
        let releases = [
            release("1.4.0", Some("2026-07-08T12:00:00Z"), Some(&["PyJWT"])),
            release(
                "1.3.0",
                Some("2026-04-17T21:50:00Z"),
                Some(&["pretalx<2026.2"]),
            ),
        ];
        let a = run(&pretalx_2026_2_0(), &releases);
        assert_eq!(a.verdict, Verdict::Likely, "{a:?}");
        assert_eq!(a.install.as_deref(), Some("1.4.0"));
        assert_eq!(
            a.hints,
            ["pretalx-x 1.3.0 required pretalx<2026.2; 1.4.0 no longer names pretalx"]
        );
        // A newer release whose metadata was not fetched says nothing: still blocked.
        let releases = [
            release("1.4.0", Some("2026-07-08T12:00:00Z"), None),
            release(
                "1.3.0",
                Some("2026-04-17T21:50:00Z"),
                Some(&["pretalx<2026.2"]),
            ),
        ];
        assert_eq!(
            run(&pretalx_2026_2_0(), &releases).verdict,
            Verdict::Blocked
        );
    }

    #[test]
    fn overrides_decide_for_their_line_or_version() {
        let releases = [release(
            "1.3.0",
            Some("2026-04-17T21:50:00Z"),
            Some(&["pretalx<2026.2"]),
        )];
        let line_override = Override {
            core: "2026.2".into(),
            verdict: Verdict::Ready,
            install: Some("1.3.0".into()),
            note: Some("tested on our staging instance".into()),
        };
        let a = assess(
            "pretalx",
            &pretalx_2026_2_0(),
            "pretalx-x",
            &releases,
            Some(&v("1.3")),
            std::slice::from_ref(&line_override),
            window(),
        );
        assert_eq!(a.verdict, Verdict::Ready);
        assert_eq!(a.install.as_deref(), Some("1.3.0"));
        assert_eq!(
            a.evidence,
            "set by the operator: tested on our staging instance; keep 1.3"
        );

        // The line covers bugfix releases; an exact version wins over it.
        let exact = Override {
            core: "2026.2.1".into(),
            verdict: Verdict::Blocked,
            install: None,
            note: None,
        };
        let overrides = [line_override.clone(), exact];
        let bugfix = core("2026.2.1", "2026-07-08T09:52:27Z");
        let a = assess(
            "pretalx",
            &bugfix,
            "pretalx-x",
            &releases,
            None,
            &overrides,
            window(),
        );
        assert_eq!(a.verdict, Verdict::Blocked);
        assert_eq!(a.evidence, "set by the operator for pretalx 2026.2.1");
        let a = assess(
            "pretalx",
            &core("2026.2.3", "2026-09-01T00:00:00Z"),
            "pretalx-x",
            &releases,
            None,
            &overrides,
            window(),
        );
        assert_eq!(a.verdict, Verdict::Ready);

        // Other lines are not affected.
        let a = assess(
            "pretalx",
            &core("2026.3.0", "2026-10-01T00:00:00Z"),
            "pretalx-x",
            &releases,
            None,
            &overrides,
            window(),
        );
        assert_eq!(a.verdict, Verdict::Blocked);
        assert!(
            a.evidence.starts_with("pretalx-x 1.3.0 requires"),
            "{}",
            a.evidence
        );

        // Overrides read from the projects file.
        let parsed: Override =
            toml::from_str("core = \"2026.2\"\nverdict = \"likely\"\nnote = \"works for us\"\n")
                .expect("toml");
        assert_eq!(parsed.verdict, Verdict::Likely);
        assert!(toml::from_str::<Override>("core = \"2026.2\"\nverdict = \"sure\"\n").is_err());
        assert!(
            toml::from_str::<Override>("core = \"2026.2\"\nverdict = \"ready\"\ntypo = 1\n")
                .is_err()
        );
    }

    #[test]
    fn keep_the_installed_version_when_it_is_the_one() {
        let releases = [release(
            "1.3.0",
            Some("2026-07-08T10:00:00Z"),
            Some(&["pretalx>=2026.2"]),
        )];
        let a = assess(
            "pretalx",
            &pretalx_2026_2_0(),
            "pretalx-x",
            &releases,
            Some(&v("1.3.0")),
            &[],
            window(),
        );
        assert_eq!(
            a.evidence,
            "pretalx-x 1.3.0 declares pretalx>=2026.2, which admits 2026.2.0; keep 1.3.0"
        );
        let a = assess(
            "pretalx",
            &pretalx_2026_2_0(),
            "pretalx-x",
            &releases,
            Some(&v("1.2.0")),
            &[],
            window(),
        );
        assert!(!a.evidence.contains("keep"), "{}", a.evidence);
    }

    #[test]
    fn requires_python_hints_never_change_the_verdict() {
        let mut pages = release("1.9.0", Some("2026-04-17T21:49:03Z"), Some(DEV_EXTRAS));
        pages.requires_python = Some(">=3.11".into());
        let a = assess(
            "pretalx",
            &pretalx_2026_2_0(),
            "pretalx-pages",
            &[pages.clone()],
            None,
            &[],
            window(),
        );
        assert_eq!(a.verdict, Verdict::Unknown);
        assert_eq!(
            a.hints,
            ["pretalx 2026.2.0 needs Python >=3.13; pretalx-pages 1.9.0 declares >=3.11"]
        );

        pages.requires_python = Some("<3.10".into());
        let a = assess(
            "pretalx",
            &pretalx_2026_2_0(),
            "pretalx-pages",
            &[pages.clone()],
            None,
            &[],
            window(),
        );
        assert_eq!(
            a.hints,
            [
                "pretalx 2026.2.0 needs Python >=3.13; pretalx-pages 1.9.0 declares <3.10, so no Python version satisfies both"
            ]
        );

        // No hint unless both sides declare.
        pages.requires_python = None;
        assert!(
            assess(
                "pretalx",
                &pretalx_2026_2_0(),
                "pretalx-pages",
                &[pages],
                None,
                &[],
                window()
            )
            .hints
            .is_empty()
        );

        let h = |core: &str, plugin: &str| python_hint("c", core, "p", plugin);
        assert!(!h(">=3.13", ">=3.11, <3.14").contains("no Python"));
        assert!(!h(">=3.12", "==3.12.4").contains("no Python"));
        assert!(!h(">3.12, <3.13", ">=3.12.1").contains("no Python"));
        assert!(!h("~=3.13", "!=3.13.0").contains("no Python"));
        assert!(h(">=3.13", "<3.13").contains("no Python"));
        assert!(h(">=3.13", "==3.12.*").contains("no Python"));
        assert!(h("~=2.7", ">=3.6").contains("no Python"));
        assert!(h(">=3.13", "3.11+").contains("cannot read"));
    }

    fn verdict(plugin: &str, verdict: Verdict) -> Assessment {
        Assessment {
            plugin: plugin.into(),
            installed: None,
            verdict,
            install: None,
            evidence: String::new(),
            hints: Vec::new(),
        }
    }

    #[test]
    fn recommendations() {
        let r = |list: &[Assessment]| recommendation("pretalx", &v("2026.2.0"), list);
        assert_eq!(
            r(&[
                verdict("pretalx-pages", Verdict::Ready),
                verdict("pretalx-venueless", Verdict::Ready)
            ]),
            "All your plugins are ready: upgrade pretalx and the plugins together."
        );
        assert_eq!(
            r(&[
                verdict("pretalx-venueless", Verdict::Likely),
                verdict("pretalx-pages", Verdict::Unknown)
            ]),
            "Wait: pretalx-pages shows no compatible release yet."
        );
        assert_eq!(
            r(&[
                verdict("pretalx-pages", Verdict::Unknown),
                verdict("pretalx-orcid", Verdict::Unknown),
                verdict("pretalx-vimeo", Verdict::Unknown),
            ]),
            "Wait: pretalx-pages, pretalx-orcid and pretalx-vimeo show no compatible release yet."
        );
        assert_eq!(
            r(&[
                verdict("pretalx-x", Verdict::Blocked),
                verdict("pretalx-venueless", Verdict::Ready)
            ]),
            "Wait: pretalx-x excludes pretalx 2026.2.0."
        );
        assert_eq!(
            r(&[
                verdict("pretalx-x", Verdict::Blocked),
                verdict("pretalx-pages", Verdict::Unknown)
            ]),
            "Wait: pretalx-x excludes pretalx 2026.2.0, and pretalx-pages shows no compatible release yet."
        );
        assert_eq!(
            r(&[
                verdict("pretalx-venueless", Verdict::Likely),
                verdict("pretalx-pages", Verdict::Ready)
            ]),
            "Probably safe: pretalx-venueless is likely but not declared compatible; try pretalx 2026.2.0 on a test instance, then upgrade pretalx and the plugins together."
        );
        assert!(r(&[]).starts_with("No plugins to check"));
    }

    #[test]
    fn verdicts_serialise_in_lower_case() {
        assert_eq!(
            serde_json::to_string(&Verdict::Blocked).expect("json"),
            "\"blocked\""
        );
        assert_eq!(Verdict::Likely.as_str(), "likely");
        let a = verdict("pretalx-pages", Verdict::Unknown);
        let json = serde_json::to_value(&a).expect("json");
        assert_eq!(json["verdict"], "unknown");
        assert_eq!(json["plugin"], "pretalx-pages");
    }

    #[test]
    fn the_upgrade_plan_pins_the_core_and_every_named_plugin_version() {
        let mut venueless = verdict("pretalx-venueless", Verdict::Likely);
        venueless.install = Some("1.9.0".into());
        venueless.installed = Some("1.8.0".into());
        let mut ccc = verdict("pretalx-media-ccc-de", Verdict::Likely);
        ccc.install = Some("1.8.0".into());
        let pages = verdict("pretalx-pages", Verdict::Unknown);
        let plan = upgrade_plan(
            "pretalx",
            Some(&v("2026.1.2")),
            &v("2026.2.1"),
            &[
                ("pretalx-venueless".into(), &venueless),
                ("pretalx-pages".into(), &pages),
                ("pretalx-media-ccc-de".into(), &ccc),
            ],
        );
        assert_eq!(
            plan.command.as_deref(),
            Some(
                "pip install --upgrade-strategy eager -U pretalx==2026.2.1 pretalx-media-ccc-de==1.8.0 pretalx-venueless==1.9.0"
            )
        );
        assert_eq!(
            plan.wait.as_deref(),
            Some(
                "pretalx-pages has no release known to work with pretalx 2026.2.1 yet: upgrading now may break it"
            )
        );
        // Everything installed already: nothing to run, nothing to wait for.
        let mut kept = venueless.clone();
        kept.installed = Some("1.9.0".into());
        let plan = upgrade_plan(
            "pretalx",
            Some(&v("2026.2.1")),
            &v("2026.2.1"),
            &[("pretalx-venueless".into(), &kept)],
        );
        assert_eq!(plan, UpgradePlan::default());
    }
}
