//! The `herald` binary: reads `.env`, parses the command line, sets up logging to stderr and
//! hands over to [`herald::cli::run`].

#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use std::process::ExitCode;

use clap::Parser;
use herald::logging::{self, Level};

fn main() -> ExitCode {
    limit_malloc_arenas();
    // What `#[tokio::main]` builds, built here so the line above runs before any thread.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let text = format!("error: cannot start the async runtime: {err}");
            logging::say_in(logging::format_from_env(), Level::Error, &text, &[]);
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run())
}

/// At most two malloc arenas. glibc gives threads that allocate at once arenas of their own,
/// up to eight per core, and keeps what each has grown to; Herald's threads (the runtime's
/// workers, and one thread per SQLite connection) held about 1 MB of such memory in an idle
/// `herald serve` (P5). The check benchmark (P3) is not slower with two, nor is the mail
/// benchmark (P4) run with `MALLOC_ARENA_MAX=2`, the same setting.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread
    // exists, and M_ARENA_MAX is a parameter glibc documents for it.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

async fn run() -> ExitCode {
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
