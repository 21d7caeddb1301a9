//! The request each kind of channel expects, within that receiver's limits: a signed
//! Standard Webhooks event, a Matrix `m.notice` (PUT with the delivery's txnId), a
//! Slack-compatible message (`text`, plus `blocks` or `attachments` by `flavor`), a Discord
//! webhook execution (`?wait=true`, `content` within 2,000 characters, embeds within limits,
//! `allowed_mentions: {"parse": []}`), and an ntfy JSON publish to the server root.
//!
//! Owns: request shapes and limits. Pure but for the wall clock of the webhook timestamp.

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use url::Url;

use super::{Subject, json_headers, webhook};
use crate::config::channels::{Channel, ChannelKind, SlackFlavor};
use crate::notify::outbox::AlertKind;
use crate::notify::templates::{ChannelText, slack_escape};
use crate::store::OutboxRow;

/// Discord: characters of `content`.
pub const DISCORD_CONTENT: usize = 2000;
/// Discord: embeds per message, and characters of an embed's title and description.
const DISCORD_EMBEDS: usize = 10;
const DISCORD_EMBED_TITLE: usize = 256;
const DISCORD_EMBED_DESCRIPTION: usize = 4096;
/// Discord: characters of all embeds of a message together.
const DISCORD_EMBEDS_TOTAL: usize = 6000;
/// Slack: characters of a section block's text, and of `text`.
const SLACK_SECTION: usize = 3000;
const SLACK_TEXT: usize = 40_000;
/// Matrix: bytes of `body` and of `formatted_body` (an event may not exceed 65,536 bytes).
const MATRIX_PART: usize = 30_000;
/// ntfy: bytes of a message.
const NTFY_MESSAGE: usize = 4096;
/// Webhook: bytes of an event body.
pub const WEBHOOK_BODY: usize = 256 * 1024;

/// A prepared request.
#[derive(Debug)]
pub struct Outgoing {
    pub method: Method,
    /// Full URL (may carry a secret: never logged).
    pub url: Url,
    pub headers: HeaderMap,
    /// JSON body.
    pub body: Vec<u8>,
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn clip_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn clip_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn bearer(headers: &mut HeaderMap, channel: &Channel) -> Result<(), String> {
    if let Some(token) = channel.secrets.first() {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| "the access token is not a valid header value".to_string())?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(())
}

fn body(value: &Value) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| e.to_string())
}

/// The request of one delivery.
pub fn outgoing(
    channel: &Channel,
    row: &OutboxRow,
    subject: &Subject,
    text: &ChannelText,
    now: DateTime<Utc>,
) -> Result<Outgoing, String> {
    let mut url = channel.url()?;
    let mut headers = json_headers();
    let id = row.message_id.as_str();
    let (method, payload) = match channel.kind {
        ChannelKind::Webhook => {
            let event = webhook::event(&channel.name, subject, &text.text, now);
            let payload = body(&event)?;
            if payload.len() > WEBHOOK_BODY {
                return Err(format!(
                    "the event is {} bytes, more than the {WEBHOOK_BODY} a webhook carries",
                    payload.len()
                ));
            }
            // Fresh per attempt, from the wall clock: receivers compare it with theirs.
            let timestamp = Utc::now().timestamp();
            let signature = webhook::signature_header(&channel.secrets, id, timestamp, &payload)?;
            let header = |v: &str| HeaderValue::from_str(v).map_err(|e| e.to_string());
            headers.insert(HeaderName::from_static("webhook-id"), header(id)?);
            headers.insert(
                HeaderName::from_static("webhook-timestamp"),
                header(&timestamp.to_string())?,
            );
            headers.insert(
                HeaderName::from_static("webhook-signature"),
                header(&signature)?,
            );
            return Ok(Outgoing {
                method: Method::POST,
                url,
                headers,
                body: payload,
            });
        }
        ChannelKind::Matrix => {
            let room = channel.room.as_deref().ok_or("no room configured")?;
            url.path_segments_mut()
                .map_err(|_| "the homeserver URL cannot take a path".to_string())?
                .pop_if_empty()
                .extend([
                    "_matrix",
                    "client",
                    "v3",
                    "rooms",
                    room,
                    "send",
                    "m.room.message",
                    id,
                ]);
            bearer(&mut headers, channel)?;
            let mut content = json!({
                "msgtype": "m.notice",
                "body": clip_bytes(&text.text, MATRIX_PART),
            });
            if let Some(html) = text.html.as_deref().filter(|h| h.len() <= MATRIX_PART) {
                content["format"] = "org.matrix.custom.html".into();
                content["formatted_body"] = html.into();
            }
            (Method::PUT, content)
        }
        ChannelKind::Slack => (Method::POST, slack(channel.flavor, subject, &text.text)),
        ChannelKind::Discord => {
            url.query_pairs_mut().append_pair("wait", "true");
            (Method::POST, discord(subject, &text.text))
        }
        ChannelKind::Ntfy => {
            bearer(&mut headers, channel)?;
            (Method::POST, ntfy(channel, subject, text, id))
        }
    };
    Ok(Outgoing {
        method,
        url,
        headers,
        body: body(&payload)?,
    })
}

