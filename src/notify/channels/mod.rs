//! Channel delivery: the dispatcher's workers for webhook, Matrix, Slack-compatible, Discord
//! and ntfy deliveries, which share the outbox with mail (claimed apart, retried with the same
//! backoff, dead-lettered with the receiver's answer).
//!
//! Every request goes through one HTTP client that follows no redirect, waits at most
//! `HERALD_HTTP_TIMEOUT`, and reads at most [`MAX_ANSWER_BYTES`] of an answer. Answers are
//! classified once, in [`classify`]: 2xx delivered; 408, 425, 429 and 5xx, timeouts and
//! connection failures retried (429 and `M_LIMIT_EXCEEDED` after the delay the receiver asked
//! for); 3xx refused (no redirect is followed); other 4xx dead-lettered, and `410 Gone` also
//! disables the channel until `herald send-test` succeeds. The delivery id (webhook-id, Matrix
//! txnId, ntfy sequence id) is the outbox row's `message_id`, the same on every attempt.
//!
//! Owns: queueing a run's release notices in its transaction ([`queue_releases`]), shaping
//! each channel's request (in [`shapes`]) and the webhook signature (in [`webhook`]), sending,
//! and recording answers. Does not own: who gets what (`decide`) or the
//! text (templates).

pub mod shapes;
pub mod webhook;

use chrono::{DateTime, Duration, Utc};
use reqwest::header::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use super::content::{self, AlertMail, ChannelAlert, ChannelReleases, ChannelTest, ReleaseView};
use super::outbox::{AlertKind, AlertReport, Notice, Post, queue_notice};
use super::{DispatchOptions, MAX_ATTEMPTS, Mailroom, Shared, retry_delay, stopping};
use crate::config::HttpSettings;
use crate::config::channels::Channel;
use crate::store::{OutboxRow, ReleaseRow};

/// Most bytes of a receiver's answer read (and fewer kept in the outbox).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Characters of an answer body kept in the outbox.
const ANSWER_CHARS: usize = 300;
/// Longest wait a receiver may ask for before the next attempt.
const MAX_RETRY_AFTER_SECS: i64 = 6 * 3600;
/// Deliveries a channel worker claims at once.
const CLAIM_PER_WORKER: i64 = 2;
/// Channel workers at most.
const MAX_WORKERS: usize = 4;

/// The delivery id of a channel notification: stable for a channel and subject, so every
/// attempt (and a retry after a crash) carries the same one.
pub fn delivery_id(channel: &str, subject_key: &str) -> String {
    let digest = Sha256::digest(format!("channel\n{channel}\n{subject_key}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// Queues, in the transaction that records them, the channel notifications of one project's
/// new releases (see [`crate::decide::channel_notices`]); returns how many were queued.
pub async fn queue_releases(
    channels: &[Channel],
    tx: &mut crate::store::Tx,
    announced: &[crate::decide::NewRelease],
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let mut queued = 0;
    for notice in crate::decide::channel_notices(announced, channels) {
        let post = Post::releases(&notice);
        queued += usize::from(queue_notice(tx, &post, now).await?.is_some());
    }
    Ok(queued)
}

/// How a receiver answered one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Accepted.
    Delivered(String),
    /// Worth another attempt, after `after` when the receiver said so.
    Retry {
        /// What happened.
        answer: String,
        /// The delay the receiver asked for.
        after: Option<Duration>,
    },
    /// Not worth another attempt.
    Refused {
        /// What the receiver said.
        answer: String,
        /// `410 Gone`: the channel is disabled.
        gone: bool,
    },
}

/// The HTTP client of channel deliveries.
#[derive(Debug, Clone)]
pub struct ChannelClient {
    client: reqwest::Client,
}

impl ChannelClient {
    /// A client that follows no redirect, with the configured timeouts.
    pub fn new(http: &HttpSettings) -> Result<ChannelClient, reqwest::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(http.timeout)
            .connect_timeout(http.connect_timeout)
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ChannelClient { client })
    }

    /// Sends one prepared request and classifies the answer.
    pub async fn send(&self, request: shapes::Outgoing) -> Answer {
        let shapes::Outgoing {
            method,
            url,
            headers,
            body,
        } = request;
        let sent = self
            .client
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => return transport_failure(&err),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() >= MAX_ANSWER_BYTES {
                        body.truncate(MAX_ANSWER_BYTES);
                        break;
                    }
                }
                Ok(None) => break,
                // The status is what counts; a broken answer body is reported as read so far.
                Err(_) => break,
            }
        }
        classify(status, &headers, &body)
    }
}

