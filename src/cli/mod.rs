//! The command line: one file per subcommand, each printing reports to stdout and leaving
//! logs to stderr. [`run`] maps every outcome to the contract's exit codes.

mod advise;
mod backup;
mod channels;
mod check;
mod copy_db;
mod migrate;
mod outbox;
mod releases;
mod serve;
mod status;
mod subscribers;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::{Config, Settings};
use crate::logging::{Level, LogFormat};

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
    /// Send one test notification through a channel of HERALD_CHANNELS and print the answer.
    ///
    /// Channels (webhook, matrix, slack, discord, ntfy) are listed in the TOML file named by
    /// HERALD_CHANNELS; `${NAME}` in it reads that environment variable, so secrets stay out
    /// of the file. Exit 0 when the receiver accepted it, 1 otherwise (its answer on stderr).
    /// A channel disabled by a `410 Gone` answer is enabled again when its test goes through.
    ///
    /// Example:  HERALD_CHANNELS=/etc/herald/channels.toml herald send-test ops-room
    SendTest(channels::SendTestArgs),
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
    /// working after a restore. On PostgreSQL it refuses and prints the pg_dump command to use.
    Backup(backup::BackupArgs),
    /// Copy everything from the configured SQLite database into an empty PostgreSQL database.
    ///
    /// Releases, evidence, validators, source states, runs, subscribers, the outbox, digests,
    /// inventories and alert state are read at one moment of the SQLite file and written in
    /// one transaction; every table's count is compared before it commits, and a non-empty
    /// target is refused. Stop Herald's processes first (mail queued after the copy's moment
    /// would stay behind), then point HERALD_DATABASE_URL at the new database.
    ///
    /// Example:  herald copy-db --to 'postgres://herald@db.example.org/herald?sslmode=verify-full'
    CopyDb(copy_db::CopyDbArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Is Herald healthy, and what did the last runs do?
    ///
    /// Shows the last runs (time, duration, outcome, new releases), the sources failing or
    /// deferred now and since when, the outbox by state with the oldest waiting message's age,
    /// and the next scheduled run of `herald serve`.
    ///
    /// Exit codes: 0 healthy; 2 needs attention: a source has been failing (or rate limited)
    /// for more than a day, or mail was dead-lettered since the previous `herald status`;
    /// 1 it could not look (bad configuration, database unreachable). Each call records that
    /// it looked, so a dead letter makes the next call exit 2 once: a monitoring probe can run
    /// it as it is.
    Status(status::StatusArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell) to stdout.
    ///
    /// For bash: herald completions bash > /etc/bash_completion.d/herald
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print Herald's man page (roff) to stdout.
    ///
    /// To read it: herald man | man -l -
    Man,
}

/// Reports a command line clap refused (or prints the help or version it asked for); in the
/// JSON log format the refusal is one JSON line.
pub fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = err.exit_code();
    let json = crate::logging::format_from_env() == LogFormat::Json
        || std::env::args()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[0] == "--log-format" && w[1] == "json")
        || std::env::args().any(|a| a == "--log-format=json");
    if !json
        || matches!(
            err.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
        )
    {
        let _ = err.print();
    } else {
        let text = err.render().to_string();
        crate::logging::say_in(LogFormat::Json, Level::Error, text.trim(), &[]);
    }
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

/// The man page: clap's rendering of the command line, plus an ENVIRONMENT section naming
/// the `HERALD_*` variable of every option.
fn man_page() -> anyhow::Result<Vec<u8>> {
    let command = <Cli as clap::CommandFactory>::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    let mut environment = String::from(".SH ENVIRONMENT\n");
    for arg in command.get_arguments() {
        if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let roff = |text: &str| text.replace('\\', "\\\\").replace('-', "\\-");
            environment.push_str(&format!(
                ".TP\n\\fB{}\\fR\nThe same as \\fB\\-\\-{}\\fR: {}\n",
                roff(&env.to_string_lossy()),
                roff(long),
                roff(&help)
            ));
        }
    }
    environment.push_str(
        ".TP\n\\fBHERALD_LOG\\fR\nLog filter in tracing syntax (default: warn,herald=info).\n\
         .TP\n\\fBNO_COLOR\\fR\nWhen set and not empty, logs carry no colour even on a terminal.\n",
    );
    page.extend_from_slice(environment.as_bytes());
    Ok(page)
}

/// Writes to stdout; a reader that went away (`herald man | head`) is not an error.
fn print_bytes(bytes: &[u8]) -> anyhow::Result<u8> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(0),
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            crate::logging::say(Level::Error, &format!("error: {err:#}"), &[]);
            ExitCode::from(1)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "herald", &mut script);
            return print_bytes(&script);
        }
        Command::Man => return print_bytes(&man_page()?),
        _ => {}
    }
    let config = Config::from_settings(cli.settings)?;
    match cli.command {
        Command::Completions { .. } | Command::Man => Ok(0),
        Command::Status(args) => status::run(App::build(config).await?, args).await,
        Command::Migrate => migrate::run(&config).await,
        Command::Backup(args) => backup::run(&config, args).await,
        Command::CopyDb(args) => copy_db::run(&config, args).await,
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
        Command::SendTest(args) => channels::send_test(App::build(config).await?, args).await,
    }
}
