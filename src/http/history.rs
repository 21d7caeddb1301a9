//! `GET /projects/{name}`: one project's recorded releases, newest first, with a timeline the
//! server lays out for an inline SVG (one mark per release, its shape and colour by class, the
//! release lines as spans, years as ticks). The template draws it; this module computes where
//! everything goes, so the page needs no JavaScript.
//!
//! Owns: the page's view model and the timeline geometry. Does not own: the releases (`store`),
//! how a release reads (`notify::content::release_view`, shared with the mails) or caching
//! (`conditional`).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::conditional::Freshness;
use super::{HttpError, Web};
use crate::model::ReleaseClass;
use crate::notify::content::{ReleaseView, release_view};
use crate::store::{ReleaseFilter, ReleaseRow};

/// Releases per page of the table.
pub const PER_PAGE: usize = 50;
/// At most this many releases (the newest) are drawn on the timeline.
pub const MAX_MARKS: usize = 400;
/// Longest version shown in full; longer ones are shortened.
const MAX_VERSION_CHARS: usize = 40;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;

/// One mark of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    /// Horizontal position.
    pub x: f64,
    /// Vertical position (one row per class).
    pub y: f64,
    /// `feature`, `bugfix` or `prerelease`.
    pub class: &'static str,
    /// Accessible text: version, class and date.
    pub title: String,
}

/// A release line drawn as a span, from its first to its last release.
#[derive(Debug, Clone, Serialize)]
pub struct Span {
    /// Start.
    pub x: f64,
    /// Width (at least a few pixels).
    pub width: f64,
    /// Row (lines alternate between two rows so neighbours stay apart).
    pub y: f64,
    /// `2025.2`.
    pub line: String,
    /// Whether the label fits beside it.
    pub labelled: bool,
    /// Accessible text.
    pub title: String,
}

/// A year on the axis.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    /// Position.
    pub x: f64,
    /// `2025`.
    pub label: String,
}

/// The laid-out timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// Drawing width.
    pub width: f64,
    /// Drawing height.
    pub height: f64,
    /// Marks, oldest first.
    pub marks: Vec<Mark>,
    /// Release lines.
    pub spans: Vec<Span>,
    /// Years.
    pub ticks: Vec<Tick>,
    /// Counts per class, for the description.
    pub counts: BTreeMap<&'static str, usize>,
    /// From, to (`YYYY-MM-DD`).
    pub from: String,
    pub to: String,
    /// Releases left off (older than the newest [`MAX_MARKS`]).
    pub left_off: usize,
}

/// A version as pages show it: at most 40 characters, then an ellipsis.
pub fn short(version: &str) -> String {
    if version.chars().count() <= MAX_VERSION_CHARS {
        return version.to_string();
    }
    let head: String = version.chars().take(MAX_VERSION_CHARS).collect();
    format!("{head}…")
}

fn when(r: &ReleaseRow) -> DateTime<Utc> {
    r.published_at.unwrap_or(r.first_seen_at)
}

fn row_of(class: ReleaseClass) -> f64 {
    match class {
        ReleaseClass::Feature => 30.0,
        ReleaseClass::Bugfix => 60.0,
        ReleaseClass::Prerelease => 90.0,
    }
}

