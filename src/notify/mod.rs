//! Notifications: the outbox dispatcher, templates, SMTP delivery and the channels.
//!
//! Messages are written to the outbox in the transaction that decided them (see `check`), as
//! a typed [`outbox::Mail`] or [`outbox::Notice`] through [`outbox::queue_mail`] and
//! [`outbox::queue_notice`]; [`compose`] reads a mail's payload back and renders it.
//! [`dispatch`] queues the digests whose period ended, then claims due messages, renders
//! them, sends them over connections it keeps open and records each server answer: the
//! answers of all connections that arrive together are recorded in one transaction, and a
//! connection's next message is not accepted before its previous answer is recorded. A
//! transient failure (connection refused or dropped, 4xx) is retried with exponential backoff
//! up to [`MAX_ATTEMPTS`], a permanent one (5xx) is dead-lettered with the server's answer. A
//! crash between the server's acceptance and that record resends at most one message per
//! connection; nothing is lost.
//!
//! The same dispatch runs the channel workers of [`channels`] beside the SMTP workers: they
//! claim the channel deliveries of the same outbox and share the retry rules.
//!
//! Owns: everything SMTP, and running both kinds of worker. Does not own: who gets what
//! (`decide`) or how a channel's request looks (`channels`).

pub mod channels;
pub mod compose;
pub mod content;
pub mod mail;
pub mod outbox;
pub mod smtp;
pub mod templates;

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use lettre::Message;
use lettre::message::Mailbox;
use serde::Serialize;
use url::Url;

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::model::{mask_email, mask_emails_in};
use crate::store::{Answer, DueDigest, OutboxRow, ReleaseRow, Store};
use crate::tokens::Signer;
use compose::compose;
use mail::{Mailer, SendError};
use templates::Templates;

/// Attempts before a transiently failing message is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 10;
/// Delay before the first retry; it doubles with each attempt.
pub const RETRY_BASE_SECS: i64 = 60;
/// Longest delay between two attempts.
pub const RETRY_MAX_SECS: i64 = 6 * 3600;
/// How long a dispatcher may hold a claimed message before another may take it, by default
/// (`HERALD_CLAIM_SECONDS`).
pub const CLAIM_SECS: i64 = 600;
/// Messages claimed at once per connection: a dispatcher claims only what it is about to send.
const CLAIM_PER_CONNECTION: i64 = 2;

/// What the dispatcher works with: the database, the relay with its templates and signer,
/// the clock, and the validated settings (projects, channels, limits). The app hands one
/// out (`From<&App>`); nothing in `notify` depends on the whole app.
#[derive(Debug, Clone)]
pub struct Mailroom {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The database.
    pub store: Store,
    /// Templates, relay and signer.
    pub notifier: Arc<Notifier>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
}

/// Everything the dispatcher needs, built once by `App::build`.
#[derive(Debug)]
pub struct Notifier {
    /// Compiled templates.
    pub templates: Templates,
    /// The relay, when configured.
    pub mailer: Option<Mailer>,
    /// Token signer.
    pub signer: Signer,
    /// Sender.
    pub from: Mailbox,
    /// Public base URL (links in mails).
    pub base_url: Url,
    /// Messages sent at once.
    pub connections: usize,
    /// How long claimed messages stay with this dispatcher before another may take them.
    pub claim_secs: i64,
    /// The HTTP client of channel deliveries, when channels are configured.
    pub channels: Option<channels::ChannelClient>,
}

/// What a dispatch did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DispatchReport {
    /// Accepted by the relay.
    pub sent: usize,
    /// Failed transiently; will be retried.
    pub retrying: usize,
    /// Dead-lettered.
    pub dead: usize,
    /// Digests queued because their period ended.
    pub digests_queued: usize,
    /// Messages still waiting (queued or retrying) afterwards.
    pub waiting: i64,
    /// The relay (no credentials); `None` when no relay is configured.
    pub relay: Option<String>,
    /// The last failure, for the summary.
    pub last_error: Option<String>,
    /// Channel deliveries (webhook, Matrix, Slack, Discord, ntfy).
    pub channels: ChannelsReport,
}

