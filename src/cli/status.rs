//! `herald status`: is Herald healthy, and what did the last runs do? A report for people
//! (or `--json` for scripts) and an exit code a monitoring probe can use.

use chrono::{DateTime, Duration, Utc};
use clap::Args;
use serde::Serialize;

use crate::app::App;
use crate::schedule::Schedule;
use crate::store::{OutboxCounts, OutboxHealth, RunRow, SourceState};

/// How many recent runs the report shows.
const RUNS_SHOWN: i64 = 5;

/// A source failing for longer than this needs attention.
const FAILING_TOO_LONG_HOURS: i64 = 24;

/// Options of `herald status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// One recent run.
#[derive(Debug, Serialize)]
struct RunView {
    id: i64,
    trigger: String,
    status: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    duration_ms: Option<u64>,
    new_releases: Vec<String>,
    failed_sources: usize,
}

/// A source that is failing or deferred now.
#[derive(Debug, Serialize)]
struct SourceView {
    project: String,
    source: String,
    state: &'static str,
    since: Option<DateTime<Utc>>,
    consecutive_failures: i64,
    last_error: Option<String>,
    deferred_until: Option<DateTime<Utc>>,
    last_success_at: Option<DateTime<Utc>>,
}

/// The outbox by state.
#[derive(Debug, Serialize)]
struct OutboxView {
    counts: OutboxCounts,
    oldest_waiting_since: Option<DateTime<Utc>>,
    oldest_waiting_age_seconds: Option<i64>,
    dead_since_last_look: i64,
    last_look_at: Option<DateTime<Utc>>,
}

