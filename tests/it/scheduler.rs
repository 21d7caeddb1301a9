//! The scheduler of `herald serve`, driven step by step: each time it waits for its next
//! scheduled time, the test moves the clock there and lets it go. (Paused tokio time does not
//! fit here: SQLite answers from its own thread, so a paused runtime looks idle and fires
//! the pool's timeouts.) It runs at the cron times, skips a time while another process holds
//! the check lease, and catches up once after a missed run. Sources point at a closed port:
//! these tests are about when runs happen, not what they find.

use crate::common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::{World, at};
use futures::future::BoxFuture;
use herald::app::{App, Clock, ManualClock};
use herald::schedule::Schedule;
use herald::serve::{Waiter, scheduler};
use tokio::sync::{Mutex, mpsc};

/// Reports each wait to the test and resumes when told to.
struct Stepper {
    asked: mpsc::UnboundedSender<DateTime<Utc>>,
    go: Mutex<mpsc::UnboundedReceiver<()>>,
}

impl Waiter for Stepper {
    fn wait_until<'a>(&'a self, _clock: &'a dyn Clock, until: DateTime<Utc>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.asked.send(until);
            let _ = self.go.lock().await.recv().await;
        })
    }
}

async fn app(world: &World, start: &str) -> (App, Arc<ManualClock>) {
    let projects = world
        .sandbox
        .projects("[[project]]\nname = \"demo\"\npypi = \"demo\"\n");
    world
        .app()
        .upstream("http://127.0.0.1:9")
        .projects(&projects)
        .at(start)
        .build()
        .await
}

async fn run_starts(app: &App) -> Vec<DateTime<Utc>> {
    let mut runs: Vec<DateTime<Utc>> = app
        .store
        .recent_runs(100)
        .await
        .expect("runs")
        .iter()
        .map(|r| r.started_at)
        .collect();
    runs.sort();
    runs
}

/// Lets the scheduler through `steps` scheduled times, then stops it; returns the times it
/// waited for.
async fn drive(app: &App, clock: &ManualClock, schedule: &str, steps: usize) -> Vec<DateTime<Utc>> {
    let (asked_tx, mut asked) = mpsc::unbounded_channel();
    let (go, go_rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(scheduler(
        app.clone(),
        Schedule::new(schedule, chrono::Duration::zero()).expect("schedule"),
        0,
        stop_rx,
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(Stepper {
            asked: asked_tx,
            go: Mutex::new(go_rx),
        }),
    ));
    let mut waited = Vec::new();
    for _ in 0..steps {
        let until = asked.recv().await.expect("the scheduler waits");
        waited.push(until);
        clock.set(until);
        go.send(()).expect("go");
    }
    // The next wait: stop there.
    waited.push(asked.recv().await.expect("the scheduler waits again"));
    stop.send(true).expect("stop");
    task.await.expect("scheduler ends");
    waited
}

#[tokio::test]
async fn runs_happen_at_the_cron_times() {
    let world = World::new().await;
    let (app, clock) = app(&world, "2026-11-22T05:59:30Z").await;
    // The 05:00 run happened: nothing is owed at start.
    app.store
        .start_run("check", at("2026-11-22T05:00:00Z"))
        .await
        .expect("run");
    let waited = drive(&app, &clock, "0 * * * *", 3).await;
    assert_eq!(
        waited,
        [
            at("2026-11-22T06:00:00Z"),
            at("2026-11-22T07:00:00Z"),
            at("2026-11-22T08:00:00Z"),
            at("2026-11-22T09:00:00Z")
        ]
    );
    assert_eq!(
        run_starts(&app).await,
        [
            at("2026-11-22T05:00:00Z"),
            at("2026-11-22T06:00:00Z"),
            at("2026-11-22T07:00:00Z"),
            at("2026-11-22T08:00:00Z")
        ]
    );
}

#[tokio::test]
async fn a_check_held_by_another_process_is_not_overlapped() {
    let world = World::new().await;
    let (app, clock) = app(&world, "2026-11-22T05:59:30Z").await;
    app.store
        .start_run("check", at("2026-11-22T05:00:00Z"))
        .await
        .expect("run");
    // `herald check` in another process (on another host) holds the lease until 06:30.
    let held = app
        .store
        .acquire_lease(
            "otherhost:4242:x",
            "otherhost",
            at("2026-11-22T05:30:00Z"),
            chrono::Duration::minutes(60),
        )
        .await
        .expect("lease");
    assert_eq!(held, herald::store::LeaseOutcome::Acquired);
    drive(&app, &clock, "0 * * * *", 2).await;
    assert_eq!(
        run_starts(&app).await,
        [at("2026-11-22T05:00:00Z"), at("2026-11-22T07:00:00Z")],
        "06:00 was skipped while the other check held the lease; 07:00 ran"
    );
}

#[tokio::test]
async fn a_missed_run_is_caught_up_once() {
    let world = World::new().await;
    let (app, clock) = app(&world, "2026-11-22T09:30:00Z").await;
    // The service was down at 06:00: the last run is from yesterday.
    app.store
        .start_run("serve", at("2026-11-21T06:00:00Z"))
        .await
        .expect("run");
    let waited = drive(&app, &clock, "0 6 * * *", 0).await;
    assert_eq!(
        waited,
        [at("2026-11-23T06:00:00Z")],
        "after the catch-up, the next run is tomorrow"
    );
    assert_eq!(
        run_starts(&app).await,
        [at("2026-11-21T06:00:00Z"), at("2026-11-22T09:30:00Z")],
        "one catch-up run at start"
    );
}
