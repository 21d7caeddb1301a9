//! What a message says: the typed contexts every template renders from, built from recorded
//! releases and the project configuration. Release notes (GitHub Markdown) become sanitised
//! HTML (pulldown-cmark, then ammonia) for the HTML part and stay readable Markdown in the
//! text part.

use serde::Serialize;

use super::outbox::{AlertReport, Trigger};
use crate::compat::Assessment;
use crate::model::{Project, ReleaseClass, SourceKind, Verdict};
use crate::store::ReleaseRow;

/// Longest release notes included in a mail, in characters.
const MAX_NOTES: usize = 12_000;

/// Links about a release.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Links {
    /// The package index page.
    pub package: Option<String>,
    /// The GitHub release.
    pub github: Option<String>,
    /// The blog post.
    pub blog: Option<String>,
}

/// One release, as mails show it.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseView {
    pub project: String,
    pub version: String,
    /// `feature`, `bugfix` or `prerelease`.
    pub class: ReleaseClass,
    /// The class in words.
    pub class_label: &'static str,
    /// What to do about it.
    pub advice: &'static str,
    /// Publication date (`YYYY-MM-DD`).
    pub published: Option<String>,
    /// Release line.
    pub line: String,
    /// Where to read more.
    pub links: Links,
    /// Release notes as sanitised HTML.
    pub notes_html: Option<String>,
    /// Release notes as text (Markdown).
    pub notes_text: Option<String>,
    /// How to upgrade.
    pub upgrade_steps: Vec<String>,
    /// Withdrawn from the index.
    pub yanked: bool,
    /// Why.
    pub yanked_reason: Option<String>,
    /// The newer release of the same message that replaces it (it then has no upgrade steps).
    pub superseded_by: Option<String>,
}

/// The footer of mails sent to a subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct Footer {
    /// Why they get this mail.
    pub reason: String,
    /// One-click unsubscribe link.
    pub unsubscribe_url: String,
    /// The web service's address (`HERALD_BASE_URL`, ending in `/`), for links to the
    /// project pages, the compatibility board and the advise form.
    pub site_url: String,
}

/// Context of `new_release` (one release) and `new_releases` (every release of a project
/// that one run found): `release` describes the newest, `releases` lists them all, newest
/// first, the newest included.
#[derive(Debug, Clone, Serialize)]
pub struct NewReleaseMail {
    /// The release (the newest).
    pub release: ReleaseView,
    /// Every release of the message, newest first.
    pub releases: Vec<ReleaseView>,
    pub footer: Footer,
}

/// Marks, in releases listed newest first, every release older than the newest final one as
/// superseded by it: it keeps its class, notes and links, and loses its upgrade steps.
pub fn supersede(releases: &mut [ReleaseView]) {
    let Some(at) = releases
        .iter()
        .position(|r| r.class != ReleaseClass::Prerelease && !r.yanked)
    else {
        return;
    };
    let version = releases[at].version.clone();
    for older in releases.iter_mut().skip(at + 1) {
        older.superseded_by = Some(version.clone());
        older.upgrade_steps.clear();
    }
}

/// A digest period, for display.
#[derive(Debug, Clone, Serialize)]
pub struct Period {
    /// `daily` or `weekly`.
    pub kind: String,
    /// e.g. `Daily digest for 2026-11-22`.
    pub label: String,
}

/// Context of `digest`.
#[derive(Debug, Clone, Serialize)]
pub struct DigestMail {
    /// The period.
    pub period: Period,
    /// Its releases, oldest first.
    pub releases: Vec<ReleaseView>,
    pub footer: Footer,
}

/// Context of `confirm_subscription`, and its payload in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConfirmMail {
    /// The confirmation link.
    pub confirm_url: String,
    /// Until when it works (UTC, human-readable).
    pub expires_at: String,
    /// Projects asked for.
    pub projects: Vec<String>,
}

/// Context of the operator alerts (`compat_report`, `compat_followup`, `bugfix_advice`).
#[derive(Debug, Clone, Serialize)]
pub struct AlertMail {
    /// The report (`alerts::Advice`, as queued).
    pub advice: serde_json::Value,
    /// Plugins with a `ready` or `likely` verdict.
    pub compatible: usize,
    /// Plugins in the report.
    pub total: usize,
    /// Plugins still `unknown` or `blocked`.
    pub waiting: Vec<String>,
    /// The plugin release behind a follow-up.
    pub trigger: Option<Trigger>,
    /// Plugins whose verdict changed (follow-ups).
    pub changed: Vec<String>,
    /// The core releases one alerts pass found, newest first, when it found several.
    pub found: Vec<String>,
    /// The newest bugfix release of the reported feature release's line, found with it.
    pub upgrade_to: Option<String>,
    pub footer: Footer,
}

