//! The typed outbox: every kind of message Herald queues, with its payload as a type, and the
//! two functions that queue them ([`queue_mail`] for mail, [`queue_notice`] for channel
//! deliveries).
//!
//! A row keeps its kind as text and its payload as JSON (see `store::outbox`); this module is
//! the one place that writes or reads either. The JSON of every kind is the shape Herald has
//! always stored, so rows queued by an earlier release are read and sent after an upgrade.
//!
//! Owns: the kinds, their payloads, the subject keys this module derives (digest, confirmation,
//! test) and the `Message-ID` and delivery id of every message. Does not own: who gets what
//! (`decide`, `alerts`), rendering (`compose`, `channels`) or the SQL (`store`).

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::content::ConfirmMail;
use crate::advice::Advice;
use crate::config::channels::ChannelMessage;
use crate::decide::{ChannelNotice, InstantMessage};
use crate::store::{self, ChannelDelivery, DueDigest, NewMessage, OutboxRow, StoreError, Tx};

/// One release found by a run (`new_release`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneRelease {
    /// The release.
    pub release_id: i64,
}

/// Releases of one project, newest first (`new_releases`, and a channel's `release`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseIds {
    /// The releases, newest first.
    #[serde(default)]
    pub release_ids: Vec<i64>,
}

/// The releases of a digest period, oldest first (`digest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestItems {
    /// `daily:YYYY-MM-DD` or `weekly:YYYY-Www`.
    #[serde(default)]
    pub period: String,
    /// The releases, oldest first.
    #[serde(default)]
    pub release_ids: Vec<i64>,
}

/// When a test message was sent, as it reads (`test_message`, and a channel's `test`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestNote {
    /// UTC, human-readable for mail, RFC 3339 for channels.
    #[serde(default)]
    pub sent_at: String,
}

/// The plugin release behind a compatibility follow-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// The plugin.
    pub project: String,
    /// Its release.
    pub version: String,
}

/// An operator report as queued: the report `alerts` built and what the pass adds to it,
/// stored flat (the report's fields beside `found`, `upgrade_to`, `trigger`, `changed`), as
/// the templates read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertReport {
    /// The report: core status, target, plugin verdicts, recommendation, upgrade.
    #[serde(flatten)]
    pub advice: Box<Advice>,
    /// The core releases the pass found, newest first, when it found several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<Vec<String>>,
    /// The newest bugfix release of the reported feature release's line, found with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_to: Option<String>,
    /// The plugin release behind a follow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The plugins whose verdict changed (follow-ups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
}

impl AlertReport {
    /// The report of `advice`, with nothing added yet.
    pub fn new(advice: Advice) -> AlertReport {
        AlertReport {
            advice: Box::new(advice),
            found: None,
            upgrade_to: None,
            trigger: None,
            changed: None,
        }
    }

    /// The report as the templates read it, the added fields included.
    pub fn to_value(&self) -> Value {
        // A derived `Serialize` of plain data into a JSON value cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The three operator alerts, by mail or channel; each names its template folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    /// The compatibility report of a core feature release (`compat_report`).
    CompatReport,
    /// Verdicts that changed after plugin releases (`compat_followup`).
    CompatFollowup,
    /// Advice about a core bugfix release (`bugfix_advice`).
    BugfixAdvice,
}

impl AlertKind {
    /// Every alert kind.
    pub const ALL: [AlertKind; 3] = [
        AlertKind::CompatReport,
        AlertKind::CompatFollowup,
        AlertKind::BugfixAdvice,
    ];

    /// The stored kind, which is also the template folder.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::CompatReport => "compat_report",
            AlertKind::CompatFollowup => "compat_followup",
            AlertKind::BugfixAdvice => "bugfix_advice",
        }
    }

    /// The `messages` entry of a channel that asks for this alert.
    pub fn channel_message(self) -> ChannelMessage {
        match self {
            AlertKind::CompatReport => ChannelMessage::CompatReport,
            AlertKind::CompatFollowup => ChannelMessage::CompatFollowup,
            AlertKind::BugfixAdvice => ChannelMessage::BugfixAdvice,
        }
    }

    fn parse(kind: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

/// A payload that cannot be read back as its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// A kind this release does not know.
    #[error("unknown message kind `{0}`")]
    UnknownKind(String),
    /// A payload that is not its kind's shape.
    #[error("{kind} payload: {detail}")]
    Shape {
        /// The stored kind.
        kind: String,
        /// What serde said.
        detail: String,
    },
}