fn transport_failure(err: &reqwest::Error) -> Answer {
    // The URL can carry the secret (Slack, Discord): never part of an answer.
    let what = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "cannot connect".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    let answer = if detail.is_empty() {
        what
    } else {
        format!("{what}: {detail}")
    };
    Answer::Retry {
        answer,
        after: None,
    }
}

/// One line of an answer body.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > ANSWER_CHARS {
        format!("{}...", line.chars().take(ANSWER_CHARS).collect::<String>())
    } else {
        line
    }
}

/// The delay a receiver asked for: `Retry-After` (seconds or an HTTP date), Discord's
/// `retry_after` (seconds) or Matrix's `retry_after_ms`, within limits.
fn retry_after(headers: &HeaderMap, body: &[u8]) -> Option<Duration> {
    let header = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let from_header = header.and_then(|v| {
        v.parse::<f64>()
            .ok()
            .map(|secs| Duration::milliseconds((secs * 1000.0) as i64))
            .or_else(|| {
                httpdate::parse_http_date(v).ok().map(|at| {
                    let at: DateTime<Utc> = at.into();
                    at - Utc::now()
                })
            })
    });
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_body = json.as_ref().and_then(|j| {
        j["retry_after_ms"]
            .as_f64()
            .map(|ms| Duration::milliseconds(ms as i64))
            .or_else(|| {
                j["retry_after"]
                    .as_f64()
                    .map(|s| Duration::milliseconds((s * 1000.0) as i64))
            })
    });
    from_header.or(from_body).map(|d| {
        d.max(Duration::seconds(1))
            .min(Duration::seconds(MAX_RETRY_AFTER_SECS))
    })
}

/// Classifies a receiver's answer.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> Answer {
    let said = snippet(body);
    let answer = if said.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {said}")
    };
    match status {
        200..=299 => Answer::Delivered(answer),
        300..=399 => {
            let to = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url::Url::parse(l).ok())
                .map(|u| format!(" to {}", crate::config::channels::shown(&u)))
                .unwrap_or_default();
            Answer::Refused {
                answer: format!(
                    "HTTP {status}: redirect{to} refused (Herald follows no redirects: set the channel's url to the final address)"
                ),
                gone: false,
            }
        }
        408 | 425 | 429 | 500..=599 => Answer::Retry {
            after: retry_after(headers, body),
            answer,
        },
        410 => Answer::Refused { answer, gone: true },
        _ => Answer::Refused {
            answer,
            gone: false,
        },
    }
}

/// What a channel notification is about, loaded for one delivery.
pub enum Subject {
    /// New releases of one project, newest first.
    Releases(Vec<(ReleaseRow, ReleaseView)>),
    /// An operator alert with the report as queued.
    Alert(AlertKind, AlertReport),
    /// A test notification sent at this time.
    Test(DateTime<Utc>),
}

/// Loads what a delivery is about; an error dead-letters it.
async fn subject(room: &Mailroom, row: &OutboxRow) -> anyhow::Result<Result<Subject, String>> {
    let notice = match Notice::from_stored(&row.kind, &row.payload) {
        Ok(notice) => notice,
        Err(err) => return Ok(Err(err.to_string())),
    };
    match notice {
        Notice::Release(ids) => {
            let mut releases = Vec::new();
            for id in ids.release_ids {
                let Some(release) = room.store.release(id).await? else {
                    return Ok(Err(format!("release {id} is no longer recorded")));
                };
                if let Some(reason) = &release.withdrawn_reason {
                    return Ok(Err(format!(
                        "{} {} was withdrawn: {reason}",
                        release.project, release.version
                    )));
                }
                let view = content::release_view(&release, room.config.project(&release.project));
                releases.push((release, view));
            }
            if releases.is_empty() {
                return Ok(Err("payload without release_ids".into()));
            }
            let mut views: Vec<ReleaseView> = releases.iter().map(|(_, v)| v.clone()).collect();
            content::supersede(&mut views);
            for ((_, view), marked) in releases.iter_mut().zip(views) {
                *view = marked;
            }
            Ok(Ok(Subject::Releases(releases)))
        }
        Notice::Alert(kind, report) => Ok(Ok(Subject::Alert(kind, report))),
        Notice::Test(note) => {
            let at = DateTime::parse_from_rfc3339(&note.sent_at)
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or(row.created_at);
            Ok(Ok(Subject::Test(at)))
        }
    }
}

