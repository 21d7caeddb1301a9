//! Blog feeds: RSS, Atom or JSON Feed through feed-rs. A configured HTML page is followed to
//! the feed it links (`<link rel="alternate">`); a page without one is read for links to
//! release posts. Each entry's version comes from its title or its URL slug, as
//! [`attribution`] reads them; entries without a version are ignored, entries of other packages
//! are skipped and reported. Posts are line evidence: a feature release's post also
//! stands for the bugfix releases of its line that have none of their own.

use std::collections::HashSet;

use futures::FutureExt;
use futures::future::BoxFuture;
use scraper::{Html, Selector};
use url::Url;

use super::http::{Body, Fetch, FetchError, Request};
use super::{FetchContext, Fetched, Source, SourceError};
use crate::attribution::{self, Candidate, Verdict};
use crate::model::{Observation, Project, SourceKind};
use crate::version;

const ACCEPT: &str = "application/atom+xml, application/rss+xml, application/feed+json, \
    application/json;q=0.9, application/xml;q=0.8, text/xml;q=0.8, text/html;q=0.7, */*;q=0.5";

/// Longest release notes kept from a feed entry.
const MAX_NOTES: usize = 20_000;

/// The feed adapter.
#[derive(Debug, Clone, Copy)]
pub struct FeedSource;

fn looks_like_html(body: &Body) -> bool {
    if body
        .content_type
        .as_deref()
        .is_some_and(|ct| ct.contains("html"))
    {
        return true;
    }
    let head =
        String::from_utf8_lossy(&body.bytes[..body.bytes.len().min(512)]).to_ascii_lowercase();
    let head = head.trim_start_matches('\u{feff}').trim_start();
    head.starts_with("<!doctype html") || head.starts_with("<html")
}

fn selector(css: &str) -> Selector {
    // The selectors below are constants; a failure would be a programming error caught by tests.
    Selector::parse(css).unwrap_or_else(|_| Selector::parse("*").expect("universal selector"))
}

/// The feed an HTML page announces with `<link rel="alternate" type="...">`.
pub fn discover_feed(html: &str, base: &Url) -> Option<Url> {
    let doc = Html::parse_document(html);
    let links = selector("link[href]");
    doc.select(&links)
        .filter(|el| {
            el.value().attr("rel").is_some_and(|rel| {
                rel.split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("alternate"))
            })
        })
        .filter(|el| {
            el.value().attr("type").is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                t.contains("rss")
                    || t.contains("atom")
                    || t.contains("feed+json")
                    || t == "application/json"
            })
        })
        .find_map(|el| {
            el.value()
                .attr("href")
                .and_then(|href| base.join(href.trim()).ok())
        })
}

/// Release posts an HTML page links to: same host, a version in the link text or slug that
/// [`attribution`] gives to the project.
pub fn posts_from_page(html: &str, base: &Url, project: &Project) -> Vec<Observation> {
    let doc = Html::parse_document(html);
    let anchors = selector("a[href]");
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for el in doc.select(&anchors) {
        let Some(href) = el
            .value()
            .attr("href")
            .and_then(|h| base.join(h.trim()).ok())
        else {
            continue;
        };
        if href.host_str() != base.host_str() || href.path() == base.path() {
            continue;
        }
        let text: String = el.text().collect::<Vec<_>>().join(" ");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let candidate = Candidate::Entry {
            title: &text,
            link: Some(href.as_str()),
        };
        let Verdict::Own(found) = attribution::attribute(project, candidate) else {
            continue;
        };
        if !seen.insert(version::canonical_key(&found)) {
            continue;
        }
        let mut obs = Observation::new(
            if text.is_empty() {
                href.to_string()
            } else {
                text
            },
            found,
        );
        obs.url = Some(href.to_string());
        obs.line_post = true;
        out.push(obs);
    }
    out
}

/// One entry of a feed, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub title: Option<String>,
    /// The post's URL (the `alternate` link, else the first).
    pub link: Option<String>,
    pub published: Option<chrono::DateTime<chrono::Utc>>,
    pub updated: Option<chrono::DateTime<chrono::Utc>>,
    pub summary: Option<String>,
}

/// Reads every entry of an RSS, Atom or JSON Feed document.
pub fn read_feed(bytes: &[u8], url: &str) -> Result<Vec<FeedEntry>, SourceError> {
    let feed = feed_rs::parser::parse(bytes).map_err(|err| {
        SourceError::document(url, format!("not a readable RSS, Atom or JSON feed: {err}"))
    })?;
    Ok(feed
        .entries
        .into_iter()
        .map(|entry| FeedEntry {
            title: entry.title.map(|t| t.content.trim().to_string()),
            link: entry
                .links
                .iter()
                .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
                .or(entry.links.first())
                .map(|l| l.href.clone()),
            published: entry.published,
            updated: entry.updated,
            summary: entry
                .summary
                .map(|s| s.content)
                .filter(|s| !s.trim().is_empty()),
        })
        .collect())
}