fn read<T: DeserializeOwned>(kind: &str, payload: &Value) -> Result<T, PayloadError> {
    T::deserialize(payload).map_err(|err| PayloadError::Shape {
        kind: kind.to_string(),
        detail: err.to_string(),
    })
}

fn write(payload: &impl Serialize) -> Result<Value, StoreError> {
    serde_json::to_value(payload).map_err(|err| StoreError::Corrupt {
        column: "outbox.payload",
        detail: err.to_string(),
    })
}

/// A message by mail, with what it says.
#[derive(Debug, Clone, PartialEq)]
pub enum Mail {
    /// One new release (`new_release`).
    NewRelease(OneRelease),
    /// Several releases of a project found by one run (`new_releases`).
    NewReleases(ReleaseIds),
    /// A digest whose period ended (`digest`).
    Digest(DigestItems),
    /// The link that confirms a subscription (`confirm_subscription`).
    Confirm(ConfirmMail),
    /// `herald test-email` (`test_message`).
    Test(TestNote),
    /// An operator alert.
    Alert(AlertKind, AlertReport),
}

impl Mail {
    /// The stored kind, which is also the template folder.
    pub fn kind(&self) -> &'static str {
        match self {
            Mail::NewRelease(_) => "new_release",
            Mail::NewReleases(_) => "new_releases",
            Mail::Digest(_) => "digest",
            Mail::Confirm(_) => "confirm_subscription",
            Mail::Test(_) => "test_message",
            Mail::Alert(kind, _) => kind.as_str(),
        }
    }

    /// The payload as stored.
    pub fn payload(&self) -> Result<Value, StoreError> {
        match self {
            Mail::NewRelease(p) => write(p),
            Mail::NewReleases(p) => write(p),
            Mail::Digest(p) => write(p),
            Mail::Confirm(p) => write(p),
            Mail::Test(p) => write(p),
            Mail::Alert(_, report) => write(report),
        }
    }

    /// Reads a stored kind and payload back.
    pub fn from_stored(kind: &str, payload: &Value) -> Result<Mail, PayloadError> {
        Ok(match kind {
            "new_release" => Mail::NewRelease(read(kind, payload)?),
            "new_releases" => Mail::NewReleases(read(kind, payload)?),
            "digest" => Mail::Digest(read(kind, payload)?),
            "confirm_subscription" => Mail::Confirm(read(kind, payload)?),
            "test_message" => Mail::Test(read(kind, payload)?),
            other => match AlertKind::parse(other) {
                Some(alert) => Mail::Alert(alert, read(kind, payload)?),
                None => return Err(PayloadError::UnknownKind(other.to_string())),
            },
        })
    }

    /// The releases it is about.
    pub fn release_ids(&self) -> Vec<i64> {
        match self {
            Mail::NewRelease(p) => vec![p.release_id],
            Mail::NewReleases(p) => p.release_ids.clone(),
            Mail::Digest(p) => p.release_ids.clone(),
            Mail::Confirm(_) | Mail::Test(_) | Mail::Alert(..) => Vec::new(),
        }
    }

    /// Whether its payload is forgotten once it is sent (a confirmation link must not
    /// outlive its mail).
    pub fn scrub_when_sent(kind: &str) -> bool {
        kind == "confirm_subscription"
    }
}

/// The releases a stored mail is about (none when its payload cannot be read).
pub fn release_ids(row: &OutboxRow) -> Vec<i64> {
    Mail::from_stored(&row.kind, &row.payload)
        .map(|mail| mail.release_ids())
        .unwrap_or_default()
}

/// A mail and whom it goes to, under a subject key: one message per recipient and key.
#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    /// The subscriber it is for (a test message has none).
    pub subscriber_id: Option<i64>,
    /// The address.
    pub to: String,
    /// One message per recipient and subject key.
    pub subject_key: String,
    /// What it says.
    pub mail: Mail,
}

impl Letter {
    /// The release mail `decide` folded for one subscriber (one release or several).
    pub fn releases(to: &str, message: &InstantMessage) -> Letter {
        let mail = match message.release_ids.as_slice() {
            [release_id] => Mail::NewRelease(OneRelease {
                release_id: *release_id,
            }),
            ids => Mail::NewReleases(ReleaseIds {
                release_ids: ids.to_vec(),
            }),
        };
        Letter {
            subscriber_id: Some(message.subscriber_id),
            to: to.to_string(),
            subject_key: message.subject_key.clone(),
            mail,
        }
    }

    /// A digest whose period ended.
    pub fn digest(digest: &DueDigest) -> Letter {
        Letter {
            subscriber_id: Some(digest.subscriber_id),
            to: digest.recipient.clone(),
            subject_key: crate::decide::digest_subject(&digest.period),
            mail: Mail::Digest(DigestItems {
                period: digest.period.clone(),
                release_ids: digest.release_ids.clone(),
            }),
        }
    }

