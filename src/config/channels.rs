//! The channels file (`HERALD_CHANNELS`): the non-mail channels (Standard Webhooks, Matrix,
//! Slack-compatible, Discord, ntfy) and what each wants to hear.
//!
//! Owns: reading the TOML, replacing `${NAME}` references by environment variables, validating
//! every entry, and error messages that name the file, the line and the problem. Secrets (the
//! `secret` values and the URLs, which carry the token for Slack and Discord) are wrapped so
//! they never print: messages show a channel's URL as `scheme://host` only. Does not own:
//! delivering (`notify::channels`) or deciding who gets what (`decide`).

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::projects::{line_breaks, line_of};
use crate::inventory::{self, Installed};
use crate::model::{Project, ReleaseClass};

/// A channels file Herald refuses.
#[derive(Debug, thiserror::Error)]
pub enum ChannelsError {
    /// The file could not be read.
    #[error("{file}: cannot read the channels file: {source}")]
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
        /// The problem (never a secret).
        message: String,
    },
}

/// The kinds of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// Standard Webhooks 1.0: signed JSON.
    Webhook,
    /// A Matrix room, through the client-server API.
    Matrix,
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).
    Slack,
    /// A Discord webhook.
    Discord,
    /// An ntfy topic.
    Ntfy,
}

impl ChannelKind {
    /// The name used in the file, in template folders and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Matrix => "matrix",
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Ntfy => "ntfy",
        }
    }
}

/// What a Slack-compatible target understands beyond `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackFlavor {
    /// Slack: `text` plus Block Kit `blocks`.
    #[default]
    Slack,
    /// Mattermost: `text` plus legacy `attachments`.
    Mattermost,
    /// Rocket.Chat: `text` plus legacy `attachments`.
    Rocketchat,
    /// `text` only: any other receiver of the Slack format.
    Plain,
}

/// The messages a channel can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelMessage {
    /// New releases of the tracked projects.
    Release,
    /// Compatibility report for a new core feature release and an inventory.
    CompatReport,
    /// Follow-up when a plugin release changes a verdict.
    CompatFollowup,
    /// Upgrade advice for a new bugfix release of the installed core.
    BugfixAdvice,
}

impl ChannelMessage {
    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelMessage::Release => "release",
            ChannelMessage::CompatReport => "compat_report",
            ChannelMessage::CompatFollowup => "compat_followup",
            ChannelMessage::BugfixAdvice => "bugfix_advice",
        }
    }
}

/// A configured channel.
#[derive(Clone)]
pub struct Channel {
    /// Unique name: lowercase letters, digits, `.`, `_` and `-`.
    pub name: String,
    pub kind: ChannelKind,
    /// Where to send (for Slack and Discord the URL is the secret).
    pub url: SecretString,
    /// `scheme://host[:port]` of the URL: what messages may show.
    pub shown_url: String,
    /// Webhook signing secrets (`whsec_...`; several while rotating keys), or the Matrix or
    /// ntfy access token (the first).
    pub secrets: Vec<SecretString>,
    /// Matrix room id (`!id:server`).
    pub room: Option<String>,
    /// ntfy topic.
    pub topic: Option<String>,
    /// ntfy priority, 1 to 5.
    pub priority: Option<u8>,
    /// Slack-compatible flavor.
    pub flavor: SlackFlavor,
    /// Projects it hears about; `None`: every tracked project.
    pub projects: Option<Vec<String>>,
    /// Release classes it hears about.
    pub classes: Vec<ReleaseClass>,
    /// Messages it carries.
    pub messages: Vec<ChannelMessage>,
    /// The inventory its operator alerts are about (`installed` and `freeze`).
    pub installed: Vec<Installed>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.shown_url)
            .field("secrets", &self.secrets.len())
            .field("room", &self.room)
            .field("topic", &self.topic)
            .field("projects", &self.projects)
            .field("classes", &self.classes)
            .field("messages", &self.messages)
            .field("installed", &self.installed.len())
            .finish()
    }
}