/// What a dispatch did on the channels.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelsReport {
    /// Accepted by the receiver.
    pub sent: usize,
    /// Failed transiently; will be retried.
    pub retrying: usize,
    /// Dead-lettered.
    pub dead: usize,
    /// Deliveries still waiting (queued or retrying) afterwards.
    pub waiting: i64,
    /// The last failure, for the summary.
    pub last_error: Option<String>,
}

/// Knobs for a dispatch.
#[derive(Debug, Clone, Default)]
pub struct DispatchOptions {
    /// Only this outbox message.
    pub only: Option<i64>,
    /// Fault injection for crash tests: stop as a crash would, after the relay accepted this
    /// many messages and before recording the last acceptance.
    pub crash_after_accepting: Option<usize>,
    /// Stop after the message in flight when this turns true (shutdown); claimed messages not
    /// yet tried are given back at once.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

/// The delay before attempt `attempts + 1`.
pub fn retry_delay(attempts: i64) -> Duration {
    let exp = attempts.clamp(0, 20) as u32;
    Duration::seconds((RETRY_BASE_SECS.saturating_mul(1_i64 << exp)).min(RETRY_MAX_SECS))
}

impl Notifier {
    /// The signed one-click unsubscribe link of a subscriber.
    pub fn unsubscribe_url(&self, subscriber_id: i64) -> String {
        let token = self.signer.sign("unsubscribe", subscriber_id);
        self.base_url
            .join(&format!("unsubscribe/{token}"))
            .map(|u| u.to_string())
            .unwrap_or_else(|_| format!("{}unsubscribe/{token}", self.base_url))
    }