impl AlertMail {
    /// Builds the context of a queued report.
    pub fn new(report: &AlertReport, footer: Footer) -> AlertMail {
        let plugins = &report.advice.plugins;
        let ok = |p: &&Assessment| matches!(p.verdict, Verdict::Ready | Verdict::Likely);
        AlertMail {
            compatible: plugins.iter().filter(ok).count(),
            total: plugins.len(),
            waiting: plugins
                .iter()
                .filter(|p| !ok(p))
                .map(|p| p.plugin.clone())
                .collect(),
            trigger: report.trigger.clone(),
            changed: report.changed.clone().unwrap_or_default(),
            found: report.found.clone().unwrap_or_default(),
            upgrade_to: report.upgrade_to.clone(),
            advice: report.to_value(),
            footer,
        }
    }
}

/// Context of `test_message`.
#[derive(Debug, Clone, Serialize)]
pub struct TestMail {
    /// Sender address.
    pub from: String,
    /// When (UTC, human-readable).
    pub sent_at: String,
    /// The web service.
    pub base_url: String,
}

/// The class in words and the advice that goes with it.
pub fn class_words(class: ReleaseClass) -> (&'static str, &'static str) {
    match class {
        ReleaseClass::Feature => (
            "feature release",
            "Read the release notes and check that your plugins are compatible before you upgrade.",
        ),
        ReleaseClass::Bugfix => (
            "bugfix release",
            "It may carry security fixes: upgrade soon.",
        ),
        ReleaseClass::Prerelease => (
            "pre-release",
            "It is meant for testing: do not run it in production.",
        ),
    }
}

/// Markdown to sanitised HTML: no scripts, no event handlers, no foreign styles.
pub fn markdown_html(markdown: &str) -> String {
    use pulldown_cmark::{Options, Parser, html};
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    options.insert(Options::ENABLE_TASKLISTS);
    let mut out = String::new();
    html::push_html(&mut out, Parser::new_ext(markdown, options));
    ammonia::clean(&out)
}

fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_NOTES {
        return text.trim().to_string();
    }
    let head: String = text.chars().take(MAX_NOTES).collect();
    format!(
        "{}\n\n[...] (shortened: read the full notes on the release page)",
        head.trim_end()
    )
}

/// Builds the view of a recorded release.
pub fn release_view(release: &ReleaseRow, project: Option<&Project>) -> ReleaseView {
    let source = |kind: SourceKind| release.sources.iter().find(|s| s.source == kind);
    let notes = source(SourceKind::Github)
        .and_then(|s| s.notes.as_deref())
        .filter(|n| !n.trim().is_empty())
        .map(clip);
    let (class_label, advice) = class_words(release.class);
    ReleaseView {
        project: release.project.clone(),
        version: release.version.clone(),
        class: release.class,
        class_label,
        advice,
        published: release
            .published_at
            .map(|d| d.format("%Y-%m-%d").to_string()),
        line: release.line.clone(),
        links: Links {
            package: source(SourceKind::Pypi).and_then(|s| s.url.clone()),
            github: source(SourceKind::Github).and_then(|s| s.url.clone()),
            blog: source(SourceKind::Feed).and_then(|s| s.url.clone()),
        },
        notes_html: notes.as_deref().map(markdown_html),
        notes_text: notes,
        upgrade_steps: project
            .map(|p| p.upgrade_steps_for(&release.version))
            .unwrap_or_default(),
        yanked: release.yanked,
        yanked_reason: release.yanked_reason.clone(),
        superseded_by: None,
    }
}

/// Context of a channel's `release` notification: every release of a project one run found,
/// newest first (`release` is the newest).
#[derive(Debug, Clone, Serialize)]
pub struct ChannelReleases {
    /// The channel's name.
    pub channel: String,
    /// The newest release.
    pub release: ReleaseView,
    /// Every release, newest first.
    pub releases: Vec<ReleaseView>,
}

/// Context of a channel's operator alert (`compat_report`, `compat_followup`,
/// `bugfix_advice`): the mail's context (`advice`, `compatible`, `total`, `waiting`, `trigger`,
/// `changed`, `found`, `upgrade_to`) and the channel's name.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelAlert {
    /// The channel's name.
    pub channel: String,
    /// What the mail would say.
    #[serde(flatten)]
    pub alert: AlertMail,
}

/// Context of a channel's `test` notification.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelTest {
    /// The channel's name.
    pub channel: String,
    /// When it was sent (UTC, human readable).
    pub sent_at: String,
    /// Public base URL of the web service.
    pub base_url: String,
}

/// Sample contexts: every template is rendered with these at start, and snapshot-tested.
pub mod samples {
    use super::*;