impl Channel {
    /// Whether a release of `project` in `class` is for this channel.
    pub fn wants_release(&self, project: &str, class: ReleaseClass) -> bool {
        self.messages.contains(&ChannelMessage::Release)
            && self.classes.contains(&class)
            && self
                .projects
                .as_ref()
                .is_none_or(|p| p.iter().any(|name| name == project))
    }

    /// Whether this channel carries `message` about the core project `project`.
    pub fn wants_alert(&self, message: ChannelMessage, project: &str) -> bool {
        self.messages.contains(&message)
            && !self.installed.is_empty()
            && self
                .projects
                .as_ref()
                .is_none_or(|p| p.iter().any(|name| name == project))
    }

    /// The URL, with its secret parts.
    pub fn url(&self) -> Result<Url, String> {
        Url::parse(self.url.expose_secret()).map_err(|err| format!("{}: {err}", self.shown_url))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    channel: Vec<Spanned<RawChannel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: Spanned<String>,
    kind: Spanned<ChannelKind>,
    url: Spanned<String>,
    secret: Option<Spanned<Secrets>>,
    room: Option<Spanned<String>>,
    topic: Option<Spanned<String>>,
    priority: Option<Spanned<u8>>,
    flavor: Option<Spanned<SlackFlavor>>,
    projects: Option<Spanned<Vec<String>>>,
    classes: Option<Spanned<Vec<String>>>,
    messages: Option<Spanned<Vec<ChannelMessage>>>,
    installed: Option<Spanned<Vec<String>>>,
    freeze: Option<Spanned<String>>,
}

/// `secret = "..."` or, while rotating webhook keys, `secret = ["new", "old"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Secrets {
    One(String),
    Several(Vec<String>),
}

static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9._-]{0,62}$").expect("static regex"));
static REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("static regex"));
static TOPIC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[-_A-Za-z0-9]{1,64}$").expect("static regex"));

/// Replaces every `${NAME}` by that environment variable; names the first missing one.
fn expand(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut missing = None;
    let out = REFERENCE.replace_all(value, |caps: &regex::Captures<'_>| {
        match env(&caps[1]).filter(|v| !v.is_empty()) {
            Some(v) => v,
            None => {
                missing.get_or_insert_with(|| caps[1].to_string());
                String::new()
            }
        }
    });
    match missing {
        Some(name) => Err(format!(
            "`${{{name}}}` refers to the environment variable {name}, which is not set"
        )),
        None => Ok(out.into_owned()),
    }
}

/// `scheme://host[:port]`.
pub fn shown(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => format!("{}://?", url.scheme()),
    }
}

