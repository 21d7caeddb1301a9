//! `herald check`: one full run, with a per-project summary on stdout.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::alerts::{self, AlertsReport};
use crate::app::App;
use crate::check::{self, CheckOptions, CheckOutcome, Progress, RunSummary, SourceStatus};
use crate::logging::{self, Level};
use crate::notify::{self, DispatchOptions, DispatchReport};

/// Options of `herald check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Fetch and decide, but record nothing and send nothing; print what would happen.
    #[arg(long)]
    dry_run: bool,
    /// Only this project (repeatable).
    #[arg(long = "project", value_name = "NAME")]
    project: Vec<String>,
    /// Print the run summary as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(app: App, args: CheckArgs) -> anyhow::Result<u8> {
    let display = ProgressDisplay::start(&app);
    let opts = CheckOptions {
        dry_run: args.dry_run,
        projects: args.project,
        trigger: "check".into(),
        progress: display.as_ref().map(|d| d.progress.clone()),
    };
    let outcome = check::run(&app, &opts).await;
    if let Some(display) = display {
        display.finish();
    }
    match outcome? {
        CheckOutcome::Busy { holder, since } => {
            logging::say(
                Level::Info,
                &format!(
                    "a check is already running (holder {holder}, since {since}); nothing done"
                ),
                &[],
            );
            println!("A check is already running (since {since}); this one did nothing.");
            Ok(0)
        }
        CheckOutcome::Completed(summary) => {
            let (alerts, mail) = if summary.dry_run {
                (None, None)
            } else {
                let alerts = alerts::process(&app).await?;
                (
                    Some(alerts),
                    Some(notify::dispatch(&app, &DispatchOptions::default()).await?),
                )
            };
            if args.json {
                let mut value = serde_json::to_value(&summary)?;
                value["mail"] = serde_json::to_value(&mail)?;
                value["alerts"] = serde_json::to_value(&alerts)?;
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print_report(&summary, alerts.as_ref(), mail.as_ref());
            }
            Ok(summary.exit_code())
        }
    }
}

/// The run's summary as text, with what it queued and sent.
fn print_report(
    summary: &RunSummary,
    alerts: Option<&AlertsReport>,
    mail: Option<&DispatchReport>,
) {
    print!("{}", render(summary));
    if let Some(a) = alerts.filter(|a| a.compat_reports + a.followups + a.bugfix_advice > 0) {
        println!(
            "Operator alerts queued: {} compatibility report(s), {} follow-up(s), {} bugfix advice.",
            a.compat_reports, a.followups, a.bugfix_advice
        );
    }
    match mail {
        Some(report) => println!("{}", render_mail(report)),
        None => println!(
            "Mail: would queue {} message{}.",
            summary.queued(),
            if summary.queued() == 1 { "" } else { "s" }
        ),
    }
}

/// A progress line on stderr while a check runs (projects fetched / total, requests sent,
/// elapsed time): only on a terminal and in the text log format, never in cron or a pipe.
struct ProgressDisplay {
    progress: Arc<Progress>,
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl ProgressDisplay {
    fn start(app: &App) -> Option<ProgressDisplay> {
        if logging::format() != logging::LogFormat::Text || !std::io::stderr().is_terminal() {
            return None;
        }
        let progress = Arc::new(Progress::default());
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} checking: {pos}/{len} projects, {msg} [{elapsed}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(100));
        let (p, b, http) = (progress.clone(), bar.clone(), app.http.clone());
        let start = http.stats().requests.load(Ordering::Relaxed);
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                b.set_length(p.projects_total.load(Ordering::Relaxed) as u64);
                b.set_position(p.projects_fetched.load(Ordering::Relaxed) as u64);
                let sent = http.stats().requests.load(Ordering::Relaxed) - start;
                b.set_message(format!(
                    "{sent} request{}",
                    if sent == 1 { "" } else { "s" }
                ));
            }
        });
        Some(ProgressDisplay {
            progress,
            bar,
            ticker,
        })
    }

    fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// The human-readable summary.
