//! `herald backup FILE`: a consistent copy of the database, taken while Herald keeps writing,
//! and the signing key beside it as `FILE.secret` when the key lives in the `.secret` file,
//! so a restore on another host keeps every link already mailed (unsubscribe, preferences)
//! working. When the key is `HERALD_SECRET`, it is the configuration's to keep, and the
//! report says so.
//!
//! Owns: the command and its report. Does not own: how the copy is taken (`store`) or the key
//! file format (`tokens`).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;
use crate::store::Store;
use crate::tokens::{self, Signer};

/// Arguments of `herald backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist yet); the signing key goes to FILE.secret.
    pub file: PathBuf,
}

pub(super) async fn run(config: &Config, args: BackupArgs) -> anyhow::Result<u8> {
    let copy = args.file;
    let key_copy = tokens::backup_secret_path(&copy);
    let keeps_key_file = config.secret.is_none();
    // Refuse before writing anything, so a refused backup leaves no half of itself behind.
    for target in std::iter::once(&copy).chain(keeps_key_file.then_some(&key_copy)) {
        if target.exists() {
            anyhow::bail!(
                "{}: the backup file already exists; choose a new name",
                target.display()
            );
        }
    }
    let store = Store::open(&config.database_url).await?;
    let Some(database) = store.path().map(Path::to_path_buf) else {
        let hint = store.pg_dump_hint(&copy);
        store.close().await;
        anyhow::bail!("{}: {hint}", store.describe());
    };
    // The key the instance signs with (generated now if it has none yet, as it would be at
    // its first start), so the copy and the key always belong together.
    let signer = Signer::load(config.secret.as_ref(), Some(&database))?;
    store.backup(&copy).await?;
    store.close().await;
    println!("Backed up {} to {}.", database.display(), copy.display());
    if keeps_key_file {
        signer.save_key(&key_copy).with_context(|| {
            format!(
                "the database copy {} is written, but not the signing key",
                copy.display()
            )
        })?;
        report_key_saved(&database, &copy, &key_copy);
    } else {
        report_key_configured(&database, &copy);
    }
    Ok(0)
}

fn report_key_saved(database: &Path, copy: &Path, key_copy: &Path) {
    let key_file = tokens::secret_path(database);
    println!(
        "Saved the signing key {} to {} (mode 0600): keep it with the copy, and as private \
         as the key itself. Without it, unsubscribe and preferences links in mail already \
         sent stop working after a restore.",
        key_file.display(),
        key_copy.display()
    );
    println!(
        "To restore, with Herald stopped: copy {} to the database file (HERALD_DATABASE_URL; \
         here {}) and {} to .secret beside it (here {}), readable only by Herald's user; \
         remove any {}-wal and {}-shm left there.",
        copy.display(),
        database.display(),
        key_copy.display(),
        key_file.display(),
        database.display(),
        database.display()
    );
}

fn report_key_configured(database: &Path, copy: &Path) {
    println!(
        "The signing key is HERALD_SECRET, so it is not in this backup: keep it with the \
         configuration. A restore needs the same HERALD_SECRET, or unsubscribe and \
         preferences links in mail already sent stop working."
    );
    println!(
        "To restore, with Herald stopped: copy {} to the database file (HERALD_DATABASE_URL; \
         here {}); remove any {}-wal and {}-shm left there.",
        copy.display(),
        database.display(),
        database.display(),
        database.display()
    );
}
