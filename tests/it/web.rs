//! The web service of `herald serve` over a real socket: every route, the double opt-in flow
//! with the real SMTP sink, one-click unsubscribe, feeds, the update check, health, metrics,
//! limits and headers.

use crate::common;

use common::pretalx;
use common::site::{link_in, site};
use herald::model::SubscriberStatus;
use reqwest::StatusCode;

fn path_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| url.to_string())
}

fn href(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let before = &html[..at];
    let start = before.rfind("href=\"").expect("href") + 6;
    before[start..]
        .split('"')
        .next()
        .expect("value")
        .replace("&#x2f;", "/")
}

#[tokio::test(flavor = "multi_thread")]
async fn double_opt_in_preferences_and_one_click_unsubscribe() {
    let site = site(48).await;
    let (status, page, headers) = site.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<form method=\"post\" action=\"subscribe\">") && page.contains("2026.2.1"),
        "{page}"
    );
    assert_eq!(
        headers.get("x-frame-options").and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
    assert!(headers.get("content-security-policy").is_some());
    assert_eq!(
        headers
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );

    let (status, answer) = site
        .post_form(
            "/subscribe",
            &[
                ("email", "new@example.org"),
                ("project", "pretalx"),
                ("class", "feature"),
                ("digest", "instant"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer.contains("Check your inbox"), "{answer}");
    let subs = site.app.store.subscribers().await.expect("subs");
    assert_eq!(subs[0].status, SubscriberStatus::Pending);
    let mails = site.mails().await;
    assert_eq!(mails.len(), 1);
    let confirm = link_in(&mails[0], &format!("{}confirm/", site.base));

    // A GET shows a button and changes nothing; the POST confirms.
    let (status, page, _) = site.get(&path_of(&confirm)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("confirm-button"), "{page}");
    assert_eq!(
        site.app.store.subscribers().await.expect("subs")[0].status,
        SubscriberStatus::Pending
    );
    let (status, page) = site.post_form(&path_of(&confirm), &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        site.app.store.subscribers().await.expect("subs")[0].status,
        SubscriberStatus::Confirmed
    );
    let prefs = href(&page, "preferences-link");
    // The confirmation token works once.
    let (status, _) = site.post_form(&path_of(&confirm), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, page, _) = site.get(&prefs).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("new@example.org") && page.contains("save-button"),
        "{page}"
    );
    let (status, page) = site
        .post_form(
            &prefs,
            &[
                ("project", "pretalx"),
                ("project", "pretalx-pages"),
                ("class", "bugfix"),
                ("class", "prerelease"),
                ("digest", "weekly"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Saved."), "{page}");
    let sub = &site.app.store.subscribers().await.expect("subs")[0];
    assert_eq!(sub.projects, ["pretalx", "pretalx-pages"]);
    assert_eq!(sub.digest, herald::model::DigestMode::Weekly);
    assert_eq!(sub.classes.len(), 2);

    // Subscribing a confirmed address again: the same answer, no mail, nothing changed.
    let (status, answer) = site
        .post_form("/subscribe", &[("email", "new@example.org")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer.contains("Check your inbox"));
    assert_eq!(
        site.mails().await.len(),
        1,
        "no mail reveals or changes a known address"
    );
    let (status, _) = site
        .post_form("/subscribe", &[("email", "not-an-address")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Unsubscribe: a GET (link scanners) never unsubscribes; the one-click POST does.
    let token = site.app.notifier.signer.sign("unsubscribe", sub.id);
    let (status, page, _) = site.get(&format!("/unsubscribe/{token}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("unsubscribe-button"));
    assert_eq!(site.app.store.subscribers().await.expect("subs").len(), 1);
    let (status, _) = site
        .post_form(
            &format!("/unsubscribe/{token}"),
            &[("List-Unsubscribe", "One-Click")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(site.app.store.subscribers().await.expect("subs").is_empty());
    // Forged and tampered tokens are refused.
    for path in [
        "/unsubscribe/1.AAAA",
        "/preferences/garbage",
        "/confirm/nope",
    ] {
        let (status, page, _) = site.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {page}");
    }
    let forged = token.replacen(&format!("{}.", sub.id), &format!("{}.", sub.id + 1), 1);
    let (status, _) = site.post_form(&format!("/unsubscribe/{forged}"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn feeds_update_check_health_and_metrics() {
    let site = site(48).await;
    let (status, body, headers) = site
        .get("/releases.json?project=pretalx&class=feature")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
    );
    let list: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(pretalx::FEATURES.len()));
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .all(|r| r["class"] == "feature")
    );
    let (status, _, _) = site.get("/releases.json?class=nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, atom, headers) = site.get("/releases.atom?project=pretalx").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/atom+xml"))
    );
    let feed = feed_rs::parser::parse(atom.as_bytes()).expect("valid Atom");
    assert_eq!(feed.entries.len(), 48);
    assert!(
        feed.entries[0]
            .title
            .as_ref()
            .is_some_and(|t| t.content.contains("2026.2.1")),
        "{:?}",
        feed.entries[0].title
    );

    let payload = serde_json::json!({"id": "abc", "version": "2026.1.2", "python_version": "3.13.5", "database": "postgresql", "events": 3,
        "plugins": [{"name": "pretalx_pages", "version": "1.9.0"}]});
    let r = site
        .client
        .post(format!("{}api/update-check", site.base))
        .json(&payload)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::OK);
    let answer: serde_json::Value = r.json().await.expect("json");
    assert_eq!(answer["version"]["latest"], "2026.2.1");
    assert_eq!(answer["version"]["updatable"], true);
    assert_eq!(answer["plugins"]["pretalx_pages"]["latest"], "1.9.0");
    assert_eq!(answer["plugins"]["pretalx_pages"]["updatable"], false);
    let r = site
        .client
        .post(format!("{}api/update-check", site.base))
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The server closes a connection whose body it refused: use one of its own.
    let r = reqwest::Client::new()
        .post(format!("{}api/update-check", site.base))
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let (status, body, _) = site.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("herald_releases 49"), "{body}");
    assert!(
        body.contains("herald_runs_total{status=\"ok\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("herald_source_failures{project=\"pretalx\",source=\"pypi\"} 0"),
        "{body}"
    );
    assert!(
        body.contains("herald_outbox_messages{state=\"queued\"} 0"),
        "{body}"
    );

    for path in ["/healthcheck", "/healthcheck/"] {
        let (status, body, _) = site.get(path).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ""), "{path}");
    }
    let (status, _, _) = site.get("/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The database goes away: the health check says so.
    site.app.store.close().await;
    let (status, _, _) = site.get("/healthcheck").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribing_is_rate_limited_per_client() {
    let site = site(48).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let email = format!("r{i}@example.org");
        statuses.push(
            site.post_form("/subscribe", &[("email", email.as_str())])
                .await
                .0,
        );
    }
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(statuses[7], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // Other routes are not limited.
    for _ in 0..20 {
        assert_eq!(site.get("/healthcheck").await.0, StatusCode::OK);
    }
}
