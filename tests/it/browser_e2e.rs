//! A person's path through Herald in headless Chromium: open the start page, subscribe, follow
//! the confirmation link from the mail the SMTP sink received, confirm, change preferences,
//! then unsubscribe from the link in a release mail.

use crate::common;

use common::browser::Browser;
use common::pretalx;
use common::site::{link_in, site};

#[tokio::test(flavor = "multi_thread")]
async fn subscribe_confirm_adjust_and_unsubscribe_in_a_browser() {
    // The history up to 2026.2.0: 2026.2.1 comes out during the test.
    let site = site(47).await;
    let Some(browser) = Browser::start().await else {
        return;
    };

    browser.goto(&site.base).await;
    assert!(browser.page_text().await.contains("2026.2.0"));
    browser.fill("#email", "person@example.org").await;
    let shot = site.base.len(); // keep the screenshot path unique per run
    let png = std::env::temp_dir().join(format!("herald-index-{}-{shot}.png", std::process::id()));
    browser.screenshot(&png).await;
    browser.click("#subscribe-button").await;
    assert!(
        browser
            .text_of("#check-inbox")
            .await
            .contains("Check your inbox")
    );

    let mails = site.mails().await;
    assert_eq!(mails.len(), 1, "one confirmation mail");
    let confirm = link_in(&mails[0], &format!("{}confirm/", site.base));
    browser.goto(&confirm).await;
    assert!(
        browser
            .text_of("#confirm")
            .await
            .contains("Confirm your subscription")
    );
    browser.click("#confirm-button").await;
    assert!(
        browser
            .text_of("#subscribed")
            .await
            .contains("You are subscribed")
    );

    browser.click("#preferences-link").await;
    browser.find("#preferences").await;
    assert!(browser.page_text().await.contains("person@example.org"));
    browser.click("input[name=class][value=prerelease]").await;
    browser.click("input[name=digest][value=instant]").await;
    browser.click("#save-button").await;
    assert!(browser.text_of("#saved").await.contains("Saved."));
    let sub = &site.app.store.subscribers().await.expect("subscribers")[0];
    assert!(
        sub.classes
            .contains(&herald::model::ReleaseClass::Prerelease),
        "{sub:?}"
    );

    // A release comes out: its mail carries the unsubscribe link.
    pretalx::serve_history(&site.upstream, &site.rows, &[]);
    site.clock.advance(chrono::Duration::hours(1));
    herald::check::run(&site.app, &herald::check::CheckOptions::default())
        .await
        .expect("check");
    let mails = site.mails().await;
    assert_eq!(mails.len(), 2);
    assert!(mails[1].contains("pretalx 2026.2.1"), "{}", mails[1]);
    let unsubscribe = link_in(&mails[1], &format!("{}unsubscribe/", site.base));
    browser.goto(&unsubscribe).await;
    assert!(
        browser
            .text_of("#unsubscribe")
            .await
            .contains("Unsubscribe")
    );
    assert_eq!(
        site.app
            .store
            .subscribers()
            .await
            .expect("subscribers")
            .len(),
        1,
        "opening the page changes nothing"
    );
    browser.click("#unsubscribe-button").await;
    assert!(
        browser
            .text_of("#unsubscribed")
            .await
            .contains("You are unsubscribed")
    );
    assert!(
        site.app
            .store
            .subscribers()
            .await
            .expect("subscribers")
            .is_empty()
    );
    browser.close().await;
    let bytes = std::fs::read(&png).expect("screenshot");
    assert!(bytes.starts_with(b"\x89PNG"));
    let _ = std::fs::remove_file(&png);
}
