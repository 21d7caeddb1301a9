//! `herald serve`: the daemon.

use anyhow::Context;
use chrono::Duration;

use crate::app::App;
use crate::schedule::Schedule;
use crate::serve;

pub(super) async fn run(app: App) -> anyhow::Result<u8> {
    let schedule = Schedule::in_zone(
        &app.config.schedule,
        Duration::seconds(i64::from(app.config.schedule_jitter)),
        app.config.timezone,
    )?;
    let listen = app.config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("HERALD_LISTEN: cannot listen on {listen}"))?;
    tracing::info!(%listen, schedule = schedule.expression(), "herald serve started");
    if app.notifier.mailer.is_none() {
        tracing::warn!("no SMTP relay configured (HERALD_SMTP_URL): mail stays queued");
    }
    serve::run(app, schedule, listener, serve::signal()).await?;
    tracing::info!("herald serve stopped");
    Ok(0)
}