    /// A pretalx bugfix release with notes that try to smuggle markup.
    pub fn release() -> ReleaseView {
        let notes = "## Fixes\n\n- Fixed the schedule export <script>alert('x')</script>\n- <b onclick=\"steal()\">Bold</b> and [a link](https://example.org/notes)\n".to_string();
        let (class_label, advice) = class_words(ReleaseClass::Bugfix);
        ReleaseView {
            project: "pretalx".into(),
            version: "2026.2.1".into(),
            class: ReleaseClass::Bugfix,
            class_label,
            advice,
            published: Some("2026-07-08".into()),
            line: "2026.2".into(),
            links: Links {
                package: Some("https://pypi.org/project/pretalx/2026.2.1/".into()),
                github: Some("https://github.com/pretalx/pretalx/releases/tag/v2026.2.1".into()),
                blog: Some("https://pretalx.com/p/news/releasing-pretalx-2026-2-0/".into()),
            },
            notes_html: Some(markdown_html(&notes)),
            notes_text: Some(notes.trim().to_string()),
            upgrade_steps: vec![
                "Make a backup of your database and your data directory first.".into(),
                "pip install --upgrade-strategy eager -U pretalx==2026.2.1".into(),
                "python -m pretalx check --deploy".into(),
                "python -m pretalx migrate".into(),
                "python -m pretalx rebuild".into(),
                "Restart the pretalx web and worker services.".into(),
            ],
            yanked: false,
            yanked_reason: None,
            superseded_by: None,
        }
    }

    fn footer() -> Footer {
        Footer {
            reason: "You receive this because you subscribed to release mail for pretalx.".into(),
            unsubscribe_url: "https://herald.example.org/unsubscribe/1.SIGNATURE".into(),
            site_url: "https://herald.example.org/".into(),
        }
    }

    /// A channel's `release` sample: a hostile project name and notes included.
    pub fn channel_releases() -> ChannelReleases {
        let mut odd = release();
        odd.project = "a&b<c>".into();
        ChannelReleases {
            channel: "ops".into(),
            release: release(),
            releases: vec![release(), odd],
        }
    }

    /// A channel's operator alert sample.
    pub fn channel_alert() -> ChannelAlert {
        ChannelAlert {
            channel: "ops".into(),
            alert: alert(),
        }
    }

    /// A channel's operator alert sample for a pass that found several releases.
    pub fn channel_alert_found() -> ChannelAlert {
        ChannelAlert {
            channel: "ops".into(),
            alert: alert_found(),
        }
    }

    /// A channel's `test` sample.
    pub fn channel_test() -> ChannelTest {
        ChannelTest {
            channel: "ops".into(),
            sent_at: "2026-11-30 06:00:00 UTC".into(),
            base_url: "https://herald.example.org/".into(),
        }
    }

    /// `new_release` sample.
    pub fn new_release() -> NewReleaseMail {
        NewReleaseMail {
            release: release(),
            releases: vec![release()],
            footer: footer(),
        }
    }

    /// `new_releases` sample: pretalx 2026.1.2, 2026.2.0 and 2026.2.1 found in one run.
    pub fn new_releases() -> NewReleaseMail {
        let feature = digest().releases.remove(0);
        let mut old = release();
        old.version = "2026.1.2".into();
        old.line = "2026.1".into();
        old.published = Some("2026-04-30".into());
        old.notes_html = Some(markdown_html("- Fixed the CfP editor"));
        old.notes_text = Some("- Fixed the CfP editor".into());
        old.links = Links {
            package: Some("https://pypi.org/project/pretalx/2026.1.2/".into()),
            github: Some("https://github.com/pretalx/pretalx/releases/tag/v2026.1.2".into()),
            blog: None,
        };
        for step in &mut old.upgrade_steps {
            *step = step.replace("2026.2.1", "2026.1.2");
        }
        let mut releases = vec![release(), feature, old];
        supersede(&mut releases);
        NewReleaseMail {
            release: release(),
            releases,
            footer: footer(),
        }
    }

    /// `digest` sample.
    pub fn digest() -> DigestMail {
        let mut feature = release();
        feature.version = "2026.2.0".into();
        feature.class = ReleaseClass::Feature;
        (feature.class_label, feature.advice) = class_words(ReleaseClass::Feature);
        feature.notes_html = None;
        feature.notes_text = None;
        feature.links.package = Some("https://pypi.org/project/pretalx/2026.2.0/".into());
        feature.links.github =
            Some("https://github.com/pretalx/pretalx/releases/tag/v2026.2.0".into());
        for step in &mut feature.upgrade_steps {
            *step = step.replace("2026.2.1", "2026.2.0");
        }
        DigestMail {
            period: Period {
                kind: "daily".into(),
                label: "Daily digest for 2026-07-08".into(),
            },
            releases: vec![feature, release()],
            footer: footer(),
        }
    }