/// Lays out `releases` (any order) on a time axis. Pure.
pub fn timeline(releases: &[ReleaseRow]) -> Timeline {
    let mut drawn: Vec<&ReleaseRow> = releases.iter().collect();
    drawn.sort_by_key(|r| when(r));
    let left_off = drawn.len().saturating_sub(MAX_MARKS);
    let drawn = &drawn[left_off..];
    let (Some(first), Some(last)) = (drawn.first(), drawn.last()) else {
        return Timeline {
            width: WIDTH,
            height: 160.0,
            marks: Vec::new(),
            spans: Vec::new(),
            ticks: Vec::new(),
            counts: BTreeMap::new(),
            from: String::new(),
            to: String::new(),
            left_off,
        };
    };
    let (start, end) = (when(first), when(last));
    let range = (end - start).num_seconds().max(1) as f64;
    let x_of = |at: DateTime<Utc>| {
        let offset = (at - start).num_seconds() as f64;
        LEFT + (WIDTH - LEFT - RIGHT) * offset / range
    };
    let mut counts = BTreeMap::new();
    let marks = drawn
        .iter()
        .map(|r| {
            *counts.entry(r.class.as_str()).or_insert(0) += 1;
            let (label, _) = crate::notify::content::class_words(r.class);
            Mark {
                x: round(x_of(when(r))),
                y: row_of(r.class),
                class: r.class.as_str(),
                title: format!(
                    "{} {}: {label}, {}{}",
                    r.project,
                    short(&r.version),
                    when(r).format("%Y-%m-%d"),
                    if r.yanked { ", yanked" } else { "" }
                ),
            }
        })
        .collect();
    Timeline {
        width: WIDTH,
        height: 160.0,
        marks,
        spans: spans(drawn, &x_of),
        ticks: ticks(start, end, &x_of),
        counts,
        from: start.format("%Y-%m-%d").to_string(),
        to: end.format("%Y-%m-%d").to_string(),
        left_off,
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// One span per release line, over its final releases, in order of the line's first release.
fn spans(drawn: &[&ReleaseRow], x_of: &impl Fn(DateTime<Utc>) -> f64) -> Vec<Span> {
    let mut lines: Vec<(String, DateTime<Utc>, DateTime<Utc>, usize)> = Vec::new();
    for r in drawn.iter().filter(|r| r.class != ReleaseClass::Prerelease) {
        match lines.iter_mut().find(|(l, ..)| *l == r.line) {
            Some(entry) => {
                entry.1 = entry.1.min(when(r));
                entry.2 = entry.2.max(when(r));
                entry.3 += 1;
            }
            None => lines.push((r.line.clone(), when(r), when(r), 1)),
        }
    }
    lines.sort_by_key(|(_, from, ..)| *from);
    lines
        .iter()
        .enumerate()
        .map(|(i, (line, from, to, n))| {
            let x = x_of(*from);
            let width = (x_of(*to) - x).max(4.0);
            let line = short(line);
            Span {
                x: round(x),
                width: round(width),
                y: if i % 2 == 0 { 112.0 } else { 124.0 },
                labelled: width >= 8.0 * line.chars().count() as f64,
                title: format!(
                    "line {line}: {n} release{} from {} to {}",
                    if *n == 1 { "" } else { "s" },
                    from.format("%Y-%m-%d"),
                    to.format("%Y-%m-%d")
                ),
                line,
            }
        })
        .collect()
}

fn ticks(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    x_of: &impl Fn(DateTime<Utc>) -> f64,
) -> Vec<Tick> {
    let years: Vec<i32> = (start.year() + 1..=end.year()).collect();
    let step = years.len().div_ceil(12).max(1);
    years
        .iter()
        .step_by(step)
        .filter_map(|y| Utc.with_ymd_and_hms(*y, 1, 1, 0, 0, 0).single())
        .map(|at| Tick {
            x: round(x_of(at)),
            label: at.year().to_string(),
        })
        .collect()
}

/// One row of the releases table.
#[derive(Debug, Serialize)]
struct Row {
    release: ReleaseView,
    version_short: String,
    /// The version is longer than shown.
    shortened: bool,
}

#[derive(Debug, Serialize)]
struct Page {
    base: String,
    project: String,
    kind: String,
    core: Option<String>,
    plugins: Vec<String>,
    total: usize,
    rows: Vec<Row>,
    timeline: Timeline,
    page: usize,
    pages: usize,
    previous: Option<usize>,
    next: Option<usize>,
}

/// `?page=N`.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    page: Option<String>,
}

/// Only `http(s)` links reach a page.
fn safe_link(url: Option<String>) -> Option<String> {
    url.filter(|u| {
        let lower = u.to_ascii_lowercase();
        lower.starts_with("https://") || lower.starts_with("http://")
    })
}

/// `GET /projects/{name}`.
pub async fn project_page(
    State(web): State<Web>,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let Some(project) = web.app.config.project(&name).cloned() else {
        return Err(HttpError::client(
            StatusCode::NOT_FOUND,
            "No such project: Herald tracks the projects listed on its start page.",
        ));
    };
    let page: usize = match q.page.as_deref() {
        None => 1,
        Some(p) => p.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            HttpError::client(StatusCode::BAD_REQUEST, "page must be a number from 1 on")
        })?,
    };
    // Keyed by what the answer depends on, so made-up query strings share one entry.
    let key = format!("/projects/{}?page={page}", project.name);
    let answers = web.answers.clone();
    answers
        .answer(&web.app.store, &headers, &key, Freshness::Page, || async {
            render(&web, &project, page).await
        })
        .await
}

