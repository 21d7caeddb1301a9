//! `GET`/`POST /advise`: a form where an operator pastes `pip freeze` output and gets the same
//! report as `herald advise` (`alerts::advise`), with the pinned upgrade command or the reason
//! to wait. Nothing pasted is stored or logged; the body cap and a per-client rate limit apply
//! (`http`). Owns the form and how its problems read; not the report itself.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{HttpError, Web, html};
use crate::alerts::{self, Advice};
use crate::inventory;

/// Notes about skipped lines shown at most.
const MAX_NOTES: usize = 20;
/// Longest paste read, in bytes (a large installation's `pip freeze` is a few KiB).
const MAX_PASTE: usize = 64 * 1024;

#[derive(Serialize, Default)]
struct Page {
    base: String,
    freeze: String,
    problem: Option<String>,
    notes: Vec<String>,
    advice: Option<Advice>,
}

fn render(web: &Web, status: StatusCode, page: Page) -> Result<Response, HttpError> {
    let body = web.app.notifier.templates.render_page("advise", &page)?;
    Ok(html(status, body))
}

/// `GET /advise`: the empty form.
pub async fn advise_page(State(web): State<Web>) -> Result<Response, HttpError> {
    let base = web.app.config.base_url.path().to_string();
    render(
        &web,
        StatusCode::OK,
        Page {
            base,
            ..Page::default()
        },
    )
}

/// `POST /advise`: the report for the pasted inventory.
pub async fn advise(State(web): State<Web>, body: Bytes) -> Result<Response, HttpError> {
    let base = web.app.config.base_url.path().to_string();
    let freeze: String = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "freeze")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if freeze.len() > MAX_PASTE {
        return render(
            &web,
            StatusCode::PAYLOAD_TOO_LARGE,
            Page {
                base,
                problem: Some(format!(
                    "That is {} KiB: paste at most 64 KiB of `pip freeze` output.",
                    freeze.len() / 1024
                )),
                ..Page::default()
            },
        );
    }
    let echo = freeze.clone();
    let (items, mut notes) = inventory::parse_freeze(&freeze);
    if notes.len() > MAX_NOTES {
        let more = notes.len() - MAX_NOTES;
        notes.truncate(MAX_NOTES);
        notes.push(format!("and {more} more lines skipped"));
    }
    let notes: Vec<String> = notes.iter().map(|n| clip(n, 200)).collect();
    if items.is_empty() {
        return render(
            &web,
            StatusCode::UNPROCESSABLE_ENTITY,
            Page {
                base,
                freeze: echo,
                problem: Some(
                    "No NAME==VERSION line found: paste the output of `pip freeze`.".into(),
                ),
                notes,
                advice: None,
            },
        );
    }
    let advice = alerts::advise(&web.app, &items).await?;
    let tracked = !advice.core.project.is_empty();
    render(
        &web,
        StatusCode::OK,
        Page {
            base,
            freeze: echo,
            problem: (!tracked).then(|| {
                "None of these packages is tracked by Herald: nothing to advise.".to_string()
            }),
            notes,
            advice: tracked.then_some(advice),
        },
    )
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head}…")
}