    /// The confirmation of a pending subscription; `token_hash` is the stored hash of its
    /// token.
    pub fn confirmation(
        subscriber_id: i64,
        to: &str,
        token_hash: &str,
        mail: ConfirmMail,
    ) -> Letter {
        Letter {
            subscriber_id: Some(subscriber_id),
            to: to.to_string(),
            subject_key: format!("confirm:{}", token_hash.get(..16).unwrap_or(token_hash)),
            mail: Mail::Confirm(mail),
        }
    }

    /// A test message sent at `now`.
    pub fn test(to: &str, now: DateTime<Utc>) -> Letter {
        Letter {
            subscriber_id: None,
            to: to.to_string(),
            subject_key: format!("test:{}", now.timestamp_micros()),
            mail: Mail::Test(TestNote {
                sent_at: now.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            }),
        }
    }

    /// An operator alert to a subscriber, under the key `alerts` chose.
    pub fn alert(
        subscriber_id: i64,
        to: &str,
        subject_key: &str,
        kind: AlertKind,
        report: AlertReport,
    ) -> Letter {
        Letter {
            subscriber_id: Some(subscriber_id),
            to: to.to_string(),
            subject_key: subject_key.to_string(),
            mail: Mail::Alert(kind, report),
        }
    }
}

/// What a letter stores besides itself: its payload and its `Message-ID`, which stays the
/// same for its recipient and subject key.
fn stored_parts(letter: &Letter, from: &Mailbox) -> Result<(Value, String), StoreError> {
    let message_id = super::mail::message_id(&letter.to, &letter.subject_key, from);
    Ok((letter.mail.payload()?, message_id))
}

/// The outbox row of a letter, from its [`stored_parts`].
fn new_message<'a>(
    letter: &'a Letter,
    (payload, message_id): &'a (Value, String),
) -> NewMessage<'a> {
    NewMessage {
        subscriber_id: letter.subscriber_id,
        recipient: &letter.to,
        kind: letter.mail.kind(),
        subject_key: &letter.subject_key,
        payload,
        message_id,
    }
}

/// Queues a mail in the caller's transaction, with a `Message-ID` that stays the same for its
/// recipient and subject key; its row id, or `None` when that message was queued before.
pub async fn queue_mail(
    conn: &mut Tx,
    from: &Mailbox,
    letter: &Letter,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let parts = stored_parts(letter, from)?;
    store::enqueue_in(conn, &new_message(letter, &parts), now).await
}

/// Queues several letters in the caller's transaction, in order (one statement per thousand
/// instead of one per letter); returns how many were queued (a letter already queued for its
/// recipient and subject key is skipped).
pub async fn queue_mails(
    conn: &mut Tx,
    from: &Mailbox,
    letters: &[Letter],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let parts = letters
        .iter()
        .map(|letter| stored_parts(letter, from))
        .collect::<Result<Vec<_>, _>>()?;
    let messages: Vec<NewMessage<'_>> = letters
        .iter()
        .zip(&parts)
        .map(|(letter, parts)| new_message(letter, parts))
        .collect();
    let queued = store::enqueue_all_in(conn, &messages, now).await?;
    Ok(usize::try_from(queued).unwrap_or(usize::MAX))
}

/// A channel notification, with what it says.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// New releases of one project, newest first (`release`).
    Release(ReleaseIds),
    /// An operator alert.
    Alert(AlertKind, AlertReport),
    /// `herald send-test` (`test`).
    Test(TestNote),
}

impl Notice {
    /// The stored kind, which is also the template name.
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::Release(_) => "release",
            Notice::Alert(kind, _) => kind.as_str(),
            Notice::Test(_) => "test",
        }
    }

    /// The payload as stored.
    pub fn payload(&self) -> Result<Value, StoreError> {
        match self {
            Notice::Release(p) => write(p),
            Notice::Alert(_, report) => write(report),
            Notice::Test(p) => write(p),
        }
    }

    /// Reads a stored kind and payload back.
    pub fn from_stored(kind: &str, payload: &Value) -> Result<Notice, PayloadError> {
        Ok(match kind {
            "release" => Notice::Release(read(kind, payload)?),
            "test" => Notice::Test(read(kind, payload)?),
            other => match AlertKind::parse(other) {
                Some(alert) => Notice::Alert(alert, read(kind, payload)?),
                None => {
                    return Err(PayloadError::UnknownKind(other.to_string()));
                }
            },
        })
    }
}

