//! The command line: one file per subcommand, each printing reports to stdout and leaving
//! logs to stderr. [`run`] maps every outcome to the contract's exit codes.

mod advise;
mod backup;
mod check;
mod migrate;
mod outbox;
mod releases;
mod serve;
mod subscribers;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::{Config, Settings};

/// Herald watches where a Python project announces releases (the package index, GitHub
/// releases, its blog feed), records every version with its class, and tells operators what
/// to do about it.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about = None, propagate_version = true, args_override_self = true)]
#[command(
    after_help = "Every option can also be set by its HERALD_* variable, in the environment \
or in a .env file in the working directory. See .env.example.\n\n\
Daily cron line:  17 6 * * *  cd /var/lib/herald && herald check"
)]
pub struct Cli {
    /// Shared settings.
    #[command(flatten)]
    pub settings: Settings,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scheduler, the web service and the mail dispatcher until SIGTERM/SIGINT.
    ///
    /// Checks run on HERALD_SCHEDULE (crontab syntax, UTC), plus once at start when the last
    /// scheduled run was missed; they share the database lease with `herald check`.
    Serve,
    /// Fetch every source, record new releases and report what changed.
    ///
    /// Exit codes: 0 every source answered; 2 the run finished but some sources failed or
    /// are rate limited (each named on stderr); 1 it could not run. A second check started
    /// while one runs says so and exits 0 without doing anything.
    Check(check::CheckArgs),
    /// List recorded releases, newest first.
    Releases(releases::ReleasesArgs),
    /// Add a subscriber or update their preferences (operator-added subscribers are confirmed).
    Subscribe(subscribers::SubscribeArgs),
    /// Remove a subscriber and the mail still queued for them.
    Unsubscribe(subscribers::UnsubscribeArgs),
    /// List subscribers and their preferences.
    Subscribers(subscribers::SubscribersArgs),
    /// Show queued, retrying and dead-lettered messages with the server's last answer.
    Outbox(outbox::OutboxArgs),
    /// Send one test message through the configured SMTP relay and print its answer.
    SendTestEmail(outbox::TestEmailArgs),
    /// Upgrade and plugin-compatibility report for an inventory, now, without mail.
    ///
    /// Each plugin gets a verdict for the latest core feature release: ready (a release
    /// declares compatibility), likely (released alongside or after it), unknown (no sign)
    /// or blocked (its release declares it incompatible), with the evidence behind it.
    Advise(advise::AdviseArgs),
    /// Write a consistent copy of the SQLite database to FILE, even while a check is writing.
    ///
    /// When the signing key lives in .secret beside the database (no HERALD_SECRET), it is
    /// saved beside the copy as FILE.secret (mode 0600), so links already mailed keep
    /// working after a restore.
    Backup(backup::BackupArgs),
    /// Apply pending database migrations and exit.
    Migrate,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("herald: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let config = Config::from_settings(cli.settings)?;
    match cli.command {
        Command::Migrate => migrate::run(&config).await,
        Command::Backup(args) => backup::run(&config, args).await,
        Command::Check(args) => check::run(App::build(config).await?, args).await,
        Command::Releases(args) => releases::run(App::build(config).await?, args).await,
        Command::Serve => serve::run(App::build(config).await?).await,
        Command::Advise(args) => advise::run(App::build(config).await?, args).await,
        Command::Subscribe(args) => subscribers::subscribe(App::build(config).await?, args).await,
        Command::Unsubscribe(args) => {
            subscribers::unsubscribe(App::build(config).await?, args).await
        }
        Command::Subscribers(args) => subscribers::list(App::build(config).await?, args).await,
        Command::Outbox(args) => outbox::list(App::build(config).await?, args).await,
        Command::SendTestEmail(args) => outbox::send_test(App::build(config).await?, args).await,
    }
}
