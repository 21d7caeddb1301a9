//! Snapshots of every built-in template, and an escaping case: text from upstreams and
//! operators is escaped or sanitised in HTML and stays readable in text.

use herald::notify::content::{self, samples};
use herald::notify::templates::{KINDS, Rendered, Templates};

fn snapshot(name: &str, rendered: &Rendered) {
    insta::assert_snapshot!(format!("{name}__subject"), rendered.subject);
    insta::assert_snapshot!(format!("{name}__text"), rendered.text);
    insta::assert_snapshot!(format!("{name}__html"), rendered.html);
}

#[test]
fn every_built_in_template() {
    let t = Templates::builtin().expect("built-in templates compile");
    snapshot(
        "new_release",
        &t.render("new_release", &samples::new_release())
            .expect("renders"),
    );
    snapshot(
        "digest",
        &t.render("digest", &samples::digest()).expect("renders"),
    );
    snapshot(
        "confirm_subscription",
        &t.render("confirm_subscription", &samples::confirm())
            .expect("renders"),
    );
    snapshot(
        "test_message",
        &t.render("test_message", &samples::test_message())
            .expect("renders"),
    );
    for kind in ["compat_report", "compat_followup", "bugfix_advice"] {
        snapshot(kind, &t.render(kind, &samples::alert()).expect("renders"));
    }
    snapshot(
        "new_releases",
        &t.render("new_releases", &samples::new_releases())
            .expect("renders"),
    );
    for kind in ["compat_report", "bugfix_advice"] {
        snapshot(
            &format!("{kind}_found"),
            &t.render(kind, &samples::alert_found()).expect("renders"),
        );
    }
    assert_eq!(KINDS.len(), 8);
}

#[test]
fn several_releases_in_one_message_newest_first_and_escaped() {
    let t = Templates::builtin().expect("templates");
    let mut mail = samples::new_releases();
    let r = t.render("new_releases", &mail).expect("renders");
    assert_eq!(r.subject, "pretalx 2026.2.1 and 2 more releases");
    let at = |needle: &str| {
        r.text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {}", r.text))
    };
    assert!(at("pretalx 2026.2.1: a bugfix release") < at("pretalx 2026.2.0: a feature release"));
    assert!(at("pretalx 2026.2.0: a feature release") < at("pretalx 2026.1.2: a bugfix release"));
    // Only the newest is the one to install.
    assert!(r.text.contains("-U pretalx==2026.2.1"), "{}", r.text);
    for stale in ["pretalx==2026.2.0", "pretalx==2026.1.2"] {
        assert!(
            !r.text.contains(stale) && !r.html.contains(stale),
            "{stale}"
        );
    }
    assert!(
        r.text.contains(
            "Superseded by pretalx 2026.2.1, above: read these notes before you upgrade to it."
        ),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("Superseded by pretalx 2026.2.1, above: upgrade to that one instead."),
        "{}",
        r.text
    );
    // Two releases: the singular.
    mail.releases.truncate(2);
    let two = t.render("new_releases", &mail).expect("renders");
    assert_eq!(two.subject, "pretalx 2026.2.1 and 1 more release");

    // Upstream text in any of the releases is escaped or sanitised.
    let mut mail = samples::new_releases();
    let notes = "Fixed <script>alert(1)</script> and <a href=\"javascript:alert(1)\">this</a>";
    for release in &mut mail.releases {
        release.project = "evil<b>\"&'".into();
    }
    mail.release.project = "evil<b>\"&'".into();
    mail.releases[2].version = "2026.1.2<img src=x onerror=alert(1)>".into();
    mail.releases[2].notes_html = Some(content::markdown_html(notes));
    mail.releases[2].notes_text = Some(notes.into());
    mail.releases[1].superseded_by = Some("2026.2.1<i>".into());
    let r = t.render("new_releases", &mail).expect("renders");
    for needle in ["<script", "javascript:", "<img", "<b>\"", "<i>"] {
        assert!(!r.html.contains(needle), "{needle} in {}", r.html);
    }
    assert!(
        r.html.contains("evil&lt;b&gt;&quot;&amp;&#x27; 2026.2.1<"),
        "{}",
        r.html
    );
    assert!(r.text.contains("2026.1.2<img src=x onerror=alert(1)>"));
    assert_eq!(r.subject, "evil<b>\"&' 2026.2.1 and 2 more releases");
    snapshot("new_releases_hostile", &r);
}

#[test]
fn hostile_text_is_escaped_in_html_and_readable_in_text() {
    let t = Templates::builtin().expect("templates");
    let mut mail = samples::new_release();
    mail.release.project = "evil<b>\"&'".into();
    mail.release.yanked = true;
    mail.release.yanked_reason = Some("<img src=x onerror=alert(1)> broken".into());
    let notes = "Hello <script>alert(1)</script> <iframe src=\"https://evil.example\"></iframe>\n\n<a href=\"javascript:alert(1)\">click</a> **bold**";
    mail.release.notes_html = Some(content::markdown_html(notes));
    mail.release.notes_text = Some(notes.into());
    let r = t.render("new_release", &mail).expect("renders");
    for needle in ["<script", "<iframe", "javascript:", "<img", "<b>\""] {
        assert!(!r.html.contains(needle), "{needle} in {}", r.html);
    }
    assert!(
        r.html.contains("evil&lt;b&gt;&quot;&amp;&#x27;"),
        "{}",
        r.html
    );
    assert!(r.html.contains("<strong>bold</strong>"), "{}", r.html);
    assert!(
        r.text.contains("<script>alert(1)</script>"),
        "text keeps the notes as written"
    );
    assert_eq!(r.subject, "evil<b>\"&' 2026.2.1 released (bugfix release)");
    snapshot("new_release_hostile", &r);
}