    /// A stable `Message-ID`.
    pub fn message_id(&self, recipient: &str, subject_key: &str) -> String {
        mail::message_id(recipient, subject_key, &self.from)
    }
}

/// Data the batch's messages refer to, loaded before sending.
#[derive(Default)]
struct Batch {
    releases: HashMap<i64, ReleaseRow>,
    projects_of: HashMap<i64, Vec<String>>,
}

/// Queues every digest whose period has ended, each in a transaction of its own.
pub async fn queue_due_digests(
    store: &Store,
    from: &Mailbox,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let due: Vec<DueDigest> = store.due_digests(now).await?;
    for digest in &due {
        let letter = outbox::Letter::digest(digest);
        let mut tx = store.begin().await?;
        outbox::queue_mail(&mut tx, from, &letter, now).await?;
        crate::store::mark_digest_queued(&mut tx, digest, &letter.subject_key).await?;
        tx.commit().await?;
    }
    Ok(due.len())
}

/// Queues due digests and sends every due message: one worker per connection
/// (`HERALD_SMTP_CONNECTIONS`), each sending a couple of messages at a time over a connection
/// it keeps open (replacing it when it breaks), and one `Recorder` that claims those
/// messages and records their answers for all of them.
pub async fn dispatch(
    room: impl Into<Mailroom>,
    opts: &DispatchOptions,
) -> anyhow::Result<DispatchReport> {
    let room = &room.into();
    let now = room.clock.now();
    let mut report = DispatchReport {
        digests_queued: queue_due_digests(&room.store, &room.notifier.from, now)
            .await
            .context("cannot queue due digests")?,
        ..DispatchReport::default()
    };
    report.relay = room.notifier.mailer.as_ref().map(|m| m.relay().to_string());
    let shared = Shared {
        // `host:pid:nonce`: another dispatcher on this host takes the claims over at once
        // when this process dies (see `Store::claim_due`).
        claimer: format!(
            "{}:{}:{}",
            crate::store::host_name(),
            std::process::id(),
            crate::tokens::random_token()
        ),
        accepted: std::sync::atomic::AtomicUsize::new(0),
        report: std::sync::Mutex::new(report),
        blocked: std::sync::Mutex::new(HashMap::new()),
        releases: std::sync::Mutex::new(HashMap::new()),
    };
    let (queue, answers) = tokio::sync::mpsc::unbounded_channel();
    let recorder = Recorder { queue };
    let shared_ref = &shared;
    // Mail is claimed under one name for all connections (see `Recorder`).
    let mail_claimer = format!("{}:mail", shared.claimer);
    let mail = async move {
        let Some(mailer) = room.notifier.mailer.as_ref() else {
            return Ok(());
        };
        let workers = (0..room.notifier.connections.max(1))
            .map(|_| worker(room, mailer, opts, shared_ref, &recorder));
        let outcomes = futures::future::join_all(workers).await;
        // The recorder ends once it has recorded every answer handed to it.
        drop(recorder);
        outcomes.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        anyhow::Ok(())
    };
    let (mail, (), channels) = futures::future::join3(
        mail,
        record_answers(room, opts, &mail_claimer, answers),
        channels::work(room, opts, &shared),
    )
    .await;
    mail?;
    channels?;
    let mut report = shared
        .report
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (report.waiting, report.channels.waiting) = waiting(room).await?;
    Ok(report)
}

/// What the workers of one dispatch share.
struct Shared {
    claimer: String,
    accepted: std::sync::atomic::AtomicUsize,
    report: std::sync::Mutex<DispatchReport>,
    /// Channels that asked to be left alone (429) until then, in this dispatch.
    blocked: std::sync::Mutex<HashMap<String, DateTime<Utc>>>,
    /// Releases loaded for earlier messages of this dispatch, and when.
    releases: std::sync::Mutex<ReleaseCache>,
}

/// Releases by id (`None`: no longer recorded), with the moment each was loaded.
type ReleaseCache = HashMap<i64, (std::time::Instant, Option<ReleaseRow>)>;

impl Shared {
    fn tally(&self, count: impl FnOnce(&mut DispatchReport)) {
        let mut report = self
            .report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        count(&mut report);
    }
}

fn stopping(opts: &DispatchOptions) -> bool {
    opts.stop.as_ref().is_some_and(|s| *s.borrow())
}

/// The one writer of a dispatch's mail workers: it records the relay answers of every
/// connection and claims their next messages, several of each per transaction (what arrives
/// while one transaction runs goes into the next), so the workers never wait for SQLite's
/// write lock against each other (SQLite's busy handler sleeps milliseconds at a time). A
/// worker hands its answer over and goes on with its next message, but waits for that record
/// before the relay can accept the next one (before its final dot), so each connection has at
/// most one accepted message not yet recorded, as when every answer had its own transaction.
struct Recorder {
    queue: tokio::sync::mpsc::UnboundedSender<Request>,
}

/// What a worker asks of the [`Recorder`].
enum Request {
    /// Record this answer.
    Answer(Answer, tokio::sync::oneshot::Sender<Recorded>),
    /// Claim up to this many due messages.
    Claim(
        i64,
        tokio::sync::oneshot::Sender<Result<Vec<OutboxRow>, String>>,
    ),
}

/// Whether an answer was recorded (the store's error otherwise).
type Recorded = Result<(), String>;

/// An answer handed to the [`Recorder`] and not yet known to be recorded.
type Pending = Option<tokio::sync::oneshot::Receiver<Recorded>>;

/// Most requests served in one transaction.
const REQUESTS_PER_TRANSACTION: usize = 512;

impl Recorder {
    fn submit(&self, answer: Answer) -> anyhow::Result<tokio::sync::oneshot::Receiver<Recorded>> {
        let (done, recorded) = tokio::sync::oneshot::channel();
        self.queue
            .send(Request::Answer(answer, done))
            .map_err(|_| anyhow::anyhow!("the answer recorder has stopped"))?;
        Ok(recorded)
    }

