//! The `herald` binary: reads `.env`, parses the command line, sets up logging to stderr and
//! hands over to [`herald::cli::run`].

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        eprintln!("herald: error: cannot read .env: {err}");
        return ExitCode::from(1);
    }
    let cli = herald::cli::Cli::parse();
    herald::logging::init();
    herald::cli::run(cli).await
}
