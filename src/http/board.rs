//! `GET /compat` and `GET /compat.json`: the plugin compatibility board of a core project, its
//! newest feature releases (columns) against its plugins (rows), each cell a verdict with the
//! version to install and the evidence. The cells come from `alerts::board`, which applies the
//! same rules (`compat::assess`) as the operator mails; this module only reads the query, picks
//! the core and renders.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::conditional::Freshness;
use super::history::short;
use super::{HttpError, Web};
use crate::alerts::{self, Board};
use crate::model::Project;

/// Feature releases shown by default.
pub const DEFAULT_COLUMNS: usize = 6;
/// At most this many.
pub const MAX_COLUMNS: usize = 24;

/// `?core=NAME&releases=N`.
#[derive(Debug, Deserialize)]
pub struct BoardQuery {
    core: Option<String>,
    releases: Option<String>,
}

fn pick(web: &Web, q: &BoardQuery) -> Result<(Project, usize), HttpError> {
    let core = match q.core.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(name) => web
            .app
            .config
            .cores()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                HttpError::client(
                    StatusCode::NOT_FOUND,
                    format!("`{}` is not a core project Herald tracks.", short(name)),
                )
            })?,
        None => web.app.config.cores().next().ok_or_else(|| {
            HttpError::client(StatusCode::NOT_FOUND, "Herald tracks no core project.")
        })?,
    };
    let columns = match q.releases.as_deref() {
        None => DEFAULT_COLUMNS,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_COLUMNS).contains(n))
            .ok_or_else(|| {
                HttpError::client(
                    StatusCode::BAD_REQUEST,
                    format!("releases must be a number from 1 to {MAX_COLUMNS}"),
                )
            })?,
    };
    Ok((core.clone(), columns))
}

#[derive(Serialize)]
struct Page {
    base: String,
    cores: Vec<String>,
    board: Board,
}

/// `GET /compat`.
pub async fn compat_page(
    State(web): State<Web>,
    Query(q): Query<BoardQuery>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let (core, columns) = pick(&web, &q)?;
    let key = format!("/compat?core={}&releases={columns}", core.name);
    let answers = web.answers.clone();
    answers
        .answer(&web.app.store, &headers, &key, Freshness::Page, || async {
            let board = alerts::board(&web.app, &core, columns).await?;
            let body = web.app.notifier.templates.render_page(
                "compat",
                &Page {
                    base: web.app.config.base_url.path().to_string(),
                    cores: web.app.config.cores().map(|p| p.name.clone()).collect(),
                    board,
                },
            )?;
            Ok(("text/html; charset=utf-8", body))
        })
        .await
}

/// `GET /compat.json`: the board as `CONTRACT.md` gives it.
pub async fn compat_json(
    State(web): State<Web>,
    Query(q): Query<BoardQuery>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let (core, columns) = pick(&web, &q)?;
    let key = format!("/compat.json?core={}&releases={columns}", core.name);
    let answers = web.answers.clone();
    answers
        .answer(&web.app.store, &headers, &key, Freshness::Feed, || async {
            let board = alerts::board(&web.app, &core, columns).await?;
            Ok((
                "application/json",
                serde_json::to_string(&board).map_err(HttpError::internal)?,
            ))
        })
        .await
}