pub fn render(summary: &RunSummary) -> String {
    let mut out = String::new();
    if summary.dry_run {
        out.push_str("Dry run: nothing was recorded.\n");
    }
    for p in &summary.projects {
        let head = if !p.new.is_empty() {
            let list: Vec<String> = p
                .new
                .iter()
                .map(|n| format!("{} ({})", n.version, n.class))
                .collect();
            format!(
                "{} new: {}",
                if summary.dry_run {
                    "would announce"
                } else {
                    "announced"
                },
                list.join(", ")
            )
        } else if p.baseline && p.recorded > 0 {
            format!(
                "first look: {} releases recorded as known, none announced",
                p.recorded
            )
        } else if p.recorded > 0 {
            format!("nothing new to announce ({} releases recorded)", p.recorded)
        } else {
            "nothing new".to_string()
        };
        out.push_str(&format!("{}: {head}\n", p.project));
        for s in &p.sources {
            let line = match s.status {
                SourceStatus::Ok => format!("ok, {} releases listed", s.listed),
                SourceStatus::Unchanged => "unchanged (304)".to_string(),
                SourceStatus::Failed => format!("FAILED: {}", s.error.as_deref().unwrap_or("")),
                SourceStatus::Deferred => format!(
                    "DEFERRED until {}: {}",
                    s.deferred_until.map(|d| d.to_rfc3339()).unwrap_or_default(),
                    s.error.as_deref().unwrap_or("")
                ),
            };
            out.push_str(&format!("  {:6}  {line}\n", s.source.as_str()));
            for warning in &s.warnings {
                out.push_str(&format!("          warning: {warning}\n"));
            }
        }
        for w in &p.withdrawn {
            out.push_str(&format!(
                "  withdrawn {}: {} (kept on record, never announced)\n",
                w.version, w.reason
            ));
        }
    }
    let failed = summary.failed_sources().count();
    let new = summary.new_releases().count();
    out.push_str(&format!(
        "{}{} projects, {} new release{}, {} source{} failed or deferred; {} requests ({} not modified), {} ms\n",
        summary.run_id.map(|id| format!("Run {id}: ")).unwrap_or_default(),
        summary.projects.len(),
        new,
        if new == 1 { "" } else { "s" },
        failed,
        if failed == 1 { "" } else { "s" },
        summary.requests,
        summary.not_modified,
        summary.duration_ms
    ));
    out
}

/// One line about mail delivery.
pub fn render_mail(report: &DispatchReport) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut line = match &report.relay {
        None if report.waiting > 0 => format!(
            "Mail: {} message{} waiting in the outbox; no SMTP relay is configured (set HERALD_SMTP_URL).",
            report.waiting,
            plural(report.waiting as usize)
        ),
        None => "Mail: nothing to send (no SMTP relay configured).".to_string(),
        Some(relay) => format!(
            "Mail via {relay}: {} sent, {} to retry, {} dead-lettered; {} waiting.",
            report.sent, report.retrying, report.dead, report.waiting
        ),
    };
    if report.digests_queued > 0 {
        line.push_str(&format!(
            " {} digest{} queued.",
            report.digests_queued,
            plural(report.digests_queued)
        ));
    }
    if let Some(err) = &report.last_error
        && report.relay.is_some()
    {
        line.push_str(&format!(" Last failure: {err}"));
    }
    let c = &report.channels;
    if c.sent + c.retrying + c.dead > 0 || c.waiting > 0 {
        line.push_str(&format!(
            "\nChannels: {} delivered, {} to retry, {} dead-lettered; {} waiting.",
            c.sent, c.retrying, c.dead, c.waiting
        ));
        if let Some(err) = &c.last_error {
            line.push_str(&format!(" Last failure: {err}"));
        }
    }
    line
}
