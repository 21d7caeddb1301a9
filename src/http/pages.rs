//! The self-service pages: subscribe (double opt-in), confirm, preferences and unsubscribe.
//! State changes only by POST; tokens are random and stored hashed (confirmation) or signed
//! (preferences, unsubscribe); answers never reveal whether an address is known.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Duration;
use serde::Serialize;

use super::{HttpError, Web, html};
use crate::model::{DigestMode, EmailAddress, ReleaseClass, SubscriberStatus};
use crate::notify::content::ConfirmMail;
use crate::notify::outbox::{Letter, queue_mail};
use crate::store::{PendingOutcome, ReleaseFilter, SubscriberWrite};
use crate::tokens;

/// How long a confirmation link works.
pub const CONFIRM_HOURS: i64 = 48;

#[derive(Serialize)]
struct Choice {
    name: String,
    label: String,
    checked: bool,
}

#[derive(Serialize)]
struct Latest {
    project: String,
    version: String,
    class: &'static str,
    published: Option<String>,
    url: Option<String>,
}

#[derive(Serialize)]
struct Action {
    url: String,
    id: &'static str,
    label: &'static str,
}

#[derive(Serialize)]
struct Link {
    url: String,
    id: &'static str,
    label: &'static str,
}

#[derive(Serialize)]
struct Message {
    page: &'static str,
    title: String,
    lines: Vec<String>,
    action: Option<Action>,
    link: Option<Link>,
}

fn message(
    web: &Web,
    status: StatusCode,
    title: &str,
    lines: &[&str],
    action: Option<Action>,
    link: Option<Link>,
) -> Result<Response, HttpError> {
    let page = web.app.notifier.templates.render_page(
        "message",
        &Message {
            page: page_id(title),
            title: title.into(),
            lines: lines.iter().map(|l| l.to_string()).collect(),
            action,
            link,
        },
    )?;
    Ok(html(status, page))
}

/// A stable element id for each page, for people's bookmarks and for tests.
fn page_id(title: &str) -> &'static str {
    match title {
        "Check your inbox" => "check-inbox",
        "Confirm your subscription" => "confirm",
        "You are subscribed" => "subscribed",
        "Unsubscribe" => "unsubscribe",
        "You are unsubscribed" => "unsubscribed",
        "Please check the address" => "bad-address",
        _ => "message",
    }
}

fn invalid_link(web: &Web) -> Result<Response, HttpError> {
    message(
        web,
        StatusCode::NOT_FOUND,
        "This link does not work",
        &["It is invalid or has expired. You can subscribe again from the start page."],
        None,
        Some(Link {
            url: web.app.config.base_url.to_string(),
            id: "home-link",
            label: "Start page",
        }),
    )
}

