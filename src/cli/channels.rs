//! `herald send-test CHANNEL`: one test notification through a configured channel, sent at
//! once through the outbox like any other delivery, with the receiver's answer printed.

use clap::Args;

use crate::app::App;
use crate::notify::outbox::{Post, queue_notice};
use crate::notify::{self, DispatchOptions};

/// Options of `herald send-test`.
#[derive(Debug, Args)]
pub struct SendTestArgs {
    /// The channel's `name` in the HERALD_CHANNELS file.
    channel: String,
}

pub(super) async fn send_test(app: App, args: SendTestArgs) -> anyhow::Result<u8> {
    let Some(channel) = app.config.channel(&args.channel) else {
        let known: Vec<&str> = app
            .config
            .channels
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        anyhow::bail!(
            "no channel is named `{}` ({})",
            args.channel,
            if known.is_empty() {
                "HERALD_CHANNELS names no channel file, or it lists none".to_string()
            } else {
                format!("configured: {}", known.join(", "))
            }
        );
    };
    let now = app.clock.now();
    let post = Post::test(&channel.name, now);
    let mut tx = app.store.begin().await?;
    let queued = queue_notice(&mut tx, &post, now).await?;
    tx.commit().await?;
    let row_id =
        queued.ok_or_else(|| anyhow::anyhow!("a test was already queued this very microsecond"))?;
    notify::dispatch(
        &app,
        &DispatchOptions {
            only: Some(row_id),
            ..DispatchOptions::default()
        },
    )
    .await?;
    let row = app
        .store
        .outbox_message(row_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the test notification disappeared from the outbox"))?;
    let answer = row
        .last_response
        .clone()
        .unwrap_or_else(|| "no answer".into());
    let target = format!(
        "{} channel {} ({})",
        channel.kind.as_str(),
        channel.name,
        channel.shown_url
    );
    if row.status == "sent" {
        println!("Sent a test notification through the {target}. The receiver answered: {answer}");
        Ok(0)
    } else {
        // A test is not worth retrying later: record the failure and stop.
        app.store
            .mark_dead(row_id, &answer, app.clock.now())
            .await?;
        crate::logging::say(
            crate::logging::Level::Error,
            &format!("the test notification through the {target} failed: {answer}"),
            &[],
        );
        Ok(1)
    }
}