/// A channel notification and the channel it goes to, under a subject key: one delivery per
/// channel and key.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    /// The channel's name.
    pub channel: String,
    /// One delivery per channel and subject key.
    pub subject_key: String,
    /// What it says.
    pub notice: Notice,
}

impl Post {
    /// The release notice `decide` chose for a channel.
    pub fn releases(notice: &ChannelNotice) -> Post {
        Post {
            channel: notice.channel.clone(),
            subject_key: notice.subject_key.clone(),
            notice: Notice::Release(ReleaseIds {
                release_ids: notice.release_ids.clone(),
            }),
        }
    }

    /// A test notification sent at `now`.
    pub fn test(channel: &str, now: DateTime<Utc>) -> Post {
        Post {
            channel: channel.to_string(),
            subject_key: format!("test:{}", now.timestamp_micros()),
            notice: Notice::Test(TestNote {
                sent_at: now.to_rfc3339(),
            }),
        }
    }

    /// An operator alert to a channel, under the key `alerts` chose.
    pub fn alert(channel: &str, subject_key: &str, kind: AlertKind, report: AlertReport) -> Post {
        Post {
            channel: channel.to_string(),
            subject_key: subject_key.to_string(),
            notice: Notice::Alert(kind, report),
        }
    }
}

/// Queues a channel delivery in the caller's transaction, with a delivery id that stays the
/// same for its channel and subject key; its row id, or `None` when it was queued before.
pub async fn queue_notice(
    conn: &mut Tx,
    post: &Post,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let payload = post.notice.payload()?;
    let delivery_id = super::channels::delivery_id(&post.channel, &post.subject_key);
    store::enqueue_channel_in(
        conn,
        &ChannelDelivery {
            channel: &post.channel,
            kind: post.notice.kind(),
            subject_key: &post.subject_key,
            payload: &payload,
            delivery_id: &delivery_id,
        },
        now,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A whole report as `alerts` wrote it before it was typed (every field of the advice,
    /// serialised from the struct), with `extra` fields added by the pass.
    fn stored_report(extra: Value) -> Value {
        let mut advice = serde_json::to_value(Advice {
            target: Some("2026.2.0".into()),
            core: crate::advice::CoreAdvice {
                project: "pretalx".into(),
                ..Default::default()
            },
            ..Default::default()
        })
        .expect("advice");
        for (key, value) in extra.as_object().expect("object") {
            advice[key] = value.clone();
        }
        advice
    }

    fn report(extra: Value) -> AlertReport {
        AlertReport::deserialize(stored_report(extra)).expect("report")
    }

    #[test]
    fn a_queued_report_reads_back_as_it_was_stored() {
        // A report as `alerts` queues it (every field, follow-up additions included): reading
        // it typed and writing it again gives the same JSON, so rows queued before the report
        // was typed are sent unchanged.
        let stored = write(&super::super::content::samples::report()).expect("payload");
        assert!(stored["core"]["vulnerabilities_fixed"][0]["aliases"].is_array());
        assert_eq!(stored["trigger"]["project"], "pretalx-pages");
        let typed: AlertReport = read("compat_followup", &stored).expect("reads");
        assert_eq!(
            typed.advice.plugins[1].verdict,
            crate::model::Verdict::Unknown
        );
        assert_eq!(typed.to_value(), stored);
        // What the pass did not add is absent, not null.
        assert!(stored.get("found").is_none() && stored.get("upgrade_to").is_none());
        // A partial report (an older Herald's, or a test's) reads with defaults.
        let partial: AlertReport =
            read("bugfix_advice", &json!({"core": {"project": "pretalx"}})).expect("reads");
        assert_eq!(partial.advice.core.status.as_str(), "not-installed");
        assert!(partial.advice.plugins.is_empty() && partial.trigger.is_none());
    }

    fn every_mail() -> Vec<Mail> {
        vec![
            Mail::NewRelease(OneRelease { release_id: 7 }),
            Mail::NewReleases(ReleaseIds {
                release_ids: vec![9, 8],
            }),
            Mail::Digest(DigestItems {
                period: "daily:2026-07-08".into(),
                release_ids: vec![8, 9],
            }),
            Mail::Confirm(ConfirmMail {
                confirm_url: "https://herald.example.org/confirm/T".into(),
                expires_at: "2026-07-10 08:00 UTC".into(),
                projects: vec!["pretalx".into()],
            }),
            Mail::Test(TestNote {
                sent_at: "2026-07-08 08:00:00 UTC".into(),
            }),
            Mail::Alert(
                AlertKind::CompatReport,
                report(json!({"found": ["2026.2.1", "2026.2.0"], "upgrade_to": "2026.2.1"})),
            ),
            Mail::Alert(
                AlertKind::CompatFollowup,
                report(
                    json!({"trigger": {"project": "pretalx-pages", "version": "1.10.0"}, "changed": []}),
                ),
            ),
            Mail::Alert(AlertKind::BugfixAdvice, report(json!({}))),
        ]
    }

    #[test]
    fn every_mail_reads_back_as_written() {
        for mail in every_mail() {
            let payload = mail.payload().expect("payload");
            assert_eq!(Mail::from_stored(mail.kind(), &payload), Ok(mail.clone()));
        }
    }

    #[test]
    fn every_notice_reads_back_as_written() {
        let notices = [
            Notice::Release(ReleaseIds {
                release_ids: vec![3, 2],
            }),
            Notice::Test(TestNote {
                sent_at: "2026-07-08T08:00:00+00:00".into(),
            }),
            Notice::Alert(AlertKind::CompatFollowup, report(json!({"changed": ["x"]}))),
        ];
        for notice in notices {
            let payload = notice.payload().expect("payload");
            assert_eq!(
                Notice::from_stored(notice.kind(), &payload),
                Ok(notice.clone())
            );
        }
    }

    /// The kinds and payloads the string-kinded outbox wrote, byte for byte.
    #[test]
    fn rows_queued_before_the_typed_outbox_are_written_the_same_today() {
        let old = [
            ("new_release", json!({ "release_id": 7 })),
            ("new_releases", json!({ "release_ids": [9, 8] })),
            (
                "digest",
                json!({"period": "daily:2026-07-08", "release_ids": [8, 9]}),
            ),
            (
                "confirm_subscription",
                json!({"confirm_url": "https://herald.example.org/confirm/T", "expires_at": "2026-07-10 08:00 UTC", "projects": ["pretalx"]}),
            ),
            (
                "test_message",
                json!({ "sent_at": "2026-07-08 08:00:00 UTC" }),
            ),
            (
                "compat_report",
                stored_report(json!({"found": ["2026.2.1", "2026.2.0"], "upgrade_to": "2026.2.1"})),
            ),
            (
                "compat_followup",
                stored_report(
                    json!({"trigger": {"project": "pretalx-pages", "version": "1.10.0"}, "changed": []}),
                ),
            ),
            ("bugfix_advice", stored_report(json!({}))),
        ];
        for ((kind, payload), mail) in old.iter().zip(every_mail()) {
            assert_eq!(mail.kind(), *kind);
            assert_eq!(
                mail.payload().expect("payload").to_string(),
                payload.to_string()
            );
            assert_eq!(Mail::from_stored(kind, payload), Ok(mail));
        }
        let channel = [
            ("release", json!({ "release_ids": [3, 2] })),
            ("test", json!({ "sent_at": "2026-07-08T08:00:00+00:00" })),
        ];
        for (kind, payload) in channel {
            let notice = Notice::from_stored(kind, &payload).expect("reads");
            assert_eq!(notice.kind(), kind);
            assert_eq!(notice.payload().expect("payload"), payload);
        }
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        // Test messages queued by hand carry no time; that is no reason not to send them.
        assert_eq!(
            Mail::from_stored("test_message", &json!({})),
            Ok(Mail::Test(TestNote {
                sent_at: String::new()
            }))
        );
        assert_eq!(
            Mail::from_stored("release", &json!({})),
            Err(PayloadError::UnknownKind("release".into()))
        );
        let err = Mail::from_stored("new_release", &json!({})).expect_err("no id");
        assert_eq!(
            err.to_string(),
            "new_release payload: missing field `release_id`"
        );
    }

    #[test]
    fn keys_that_follow_from_the_mail() {
        let now = DateTime::parse_from_rfc3339("2026-07-08T08:00:00.000001Z")
            .expect("time")
            .with_timezone(&Utc);
        let test = Letter::test("ops@example.org", now);
        assert_eq!(test.subject_key, "test:1783497600000001");
        let digest = Letter::digest(&DueDigest {
            subscriber_id: 1,
            recipient: "ops@example.org".into(),
            period: "weekly:2026-W28".into(),
            release_ids: vec![1],
        });
        assert_eq!(digest.subject_key, "digest:weekly:2026-W28");
        let confirm = Letter::confirmation(
            1,
            "ops@example.org",
            "0123456789abcdef0123",
            ConfirmMail {
                confirm_url: String::new(),
                expires_at: String::new(),
                projects: Vec::new(),
            },
        );
        assert_eq!(confirm.subject_key, "confirm:0123456789abcdef");
    }
}