/// Loads and validates a channels file against the tracked projects, reading `${NAME}`
/// references from the process environment.
pub fn load_file(path: &Path, projects: &[Project]) -> Result<Vec<Channel>, ChannelsError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ChannelsError::Read {
        file: file.clone(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(
        &text,
        &file,
        projects,
        &|name| std::env::var(name).ok(),
        &|freeze| std::fs::read_to_string(base.join(freeze)).map_err(|e| e.to_string()),
    )
}

/// Reads a freeze file named in the channels file (relative to its folder).
pub type ReadFreeze<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Parses and validates channels from TOML text; `origin` names the file in messages, `env`
/// resolves `${NAME}` references and `read_freeze` reads `freeze` files.
pub fn parse(
    text: &str,
    origin: &str,
    projects: &[Project],
    env: &dyn Fn(&str) -> Option<String>,
    read_freeze: ReadFreeze<'_>,
) -> Result<Vec<Channel>, ChannelsError> {
    let breaks = line_breaks(text);
    let fail = |span: Option<Range<usize>>, message: String| ChannelsError::Invalid {
        file: origin.to_string(),
        line: line_of(&breaks, span),
        message,
    };
    let raw: RawFile =
        toml::from_str(text).map_err(|err| fail(err.span(), err.message().trim().to_string()))?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut channels = Vec::new();
    for entry in &raw.channel {
        let c = entry.get_ref();
        let name = c.name.get_ref().trim().to_string();
        if !NAME.is_match(&name) {
            return Err(fail(
                Some(c.name.span()),
                format!(
                    "channel name `{name}` must be 1-63 lowercase letters, digits, `.`, `_` or `-`"
                ),
            ));
        }
        let line = line_of(&breaks, Some(c.name.span()));
        if let Some(first) = seen.insert(name.clone(), line) {
            return Err(fail(
                Some(c.name.span()),
                format!("channel `{name}` is listed twice (first on line {first})"),
            ));
        }
        let channel = channel(c, name, projects, env, read_freeze)
            .map_err(|(span, message)| fail(span.or(Some(entry.span())), message))?;
        channels.push(channel);
    }
    Ok(channels)
}

type Problem = (Option<Range<usize>>, String);

/// One validated channel from its `[[channel]]` entry, whose `name` is already checked.
fn channel(
    c: &RawChannel,
    name: String,
    projects: &[Project],
    env: &dyn Fn(&str) -> Option<String>,
    read_freeze: ReadFreeze<'_>,
) -> Result<Channel, Problem> {
    let kind = *c.kind.get_ref();
    let (url, url_text) = channel_url(c, &name, env)?;
    let secrets = channel_secrets(c, env)?;
    check_secrets(kind, &name, &secrets, c.secret.as_ref().map(|s| s.span()))?;
    let (room, topic, priority) = kind_fields(c, kind, &name)?;
    let filter = filters(c, &name, projects)?;
    let installed = inventory_of(c, &name, read_freeze)?;
    check_inventory(c, &name, &filter.2, &installed)?;
    Ok(Channel {
        shown_url: shown(&url),
        url: SecretString::from(url_text),
        secrets,
        room,
        topic,
        priority,
        flavor: c.flavor.as_ref().map(|f| *f.get_ref()).unwrap_or_default(),
        projects: filter.0,
        classes: filter.1,
        messages: filter.2,
        installed,
        kind,
        name,
    })
}

/// The channel's `url` with `${NAME}` expanded: the parsed URL and its text.
fn channel_url(
    c: &RawChannel,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Url, String), Problem> {
    let at = |span: Range<usize>| move |message: String| (Some(span.clone()), message);
    let url_text = expand(c.url.get_ref().trim(), env).map_err(at(c.url.span()))?;
    let url = Url::parse(&url_text).map_err(|err| {
        (
            Some(c.url.span()),
            format!("channel `{name}`: `url` is not a URL ({err})"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err((
            Some(c.url.span()),
            format!("channel `{name}`: `url` must be an http:// or https:// URL with a host"),
        ));
    }
    Ok((url, url_text))
}

/// The channel's secrets (one or a list while keys rotate) with `${NAME}` expanded.
fn channel_secrets(
    c: &RawChannel,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<SecretString>, Problem> {
    Ok(match &c.secret {
        None => Vec::new(),
        Some(s) => {
            let values = match s.get_ref() {
                Secrets::One(v) => vec![v.clone()],
                Secrets::Several(v) => v.clone(),
            };
            values
                .iter()
                .map(|v| expand(v.trim(), env).map(SecretString::from))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| (Some(s.span()), message))?
        }
    })
}

/// `room`, `topic` and `priority`, each set only for the kind of channel that has it.
type KindFields = (Option<String>, Option<String>, Option<u8>);

/// The fields only one kind of channel has (`room`, `topic`, `priority`; `flavor` is read
/// by the caller), refused on the others.
fn kind_fields(c: &RawChannel, kind: ChannelKind, name: &str) -> Result<KindFields, Problem> {
    let room = c.room.as_ref().map(|r| r.get_ref().trim().to_string());
    let topic = c.topic.as_ref().map(|t| t.get_ref().trim().to_string());
    check_target(c, kind, name, room.as_deref(), topic.as_deref())?;
    for (given, field, allowed) in [
        (
            c.room.as_ref().map(|s| s.span()),
            "room",
            kind == ChannelKind::Matrix,
        ),
        (
            c.topic.as_ref().map(|s| s.span()),
            "topic",
            kind == ChannelKind::Ntfy,
        ),
        (
            c.priority.as_ref().map(|s| s.span()),
            "priority",
            kind == ChannelKind::Ntfy,
        ),
        (
            c.flavor.as_ref().map(|s| s.span()),
            "flavor",
            kind == ChannelKind::Slack,
        ),
    ] {
        if let Some(span) = given
            && !allowed
        {
            return Err((
                Some(span),
                format!(
                    "channel `{name}`: `{field}` means nothing to a {} channel",
                    kind.as_str()
                ),
            ));
        }
    }
    let priority = match &c.priority {
        Some(p) if !(1..=5).contains(p.get_ref()) => {
            return Err((
                Some(p.span()),
                format!("channel `{name}`: priority must be 1 (min) to 5 (max)"),
            ));
        }
        p => p.as_ref().map(|p| *p.get_ref()),
    };
    Ok((room, topic, priority))
}

/// A Matrix channel names a room by id, an ntfy channel a valid topic.
fn check_target(
    c: &RawChannel,
    kind: ChannelKind,
    name: &str,
    room: Option<&str>,
    topic: Option<&str>,
) -> Result<(), Problem> {
    match kind {
        ChannelKind::Matrix => match room {
            Some(r) if r.starts_with('!') && r.contains(':') => {}
            Some(r) => {
                return Err((
                    c.room.as_ref().map(|s| s.span()),
                    format!(
                        "channel `{name}`: room `{r}` is not a room id like !abc123:example.org (an alias does not work: find the id under the room's advanced settings)"
                    ),
                ));
            }
            None => {
                return Err((
                    None,
                    format!("channel `{name}`: a matrix channel needs `room = \"!id:server\"`"),
                ));
            }
        },
        ChannelKind::Ntfy => match topic {
            Some(t) if TOPIC.is_match(t) => {}
            Some(t) => {
                return Err((
                    c.topic.as_ref().map(|s| s.span()),
                    format!(
                        "channel `{name}`: topic `{t}` must be 1-64 letters, digits, `-` or `_`"
                    ),
                ));
            }
            None => {
                return Err((
                    None,
                    format!("channel `{name}`: an ntfy channel needs `topic = \"...\"`"),
                ));
            }
        },
        _ => {}
    }
    Ok(())
}

/// Alert messages need an inventory, and an inventory is there for alert messages.
fn check_inventory(
    c: &RawChannel,
    name: &str,
    messages: &[ChannelMessage],
    installed: &[Installed],
) -> Result<(), Problem> {
    let alerts = [
        ChannelMessage::CompatReport,
        ChannelMessage::CompatFollowup,
        ChannelMessage::BugfixAdvice,
    ];
    let wants_alerts = messages.iter().any(|m| alerts.contains(m));
    if wants_alerts && installed.is_empty() {
        return Err((
            c.messages.as_ref().map(|s| s.span()),
            format!(
                "channel `{name}`: compat_report, compat_followup and bugfix_advice are about an inventory: add `installed = [\"pretalx==2026.1.2\", ...]` or `freeze = \"FILE\"`"
            ),
        ));
    }
    if !wants_alerts && !installed.is_empty() {
        return Err((
            c.installed
                .as_ref()
                .map(|s| s.span())
                .or(c.freeze.as_ref().map(|s| s.span())),
            format!(
                "channel `{name}`: an inventory serves compat_report, compat_followup and bugfix_advice messages: add them to `messages`"
            ),
        ));
    }
    Ok(())
}

fn check_secrets(
    kind: ChannelKind,
    name: &str,
    secrets: &[SecretString],
    span: Option<Range<usize>>,
) -> Result<(), Problem> {
    use base64::Engine;
    let problem = |message: String| (span.clone(), format!("channel `{name}`: {message}"));
    match kind {
        ChannelKind::Webhook => {
            if secrets.is_empty() {
                return Err(problem(
                    "a webhook channel needs `secret = \"${ENV_VAR}\"` holding a whsec_ secret"
                        .into(),
                ));
            }
            for (i, s) in secrets.iter().enumerate() {
                let key = s.expose_secret().strip_prefix("whsec_").ok_or_else(|| {
                    problem(format!(
                        "secret {} does not start with `whsec_` (a Standard Webhooks secret is whsec_ followed by base64)",
                        i + 1
                    ))
                })?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(key)
                    .map_err(|_| {
                        problem(format!("secret {} is not whsec_ followed by base64", i + 1))
                    })?;
                if bytes.len() < 24 {
                    return Err(problem(format!(
                        "secret {} is too short (at least 24 bytes before base64)",
                        i + 1
                    )));
                }
            }
        }
        ChannelKind::Matrix if secrets.len() != 1 => {
            return Err(problem(
                "a matrix channel needs exactly one `secret`: the access token".into(),
            ));
        }
        ChannelKind::Slack | ChannelKind::Discord if !secrets.is_empty() => {
            return Err(problem(format!(
                "a {} channel takes no `secret`: its webhook URL is the secret (use `url = \"${{ENV_VAR}}\"`)",
                kind.as_str()
            )));
        }
        ChannelKind::Ntfy if secrets.len() > 1 => {
            return Err(problem(
                "an ntfy channel takes at most one `secret`: the access token".into(),
            ));
        }
        _ => {}
    }
    Ok(())
}

type Filters = (Option<Vec<String>>, Vec<ReleaseClass>, Vec<ChannelMessage>);

fn filters(c: &RawChannel, name: &str, projects: &[Project]) -> Result<Filters, Problem> {
    let chosen = match &c.projects {
        None => None,
        Some(list) => {
            let mut out = Vec::new();
            for p in list.get_ref() {
                let Some(project) = projects.iter().find(|t| t.name.eq_ignore_ascii_case(p)) else {
                    return Err((
                        Some(list.span()),
                        format!(
                            "channel `{name}`: project `{p}` is not tracked (see HERALD_PROJECTS)"
                        ),
                    ));
                };
                out.push(project.name.clone());
            }
            Some(out)
        }
    };
    let classes = match &c.classes {
        None => vec![ReleaseClass::Feature, ReleaseClass::Bugfix],
        Some(list) => list
            .get_ref()
            .iter()
            .map(|s| s.parse::<ReleaseClass>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| (Some(list.span()), format!("channel `{name}`: {e}")))?,
    };
    let messages = match &c.messages {
        None => vec![ChannelMessage::Release],
        Some(list) => list.get_ref().clone(),
    };
    Ok((chosen, classes, messages))
}

/// `installed = ["NAME==VERSION", ...]` and `freeze = "FILE"` together.
fn inventory_of(
    c: &RawChannel,
    name: &str,
    read_freeze: ReadFreeze<'_>,
) -> Result<Vec<Installed>, Problem> {
    let mut out = Vec::new();
    if let Some(list) = &c.installed {
        for spec in list.get_ref() {
            out.push(
                inventory::parse_installed(spec)
                    .map_err(|e| (Some(list.span()), format!("channel `{name}`: {e}")))?,
            );
        }
    }
    if let Some(freeze) = &c.freeze {
        let text = read_freeze(freeze.get_ref()).map_err(|e| {
            (
                Some(freeze.span()),
                format!("channel `{name}`: cannot read {}: {e}", freeze.get_ref()),
            )
        })?;
        let (pins, _notes) = inventory::parse_freeze(&text);
        for pin in pins {
            out.retain(|p: &Installed| p.name != pin.name);
            out.push(pin);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn env(name: &str) -> Option<String> {
        match name {
            "HOOK_SECRET" => Some(SECRET.into()),
            "MATRIX_TOKEN" => Some("syt_token".into()),
            "DISCORD_URL" => Some("https://discord.com/api/webhooks/1/tok".into()),
            _ => None,
        }
    }

    fn projects() -> Vec<Project> {
        crate::config::projects::preset().expect("preset")
    }

    fn no_files(name: &str) -> Result<String, String> {
        match name {
            "freeze.txt" => Ok("pretalx==2026.1.2\npretalx-pages==1.9.0\n".into()),
            _ => Err("No such file or directory (os error 2)".into()),
        }
    }

    fn err(text: &str) -> String {
        parse(text, "channels.toml", &projects(), &env, &no_files)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn every_kind_parses_with_defaults() {
        let text = r#"
[[channel]]
name = "ops-hook"
kind = "webhook"
url = "https://hooks.example.org/herald"
secret = "${HOOK_SECRET}"
projects = ["pretalx"]

[[channel]]
name = "ops-room"
kind = "matrix"
url = "https://matrix.example.org"
room = "!abc123:example.org"
secret = "${MATRIX_TOKEN}"

[[channel]]
name = "chat"
kind = "discord"
url = "${DISCORD_URL}"
classes = ["feature"]

[[channel]]
name = "mm"
kind = "slack"
url = "https://mm.example.org/hooks/xyz"
flavor = "mattermost"

[[channel]]
name = "phone"
kind = "ntfy"
url = "https://ntfy.example.org"
topic = "herald"
priority = 4
"#;
        let channels = parse(text, "channels.toml", &projects(), &env, &no_files).expect("parses");
        assert_eq!(channels.len(), 5);
        assert_eq!(
            channels[0].projects.as_deref(),
            Some(&["pretalx".to_string()][..])
        );
        assert_eq!(
            channels[1].classes,
            [ReleaseClass::Feature, ReleaseClass::Bugfix]
        );
        assert_eq!(channels[1].messages, [ChannelMessage::Release]);
        assert!(channels[2].wants_release("pretalx-pages", ReleaseClass::Feature));
        assert!(!channels[2].wants_release("pretalx-pages", ReleaseClass::Bugfix));
        assert!(!channels[0].wants_release("pretalx-pages", ReleaseClass::Bugfix));
        assert_eq!(channels[3].flavor, SlackFlavor::Mattermost);
        assert_eq!(channels[4].priority, Some(4));
        // The Discord URL carries the token: never shown beyond its host.
        assert_eq!(channels[2].shown_url, "https://discord.com");
        assert!(!format!("{channels:?}").contains("tok"));
        assert!(!format!("{channels:?}").contains("MfKQ9r8"));
    }

    #[test]
    fn problems_name_the_file_line_and_problem() {
        let e = err(
            "[[channel]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"https://h.example.org\"\nsecret = \"${NOPE}\"\n",
        );
        assert_eq!(
            e,
            "channels.toml:5: `${NOPE}` refers to the environment variable NOPE, which is not set"
        );
        let e = err(
            "[[channel]]\nname = \"a\"\nkind = \"telegram\"\nurl = \"https://h.example.org\"\n",
        );
        assert!(
            e.starts_with("channels.toml:3: unknown variant `telegram`"),
            "{e}"
        );
        let e = err(
            "[[channel]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"https://h.example.org\"\nsecret = \"plain\"\n",
        );
        assert!(
            e.starts_with("channels.toml:5: channel `a`: secret 1 does not start with `whsec_`"),
            "{e}"
        );
        assert!(!e.contains("plain"), "{e}");
        let e = err(
            "[[channel]]\nname = \"a\"\nkind = \"slack\"\nurl = \"https://h.example.org\"\n\n[[channel]]\nname = \"a\"\nkind = \"slack\"\nurl = \"https://h.example.org\"\n",
        );
        assert_eq!(
            e,
            "channels.toml:7: channel `a` is listed twice (first on line 2)"
        );
        let e = err(
            "[[channel]]\nname = \"a\"\nkind = \"slack\"\nurl = \"https://h.example.org\"\nprojects = [\"nope\"]\n",
        );
        assert!(
            e.starts_with("channels.toml:5: channel `a`: project `nope` is not tracked"),
            "{e}"
        );
        let e = err(
            "[[channel]]\nname = \"a\"\nkind = \"matrix\"\nurl = \"https://h.example.org\"\nsecret = \"${MATRIX_TOKEN}\"\n",
        );
        assert!(
            e.starts_with("channels.toml:1: channel `a`: a matrix channel needs `room"),
            "{e}"
        );
        let e = err(
            "[[channel]]\nname = \"Ops@x\"\nkind = \"slack\"\nurl = \"https://h.example.org\"\n",
        );
        assert!(
            e.starts_with("channels.toml:2: channel name `Ops@x`"),
            "{e}"
        );
        let e = err("[[channel]]\nname = \"a\"\nkind = \"slack\"\nurl = \"ftp://h.example.org\"\n");
        assert!(
            e.starts_with("channels.toml:4: channel `a`: `url` must be"),
            "{e}"
        );
        let e = err(
            "[[channel]]\nname = \"a\"\nkind = \"discord\"\nurl = \"https://h.example.org\"\nsecret = \"x\"\n",
        );
        assert!(e.contains("its webhook URL is the secret"), "{e}");
        let e = err(
            "[[channel]]\nname = \"a\"\nkind = \"slack\"\nurl = \"https://h.example.org\"\nurl2 = 1\n",
        );
        assert!(
            e.starts_with("channels.toml:5: unknown field `url2`"),
            "{e}"
        );
    }

    #[test]
    fn operator_alerts_need_an_inventory() {
        let head = "[[channel]]\nname = \"a\"\nkind = \"slack\"\nurl = \"https://h.example.org\"\n";
        let e = err(&format!(
            "{head}messages = [\"release\", \"compat_report\"]\n"
        ));
        assert!(e.starts_with("channels.toml:5: channel `a`: compat_report, compat_followup and bugfix_advice are about an inventory"), "{e}");
        let e = err(&format!("{head}installed = [\"pretalx==2026.1.2\"]\n"));
        assert!(
            e.starts_with("channels.toml:5: channel `a`: an inventory serves"),
            "{e}"
        );
        let e = err(&format!(
            "{head}messages = [\"bugfix_advice\"]\ninstalled = [\"pretalx=2026\"]\n"
        ));
        assert!(
            e.starts_with("channels.toml:6: channel `a`: `pretalx=2026` is not NAME==VERSION"),
            "{e}"
        );
        let e = err(&format!(
            "{head}messages = [\"bugfix_advice\"]\nfreeze = \"nope.txt\"\n"
        ));
        assert!(
            e.starts_with("channels.toml:6: channel `a`: cannot read nope.txt: No such file"),
            "{e}"
        );
        let e = err(&format!("{head}messages = [\"tweet\"]\n"));
        assert!(
            e.starts_with("channels.toml:5: unknown variant `tweet`"),
            "{e}"
        );
        let text = format!(
            "{head}messages = [\"release\", \"compat_report\", \"compat_followup\", \"bugfix_advice\"]\ninstalled = [\"pretalx==2026.1.1\"]\nfreeze = \"freeze.txt\"\n"
        );
        let channels = parse(&text, "c.toml", &projects(), &env, &no_files).expect("parses");
        let pins: Vec<String> = channels[0]
            .installed
            .iter()
            .map(|i| format!("{}=={}", i.name, i.version))
            .collect();
        assert_eq!(pins, ["pretalx==2026.1.2", "pretalx-pages==1.9.0"]);
        assert!(channels[0].wants_alert(ChannelMessage::CompatReport, "pretalx"));
    }

    #[test]
    fn several_secrets_while_rotating() {
        let text = format!(
            "[[channel]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"https://h.example.org\"\nsecret = [\"${{HOOK_SECRET}}\", \"{SECRET}\"]\n"
        );
        let channels = parse(&text, "c.toml", &projects(), &env, &no_files).expect("parses");
        assert_eq!(channels[0].secrets.len(), 2);
    }
}
