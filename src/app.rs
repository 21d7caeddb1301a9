//! The composition root: [`App::build`] turns a [`Config`] into the running parts (store,
//! HTTP client, sources, clock). The binary and the integration tests start Herald the same
//! way, through this one function.

use std::sync::Arc;

use anyhow::Context;

pub use crate::clock::{Clock, ManualClock, SystemClock};
use crate::config::Config;
use crate::notify::channels::ChannelClient;
use crate::notify::mail::{self, Mailer};
use crate::notify::templates::Templates;
use crate::notify::{Mailroom, Notifier};
use crate::sources::Sources;
use crate::sources::http::HttpClient;
use crate::store::Store;
use crate::tokens::Signer;

/// Everything a command needs.
#[derive(Debug, Clone)]
pub struct App {
    /// Validated configuration.
    pub config: Arc<Config>,
    pub store: Store,
    /// The shared HTTP client.
    pub http: HttpClient,
    /// The source adapters.
    pub sources: Arc<Sources>,
    /// Templates, relay and signer.
    pub notifier: Arc<Notifier>,
    /// Where "now" comes from (a [`ManualClock`] in tests).
    pub clock: Arc<dyn Clock>,
}

impl App {
    /// Checks the mail settings and templates, opens the database (applying migrations) and
    /// builds every adapter. Anything unusable is refused here, before any work starts.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let templates = Templates::load(config.templates_dir.as_deref())?;
        let from = mail::sender(&config.from)?;
        let ca_pem =
            match &config.smtp_ca_file {
                Some(path) => Some(std::fs::read(path).with_context(|| {
                    format!("HERALD_SMTP_CA_FILE: cannot read {}", path.display())
                })?),
                None => None,
            };
        let mailer = match &config.smtp_url {
            Some(url) => Some(Mailer::new(url, &config.from, ca_pem.as_deref())?),
            None => None,
        };
        let store = Store::open(&config.database_url)
            .await
            .context("the database is not usable")?;
        let signer = Signer::load(config.secret.as_ref(), store.path())?;
        let http = HttpClient::new(&config.http).context("cannot set up HTTP")?;
        let sources = Arc::new(Sources::new(&config));
        let notifier = Arc::new(Notifier {
            templates,
            mailer,
            signer,
            from,
            base_url: config.base_url.clone(),
            connections: config.smtp_connections as usize,
            claim_secs: i64::from(config.claim_seconds),
            channels: if config.channels.is_empty() {
                None
            } else {
                Some(ChannelClient::new(&config.http).context("cannot set up channel delivery")?)
            },
        });
        Ok(App {
            config: Arc::new(config),
            store,
            http,
            sources,
            notifier,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same app reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> App {
        self.clock = clock;
        self
    }
}

impl From<&App> for Mailroom {
    fn from(app: &App) -> Mailroom {
        Mailroom {
            config: app.config.clone(),
            store: app.store.clone(),
            notifier: app.notifier.clone(),
            clock: app.clock.clone(),
        }
    }
}
