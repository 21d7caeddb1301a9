//! Email templates: the built-in files of `templates/` (embedded at compile time), overridden
//! file by file from `HERALD_TEMPLATES_DIR`, rendered with minijinja from typed `Serialize`
//! contexts. `.html.j2` files are HTML-escaped, `.txt.j2` files are not; undefined variables
//! are errors. Every message kind is rendered once with sample data when Herald starts, so a
//! broken override is refused then, never discovered at send time.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use super::content;

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

/// Every built-in template file, by name.
pub const BUILTIN: &[(&str, &str)] = builtin![
    "base.html.j2",
    "release.html.j2",
    "release.txt.j2",
    "new_release/subject.txt.j2",
    "new_release/body.txt.j2",
    "new_release/body.html.j2",
    "new_releases/subject.txt.j2",
    "new_releases/body.txt.j2",
    "new_releases/body.html.j2",
    "digest/subject.txt.j2",
    "digest/body.txt.j2",
    "digest/body.html.j2",
    "confirm_subscription/subject.txt.j2",
    "confirm_subscription/body.txt.j2",
    "confirm_subscription/body.html.j2",
    "test_message/subject.txt.j2",
    "test_message/body.txt.j2",
    "test_message/body.html.j2",
    "advice.txt.j2",
    "advice.html.j2",
    "compat_report/subject.txt.j2",
    "compat_report/body.txt.j2",
    "compat_report/body.html.j2",
    "compat_followup/subject.txt.j2",
    "compat_followup/body.txt.j2",
    "compat_followup/body.html.j2",
    "bugfix_advice/subject.txt.j2",
    "bugfix_advice/body.txt.j2",
    "bugfix_advice/body.html.j2",
    "pages/base.html.j2",
    "pages/choices.html.j2",
    "pages/index.html.j2",
    "pages/message.html.j2",
    "pages/preferences.html.j2",
    "pages/nav.html.j2",
    "pages/project.html.j2",
    "pages/compat.html.j2",
    "pages/advise.html.j2",
    "webhook/release.txt.j2",
    "webhook/test.txt.j2",
    "matrix/release.txt.j2",
    "matrix/release.html.j2",
    "matrix/test.txt.j2",
    "matrix/test.html.j2",
    "slack/release.slack.j2",
    "slack/test.slack.j2",
    "discord/release.md.j2",
    "discord/test.md.j2",
    "ntfy/release.title.txt.j2",
    "ntfy/release.md.j2",
    "ntfy/test.title.txt.j2",
    "ntfy/test.md.j2",
    "webhook/compat_report.txt.j2",
    "matrix/compat_report.txt.j2",
    "matrix/compat_report.html.j2",
    "slack/compat_report.slack.j2",
    "discord/compat_report.md.j2",
    "ntfy/compat_report.title.txt.j2",
    "ntfy/compat_report.md.j2",
    "webhook/compat_followup.txt.j2",
    "matrix/compat_followup.txt.j2",
    "matrix/compat_followup.html.j2",
    "slack/compat_followup.slack.j2",
    "discord/compat_followup.md.j2",
    "ntfy/compat_followup.title.txt.j2",
    "ntfy/compat_followup.md.j2",
    "webhook/bugfix_advice.txt.j2",
    "matrix/bugfix_advice.txt.j2",
    "matrix/bugfix_advice.html.j2",
    "slack/bugfix_advice.slack.j2",
    "discord/bugfix_advice.md.j2",
    "ntfy/bugfix_advice.title.txt.j2",
    "ntfy/bugfix_advice.md.j2",
    "matrix/advice.txt.j2",
    "matrix/advice.html.j2",
    "slack/advice.slack.j2",
    "discord/advice.md.j2",
    "ntfy/advice.md.j2",
];

/// The kinds of channel notification, one template set per channel kind each.
pub const CHANNEL_KINDS: [&str; 5] = [
    "release",
    "compat_report",
    "compat_followup",
    "bugfix_advice",
    "test",
];

