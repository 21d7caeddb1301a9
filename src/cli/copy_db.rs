//! `herald copy-db --to URL`: moves the configured SQLite database into a new, empty
//! PostgreSQL database and checks every table's count, then says how to switch over.
//!
//! Owns: the command and its report. Does not own: how rows are copied (`store`).

use crate::config::Config;
use crate::store::{self, Store};
use crate::tokens;

/// Arguments of `herald copy-db`.
#[derive(Debug, clap::Args)]
pub struct CopyDbArgs {
    /// The PostgreSQL database to fill: postgres://USER@HOST/DB (`?host=/run/postgresql` for
    /// a Unix socket, `sslmode=verify-full` for TLS). It is migrated first and must be empty.
    #[arg(long, value_name = "URL")]
    pub to: String,
}

pub(super) async fn run(config: &Config, args: CopyDbArgs) -> anyhow::Result<u8> {
    if !store::is_postgres_url(&args.to) {
        anyhow::bail!(
            "--to `{}`: copy-db fills a PostgreSQL database (postgres://USER@HOST/DB); a SQLite \
             copy is `herald backup FILE`",
            args.to
        );
    }
    let source = Store::open(&config.database_url).await?;
    if source.is_postgres() {
        anyhow::bail!(
            "{}: copy-db copies a SQLite database into PostgreSQL; to move a PostgreSQL \
             database use pg_dump and pg_restore",
            source.describe()
        );
    }
    let target = Store::open(&args.to).await?;
    let report = source.copy_to(&target).await?;
    println!(
        "Copied {} to {} (counts verified):",
        source.describe(),
        target.describe()
    );
    let width = report
        .tables
        .iter()
        .map(|(t, _)| t.len())
        .max()
        .unwrap_or(0);
    for (table, rows) in &report.tables {
        println!("  {table:width$}  {rows:>9}");
    }
    println!("To switch over: stop every Herald process using the SQLite file, set");
    println!("HERALD_DATABASE_URL to the new database and start them again.");
    match (&config.secret, source.path()) {
        (Some(_), _) => println!("Keep HERALD_SECRET as it is: links already mailed stay valid."),
        (None, Some(db)) => println!(
            "Set HERALD_SECRET to the key in {} (PostgreSQL keeps no key file), so links \
             already mailed stay valid.",
            tokens::secret_path(db).display()
        ),
        (None, None) => {}
    }
    source.close().await;
    target.close().await;
    Ok(0)
}