    /// Asks for up to `limit` due messages, claimed in the recorder's next transaction.
    fn ask(&self, limit: i64) -> anyhow::Result<Claiming> {
        let (done, claimed) = tokio::sync::oneshot::channel();
        self.queue
            .send(Request::Claim(limit, done))
            .map_err(|_| anyhow::anyhow!("the answer recorder has stopped"))?;
        Ok(claimed)
    }
}

/// A claim asked of the [`Recorder`] and not yet received.
type Claiming = tokio::sync::oneshot::Receiver<Result<Vec<OutboxRow>, String>>;

/// The messages of a claim, once the recorder made it.
async fn claimed(claiming: Claiming) -> anyhow::Result<Vec<OutboxRow>> {
    claiming
        .await
        .map_err(|_| anyhow::anyhow!("the answer recorder has stopped"))?
        .map_err(|err| anyhow::anyhow!("cannot claim due mail: {err}"))
}

/// The recorder's loop: until every worker is done, serve what is waiting in one transaction
/// and tell each worker.
async fn record_answers(
    room: &Mailroom,
    opts: &DispatchOptions,
    claimer: &str,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<Request>,
) {
    let mut answers = Vec::new();
    let mut recorded = Vec::new();
    let mut claims = Vec::new();
    // Its connection is taken at the first request: a dispatch with no mail to send holds none.
    let mut book = room.store.answer_book();
    while let Some(first) = requests.recv().await {
        let mut next = Some(first);
        let mut served = 0;
        while let Some(request) = next.take() {
            match request {
                Request::Answer(answer, done) => {
                    answers.push(answer);
                    recorded.push(done);
                }
                Request::Claim(limit, done) => claims.push((limit, done)),
            }
            served += 1;
            if served < REQUESTS_PER_TRANSACTION {
                next = requests.try_recv().ok();
            }
        }
        let now = room.clock.now();
        let limit: i64 = claims.iter().map(|(limit, _)| *limit).sum();
        let claim = crate::store::Claim {
            claimer,
            limit,
            until: now + Duration::seconds(room.notifier.claim_secs),
            only: opts.only,
        };
        let outcome = book
            .record(&answers, (limit > 0).then_some(&claim), now)
            .await
            .map_err(|err| err.to_string());
        answers.clear();
        // A worker that stopped (a simulated crash) no longer listens.
        for done in recorded.drain(..) {
            let _ = done.send(outcome.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        match outcome {
            Ok(rows) => {
                let mut rows = rows.into_iter();
                for (limit, done) in claims.drain(..) {
                    let mine: Vec<OutboxRow> = rows.by_ref().take(limit as usize).collect();
                    if let Err(Ok(mine)) = done.send(Ok(mine)) {
                        // Nobody will send these: give them back at once.
                        for row in mine {
                            if let Err(err) = room.store.unclaim(row.id, room.clock.now()).await {
                                tracing::warn!(outbox_id = row.id, "cannot give back: {err}");
                            }
                        }
                    }
                }
            }
            Err(err) => {
                for (_, done) in claims.drain(..) {
                    let _ = done.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Waits until the answer handed over last is recorded.
async fn settle(pending: &mut Pending) -> anyhow::Result<()> {
    if let Some(recorded) = pending.take() {
        recorded
            .await
            .map_err(|_| anyhow::anyhow!("the answer recorder has stopped"))?
            .map_err(|err| anyhow::anyhow!("cannot record the relay's answer: {err}"))?;
    }
    Ok(())
}

/// One connection's worth of sending: claim, send, record, until nothing is due.
async fn worker(
    room: &Mailroom,
    mailer: &Mailer,
    opts: &DispatchOptions,
    shared: &Shared,
    recorder: &Recorder,
) -> anyhow::Result<()> {
    let mut lane = Lane::default();
    let result = work(room, mailer, opts, shared, recorder, &mut lane).await;
    // Every answer handed over is recorded before the worker ends, and what it claimed but
    // did not start is given back (on stop, or after an error) for another dispatch at once.
    let settled = settle(&mut lane.pending).await;
    let given_back = lane.hand.give_back(room).await;
    if let Some(connection) = lane.connection {
        connection.quit().await;
    }
    result.and(settled).and(given_back)
}

/// What one worker holds: its connection, its answer not yet known to be recorded, and its
/// claimed messages.
#[derive(Default)]
struct Lane {
    connection: Option<smtp::SmtpConnection>,
    pending: Pending,
    hand: Hand,
}

/// A worker's claimed messages not yet started, and the claim it asked for while sending them
/// (so that a connection does not wait for a claim between messages).
#[derive(Default)]
struct Hand {
    rows: std::collections::VecDeque<OutboxRow>,
    asked: Option<Claiming>,
}

impl Hand {
    /// The next message, claiming more when the hand is empty; `None` when nothing is due.
    async fn next(
        &mut self,
        room: &Mailroom,
        shared: &Shared,
        recorder: &Recorder,
        batch: &mut Batch,
    ) -> anyhow::Result<Option<OutboxRow>> {
        if self.rows.is_empty() {
            let rows = match self.asked.take() {
                Some(asked) => claimed(asked).await?,
                None => claimed(recorder.ask(CLAIM_PER_CONNECTION)?).await?,
            };
            if rows.is_empty() {
                return Ok(None);
            }
            *batch = load_batch(room, shared, &rows).await?;
            self.rows.extend(rows);
            self.asked = Some(recorder.ask(CLAIM_PER_CONNECTION)?);
        }
        Ok(self.rows.pop_front())
    }

    async fn give_back(&mut self, room: &Mailroom) -> anyhow::Result<()> {
        let mut rows: Vec<OutboxRow> = self.rows.drain(..).collect();
        if let Some(asked) = self.asked.take() {
            // Claimed meanwhile or not at all (the claim failed): either way not started.
            rows.extend(claimed(asked).await.unwrap_or_default());
        }
        for row in rows {
            room.store.unclaim(row.id, room.clock.now()).await?;
        }
        Ok(())
    }
}

async fn work(
    room: &Mailroom,
    mailer: &Mailer,
    opts: &DispatchOptions,
    shared: &Shared,
    recorder: &Recorder,
    lane: &mut Lane,
) -> anyhow::Result<()> {
    // On stop, each connection finishes the message it is on (at most one); the caller gives
    // back what it claimed but did not start.
    let mut started = false;
    let mut batch = Batch::default();
    loop {
        if started && stopping(opts) {
            return Ok(());
        }
        let Some(row) = lane.hand.next(room, shared, recorder, &mut batch).await? else {
            return Ok(());
        };
        started = true;
        let outcome = match compose(&room.notifier, &room.config.projects, &batch, &row) {
            Ok(message) => {
                Ok(deliver(mailer, &mut lane.connection, &message, &mut lane.pending).await?)
            }
            Err(why) => Err(why.to_string()),
        };
        // Usually settled already, before the relay took this message.
        settle(&mut lane.pending).await?;
        let answer = answer(room, opts, shared, &row, outcome)?;
        lane.pending = Some(recorder.submit(answer)?);
    }
}

/// Sends over the worker's connection, opening one when there is none. A connection that
/// was already in use and fails before the relay answered the message (it timed out or
/// closed after its message limit, or answered `421`) is replaced and the message tried once
/// more at once. The previous answer is recorded before this message's final dot.
async fn deliver(
    mailer: &Mailer,
    connection: &mut Option<smtp::SmtpConnection>,
    message: &Message,
    pending: &mut Pending,
) -> anyhow::Result<Result<String, SendError>> {
    let formatted = message.formatted();
    let mut first_try = true;
    loop {
        let conn = match connection {
            Some(conn) if conn.is_usable() => conn,
            _ => match mailer.connect().await {
                Ok(conn) => connection.insert(conn),
                Err(error) => return Ok(Err(error)),
            },
        };
        let reused = conn.sent > 0;
        let sent = match conn.begin(message, &formatted).await {
            Ok(()) => {
                settle(pending).await?;
                conn.finish(&formatted).await
            }
            Err(failure) => Err(failure),
        };
        match sent {
            Ok(answer) => return Ok(Ok(answer)),
            Err(failure) => {
                // That conversation has ended; the next message opens a new one.
                *connection = None;
                if !(failure.connection_lost && reused && first_try) {
                    return Ok(Err(failure.error));
                }
                first_try = false;
            }
        }
    }
}

/// Logs a dead-lettered message: the recipient in full at `debug` only, masked above (also
/// inside the relay's answer).
fn log_dead(row: &OutboxRow, why: &str) {
    tracing::debug!(outbox_id = row.id, recipient = %row.recipient, "{why}");
    tracing::warn!(
        outbox_id = row.id,
        recipient = %mask_email(&row.recipient),
        "{}",
        mask_emails_in(why)
    );
}

/// What to record for one message, counted in the report.
fn answer(
    room: &Mailroom,
    opts: &DispatchOptions,
    shared: &Shared,
    row: &OutboxRow,
    outcome: Result<Result<String, SendError>, String>,
) -> anyhow::Result<Answer> {
    let now = room.clock.now();
    Ok(match outcome {
        Err(why) => {
            tracing::error!(outbox_id = row.id, kind = %row.kind, "cannot compose: {why}");
            let response = format!("not sent: {why}");
            shared.tally(|r| {
                r.dead += 1;
                r.last_error = Some(why);
            });
            Answer::Dead {
                id: row.id,
                response,
            }
        }
        Ok(Ok(response)) => {
            let accepted = shared
                .accepted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            if opts.crash_after_accepting == Some(accepted) {
                anyhow::bail!(
                    "simulated crash after the relay accepted message {}",
                    row.id
                );
            }
            shared.tally(|r| r.sent += 1);
            Answer::Sent {
                id: row.id,
                response,
                scrub: outbox::Mail::scrub_when_sent(&row.kind),
            }
        }
        Ok(Err(SendError::Permanent(answer))) => {
            log_dead(row, &format!("refused: {answer}"));
            shared.tally(|r| {
                r.dead += 1;
                r.last_error = Some(answer.clone());
            });
            Answer::Dead {
                id: row.id,
                response: answer,
            }
        }
        Ok(Err(SendError::Transient(answer))) => {
            let recorded = if row.attempts + 1 >= MAX_ATTEMPTS {
                let why = format!("gave up after {MAX_ATTEMPTS} attempts: {answer}");
                log_dead(row, &why);
                shared.tally(|r| r.dead += 1);
                Answer::Dead {
                    id: row.id,
                    response: why,
                }
            } else {
                let next = now + retry_delay(row.attempts);
                tracing::info!(
                    outbox_id = row.id,
                    %next,
                    "will retry: {}",
                    mask_emails_in(&answer)
                );
                shared.tally(|r| r.retrying += 1);
                Answer::Retry {
                    id: row.id,
                    response: answer.clone(),
                    next,
                }
            };
            shared.tally(|r| r.last_error = Some(answer));
            recorded
        }
    })
}

/// Messages waiting (queued, retrying or being sent): (mail, channel deliveries).
async fn waiting(room: &Mailroom) -> anyhow::Result<(i64, i64)> {
    let counts = room.store.outbox_counts_by_channel().await?;
    let (mut mail, mut channels) = (0, 0);
    for ((channel, status), n) in counts {
        if matches!(status.as_str(), "queued" | "retrying" | "sending") {
            if channel.is_empty() {
                mail += n;
            } else {
                channels += n;
            }
        }
    }
    Ok((mail, channels))
}

/// How long a dispatch reuses a release it loaded for earlier messages (a release withdrawn
/// meanwhile is noticed after at most this long).
const RELEASE_REUSE: std::time::Duration = std::time::Duration::from_secs(1);

async fn load_batch(room: &Mailroom, shared: &Shared, rows: &[OutboxRow]) -> anyhow::Result<Batch> {
    let mut releases = HashMap::new();
    for row in rows {
        for id in outbox::release_ids(row) {
            if releases.contains_key(&id) {
                continue;
            }
            let cached = shared
                .releases
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(&id)
                .filter(|(loaded, _)| loaded.elapsed() < RELEASE_REUSE)
                .map(|(_, release)| release.clone());
            let release = match cached {
                Some(release) => release,
                None => {
                    let release = room.store.release(id).await?;
                    shared
                        .releases
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .insert(id, (std::time::Instant::now(), release.clone()));
                    release
                }
            };
            if let Some(release) = release {
                releases.insert(id, release);
            }
        }
    }
    let mut subscribers: Vec<i64> = rows.iter().filter_map(|row| row.subscriber_id).collect();
    subscribers.sort_unstable();
    subscribers.dedup();
    let projects_of = if subscribers.is_empty() {
        HashMap::new()
    } else {
        room.store.projects_of(&subscribers).await?
    };
    Ok(Batch {
        releases,
        projects_of,
    })
}
