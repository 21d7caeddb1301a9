//! `herald serve`: the scheduler, the mail dispatcher and the web service in one process,
//! until SIGTERM or SIGINT.
//!
//! The scheduler runs a check (with the same database lease as `herald check`, so a cron job
//! and the daemon never overlap) at every scheduled time, once at start when the last
//! scheduled run was missed, and follows each run with operator alerts and delivery. The
//! dispatcher runs continuously, because retries and digests fall due between checks. On a
//! signal the web service stops accepting requests, the in-flight send and check finish, the
//! lease is released and the process exits 0. Under systemd (`Type=notify`) it reports
//! `READY=1` once it answers requests and `STOPPING=1` on the signal.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

use crate::alerts;
use crate::app::{App, Clock};
use crate::check::{self, CheckOptions, CheckOutcome};
use crate::notify::{self, DispatchOptions};
use crate::schedule::Schedule;

/// How often the dispatcher looks for due mail when nothing wakes it.
pub const DISPATCH_EVERY_SECS: u64 = 30;

/// One scheduled run: check, operator alerts, delivery. Errors are logged, never fatal.
pub async fn run_once(app: &App, trigger: &str) -> Option<CheckOutcome> {
    let opts = CheckOptions {
        trigger: trigger.into(),
        ..CheckOptions::default()
    };
    match check::run(app, &opts).await {
        Ok(CheckOutcome::Busy { holder, since }) => {
            tracing::info!(%holder, %since, "a check is already running; skipped this one");
            Some(CheckOutcome::Busy { holder, since })
        }
        Ok(CheckOutcome::Completed(summary)) => {
            if let Err(err) = alerts::process(app).await {
                tracing::error!("operator alerts failed: {err:#}");
            }
            tracing::info!(
                run_id = summary.run_id,
                new = summary.new_releases().count(),
                failed = summary.failed_sources().count(),
                "scheduled check finished"
            );
            Some(CheckOutcome::Completed(summary))
        }
        Err(err) => {
            tracing::error!("scheduled check failed: {err:#}");
            None
        }
    }
}

fn wait_for(clock: &dyn Clock, until: DateTime<Utc>) -> tokio::time::Duration {
    (until - clock.now()).to_std().unwrap_or_default()
}

/// How the scheduler waits for its next time: tokio's timer in the daemon; tests step it.
pub trait Waiter: Send + Sync {
    /// Resolves once `clock` reads `until` or later.
    fn wait_until<'a>(
        &'a self,
        clock: &'a dyn Clock,
        until: DateTime<Utc>,
    ) -> futures::future::BoxFuture<'a, ()>;
}

/// Waits with tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimerWaiter;

impl Waiter for TimerWaiter {
    fn wait_until<'a>(
        &'a self,
        clock: &'a dyn Clock,
        until: DateTime<Utc>,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(tokio::time::sleep(wait_for(clock, until)))
    }
}

/// Runs checks on `schedule` until `shutdown` turns true; `seed` spreads the jitter.
pub async fn scheduler(
    app: App,
    schedule: Schedule,
    seed: u64,
    mut shutdown: watch::Receiver<bool>,
    mail: Arc<Notify>,
    waiter: Arc<dyn Waiter>,
) {
    let last = app
        .store
        .recent_runs(1)
        .await
        .ok()
        .and_then(|r| r.first().map(|run| run.started_at));
    if schedule.missed(last, app.clock.now()) {
        tracing::info!(
            schedule = schedule.expression(),
            "the last scheduled run was missed: running now"
        );
        if run_once(&app, "serve").await.is_some() {
            mail.notify_one();
        }
    }
    loop {
        let Some(next) = schedule.next_run(app.clock.now(), seed) else {
            tracing::error!(
                schedule = schedule.expression(),
                "the schedule never fires again"
            );
            return;
        };
        tracing::info!(%next, "next scheduled check");
        tokio::select! {
            _ = waiter.wait_until(app.clock.as_ref(), next) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        if run_once(&app, "serve").await.is_some() {
            mail.notify_one();
        }
    }
}

/// Sends due mail every [`DISPATCH_EVERY_SECS`] seconds, or at once when woken, until
/// `shutdown`; a message being sent when the signal comes is finished and recorded.
pub async fn dispatcher(app: App, mut shutdown: watch::Receiver<bool>, wake: Arc<Notify>) {
    loop {
        let opts = DispatchOptions {
            stop: Some(shutdown.clone()),
            ..DispatchOptions::default()
        };
        let outcome = notify::dispatch(&app, &opts).await;
        match &outcome {
            Ok(report) if report.sent + report.retrying + report.dead > 0 => {
                tracing::info!(
                    sent = report.sent,
                    retrying = report.retrying,
                    dead = report.dead,
                    "mail dispatched"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::error!("mail dispatch failed: {err:#}"),
        }
        if let Ok(report) = &outcome
            && report.channels.sent + report.channels.retrying + report.channels.dead > 0
        {
            tracing::info!(
                sent = report.channels.sent,
                retrying = report.channels.retrying,
                dead = report.channels.dead,
                "channel deliveries dispatched"
            );
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(tokio::time::Duration::from_secs(DISPATCH_EVERY_SECS)) => {}
            _ = wake.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn notify_service_manager(state: sd_notify::NotifyState<'_>) {
    if let Err(err) = sd_notify::notify(&[state]) {
        tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {err}");
    }
}

/// Runs the daemon on `listener` until `stop` resolves.
pub async fn run(
    app: App,
    schedule: Schedule,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (tx, rx) = watch::channel(false);
    let web = crate::http::Web::new(app.clone());
    let wake = web.mail_wakeup.clone();
    let seed = u64::from(std::process::id());
    let sched = tokio::spawn(scheduler(
        app.clone(),
        schedule,
        seed,
        rx.clone(),
        wake.clone(),
        Arc::new(TimerWaiter),
    ));
    let disp = tokio::spawn(dispatcher(app.clone(), rx.clone(), wake));
    let mut http_rx = rx.clone();
    let http = tokio::spawn(crate::http::serve(listener, web, async move {
        let _ = http_rx.wait_for(|stop| *stop).await;
    }));
    // systemd's Type=notify: ready once the listener is bound and the health check's database
    // answers; without NOTIFY_SOCKET these calls do nothing.
    if let Err(err) = app.store.ping().await {
        tracing::warn!("the database does not answer yet: {err}");
    }
    notify_service_manager(sd_notify::NotifyState::Ready);
    stop.await;
    notify_service_manager(sd_notify::NotifyState::Stopping);
    tracing::info!("stopping: finishing in-flight work");
    let _ = tx.send(true);
    let (a, b, c) = tokio::join!(sched, disp, http);
    a.context("scheduler")?;
    b.context("dispatcher")?;
    c.context("web service")?.context("web service")?;
    Ok(())
}