fn first_link(subject: &Subject) -> Option<String> {
    match subject {
        Subject::Releases(releases) => releases.first().and_then(|(_, v)| {
            v.links
                .github
                .clone()
                .or_else(|| v.links.package.clone())
                .or_else(|| v.links.blog.clone())
        }),
        Subject::Alert(_, report) => report
            .advice
            .core
            .feature_releases_between
            .last()
            .and_then(|r| r.url.clone()),
        Subject::Test(_) => None,
    }
}

fn slack(flavor: SlackFlavor, subject: &Subject, text: &str) -> Value {
    let mut message = json!({ "text": clip_chars(text, SLACK_TEXT) });
    match flavor {
        SlackFlavor::Slack => {
            message["blocks"] = json!([{
                "type": "section",
                "text": { "type": "mrkdwn", "text": clip_chars(text, SLACK_SECTION) },
            }]);
        }
        SlackFlavor::Mattermost | SlackFlavor::Rocketchat => {
            if let Subject::Releases(releases) = subject {
                let attachments: Vec<Value> = releases
                    .iter()
                    .map(|(_, v)| {
                        let title = format!("{} {}", v.project, v.version);
                        let mut a = json!({
                            "fallback": slack_escape(&title),
                            "color": if v.class.as_str() == "feature" { "#1a4f8b" } else { "#2e7d32" },
                            "title": slack_escape(&title),
                            "text": slack_escape(v.advice),
                        });
                        if let Some(link) = v.links.github.as_ref().or(v.links.package.as_ref()) {
                            a["title_link"] = link.clone().into();
                        }
                        a
                    })
                    .collect();
                message["attachments"] = attachments.into();
            }
        }
        SlackFlavor::Plain => {}
    }
    message
}

fn discord(subject: &Subject, text: &str) -> Value {
    let mut embeds = Vec::new();
    if let Subject::Releases(releases) = subject {
        let mut total = 0;
        for (_, v) in releases.iter().take(DISCORD_EMBEDS) {
            let title = clip_chars(&format!("{} {}", v.project, v.version), DISCORD_EMBED_TITLE);
            let description = clip_chars(
                &format!(
                    "A {}{}. {}",
                    v.class_label,
                    v.published
                        .as_ref()
                        .map(|p| format!(", published {p}"))
                        .unwrap_or_default(),
                    v.advice
                ),
                DISCORD_EMBED_DESCRIPTION,
            );
            let size = title.chars().count() + description.chars().count();
            if total + size > DISCORD_EMBEDS_TOTAL {
                break;
            }
            total += size;
            let mut embed = json!({ "title": title, "description": description });
            if let Some(link) = v.links.github.as_ref().or(v.links.package.as_ref()) {
                embed["url"] = link.clone().into();
            }
            embeds.push(embed);
        }
    }
    json!({
        "content": clip_chars(text, DISCORD_CONTENT),
        "embeds": embeds,
        // Release notes must never ping @everyone, a role or a user.
        "allowed_mentions": { "parse": [] },
    })
}

fn ntfy(channel: &Channel, subject: &Subject, text: &ChannelText, id: &str) -> Value {
    let tags = match subject {
        Subject::Releases(releases) => {
            let mut tags = vec!["package".to_string()];
            tags.extend(releases.first().map(|(r, _)| r.class.as_str().to_string()));
            tags
        }
        Subject::Alert(kind, _) => vec![
            if *kind == AlertKind::BugfixAdvice {
                "warning"
            } else {
                "jigsaw"
            }
            .to_string(),
        ],
        Subject::Test(_) => vec!["white_check_mark".to_string()],
    };
    let mut message = json!({
        "topic": channel.topic,
        "title": text.title.clone().unwrap_or_else(|| "Herald".into()),
        "message": clip_bytes(&text.text, NTFY_MESSAGE),
        "tags": tags,
        "markdown": true,
        "sequence_id": id,
    });
    if let Some(priority) = channel.priority {
        message["priority"] = priority.into();
    }
    if let Some(link) = first_link(subject) {
        message["click"] = link.into();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_respects_characters_and_bytes() {
        assert_eq!(clip_chars("abcdef", 4), "abc…");
        assert_eq!(clip_chars("abc", 4), "abc");
        let cut = clip_bytes("ééééé", 6);
        assert!(cut.len() <= 6 && cut.ends_with('…'), "{cut}");
        assert_eq!(
            clip_chars(&"x".repeat(5000), DISCORD_CONTENT)
                .chars()
                .count(),
            2000
        );
    }
}