/// A rendered channel notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelText {
    /// One line (ntfy's title), when the channel has one.
    pub title: Option<String>,
    /// The text: plain, Markdown or Slack mrkdwn, as the channel reads it.
    pub text: String,
    /// HTML (Matrix's `formatted_body`), when the channel has one.
    pub html: Option<String>,
}

/// Escapes what Slack's message format reserves: `&`, `<` and `>`.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The message kinds, one template folder each.
pub const KINDS: [&str; 8] = [
    "new_release",
    "new_releases",
    "digest",
    "confirm_subscription",
    "test_message",
    "compat_report",
    "compat_followup",
    "bugfix_advice",
];

/// A template Herald refuses.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// An override could not be read.
    #[error("template override {path}: {detail}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// A template does not compile or render.
    #[error("template {name}{origin}: {detail}")]
    Invalid {
        /// Template name (e.g. `new_release/body.html.j2`).
        name: String,
        /// ` (override in DIR)` when an override is at fault.
        origin: String,
        /// minijinja's message, with the line.
        detail: String,
    },
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One-line subject.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// The compiled templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    overridden: BTreeMap<String, String>,
}

fn describe(err: &minijinja::Error) -> String {
    let mut text = err.to_string();
    if let (Some(name), Some(line)) = (err.name(), err.line())
        && !text.contains(&format!("{name}:{line}"))
    {
        text.push_str(&format!(" (at {name}, line {line})"));
    }
    text
}

impl Templates {
    /// The built-in templates only.
    pub fn builtin() -> Result<Templates, TemplateError> {
        Templates::load(None)
    }

