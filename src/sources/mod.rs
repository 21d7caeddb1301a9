//! Source adapters: the PyPI index, GitHub releases and blog feeds, behind one [`Source`]
//! trait, sharing the HTTP client of [`http`].
//!
//! Owns: turning upstream documents into [`Observation`]s, and one typed [`SourceError`]
//! whose message names the source's URL and the problem. Does not own: deciding what is
//! new (`merge`) or writing anything (`store`); adapters never touch the database.

pub mod feed;
pub mod github;
pub mod http;
pub mod pypi;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::config::Config;
use crate::model::{Observation, Project, SourceKind};
use crate::sources::http::Validators;
use http::{FetchError, HttpClient};

/// What a source needs for one fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchContext<'a> {
    /// The shared client.
    pub http: &'a HttpClient,
    /// Validators of earlier successful fetches, by URL.
    pub validators: &'a HashMap<String, Validators>,
    /// Where an earlier fetch found the project's feed, if elsewhere than configured.
    pub resolved_url: Option<&'a str>,
    /// The run's clock.
    pub now: DateTime<Utc>,
}

impl FetchContext<'_> {
    /// Validators stored for `url`.
    pub fn validators_for(&self, url: &str) -> Option<&Validators> {
        self.validators.get(url).filter(|v| !v.is_empty())
    }
}

/// A successful fetch.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// What the source lists (may be a part, when later pages were unchanged).
    pub observations: Vec<Observation>,
    /// New validators of every URL answered with a body.
    pub validators: Vec<(String, Validators)>,
    /// The source answered 304: nothing changed since the last recorded fetch.
    pub not_modified: bool,
    /// Entries skipped because they cannot be read, one line each (unparsable versions or
    /// tags). Each is also in `skipped`.
    pub warnings: Vec<String>,
    /// Every entry skipped: another package's tags and feed entries, and unreadable ones.
    pub skipped: Vec<Skipped>,
    /// The feed a configured page pointed to, to fetch directly next time.
    pub resolved_url: Option<String>,
}

/// An entry a source skipped: another package's, or unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The source's own spelling (a tag, a title or a version).
    pub raw: String,
    /// Another package's (true), or unreadable (false).
    pub other_package: bool,
    /// Why, one line: for an unreadable entry, its line in `warnings`.
    pub why: String,
}

impl Fetched {
    /// Records another package's entry.
    pub fn skip_other(&mut self, raw: &str, why: String) {
        self.skipped.push(Skipped {
            raw: raw.to_string(),
            other_package: true,
            why,
        });
    }

    /// Records an unreadable entry and its warning line.
    pub fn skip_unreadable(&mut self, raw: &str, warning: String) {
        self.warnings.push(warning.clone());
        self.skipped.push(Skipped {
            raw: raw.to_string(),
            other_package: false,
            why: warning,
        });
    }
}

/// A failed fetch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The request failed.
    #[error(transparent)]
    Http(#[from] FetchError),
    /// The answer is not a document Herald can read.
    #[error("GET {url}: {detail}")]
    Document {
        url: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl SourceError {
    /// When the upstream asked to be left alone until (rate limits).
    pub fn deferred_until(&self) -> Option<DateTime<Utc>> {
        match self {
            SourceError::Http(err) => err.deferred_until(),
            SourceError::Document { .. } => None,
        }
    }

    pub(crate) fn document(url: impl ToString, detail: impl Into<String>) -> SourceError {
        SourceError::Document {
            url: url.to_string(),
            detail: detail.into(),
        }
    }
}

/// One kind of upstream.
pub trait Source: Send + Sync {
    /// Which source this is.
    fn kind(&self) -> SourceKind;

    /// Fetches what the source says about `project`.
    fn fetch<'a>(
        &'a self,
        project: &'a Project,
        cx: FetchContext<'a>,
    ) -> BoxFuture<'a, Result<Fetched, SourceError>>;
}

/// The three adapters, configured.
#[derive(Debug, Clone)]
pub struct Sources {
    pypi: pypi::PypiSource,
    github: github::GithubSource,
    feed: feed::FeedSource,
}

impl Sources {
    /// Builds every adapter from the configuration.
    pub fn new(config: &Config) -> Sources {
        Sources {
            pypi: pypi::PypiSource::new(config.pypi_url.clone()),
            github: github::GithubSource::new(
                config.github_api_url.clone(),
                config.github_token.clone(),
            ),
            feed: feed::FeedSource,
        }
    }

    /// The PyPI adapter (per-version documents).
    pub fn pypi(&self) -> &pypi::PypiSource {
        &self.pypi
    }

    /// The adapter for `kind`.
    pub fn get(&self, kind: SourceKind) -> &dyn Source {
        match kind {
            SourceKind::Pypi => &self.pypi,
            SourceKind::Github => &self.github,
            SourceKind::Feed => &self.feed,
        }
    }
}

/// Decodes a JSON body, naming the URL and what came instead when it is not JSON.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: &http::Body,
) -> Result<T, SourceError> {
    serde_json::from_slice(&body.bytes).map_err(|err| {
        let what = match body.content_type.as_deref() {
            Some(ct) if !ct.contains("json") => format!("expected JSON, got {ct}"),
            _ if body.bytes.is_empty() => "expected JSON, got an empty body".to_string(),
            _ => "malformed JSON".to_string(),
        };
        SourceError::document(&body.url, format!("{what} ({err})"))
    })
}
