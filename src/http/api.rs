//! Machine endpoints: release feeds (JSON, Atom), pretalx's update check, the health check
//! and Prometheus metrics.

use std::fmt::Write;

use atom_syndication::{Entry, Feed, FixedDateTime, Link, Text};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::conditional::Freshness;
use super::{HttpError, Web};
use crate::alerts::{self, UpdateCheckRequest};
use crate::model::ReleaseClass;
use crate::store::{ReleaseFilter, ReleaseRow};

/// `?project=NAME&class=CLASS` (each repeatable as a comma list).
#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    project: Option<String>,
    class: Option<String>,
}

/// Validates the query into a filter (unknown project or class: a 400 naming it).
fn check_query(web: &Web, q: &FeedQuery) -> Result<ReleaseFilter, HttpError> {
    let projects: Vec<String> = q
        .project
        .as_deref()
        .map(|p| {
            p.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for p in &projects {
        if web.app.config.project(p).is_none() {
            return Err(HttpError::client(
                StatusCode::BAD_REQUEST,
                format!("unknown project `{}`", super::history::short(p)),
            ));
        }
    }
    let mut classes = Vec::new();
    for c in q
        .class
        .as_deref()
        .map(|c| c.split(',').collect::<Vec<_>>())
        .unwrap_or_default()
    {
        classes.push(c.trim().parse::<ReleaseClass>().map_err(|_| {
            HttpError::client(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown release class `{}` (expected feature, bugfix or prerelease)",
                    super::history::short(c.trim())
                ),
            )
        })?);
    }
    Ok(ReleaseFilter {
        projects,
        classes,
        ..ReleaseFilter::default()
    })
}

/// The cache key of a validated filter: made-up spellings of one query share an entry.
fn filter_key(filter: &ReleaseFilter) -> String {
    let mut projects = filter.projects.clone();
    projects.sort();
    projects.dedup();
    let mut classes: Vec<&str> = filter.classes.iter().map(|c| c.as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    format!("project={}&class={}", projects.join(","), classes.join(","))
}

async fn filtered(web: &Web, filter: ReleaseFilter) -> Result<Vec<ReleaseRow>, HttpError> {
    Ok(web.app.store.releases(&filter).await?)
}

/// `GET /releases.json`: conditional, see [`super::conditional`].
pub async fn releases_json(
    State(web): State<Web>,
    Query(q): Query<FeedQuery>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let rows = check_query(&web, &q)?;
    let key = format!("/releases.json?{}", filter_key(&rows));
    let answers = web.answers.clone();
    answers
        .answer(&web.app.store, &headers, &key, Freshness::Feed, || async {
            let rows = filtered(&web, rows).await?;
            Ok((
                "application/json",
                serde_json::to_string(&rows).map_err(HttpError::internal)?,
            ))
        })
        .await
}

/// `GET /releases.atom`: conditional, see [`super::conditional`].
pub async fn releases_atom(
    State(web): State<Web>,
    Query(q): Query<FeedQuery>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let filter = check_query(&web, &q)?;
    let key = format!("/releases.atom?{}", filter_key(&filter));
    let answers = web.answers.clone();
    answers
        .answer(&web.app.store, &headers, &key, Freshness::Feed, || async {
            let rows = filtered(&web, filter).await?;
            Ok(("application/atom+xml; charset=utf-8", atom(&web, &rows)))
        })
        .await
}

fn atom(web: &Web, rows: &[ReleaseRow]) -> String {
    let base = web.app.config.base_url.to_string();
    let to_fixed = |d: chrono::DateTime<chrono::Utc>| -> FixedDateTime { d.fixed_offset() };
    let entries: Vec<Entry> = rows
        .iter()
        .take(200)
        .map(|r| {
            let when = r.published_at.unwrap_or(r.first_seen_at);
            let mut entry = Entry::default();
            entry.set_id(format!("{base}releases/{}/{}", r.project, r.version));
            entry.set_title(Text::plain(format!(
                "{} {} ({} release)",
                r.project, r.version, r.class
            )));
            entry.set_updated(to_fixed(when));
            entry.set_published(Some(to_fixed(when)));
            let mut links = Vec::new();
            if let Ok(page) = web
                .app
                .config
                .base_url
                .join(&format!("projects/{}", r.project))
            {
                let mut link = Link::default();
                link.set_href(page.to_string());
                link.set_rel("related");
                links.push(link);
            }
            if let Some(url) = r.sources.iter().find_map(|s| s.url.clone()) {
                let mut link = Link::default();
                link.set_href(url);
                links.insert(0, link);
            }
            entry.set_links(links);
            entry
        })
        .collect();
    let mut feed = Feed::default();
    feed.set_id(format!("{base}releases.atom"));
    feed.set_title(Text::plain("Herald: recorded releases"));
    feed.set_updated(to_fixed(
        rows.iter()
            .map(|r| r.published_at.unwrap_or(r.first_seen_at))
            .max()
            .unwrap_or_else(|| web.app.clock.now()),
    ));
    feed.set_entries(entries);
    feed.to_string()
}

/// `POST /api/update-check`: pretalx's payload in, latest/updatable per core and plugin out,
/// plus Herald's verdicts.
pub async fn update_check(
    State(web): State<Web>,
    body: axum::body::Bytes,
) -> Result<Response, HttpError> {
    let req: UpdateCheckRequest = serde_json::from_slice(&body).map_err(|e| {
        HttpError::client(
            StatusCode::BAD_REQUEST,
            format!("expected pretalx's update-check JSON: {e}"),
        )
    })?;
    let answer = alerts::update_check(&web.app, &req).await?;
    Ok(Json(answer).into_response())
}

/// `GET /healthcheck`: an empty 200 when the database answers, 503 otherwise.
pub async fn healthcheck(State(web): State<Web>) -> Response {
    match web.app.store.ping().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(err) => {
            tracing::error!("health check: the database does not answer: {err}");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// The channel part of `/metrics`: deliveries per configured channel and state, and whether
/// a `410 Gone` disabled the channel.
async fn channel_metrics(web: &Web, out: &mut String) -> Result<(), HttpError> {
    let channels = &web.app.config.channels;
    if channels.is_empty() {
        return Ok(());
    }
    let counts = web.app.store.outbox_counts_by_channel().await?;
    let disabled = web.app.store.disabled_channels().await?;
    let _ = writeln!(
        out,
        "# HELP herald_channel_deliveries Channel deliveries in the outbox, by channel and state.\n# TYPE herald_channel_deliveries gauge"
    );
    for c in channels {
        for state in ["queued", "sending", "retrying", "sent", "dead"] {
            let n = counts
                .get(&(c.name.clone(), state.to_string()))
                .copied()
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "herald_channel_deliveries{{channel=\"{}\",kind=\"{}\",state=\"{state}\"}} {n}",
                c.name,
                c.kind.as_str()
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP herald_channel_disabled Whether a channel is disabled (its receiver answered 410 Gone).\n# TYPE herald_channel_disabled gauge"
    );
    for c in channels {
        let _ = writeln!(
            out,
            "herald_channel_disabled{{channel=\"{}\",kind=\"{}\"}} {}",
            c.name,
            c.kind.as_str(),
            u8::from(disabled.contains_key(&c.name))
        );
    }
    Ok(())
}

/// `GET /metrics`: Prometheus text format, read from the database at each scrape.
pub async fn metrics(State(web): State<Web>) -> Result<Response, HttpError> {
    let m = web.app.store.metrics(web.app.clock.now()).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP herald_runs_total Check runs recorded, by status.\n# TYPE herald_runs_total counter"
    );
    for (status, n) in &m.runs {
        let _ = writeln!(out, "herald_runs_total{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP herald_source_failures Consecutive failures per project and source.\n# TYPE herald_source_failures gauge"
    );
    for s in &m.sources {
        let _ = writeln!(
            out,
            "herald_source_failures{{project=\"{}\",source=\"{}\"}} {}",
            s.0, s.1, s.2
        );
    }
    let _ = writeln!(
        out,
        "# HELP herald_source_deferred Whether a source is rate limited now.\n# TYPE herald_source_deferred gauge"
    );
    for s in &m.sources {
        let _ = writeln!(
            out,
            "herald_source_deferred{{project=\"{}\",source=\"{}\"}} {}",
            s.0,
            s.1,
            u8::from(s.3)
        );
    }
    let _ = writeln!(
        out,
        "# HELP herald_releases Releases recorded.\n# TYPE herald_releases gauge\nherald_releases {}",
        m.releases
    );
    let _ = writeln!(
        out,
        "# HELP herald_outbox_messages Messages in the outbox, by state.\n# TYPE herald_outbox_messages gauge"
    );
    for state in ["queued", "sending", "retrying", "sent", "dead"] {
        let _ = writeln!(
            out,
            "herald_outbox_messages{{state=\"{state}\"}} {}",
            m.outbox.get(state).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(
        out,
        "# HELP herald_messages_sent_total Messages accepted by the relay.\n# TYPE herald_messages_sent_total counter\nherald_messages_sent_total {}",
        m.outbox.get("sent").copied().unwrap_or(0)
    );
    channel_metrics(&web, &mut out).await?;
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