    /// `confirm_subscription` sample.
    pub fn confirm() -> ConfirmMail {
        ConfirmMail {
            confirm_url: "https://herald.example.org/confirm/TOKEN".into(),
            expires_at: "2026-07-10 08:00 UTC".into(),
            projects: vec!["pretalx".into(), "pretalx-pages".into()],
        }
    }

    /// An operator report: pretalx 2026.1.2 with four plugins, as it stood on 2026-07-08.
    pub fn report() -> AlertReport {
        let advice = serde_json::json!({
            "core": {
                "project": "pretalx", "installed": "2026.1.2", "latest": "2026.2.1", "latest_feature": "2026.2.0",
                "status": "line-unsupported",
                "summary": "Your 2026.1 line (2026.1.2) no longer gets bugfix releases: they are only issued for the latest feature release, 2026.2.0. Read the notes of each feature release in between, back up, and upgrade.",
                "feature_releases_between": [{"version": "2026.2.0", "published": "2026-07-07", "url": "https://github.com/pretalx/pretalx/releases/tag/v2026.2.0"}],
                "vulnerabilities_fixed": [{"id": "GHSA-0000-1111-2222", "aliases": ["CVE-2026-0001"], "summary": "<script> in a talk title", "fixed_in": ["2026.2.0"], "link": "https://osv.dev/vulnerability/GHSA-0000-1111-2222"}]
            },
            "target": "2026.2.0",
            "plugins": [
                {"plugin": "pretalx-venueless", "installed": "1.8.0", "verdict": "likely", "install": "1.9.0", "evidence": "pretalx-venueless 1.9.0 was released 2026-07-08, the day after pretalx 2026.2.0.", "hints": ["pretalx 2026.2.0 needs Python >=3.13; pretalx-venueless 1.9.0 declares >=3.11"]},
                {"plugin": "pretalx-pages", "installed": "1.9.0", "verdict": "unknown", "install": null, "evidence": "No release of pretalx-pages since pretalx 2026.2.0; the latest is 1.9.0 from 2026-04-17.", "hints": []}
            ],
            "recommendation": "Wait: pretalx-pages shows no compatible release yet.",
            "untracked": ["django"],
            "upgrade": {
                "command": "pip install --upgrade-strategy eager -U pretalx==2026.2.1 pretalx-venueless==1.9.0",
                "wait": "pretalx-pages has no release known to work with pretalx 2026.2.1 yet: upgrading now may break it"
            }
        });
        AlertReport {
            advice: serde_json::from_value(advice).expect("advice"),
            found: None,
            upgrade_to: None,
            trigger: Some(Trigger {
                project: "pretalx-pages".into(),
                version: "1.10.0".into(),
            }),
            changed: Some(vec!["pretalx-pages".into()]),
        }
    }

    /// An alert sample.
    pub fn alert() -> AlertMail {
        AlertMail::new(&report(), footer())
    }

    /// An alert sample for a pass that found 2026.2.0 and 2026.2.1 at once.
    pub fn alert_found() -> AlertMail {
        let mut report = report();
        report.found = Some(vec!["2026.2.1".into(), "2026.2.0".into()]);
        report.upgrade_to = Some("2026.2.1".into());
        AlertMail::new(&report, footer())
    }

    /// `test_message` sample.
    pub fn test_message() -> TestMail {
        TestMail {
            from: "herald@example.org".into(),
            sent_at: "2026-07-08 08:00 UTC".into(),
            base_url: "https://herald.example.org/".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(version: &str, class: ReleaseClass) -> ReleaseView {
        let mut v = samples::release();
        v.version = version.into();
        v.class = class;
        v
    }

    #[test]
    fn the_newest_final_release_supersedes_the_older_ones() {
        use ReleaseClass::*;
        let mut releases = vec![
            view("2026.3.0rc1", Prerelease),
            view("2026.2.1", Bugfix),
            view("2026.2.0", Feature),
            view("2026.2.0rc2", Prerelease),
        ];
        supersede(&mut releases);
        let marks: Vec<(Option<&str>, bool)> = releases
            .iter()
            .map(|r| (r.superseded_by.as_deref(), r.upgrade_steps.is_empty()))
            .collect();
        assert_eq!(
            marks,
            [
                (None, false),
                (None, false),
                (Some("2026.2.1"), true),
                (Some("2026.2.1"), true),
            ]
        );
        let mut alone = vec![view("2026.2.1", Bugfix)];
        supersede(&mut alone);
        assert_eq!(alone[0].superseded_by, None);
    }
}