/// Renders and shapes the request of one delivery.
pub fn prepare(
    room: &Mailroom,
    channel: &Channel,
    row: &OutboxRow,
    subject: &Subject,
) -> Result<shapes::Outgoing, String> {
    let templates = &room.notifier.templates;
    let kind = channel.kind.as_str();
    let text = match subject {
        Subject::Releases(releases) => {
            let views: Vec<ReleaseView> = releases.iter().map(|(_, v)| v.clone()).collect();
            let ctx = ChannelReleases {
                channel: channel.name.clone(),
                release: views.first().cloned().ok_or("no release")?,
                releases: views,
            };
            templates.render_channel(kind, "release", &ctx)
        }
        Subject::Alert(alert, report) => templates.render_channel(
            kind,
            alert.as_str(),
            &ChannelAlert {
                channel: channel.name.clone(),
                alert: AlertMail::new(
                    report,
                    content::Footer {
                        reason: format!(
                            "This channel ({}) receives Herald's operator alerts for the inventory configured in HERALD_CHANNELS.",
                            channel.name
                        ),
                        unsubscribe_url: room.notifier.base_url.to_string(),
                        site_url: room.notifier.base_url.to_string(),
                    },
                ),
            },
        ),
        Subject::Test(at) => templates.render_channel(
            kind,
            "test",
            &ChannelTest {
                channel: channel.name.clone(),
                sent_at: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                base_url: room.notifier.base_url.to_string(),
            },
        ),
    }
    .map_err(|e| e.to_string())?;
    shapes::outgoing(channel, row, subject, &text, room.clock.now())
}

/// Runs the channel workers of one dispatch until nothing is due.
pub(super) async fn work(
    room: &Mailroom,
    opts: &DispatchOptions,
    shared: &Shared,
) -> anyhow::Result<()> {
    let channels = &room.config.channels;
    if channels.is_empty() {
        return Ok(());
    }
    let Some(client) = room.notifier.channels.as_ref() else {
        return Ok(());
    };
    let names: Vec<String> = channels.iter().map(|c| c.name.clone()).collect();
    let workers = (0..channels.len().clamp(1, MAX_WORKERS))
        .map(|index| worker(room, client, opts, shared, &names, index));
    for outcome in futures::future::join_all(workers).await {
        outcome?;
    }
    Ok(())
}

async fn worker(
    room: &Mailroom,
    client: &ChannelClient,
    opts: &DispatchOptions,
    shared: &Shared,
    names: &[String],
    index: usize,
) -> anyhow::Result<()> {
    let claimer = format!("{}:c{index}", shared.claimer);
    let mut started = false;
    loop {
        if started && stopping(opts) {
            return Ok(());
        }
        let now = room.clock.now();
        let rows = room
            .store
            .claim_due_channels(
                &claimer,
                now,
                CLAIM_PER_WORKER,
                now + Duration::seconds(room.notifier.claim_secs),
                opts.only,
                names,
            )
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        for (i, row) in rows.iter().enumerate() {
            if started && stopping(opts) {
                for untried in &rows[i..] {
                    room.store.unclaim(untried.id, room.clock.now()).await?;
                }
                return Ok(());
            }
            started = true;
            deliver(room, client, opts, shared, row).await?;
        }
    }
}

/// Attempts one delivery and records the answer.
async fn deliver(
    room: &Mailroom,
    client: &ChannelClient,
    opts: &DispatchOptions,
    shared: &Shared,
    row: &OutboxRow,
) -> anyhow::Result<()> {
    let name = row.channel.as_deref().unwrap_or(&row.recipient);
    let Some(channel) = room.config.channel(name) else {
        room.store.unclaim(row.id, room.clock.now()).await?;
        return Ok(());
    };
    // A channel a receiver said is gone gets no request, except the operator's test.
    if row.kind != "test" {
        let blocked = blocked_until(shared, name);
        if let Some(until) = blocked.filter(|until| *until > room.clock.now()) {
            room.store.defer(row.id, until, room.clock.now()).await?;
            return Ok(());
        }
        if let Some(disabled) = room.store.disabled_channels().await?.get(name) {
            let why = format!(
                "not sent: channel {name} is disabled since {} ({}); `herald send-test {name}` enables it again",
                disabled.since.format("%Y-%m-%d %H:%M UTC"),
                disabled.reason
            );
            return record(room, opts, shared, row, channel, Err(why)).await;
        }
    }
    let outcome = match subject(room, row).await? {
        Ok(subject) => match prepare(room, channel, row, &subject) {
            Ok(request) => Ok(client.send(request).await),
            Err(why) => Err(format!("not sent: {why}")),
        },
        Err(why) => Err(format!("not sent: {why}")),
    };
    record(room, opts, shared, row, channel, outcome).await
}

fn blocked_until(shared: &Shared, channel: &str) -> Option<DateTime<Utc>> {
    shared
        .blocked
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(channel)
        .copied()
}

/// Holds a channel's other deliveries of this dispatch until `until` (the receiver asked).
fn block(shared: &Shared, channel: &str, until: DateTime<Utc>) {
    shared
        .blocked
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(channel.to_string(), until);
}