async fn render(
    web: &Web,
    project: &crate::model::Project,
    page: usize,
) -> Result<(&'static str, String), HttpError> {
    let mut releases = web
        .app
        .store
        .releases(&ReleaseFilter {
            projects: vec![project.name.clone()],
            ..ReleaseFilter::default()
        })
        .await?;
    // Newest first by version where both parse, else by date (the store's order).
    releases.sort_by(|a, b| match (&a.parsed, &b.parsed) {
        (Some(x), Some(y)) => y.cmp(x),
        _ => when(b).cmp(&when(a)),
    });
    let total = releases.len();
    let pages = total.div_ceil(PER_PAGE).max(1);
    if page > pages {
        return Err(HttpError::client(
            StatusCode::NOT_FOUND,
            format!("There are {pages} pages of releases."),
        ));
    }
    let rows = releases
        .iter()
        .skip((page - 1) * PER_PAGE)
        .take(PER_PAGE)
        .map(|r| {
            let mut view = release_view(r, Some(project));
            view.links.package = safe_link(view.links.package.take());
            view.links.github = safe_link(view.links.github.take());
            view.links.blog = safe_link(view.links.blog.take());
            view.upgrade_steps.clear();
            let version_short = short(&r.version);
            Row {
                shortened: version_short != r.version,
                version_short,
                release: view,
            }
        })
        .collect();
    let plugins = web
        .app
        .config
        .projects
        .iter()
        .filter(|p| p.plugin_of.as_deref() == Some(project.name.as_str()))
        .map(|p| p.name.clone())
        .collect();
    let body = web.app.notifier.templates.render_page(
        "project",
        &Page {
            base: web.app.config.base_url.path().to_string(),
            project: project.name.clone(),
            kind: match &project.plugin_of {
                Some(core) => format!("a plugin of {core}"),
                None => "a core project".into(),
            },
            core: project.plugin_of.clone(),
            plugins,
            total,
            rows,
            timeline: timeline(&releases),
            page,
            pages,
            previous: (page > 1).then(|| page - 1),
            next: (page < pages).then(|| page + 1),
        },
    )?;
    Ok(("text/html; charset=utf-8", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str, class: ReleaseClass, line: &str, day: &str) -> ReleaseRow {
        let at = DateTime::parse_from_rfc3339(&format!("{day}T12:00:00Z"))
            .expect("date")
            .with_timezone(&Utc);
        ReleaseRow {
            id: 0,
            project: "p".into(),
            version: version.into(),
            class,
            line: line.into(),
            published_at: Some(at),
            first_seen_at: at,
            available_at: Some(at),
            yanked: false,
            yanked_reason: None,
            baseline: true,
            new_in_run: None,
            withdrawn_at: None,
            withdrawn_reason: None,
            sources: Vec::new(),
            parsed: None,
        }
    }

    #[test]
    fn marks_spans_and_ticks_follow_time() {
        let rows = vec![
            release("1.1.0", ReleaseClass::Feature, "1.1", "2025-01-01"),
            release("1.0.0", ReleaseClass::Feature, "1.0", "2024-01-01"),
            release("1.0.1", ReleaseClass::Bugfix, "1.0", "2024-06-01"),
            release("1.1.0rc1", ReleaseClass::Prerelease, "1.1", "2024-12-01"),
        ];
        let t = timeline(&rows);
        assert_eq!(t.marks.len(), 4);
        assert_eq!(t.marks[0].x, LEFT);
        assert_eq!(t.marks[3].x, WIDTH - RIGHT);
        assert!(t.marks[1].x < t.marks[2].x && t.marks[2].x < t.marks[3].x);
        assert_eq!(t.marks[2].class, "prerelease");
        assert!(
            t.marks[0]
                .title
                .contains("p 1.0.0: feature release, 2024-01-01")
        );
        assert_eq!(t.spans.len(), 2, "{:?}", t.spans);
        assert_eq!(t.spans[0].line, "1.0");
        assert!(
            t.spans[0]
                .title
                .contains("2 releases from 2024-01-01 to 2024-06-01")
        );
        assert_eq!(
            t.ticks.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(),
            ["2025"]
        );
        assert_eq!(t.counts.get("feature"), Some(&2));
    }

    #[test]
    fn long_histories_and_long_versions_are_bounded() {
        let rows: Vec<ReleaseRow> = (0..(MAX_MARKS + 20))
            .map(|i| {
                let mut r = release("x", ReleaseClass::Bugfix, "1.0", "2024-01-01");
                r.published_at = r.published_at.map(|d| d + chrono::Duration::days(i as i64));
                r.version = format!("1.0.{i}");
                r
            })
            .collect();
        let t = timeline(&rows);
        assert_eq!(t.marks.len(), MAX_MARKS);
        assert_eq!(t.left_off, 20);
        let long = "9".repeat(100_000);
        assert_eq!(short(&long).chars().count(), MAX_VERSION_CHARS + 1);
        assert!(timeline(&[]).marks.is_empty());
    }
}
