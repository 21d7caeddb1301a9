//! The browser harness itself, end to end: a page with a form, served locally, filled in and
//! submitted in real headless Chromium, landing on the result page; plus a PNG screenshot.

use crate::common;

use common::Upstream;
use common::browser::Browser;

const FORM: &str = r#"<!DOCTYPE html>
<html><head><title>Subscribe</title></head>
<body>
  <h1>Subscribe to releases</h1>
  <form method="post" action="/subscribed">
    <label>Email <input name="email" type="email"></label>
    <button type="submit" id="go">Subscribe</button>
  </form>
</body></html>"#;

const RESULT: &str = r#"<!DOCTYPE html>
<html><head><title>Subscribed</title></head>
<body><h1 id="result">You are subscribed</h1><p>Check your inbox.</p></body></html>"#;

#[tokio::test]
async fn fills_a_form_submits_it_and_reads_the_result_page() {
    let started = std::time::Instant::now();
    let Some(browser) = Browser::start().await else {
        return;
    };
    eprintln!("browser started in {:?}", started.elapsed());

    let upstream = Upstream::start().await;
    upstream.put("/form", "text/html; charset=utf-8", FORM);
    upstream.put("/subscribed", "text/html; charset=utf-8", RESULT);

    let form_url = format!("{}/form", upstream.url());
    browser.goto(&form_url).await;
    assert_eq!(browser.text_of("h1").await, "Subscribe to releases");
    browser.fill("input[name=email]", "ops@example.org").await;
    browser.click("#go").await;

    // Only the result page has #result: waiting on it waits for the navigation.
    assert_eq!(browser.text_of("#result").await, "You are subscribed");
    assert_eq!(browser.current_url().await.path(), "/subscribed");
    assert!(
        browser.page_text().await.contains("Check your inbox."),
        "result page text"
    );

    // The browser really posted what was typed.
    let posts: Vec<String> = upstream
        .requests()
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/subscribed")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(posts, ["email=ops%40example.org"], "form POST bodies");

    let dir = tempfile::tempdir().expect("screenshot folder");
    let shot = dir.path().join("result.png");
    browser.screenshot(&shot).await;
    let png = std::fs::read(&shot).expect("read the screenshot");
    assert!(
        png.len() > 8 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "screenshot is a PNG ({} bytes)",
        png.len()
    );

    browser.close().await;
    eprintln!("browser test done in {:?}", started.elapsed());
}