    /// Built-in templates with overrides from `dir`, checked by rendering every kind with
    /// sample data.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut sources: BTreeMap<String, String> = BUILTIN
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        let mut overridden = BTreeMap::new();
        if let Some(dir) = dir {
            if !dir.is_dir() {
                return Err(TemplateError::Read {
                    path: dir.display().to_string(),
                    detail: "not a folder (HERALD_TEMPLATES_DIR)".into(),
                });
            }
            for name in BUILTIN.iter().map(|(n, _)| *n) {
                let path = dir.join(name);
                match std::fs::read_to_string(&path) {
                    Ok(text) => {
                        sources.insert(name.to_string(), text);
                        overridden.insert(name.to_string(), path.display().to_string());
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => {
                        return Err(TemplateError::Read {
                            path: path.display().to_string(),
                            detail: err.to_string(),
                        });
                    }
                }
            }
            check_unknown_files(dir, dir)?;
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") {
                AutoEscape::Html
            } else if name.ends_with(".slack.j2") {
                AutoEscape::Custom("slack".into())
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(|out, state, value| {
            if matches!(state.auto_escape(), AutoEscape::Custom(name) if name == "slack") {
                let text = if value.is_safe() || value.is_none() {
                    if value.is_none() {
                        String::new()
                    } else {
                        value.to_string()
                    }
                } else {
                    slack_escape(&value.to_string())
                };
                out.write_str(&text).map_err(|_| {
                    minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write")
                })
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        for (name, source) in sources {
            let origin = overridden
                .get(&name)
                .map(|p| format!(" (override {p})"))
                .unwrap_or_default();
            env.add_template_owned(name.clone(), source)
                .map_err(|err| TemplateError::Invalid {
                    name: name.clone(),
                    origin,
                    detail: describe(&err),
                })?;
        }
        let templates = Templates { env, overridden };
        templates.check()?;
        Ok(templates)
    }

    /// Renders every kind with sample data.
    fn check(&self) -> Result<(), TemplateError> {
        self.render("new_release", &content::samples::new_release())?;
        self.render("new_releases", &content::samples::new_releases())?;
        self.render("digest", &content::samples::digest())?;
        self.render("confirm_subscription", &content::samples::confirm())?;
        self.render("test_message", &content::samples::test_message())?;
        for kind in ["compat_report", "compat_followup", "bugfix_advice"] {
            self.render(kind, &content::samples::alert())?;
            self.render(kind, &content::samples::alert_found())?;
        }
        for channel in ["webhook", "matrix", "slack", "discord", "ntfy"] {
            self.render_channel(channel, "release", &content::samples::channel_releases())?;
            self.render_channel(channel, "test", &content::samples::channel_test())?;
            for kind in ["compat_report", "compat_followup", "bugfix_advice"] {
                self.render_channel(channel, kind, &content::samples::channel_alert())?;
                self.render_channel(channel, kind, &content::samples::channel_alert_found())?;
            }
        }
        Ok(())
    }

    /// Renders a channel notification: `CHANNEL/KIND.*` (see `templates/README.md`).
    pub fn render_channel<C: Serialize>(
        &self,
        channel: &str,
        kind: &str,
        ctx: &C,
    ) -> Result<ChannelText, TemplateError> {
        let file = |ext: &str| format!("{channel}/{kind}.{ext}");
        let (text_ext, title, html) = match channel {
            "matrix" => ("txt.j2", false, true),
            "slack" => ("slack.j2", false, false),
            "discord" => ("md.j2", false, false),
            "ntfy" => ("md.j2", true, false),
            _ => ("txt.j2", false, false),
        };
        Ok(ChannelText {
            title: if title {
                let line = self.render_file(&file("title.txt.j2"), ctx)?;
                Some(line.split_whitespace().collect::<Vec<_>>().join(" "))
            } else {
                None
            },
            text: self.render_file(&file(text_ext), ctx)?.trim().to_string(),
            html: if html {
                Some(self.render_file(&file("html.j2"), ctx)?.trim().to_string())
            } else {
                None
            },
        })
    }

    /// Renders the three parts of a message kind.
    pub fn render<C: Serialize>(&self, kind: &str, ctx: &C) -> Result<Rendered, TemplateError> {
        let subject = self.render_file(&format!("{kind}/subject.txt.j2"), ctx)?;
        Ok(Rendered {
            // A subject is one line, whatever a template or a value did.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: self.render_file(&format!("{kind}/body.txt.j2"), ctx)?,
            html: self.render_file(&format!("{kind}/body.html.j2"), ctx)?,
        })
    }

    /// Renders one web page (`pages/NAME.html.j2`).
    pub fn render_page<C: Serialize>(&self, name: &str, ctx: &C) -> Result<String, TemplateError> {
        self.render_file(&format!("pages/{name}.html.j2"), ctx)
    }

    fn render_file<C: Serialize>(&self, name: &str, ctx: &C) -> Result<String, TemplateError> {
        let fail = |err: minijinja::Error| TemplateError::Invalid {
            origin: self.origin_of(&err, name),
            name: name.to_string(),
            detail: describe(&err),
        };
        self.env
            .get_template(name)
            .map_err(fail)?
            .render(minijinja::value::Serde(ctx))
            .map_err(fail)
    }

    fn origin_of(&self, err: &minijinja::Error, fallback: &str) -> String {
        let name = err.name().unwrap_or(fallback);
        self.overridden
            .get(name)
            .map(|p| format!(" (override {p})"))
            .unwrap_or_default()
    }
}

fn check_unknown_files(root: &Path, dir: &Path) -> Result<(), TemplateError> {
    let entries = std::fs::read_dir(dir).map_err(|err| TemplateError::Read {
        path: dir.display().to_string(),
        detail: err.to_string(),
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            check_unknown_files(root, &path)?;
            continue;
        }
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        if rel.ends_with(".j2") && !BUILTIN.iter().any(|(n, _)| *n == rel) {
            return Err(TemplateError::Read {
                path: path.display().to_string(),
                detail: format!(
                    "overrides no template (expected one of: {})",
                    BUILTIN
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    Ok(())
}