/// Records one receiver answer right after it arrived.
async fn record(
    room: &Mailroom,
    opts: &DispatchOptions,
    shared: &Shared,
    row: &OutboxRow,
    channel: &Channel,
    outcome: Result<Answer, String>,
) -> anyhow::Result<()> {
    let now = room.clock.now();
    let name = channel.name.as_str();
    match outcome {
        Err(why) => {
            tracing::warn!(outbox_id = row.id, channel = name, "{why}");
            room.store.mark_dead(row.id, &why, now).await?;
            shared.tally(|r| {
                r.channels.dead += 1;
                r.channels.last_error = Some(why);
            });
        }
        Ok(Answer::Delivered(answer)) => {
            let accepted = shared
                .accepted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            if opts.crash_after_accepting == Some(accepted) {
                anyhow::bail!(
                    "simulated crash after channel {name} accepted delivery {}",
                    row.id
                );
            }
            room.store.mark_sent(row.id, &answer, now).await?;
            if row.kind == "test" {
                room.store.enable_channel(name, now).await?;
            }
            shared.tally(|r| r.channels.sent += 1);
        }
        Ok(Answer::Refused { answer, gone }) => {
            tracing::warn!(outbox_id = row.id, channel = name, "refused: {answer}");
            room.store.mark_dead(row.id, &answer, now).await?;
            if gone {
                tracing::error!(
                    channel = name,
                    "channel disabled: the receiver answered 410 Gone; fix its url, then run `herald send-test {name}`"
                );
                room.store.disable_channel(name, &answer, now).await?;
            }
            shared.tally(|r| {
                r.channels.dead += 1;
                r.channels.last_error = Some(answer);
            });
        }
        Ok(Answer::Retry { answer, after }) => {
            if row.attempts + 1 >= MAX_ATTEMPTS {
                let why = format!("gave up after {MAX_ATTEMPTS} attempts: {answer}");
                tracing::warn!(outbox_id = row.id, channel = name, "{why}");
                room.store.mark_dead(row.id, &why, now).await?;
                shared.tally(|r| r.channels.dead += 1);
            } else {
                let next = now + after.unwrap_or_else(|| retry_delay(row.attempts));
                if after.is_some() {
                    block(shared, name, next);
                }
                tracing::info!(outbox_id = row.id, channel = name, %next, "will retry: {answer}");
                room.store.mark_retry(row.id, &answer, next, now).await?;
                shared.tally(|r| r.channels.retrying += 1);
            }
            shared.tally(|r| r.channels.last_error = Some(answer));
        }
    }
    Ok(())
}

/// The headers every channel request carries.
pub fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn answers_are_classified() {
        assert!(matches!(
            classify(200, &HeaderMap::new(), b"{\"event_id\":\"$1\"}"),
            Answer::Delivered(a) if a.contains("event_id")
        ));
        assert_eq!(
            classify(429, &headers(&[("retry-after", "7")]), b""),
            Answer::Retry {
                answer: "HTTP 429".into(),
                after: Some(Duration::seconds(7))
            }
        );
        assert!(matches!(
            classify(429, &HeaderMap::new(), br#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":2500}"#),
            Answer::Retry { after: Some(d), .. } if d == Duration::milliseconds(2500)
        ));
        assert!(matches!(
            classify(429, &HeaderMap::new(), br#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#),
            Answer::Retry { after: Some(d), .. } if d == Duration::milliseconds(1500)
        ));
        assert!(matches!(
            classify(503, &HeaderMap::new(), b""),
            Answer::Retry { after: None, .. }
        ));
        assert!(matches!(
            classify(404, &HeaderMap::new(), b"nope"),
            Answer::Refused { gone: false, .. }
        ));
        assert!(matches!(
            classify(410, &HeaderMap::new(), b""),
            Answer::Refused { gone: true, .. }
        ));
        let Answer::Refused { answer, .. } = classify(
            302,
            &headers(&[("location", "https://elsewhere.example.org/hooks/SECRET")]),
            b"",
        ) else {
            panic!("a redirect is refused");
        };
        assert!(answer.contains("https://elsewhere.example.org"), "{answer}");
        assert!(!answer.contains("SECRET"), "{answer}");
    }

    #[test]
    fn delivery_ids_are_stable_and_distinct() {
        let a = delivery_id("ops", "release:pretalx:2026.2.1");
        assert_eq!(a, delivery_id("ops", "release:pretalx:2026.2.1"));
        assert_ne!(a, delivery_id("room", "release:pretalx:2026.2.1"));
        assert!(a.starts_with("msg_") && a.len() == 36, "{a}");
    }
}
