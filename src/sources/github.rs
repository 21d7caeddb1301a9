//! GitHub releases: `GET /repos/OWNER/REPO/releases?per_page=100`, following `Link`
//! pagination (the URL as given, never rebuilt, and only on the API's own origin, so a token
//! never leaves it). Drafts are skipped; which releases are the project's is decided by
//! [`attribution`] from the tag (and, for tags without a version, the release name); the
//! `prerelease` flag, body and `html_url` are kept as evidence; the class always comes from the
//! version.

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::http::{Fetch, Request};
use super::{FetchContext, Fetched, Source, SourceError, json_body};
use crate::attribution::{self, Candidate, Verdict};
use crate::model::{Observation, Project, SourceKind};

/// Pages read at most per repository (10,000 releases).
const MAX_PAGES: usize = 100;

/// The GitHub adapter.
#[derive(Debug, Clone)]
pub struct GithubSource {
    base: Url,
    token: Option<SecretString>,
}

#[derive(Deserialize)]
struct GhRelease {
    tag_name: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
    #[serde(default)]
    published_at: Option<DateTime<Utc>>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Page {
    Releases(Vec<GhRelease>),
    Message { message: String },
}

fn observe(release: GhRelease, project: &Project, fetched: &mut Fetched) -> Option<Observation> {
    if release.draft {
        return None;
    }
    let candidate = Candidate::Release {
        tag: &release.tag_name,
        name: release.name.as_deref(),
    };
    let version = match attribution::attribute(project, candidate) {
        Verdict::Own(v) => v,
        Verdict::Other(why) => {
            fetched.skip_other(&release.tag_name, why);
            return None;
        }
        Verdict::Unreadable(err) => {
            fetched.skip_unreadable(
                &release.tag_name,
                format!("{}: github: skipped release tag {err}", project.name),
            );
            return None;
        }
        // Only feed entries can announce nothing at all.
        Verdict::NotARelease => return None,
    };
    let mut obs = Observation::new(release.tag_name, version);
    obs.published_at = release.published_at.or(release.created_at);
    obs.url = release.html_url;
    obs.notes = release.body.filter(|b| !b.trim().is_empty());
    obs.prerelease_flag = Some(release.prerelease);
    Some(obs)
}

impl GithubSource {
    /// An adapter for the API at `base`, with an optional token.
    pub fn new(base: Url, token: Option<SecretString>) -> GithubSource {
        GithubSource { base, token }
    }

    fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = vec![(
            HeaderName::from_static("x-github-api-version"),
            HeaderValue::from_static("2022-11-28"),
        )];
        if let Some(token) = &self.token
            && let Ok(mut value) =
                HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
        {
            value.set_sensitive(true);
            headers.push((AUTHORIZATION, value));
        }
        headers
    }

    async fn fetch_repo(
        &self,
        project: &Project,
        cx: FetchContext<'_>,
    ) -> Result<Fetched, SourceError> {
        let Some(repo) = &project.github else {
            return Ok(Fetched::default());
        };
        let first = self
            .base
            .join(&format!(
                "repos/{}/{}/releases?per_page=100",
                repo.owner, repo.name
            ))
            .map_err(|err| {
                SourceError::document(&self.base, format!("cannot build the releases URL: {err}"))
            })?;
        let mut fetched = Fetched::default();
        let mut url = first.clone();
        for page in 0..MAX_PAGES {
            let answer = cx
                .http
                .get(
                    &Request {
                        url: &url,
                        accept: "application/vnd.github+json",
                        headers: self.headers(),
                        validators: cx.validators_for(url.as_str()),
                    },
                    cx.now,
                )
                .await?;
            let body = match answer {
                // The first page unchanged: nothing changed. A later page unchanged: the
                // change was within the pages already read.
                Fetch::NotModified => {
                    fetched.not_modified = page == 0;
                    break;
                }
                Fetch::Modified(body) => body,
            };
            match json_body::<Page>(&body)? {
                Page::Releases(releases) => {
                    for release in releases {
                        let obs = observe(release, project, &mut fetched);
                        fetched.observations.extend(obs);
                    }
                }
                Page::Message { message } => {
                    return Err(SourceError::document(
                        &body.url,
                        format!("GitHub says: {message}"),
                    ));
                }
            }
            fetched
                .validators
                .push((body.url.clone(), body.validators.clone()));
            let Some(next) = body.next_link else { break };
            let next = Url::parse(&next).map_err(|err| {
                SourceError::document(&body.url, format!("bad Link header `{next}`: {err}"))
            })?;
            if next.origin() != first.origin() {
                return Err(SourceError::document(
                    &body.url,
                    format!("Link header points to another host ({next}); not followed"),
                ));
            }
            url = next;
        }
        Ok(fetched)
    }
}

impl Source for GithubSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Github
    }

    fn fetch<'a>(
        &'a self,
        project: &'a Project,
        cx: FetchContext<'a>,
    ) -> BoxFuture<'a, Result<Fetched, SourceError>> {
        self.fetch_repo(project, cx).boxed()
    }
}

/// Reads one page of `GET /repos/OWNER/REPO/releases` for `project` exactly as the adapter
/// does: drafts skipped, tags of other packages (see [`attribution`]) in `skipped`,
/// unreadable tags in `warnings` and `skipped`, and a `{"message": ...}` answer turned into an
/// error. Pagination, validators and I/O are left out: for tests and fuzzing of the parser.
pub fn parse_releases_page(
    body: &super::http::Body,
    project: &Project,
) -> Result<Fetched, SourceError> {
    let mut fetched = Fetched::default();
    match json_body::<Page>(body)? {
        Page::Releases(releases) => {
            for release in releases {
                let obs = observe(release, project, &mut fetched);
                fetched.observations.extend(obs);
            }
        }
        Page::Message { message } => {
            return Err(SourceError::document(
                &body.url,
                format!("GitHub says: {message}"),
            ));
        }
    }
    Ok(fetched)
}