#[test]
fn subjects_are_one_line() {
    let t = Templates::builtin().expect("templates");
    let mut mail = samples::new_release();
    mail.release.version = "1.0\r\nBcc: victim@example.org".into();
    let r = t.render("new_release", &mail).expect("renders");
    assert!(
        !r.subject.contains('\n') && !r.subject.contains('\r'),
        "{:?}",
        r.subject
    );
}

/// A channel notification as one text: title, text and HTML, each when the channel has it.
fn channel_text(t: &herald::notify::templates::ChannelText) -> String {
    let mut out = String::new();
    if let Some(title) = &t.title {
        out.push_str(&format!("--- title\n{title}\n"));
    }
    out.push_str(&format!("--- text\n{}\n", t.text));
    if let Some(html) = &t.html {
        out.push_str(&format!("--- html\n{html}\n"));
    }
    out
}

#[test]
fn every_built_in_channel_template() {
    use herald::notify::templates::CHANNEL_KINDS;
    let t = Templates::builtin().expect("built-in templates compile");
    for channel in ["webhook", "matrix", "slack", "discord", "ntfy"] {
        for kind in CHANNEL_KINDS {
            let rendered = match kind {
                "release" => t.render_channel(channel, kind, &samples::channel_releases()),
                "test" => t.render_channel(channel, kind, &samples::channel_test()),
                _ => t.render_channel(channel, kind, &samples::channel_alert()),
            }
            .expect("renders");
            insta::assert_snapshot!(format!("channel_{channel}_{kind}"), channel_text(&rendered));
        }
    }
}

#[test]
fn channel_text_is_escaped_as_each_channel_reads_it() {
    use herald::notify::templates::slack_escape;
    let t = Templates::builtin().expect("templates");
    let mut alert = samples::channel_alert();
    alert.alert.advice["recommendation"] = "Upgrade <now> & \"then\" restart".into();
    alert.alert.advice["core"]["project"] = "a<b&c".into();
    alert.alert.advice["core"]["latest"] = "2026.2.1".into();
    // The release sample carries the project `a&b<c>` as its second release.
    let release = t
        .render_channel("slack", "release", &samples::channel_releases())
        .expect("renders");
    assert!(
        release.text.contains("*a&amp;b&lt;c&gt; 2026.2.1*"),
        "{}",
        release.text
    );
    assert!(
        release
            .text
            .contains("<https://github.com/pretalx/pretalx/releases/tag/v2026.2.1|Release notes>"),
        "{}",
        release.text
    );
    for kind in ["compat_report", "bugfix_advice"] {
        let slack = t.render_channel("slack", kind, &alert).expect("renders");
        assert!(
            slack
                .text
                .contains(&slack_escape("Upgrade <now> & \"then\" restart")),
            "{}",
            slack.text
        );
        assert!(
            slack.text.contains("a&lt;b&amp;c"),
            "{kind}: {}",
            slack.text
        );
        assert!(!slack.text.contains("a<b"), "{kind}: {}", slack.text);
        let matrix = t.render_channel("matrix", kind, &alert).expect("renders");
        let html = matrix.html.expect("html");
        assert!(html.contains("a&lt;b&amp;c"), "{kind}: {html}");
        assert!(
            !html.contains("a<b") && !html.contains("&amp;lt;"),
            "escaped once: {html}"
        );
        assert!(
            matrix.text.contains("a<b&c"),
            "plain text stays plain: {}",
            matrix.text
        );
    }
}

#[test]
fn channel_templates_are_overridden_and_checked_like_the_mail() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("slack")).expect("mkdir");
    std::fs::write(
        dir.path().join("slack/release.slack.j2"),
        "New: {% for r in releases %}{{ r.project }} {{ r.version }} {% endfor %}",
    )
    .expect("write");
    let t = Templates::load(Some(dir.path())).expect("the override compiles");
    let text = t
        .render_channel("slack", "release", &samples::channel_releases())
        .expect("renders")
        .text;
    assert_eq!(text, "New: pretalx 2026.2.1 a&amp;b&lt;c&gt; 2026.2.1");
    // A broken override stops Herald at start, naming the file and the line.
    std::fs::write(
        dir.path().join("slack/release.slack.j2"),
        "New:\n{{ release.nope.deeper }}",
    )
    .expect("write");
    let err = Templates::load(Some(dir.path()))
        .expect_err("refused")
        .to_string();
    assert!(
        err.starts_with("template slack/release.slack.j2 (override "),
        "{err}"
    );
    assert!(err.contains("slack/release.slack.j2:2"), "{err}");
}
