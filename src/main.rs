//! The `herald` binary: reads `.env`, parses the command line, sets up logging to stderr and
//! hands over to [`herald::cli::run`].

#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use std::process::ExitCode;

use clap::Parser;
use herald::logging::{self, Level};

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        let text = format!("error: cannot read .env: {err}");
        logging::say_in(logging::format_from_env(), Level::Error, &text, &[]);
        return ExitCode::from(1);
    }
    let cli = match herald::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return herald::cli::usage_error(err),
    };
    logging::init(cli.settings.log_format);
    herald::cli::run(cli).await
}