/// The next run `herald serve` would start.
#[derive(Debug, Serialize)]
struct ScheduleView {
    expression: String,
    timezone: String,
    next_run: Option<DateTime<Utc>>,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct Status {
    healthy: bool,
    attention: Vec<String>,
    now: DateTime<Utc>,
    runs: Vec<RunView>,
    sources: Vec<SourceView>,
    outbox: OutboxView,
    schedule: ScheduleView,
}

pub(super) async fn run(app: App, args: StatusArgs) -> anyhow::Result<u8> {
    let now = app.clock.now();
    let runs = app.store.recent_runs(RUNS_SHOWN).await?;
    let states = app.store.source_states().await?;
    let counts = app.store.outbox_counts().await?;
    let health = app.store.outbox_health().await?;
    let schedule = Schedule::in_zone(
        &app.config.schedule,
        Duration::seconds(i64::from(app.config.schedule_jitter)),
        app.config.timezone,
    )?;
    let mut status = assemble(
        now,
        &runs,
        states.into_values().collect(),
        counts,
        health,
        &schedule,
        &app.config.timezone.to_string(),
    );
    // A channel a receiver declared gone stays disabled until the operator acts.
    for (name, disabled) in app.store.disabled_channels().await? {
        status.attention.push(format!(
            "channel {name} is disabled since {} ({}): fix its url, then run `herald send-test {name}`",
            disabled.since.format("%Y-%m-%d %H:%M UTC"),
            disabled.reason
        ));
        status.healthy = false;
    }
    app.store.record_status_look(now).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(if status.healthy { 0 } else { 2 })
}

fn assemble(
    now: DateTime<Utc>,
    runs: &[RunRow],
    states: Vec<SourceState>,
    counts: OutboxCounts,
    health: OutboxHealth,
    schedule: &Schedule,
    timezone: &str,
) -> Status {
    let sources = troubled_sources(now, states);
    let mut attention = Vec::new();
    for s in &sources {
        if let Some(since) = s
            .since
            .filter(|since| now - *since > Duration::hours(FAILING_TOO_LONG_HOURS))
        {
            attention.push(format!(
                "{} {} has been {} since {} ({})",
                s.project,
                s.source,
                s.state,
                since.format("%Y-%m-%d %H:%M UTC"),
                age(now - since)
            ));
        }
    }
    if health.dead_since_last_look > 0 {
        attention.push(format!(
            "{} message{} dead-lettered since {} (see herald outbox)",
            health.dead_since_last_look,
            if health.dead_since_last_look == 1 {
                ""
            } else {
                "s"
            },
            health
                .last_look_at
                .map(|at| format!("the last look at {}", at.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_else(|| "the start".into())
        ));
    }
    Status {
        healthy: attention.is_empty(),
        attention,
        now,
        runs: runs.iter().map(run_view).collect(),
        sources,
        outbox: OutboxView {
            counts,
            oldest_waiting_since: health.oldest_waiting_since,
            oldest_waiting_age_seconds: health
                .oldest_waiting_since
                .map(|at| (now - at).num_seconds().max(0)),
            dead_since_last_look: health.dead_since_last_look,
            last_look_at: health.last_look_at,
        },
        schedule: ScheduleView {
            expression: schedule.expression().to_string(),
            timezone: timezone.to_string(),
            next_run: schedule.next_after(now),
        },
    }
}

/// Sources failing or rate limited now, longest-failing first.
fn troubled_sources(now: DateTime<Utc>, states: Vec<SourceState>) -> Vec<SourceView> {
    let mut out: Vec<SourceView> = states
        .into_iter()
        .filter_map(|s| {
            let deferred = s.deferred_until.filter(|until| *until > now);
            let state = if deferred.is_some() {
                "deferred"
            } else if s.consecutive_failures > 0 {
                "failing"
            } else {
                return None;
            };
            Some(SourceView {
                project: s.project,
                source: s.source,
                state,
                since: s.failing_since.or(s.last_attempt_at),
                consecutive_failures: s.consecutive_failures,
                last_error: s.last_error,
                deferred_until: deferred,
                last_success_at: s.last_success_at,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.since, &a.project, &a.source).cmp(&(b.since, &b.project, &b.source)));
    out
}

fn run_view(run: &RunRow) -> RunView {
    let summary = run.summary.as_ref();
    let projects = summary
        .and_then(|s| s.get("projects"))
        .and_then(|p| p.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let new_releases = projects
        .iter()
        .flat_map(|p| {
            let name = p.get("project").and_then(|n| n.as_str()).unwrap_or("?");
            p.get("new")
                .and_then(|n| n.as_array())
                .into_iter()
                .flatten()
                .filter_map(move |n| {
                    n.get("version")
                        .and_then(|v| v.as_str())
                        .map(|v| format!("{name} {v}"))
                })
        })
        .collect();
    let failed_sources = projects
        .iter()
        .flat_map(|p| {
            p.get("sources")
                .and_then(|s| s.as_array())
                .into_iter()
                .flatten()
        })
        .filter(|s| {
            matches!(
                s.get("status").and_then(|v| v.as_str()),
                Some("failed" | "deferred")
            )
        })
        .count();
    RunView {
        id: run.id,
        trigger: run.trigger.clone(),
        status: run.status.clone(),
        started_at: run.started_at,
        finished_at: run.finished_at,
        duration_ms: summary
            .and_then(|s| s.get("duration_ms"))
            .and_then(|d| d.as_u64()),
        new_releases,
        failed_sources,
    }
}

/// "3 days", "5 hours", "12 minutes", "40 seconds".
fn age(span: Duration) -> String {
    let (n, unit) = if span.num_days() >= 2 {
        (span.num_days(), "day")
    } else if span.num_hours() >= 2 {
        (span.num_hours(), "hour")
    } else if span.num_minutes() >= 2 {
        (span.num_minutes(), "minute")
    } else {
        (span.num_seconds().max(0), "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A time as the status report shows it.
fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn render(status: &Status) -> String {
    let mut out = String::new();
    if status.healthy {
        out.push_str("Healthy.\n");
    } else {
        out.push_str("NEEDS ATTENTION:\n");
        for reason in &status.attention {
            out.push_str(&format!("  - {reason}\n"));
        }
    }
    render_runs(&mut out, status);
    render_sources(&mut out, status);
    render_outbox(&mut out, status);
    out
}

/// The last runs, newest first.
fn render_runs(out: &mut String, status: &Status) {
    out.push_str("\nLast runs:\n");
    if status.runs.is_empty() {
        out.push_str("  none yet (run `herald check`)\n");
    }
    for r in &status.runs {
        let duration = r
            .duration_ms
            .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        let new = if r.new_releases.is_empty() {
            "no new release".to_string()
        } else {
            format!("new: {}", r.new_releases.join(", "))
        };
        let failed = match r.failed_sources {
            0 => String::new(),
            1 => ", 1 source failed".into(),
            n => format!(", {n} sources failed"),
        };
        out.push_str(&format!(
            "  #{:<5} {}  {:7} {:>8}  {:9} {new}{failed}\n",
            r.id,
            when(r.started_at),
            r.trigger,
            duration,
            r.status
        ));
    }
}

/// The sources that failed or are deferred.
fn render_sources(out: &mut String, status: &Status) {
    out.push_str("\nSources failing or deferred:\n");
    if status.sources.is_empty() {
        out.push_str("  none: every source answered its last request\n");
    }
    for s in &status.sources {
        let since = s
            .since
            .map(|at| format!(" since {} ({} ago)", when(at), age(status.now - at)))
            .unwrap_or_default();
        let until = s
            .deferred_until
            .map(|at| format!(", asked again after {}", when(at)))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {} {}: {}{since}, {} failed attempt{}{until}: {}\n",
            s.project,
            s.source,
            s.state,
            s.consecutive_failures,
            if s.consecutive_failures == 1 { "" } else { "s" },
            s.last_error.as_deref().unwrap_or("no error recorded")
        ));
    }
}

/// The outbox counts and the next scheduled run.
fn render_outbox(out: &mut String, status: &Status) {
    let counts: Vec<String> = status
        .outbox
        .counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    out.push_str(&format!(
        "\nOutbox: {}",
        if counts.is_empty() {
            "empty".to_string()
        } else {
            counts.join(", ")
        }
    ));
    if let Some(since) = status.outbox.oldest_waiting_since {
        out.push_str(&format!(
            "; the oldest waiting message was queued {} ago",
            age(status.now - since)
        ));
    }
    out.push_str(&format!(
        ".\nDead-lettered since the last look: {}.\n",
        status.outbox.dead_since_last_look
    ));
    out.push_str(&format!(
        "\nNext scheduled run (herald serve, `{}` {}): {}\n",
        status.schedule.expression,
        status.schedule.timezone,
        status
            .schedule
            .next_run
            .map(when)
            .unwrap_or_else(|| "none".into())
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(Duration::seconds(1)), "1 second");
        assert_eq!(age(Duration::seconds(90)), "90 seconds");
        assert_eq!(age(Duration::minutes(30)), "30 minutes");
        assert_eq!(age(Duration::hours(30)), "30 hours");
        assert_eq!(age(Duration::days(3)), "3 days");
        assert_eq!(age(Duration::seconds(-5)), "0 seconds");
    }
}
