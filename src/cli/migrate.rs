//! `herald migrate`: apply pending migrations and exit.

use crate::config::Config;
use crate::store::Store;

pub(super) async fn run(config: &Config) -> anyhow::Result<u8> {
    let store = Store::connect(&config.database_url).await?;
    let applied = store.migrate().await?;
    if applied.is_empty() {
        println!("{}: schema is up to date", store.describe());
    } else {
        for version in applied {
            println!("{}: applied migration {version}", store.describe());
        }
    }
    store.close().await;
    Ok(0)
}