/// Release entries of a feed document: those whose title or slug names a version that
/// [`attribution`] gives to the project.
pub fn entries(
    bytes: &[u8],
    url: &str,
    project: &Project,
) -> Result<Vec<Observation>, SourceError> {
    Ok(read_entries(bytes, url, project)?.observations)
}

/// The project's entries of a feed document, and the entries of other packages it skipped.
fn read_entries(bytes: &[u8], url: &str, project: &Project) -> Result<Fetched, SourceError> {
    let mut fetched = Fetched::default();
    for entry in read_feed(bytes, url)? {
        let title = entry.title.clone().unwrap_or_default();
        let candidate = Candidate::Entry {
            title: &title,
            link: entry.link.as_deref(),
        };
        let found = match attribution::attribute(project, candidate) {
            Verdict::Own(found) => found,
            Verdict::Other(why) => {
                fetched.skip_other(&title, why);
                continue;
            }
            Verdict::Unreadable(_) | Verdict::NotARelease => {
                tracing::debug!(project = %project.name, title = %title, "feed entry names no version");
                continue;
            }
        };
        let raw = if title.is_empty() {
            entry.link.clone().unwrap_or_default()
        } else {
            title
        };
        let mut obs = Observation::new(raw, found);
        obs.published_at = entry.published.or(entry.updated);
        obs.url = entry.link;
        obs.notes = entry.summary.map(|s| s.chars().take(MAX_NOTES).collect());
        obs.line_post = true;
        fetched.observations.push(obs);
    }
    Ok(fetched)
}

/// A fetched feed document: its release entries, its URL to fetch directly next time, and
/// its validators.
fn from_feed(body: Body, project: &Project) -> Result<Fetched, SourceError> {
    Ok(Fetched {
        resolved_url: Some(body.url.clone()),
        validators: vec![(body.url.clone(), body.validators.clone())],
        ..read_entries(&body.bytes, &body.url, project)?
    })
}

impl FeedSource {
    async fn get(&self, url: &Url, cx: FetchContext<'_>) -> Result<Fetch, FetchError> {
        cx.http
            .get(
                &Request {
                    url,
                    accept: ACCEPT,
                    headers: Vec::new(),
                    validators: cx.validators_for(url.as_str()),
                },
                cx.now,
            )
            .await
    }

    async fn fetch_feed(
        &self,
        project: &Project,
        cx: FetchContext<'_>,
    ) -> Result<Fetched, SourceError> {
        let Some(configured) = &project.feed else {
            return Ok(Fetched::default());
        };
        let resolved = cx
            .resolved_url
            .and_then(|u| Url::parse(u).ok())
            .filter(|u| u != configured);
        if let Some(feed_url) = resolved {
            match self.get(&feed_url, cx).await {
                Ok(Fetch::NotModified) => {
                    return Ok(Fetched {
                        not_modified: true,
                        ..Fetched::default()
                    });
                }
                Ok(Fetch::Modified(body)) if !looks_like_html(&body) => {
                    return from_feed(*body, project);
                }
                // The feed moved or turned into a page: discover it again from the page.
                Ok(Fetch::Modified(_))
                | Err(FetchError::Status {
                    status: 404 | 410, ..
                }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        let body = match self.get(configured, cx).await? {
            Fetch::NotModified => {
                return Ok(Fetched {
                    not_modified: true,
                    ..Fetched::default()
                });
            }
            Fetch::Modified(body) => body,
        };
        if !looks_like_html(&body) {
            return from_feed(*body, project);
        }
        let html = String::from_utf8_lossy(&body.bytes).into_owned();
        if let Some(feed_url) = discover_feed(&html, &body.final_url) {
            let feed = match self.get(&feed_url, cx).await? {
                Fetch::Modified(feed) => feed,
                Fetch::NotModified => {
                    return Ok(Fetched {
                        not_modified: true,
                        resolved_url: Some(feed_url.to_string()),
                        ..Fetched::default()
                    });
                }
            };
            if looks_like_html(&feed) {
                return Err(SourceError::document(
                    &feed.url,
                    format!(
                        "the page {} links this as its feed, but it answers with an HTML page",
                        body.url
                    ),
                ));
            }
            return from_feed(*feed, project);
        }
        let posts = posts_from_page(&html, &body.final_url, project);
        if posts.is_empty() {
            return Err(SourceError::document(
                &body.url,
                "an HTML page with no feed link and no links to release posts",
            ));
        }
        Ok(Fetched {
            observations: posts,
            resolved_url: Some(body.url.clone()),
            validators: vec![(body.url.clone(), body.validators.clone())],
            ..Fetched::default()
        })
    }
}

impl Source for FeedSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Feed
    }

    fn fetch<'a>(
        &'a self,
        project: &'a Project,
        cx: FetchContext<'a>,
    ) -> BoxFuture<'a, Result<Fetched, SourceError>> {
        self.fetch_feed(project, cx).boxed()
    }
}