fn form(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn values<'a>(form: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    form.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

struct Prefs {
    projects: Vec<String>,
    classes: Vec<ReleaseClass>,
    digest: DigestMode,
}

fn prefs_from(web: &Web, form: &[(String, String)]) -> Prefs {
    let tracked: HashSet<&str> = web
        .app
        .config
        .projects
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let mut projects: Vec<String> = values(form, "project")
        .into_iter()
        .filter(|p| tracked.contains(p))
        .map(str::to_string)
        .collect();
    projects.dedup();
    if projects.is_empty() {
        projects = core_projects(web);
    }
    let mut classes: Vec<ReleaseClass> = values(form, "class")
        .into_iter()
        .filter_map(|c| c.parse().ok())
        .collect();
    classes.dedup();
    if classes.is_empty() {
        classes = vec![ReleaseClass::Feature, ReleaseClass::Bugfix];
    }
    let digest = values(form, "digest")
        .first()
        .and_then(|d| d.parse().ok())
        .unwrap_or_default();
    Prefs {
        projects,
        classes,
        digest,
    }
}

fn core_projects(web: &Web) -> Vec<String> {
    web.app.config.cores().map(|p| p.name.clone()).collect()
}

fn choices(web: &Web, prefs: &Prefs) -> (Vec<Choice>, Vec<Choice>, Vec<Choice>) {
    let projects = web
        .app
        .config
        .projects
        .iter()
        .map(|p| Choice {
            name: p.name.clone(),
            label: p.name.clone(),
            checked: prefs.projects.contains(&p.name),
        })
        .collect();
    let classes = [
        (ReleaseClass::Feature, "Feature releases"),
        (ReleaseClass::Bugfix, "Bugfix releases"),
        (ReleaseClass::Prerelease, "Pre-releases"),
    ]
    .into_iter()
    .map(|(c, label)| Choice {
        name: c.as_str().into(),
        label: label.into(),
        checked: prefs.classes.contains(&c),
    })
    .collect();
    let digests = [
        (DigestMode::Instant, "One mail per release"),
        (DigestMode::Daily, "Daily digest"),
        (DigestMode::Weekly, "Weekly digest"),
    ]
    .into_iter()
    .map(|(d, label)| Choice {
        name: d.as_str().into(),
        label: label.into(),
        checked: prefs.digest == d,
    })
    .collect();
    (projects, classes, digests)
}

#[derive(Serialize)]
struct Index {
    base: String,
    latest: Vec<Latest>,
    projects: Vec<Choice>,
    classes: Vec<Choice>,
    digests: Vec<Choice>,
}

/// `GET /`: the latest release of each project, and the subscribe form.
pub async fn index(State(web): State<Web>) -> Result<Response, HttpError> {
    let rows = web.app.store.releases(&ReleaseFilter::default()).await?;
    let mut seen = HashSet::new();
    let mut latest = Vec::new();
    for r in rows.iter().filter(|r| r.available_at.is_some()) {
        if seen.insert(r.project.clone()) {
            let url = r.sources.iter().find_map(|s| s.url.clone());
            latest.push(Latest {
                project: r.project.clone(),
                version: r.version.clone(),
                class: r.class.as_str(),
                published: r.published_at.map(|d| d.format("%Y-%m-%d").to_string()),
                url,
            });
        }
    }
    latest.sort_by(|a, b| a.project.cmp(&b.project));
    let defaults = Prefs {
        projects: core_projects(&web),
        classes: vec![ReleaseClass::Feature, ReleaseClass::Bugfix],
        digest: DigestMode::Instant,
    };
    let (projects, classes, digests) = choices(&web, &defaults);
    let page = web.app.notifier.templates.render_page(
        "index",
        &Index {
            base: web.app.config.base_url.path().to_string(),
            latest,
            projects,
            classes,
            digests,
        },
    )?;
    Ok(html(StatusCode::OK, page))
}

/// `POST /subscribe`: records a pending subscription and mails a confirmation link. The
/// answer is the same whether or not the address was known.
pub async fn subscribe(State(web): State<Web>, body: Bytes) -> Result<Response, HttpError> {
    let form = form(&body);
    let Some(email) = values(&form, "email")
        .first()
        .and_then(|e| e.parse::<EmailAddress>().ok())
    else {
        return message(
            &web,
            StatusCode::BAD_REQUEST,
            "Please check the address",
            &["That does not look like an email address."],
            None,
            None,
        );
    };
    let prefs = prefs_from(&web, &form);
    let now = web.app.clock.now();
    let token = tokens::random_token();
    let expires = now + Duration::hours(CONFIRM_HOURS);
    let outcome = web
        .app
        .store
        .subscribe_pending(
            &SubscriberWrite {
                email: &email,
                projects: &prefs.projects,
                classes: &prefs.classes,
                digest: prefs.digest,
                status: SubscriberStatus::Pending,
                token_hash: Some(&tokens::hash_token(&token)),
                token_expires_at: Some(expires),
            },
            now,
        )
        .await?;
    if let PendingOutcome::Pending(id) = outcome {
        let confirm_url = web
            .app
            .config
            .base_url
            .join(&format!("confirm/{token}"))
            .map_err(HttpError::internal)?
            .to_string();
        let letter = Letter::confirmation(
            id,
            email.as_str(),
            &tokens::hash_token(&token),
            ConfirmMail {
                confirm_url,
                expires_at: expires.format("%Y-%m-%d %H:%M UTC").to_string(),
                projects: prefs.projects.clone(),
            },
        );
        let mut tx = web.app.store.begin().await?;
        queue_mail(&mut tx, &web.app.notifier.from, &letter, now).await?;
        tx.commit().await?;
        web.mail_wakeup.notify_one();
    }
    message(
        &web,
        StatusCode::OK,
        "Check your inbox",
        &[
            "If this address can receive release mail, a message with a confirmation link is on its way. Follow it to start receiving mail.",
        ],
        None,
        None,
    )
}

/// `GET /confirm/{token}`: a page with a button (so that link scanners confirm nothing).
pub async fn confirm_page(
    State(web): State<Web>,
    Path(token): Path<String>,
) -> Result<Response, HttpError> {
    if !web
        .app
        .store
        .pending_token_valid(&tokens::hash_token(&token), web.app.clock.now())
        .await?
    {
        return invalid_link(&web);
    }
    message(
        &web,
        StatusCode::OK,
        "Confirm your subscription",
        &["One more step: confirm that you want release mail at this address."],
        Some(Action {
            url: format!("{}confirm/{token}", web.app.config.base_url.path()),
            id: "confirm-button",
            label: "Confirm my subscription",
        }),
        None,
    )
}

/// `POST /confirm/{token}`: confirms.
pub async fn confirm(
    State(web): State<Web>,
    Path(token): Path<String>,
) -> Result<Response, HttpError> {
    let Some(id) = web
        .app
        .store
        .confirm_token(&tokens::hash_token(&token), web.app.clock.now())
        .await?
    else {
        return invalid_link(&web);
    };
    let prefs = web.app.notifier.signer.sign("preferences", id);
    message(
        &web,
        StatusCode::OK,
        "You are subscribed",
        &["Release mail will reach you from now on."],
        None,
        Some(Link {
            url: format!("{}preferences/{prefs}", web.app.config.base_url.path()),
            id: "preferences-link",
            label: "Choose what you receive",
        }),
    )
}

#[derive(Serialize)]
struct Preferences {
    email: String,
    action: String,
    unsubscribe_url: String,
    saved: bool,
    projects: Vec<Choice>,
    classes: Vec<Choice>,
    digests: Vec<Choice>,
}

async fn preferences_view(web: &Web, token: &str, saved: bool) -> Result<Response, HttpError> {
    let Some(id) = web.app.notifier.signer.verify("preferences", token) else {
        return invalid_link(web);
    };
    let Some(sub) = web.app.store.subscriber(id).await? else {
        return invalid_link(web);
    };
    let (projects, classes, digests) = choices(
        web,
        &Prefs {
            projects: sub.projects.clone(),
            classes: sub.classes.clone(),
            digest: sub.digest,
        },
    );
    let base = web.app.config.base_url.path();
    let page = web.app.notifier.templates.render_page(
        "preferences",
        &Preferences {
            email: sub.email.to_string(),
            action: format!("{base}preferences/{token}"),
            unsubscribe_url: format!(
                "{base}unsubscribe/{}",
                web.app.notifier.signer.sign("unsubscribe", id)
            ),
            saved,
            projects,
            classes,
            digests,
        },
    )?;
    Ok(html(StatusCode::OK, page))
}

/// `GET /preferences/{token}`.
pub async fn preferences_page(
    State(web): State<Web>,
    Path(token): Path<String>,
) -> Result<Response, HttpError> {
    preferences_view(&web, &token, false).await
}

/// `POST /preferences/{token}`: saves projects, classes and delivery mode.
pub async fn preferences(
    State(web): State<Web>,
    Path(token): Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let Some(id) = web.app.notifier.signer.verify("preferences", &token) else {
        return invalid_link(&web);
    };
    let prefs = prefs_from(&web, &form(&body));
    if !web
        .app
        .store
        .set_preferences(
            id,
            &prefs.projects,
            &prefs.classes,
            prefs.digest,
            web.app.clock.now(),
        )
        .await?
    {
        return invalid_link(&web);
    }
    preferences_view(&web, &token, true).await
}

/// `GET /unsubscribe/{token}`: a page with a button; a GET never unsubscribes anyone.
pub async fn unsubscribe_page(
    State(web): State<Web>,
    Path(token): Path<String>,
) -> Result<Response, HttpError> {
    let Some(id) = web.app.notifier.signer.verify("unsubscribe", &token) else {
        return invalid_link(&web);
    };
    if web.app.store.subscriber(id).await?.is_none() {
        return message(
            &web,
            StatusCode::OK,
            "You are unsubscribed",
            &["This address gets no release mail."],
            None,
            None,
        );
    }
    message(
        &web,
        StatusCode::OK,
        "Unsubscribe",
        &["Stop all release mail to this address?"],
        Some(Action {
            url: format!("{}unsubscribe/{token}", web.app.config.base_url.path()),
            id: "unsubscribe-button",
            label: "Unsubscribe",
        }),
        None,
    )
}

/// `POST /unsubscribe/{token}`: unsubscribes; also the RFC 8058 one-click request.
pub async fn unsubscribe(
    State(web): State<Web>,
    Path(token): Path<String>,
) -> Result<Response, HttpError> {
    let Some(id) = web.app.notifier.signer.verify("unsubscribe", &token) else {
        return invalid_link(&web);
    };
    web.app.store.remove_subscriber_id(id).await?;
    message(
        &web,
        StatusCode::OK,
        "You are unsubscribed",
        &["No more release mail will be sent to this address."],
        None,
        None,
    )
}
