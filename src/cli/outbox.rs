//! `herald outbox` (mail and channel deliveries, and disabled channels) and
//! `herald send-test-email`.

use clap::Args;

use crate::app::App;
use crate::model::EmailAddress;
use crate::notify::outbox::{Letter, queue_mail};
use crate::notify::{self, DispatchOptions};

/// Options of `herald outbox`.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// Include messages already sent.
    #[arg(long)]
    all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Options of `herald send-test-email`.
#[derive(Debug, Args)]
pub struct TestEmailArgs {
    /// Where to send it.
    address: String,
}

pub(super) async fn list(app: App, args: OutboxArgs) -> anyhow::Result<u8> {
    let states: &[&str] = if args.all {
        &[]
    } else {
        &["queued", "sending", "retrying", "dead"]
    };
    let rows = app.store.outbox(states, 10_000).await?;
    let disabled = app.store.disabled_channels().await?;
    if args.json {
        // Disabled channels are named on stderr: stdout stays the array it always was.
        for (name, d) in &disabled {
            eprintln!(
                "channel {name} is disabled since {}: {}",
                d.since.to_rfc3339(),
                d.reason
            );
        }
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    let counts = app.store.outbox_counts().await?;
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!(
        "Outbox: {}.",
        if summary.is_empty() {
            "empty".to_string()
        } else {
            summary.join(", ")
        }
    );
    for (name, d) in &disabled {
        println!(
            "Channel {name} is DISABLED since {} (the receiver answered: {}); its deliveries are dead-lettered until `herald send-test {name}` succeeds.",
            d.since.format("%Y-%m-%d %H:%M UTC"),
            d.reason
        );
    }
    if rows.is_empty() {
        return Ok(0);
    }
    println!(
        "{:>6}  {:8}  {:>3}  {:20}  {:30}  {:34}  LAST ANSWER",
        "ID", "STATUS", "TRY", "NEXT ATTEMPT", "RECIPIENT", "SUBJECT"
    );
    for r in rows {
        let next = if matches!(r.status.as_str(), "queued" | "retrying") {
            r.next_attempt_at.format("%Y-%m-%d %H:%M UTC").to_string()
        } else {
            "-".into()
        };
        println!(
            "{:>6}  {:8}  {:>3}  {:20}  {:30}  {:34}  {}",
            r.id,
            r.status,
            r.attempts,
            next,
            match &r.channel {
                Some(channel) => format!("#{channel}"),
                None => r.recipient.clone(),
            },
            r.subject_key,
            r.last_response.as_deref().unwrap_or("-")
        );
    }
    Ok(0)
}

pub(super) async fn send_test(app: App, args: TestEmailArgs) -> anyhow::Result<u8> {
    let to: EmailAddress = args.address.parse().map_err(anyhow::Error::msg)?;
    let Some(mailer) = &app.notifier.mailer else {
        anyhow::bail!("no SMTP relay is configured: set HERALD_SMTP_URL (see .env.example)");
    };
    let now = app.clock.now();
    let letter = Letter::test(to.as_str(), now);
    let mut tx = app.store.begin().await?;
    let queued = queue_mail(&mut tx, &app.notifier.from, &letter, now).await?;
    tx.commit().await?;
    let id = queued.ok_or_else(|| {
        anyhow::anyhow!("a test message was already queued this very microsecond")
    })?;
    notify::dispatch(
        &app,
        &DispatchOptions {
            only: Some(id),
            ..DispatchOptions::default()
        },
    )
    .await?;
    let row = app
        .store
        .outbox_message(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the test message disappeared from the outbox"))?;
    let answer = row
        .last_response
        .clone()
        .unwrap_or_else(|| "no answer".into());
    if row.status == "sent" {
        println!(
            "Sent a test message to {to} through {}. The relay answered: {answer}",
            mailer.relay()
        );
        Ok(0)
    } else {
        // A test is not worth retrying later: record the failure and stop.
        app.store.mark_dead(id, &answer, app.clock.now()).await?;
        crate::logging::say(
            crate::logging::Level::Error,
            &format!(
                "the test message to {to} was not sent through {}: {answer}",
                mailer.relay()
            ),
            &[],
        );
        Ok(1)
    }
}
