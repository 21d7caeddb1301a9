//! Herald behind a reverse proxy, over a real socket: per-client rate limits key on the address
//! a trusted proxy forwards for (`X-Forwarded-For`, `Forwarded`), forged headers from anyone
//! else change nothing, links come from `HERALD_BASE_URL` whatever the request says, and a bad
//! `HERALD_TRUSTED_PROXIES` stops Herald at start.

use crate::common;

use common::World;
use common::web::WebListener;
use herald::notify::{self, DispatchOptions};
use mail_parser::MessageParser;
use reqwest::StatusCode;

/// More than the subscribe burst (5): every client hits the limit within this many posts.
const ATTEMPTS: usize = 10;

/// The web service on 127.0.0.1 (the test client is the socket peer), with extra flags.
struct Service {
    base: String,
    client: reqwest::Client,
    app: herald::app::App,
    _stop: tokio::sync::oneshot::Sender<()>,
    /// The sandbox and the sink the app mails.
    world: World,
}

async fn service(extra: &[&str]) -> Service {
    let world = World::new().await;
    let listener = WebListener::bind().await;
    let base = listener.base.clone();
    let smtp = world.sink.url();
    let mut args = vec!["--base-url", &base, "--smtp-url", &smtp];
    args.extend_from_slice(extra);
    // No check runs here: the upstream is never asked.
    let (app, _clock) = world
        .app()
        .upstream("http://127.0.0.1:9")
        .at("2026-11-22T06:00:00Z")
        .flags(&args)
        .build()
        .await;
    let tx = listener.serve(&app);
    Service {
        base,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        app,
        _stop: tx,
        world,
    }
}

impl Service {
    /// POSTs a subscription with these extra request headers; the answer's status.
    async fn subscribe(&self, email: &str, headers: &[(&str, &str)]) -> StatusCode {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("email", email)
            .finish();
        let mut request = self
            .client
            .post(format!("{}subscribe", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("POST").status()
    }

    /// Subscribes until the answer is 429; the statuses seen.
    async fn exhaust(&self, headers: impl Fn(usize) -> Vec<(String, String)>) -> Vec<StatusCode> {
        let mut statuses = Vec::new();
        for i in 0..ATTEMPTS {
            let pairs = headers(i);
            let pairs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let status = self.subscribe(&format!("r{i}@example.org"), &pairs).await;
            statuses.push(status);
            if status == StatusCode::TOO_MANY_REQUESTS {
                break;
            }
        }
        statuses
    }
}

fn one(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.to_string(), value.to_string())]
}

/// At least the burst went through, then 429.
fn assert_limited(statuses: &[StatusCode]) {
    assert!(
        statuses.len() > 5 && statuses[..5].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_proxy_clients_from_x_forwarded_for_are_limited_separately() {
    let service = service(&["--trusted-proxies", "10.0.0.0/8, 127.0.0.1"]).await;
    let first = |_| one("x-forwarded-for", "203.0.113.10");
    assert_limited(&service.exhaust(first).await);
    assert_eq!(
        service
            .subscribe("late@example.org", &[("x-forwarded-for", "203.0.113.10")])
            .await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy, and the proxy itself, still get through.
    assert_eq!(
        service
            .subscribe("other@example.org", &[("x-forwarded-for", "198.51.100.20")])
            .await,
        StatusCode::OK
    );
    assert_eq!(
        service.subscribe("proxy@example.org", &[]).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spoofed_left_most_entries_do_not_escape_the_limit() {
    let service = service(&["--trusted-proxies", "127.0.0.1"]).await;
    // nginx's $proxy_add_x_forwarded_for appends the real client to whatever it sent.
    let spoofed = |i| {
        one(
            "x-forwarded-for",
            &format!("192.0.2.{i}, 10.0.0.{i}, 203.0.113.10"),
        )
    };
    assert_limited(&service.exhaust(spoofed).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // Proxies are configured, but the peer (127.0.0.1) is not one of them.
    let service = service(&["--trusted-proxies", "10.0.0.0/8,::1"]).await;
    let forged = |i| one("x-forwarded-for", &format!("198.51.100.{i}"));
    assert_limited(&service.exhaust(forged).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_proxy_clients_from_forwarded_are_limited_separately() {
    let service = service(&["--trusted-proxies", "127.0.0.1"]).await;
    let v6 = |_| one("forwarded", "for=\"[2001:db8::1]:4711\";proto=https");
    assert_limited(&service.exhaust(v6).await);
    assert_eq!(
        service
            .subscribe("other@example.org", &[("forwarded", "for=198.51.100.7")])
            .await,
        StatusCode::OK
    );
    // Same client, another port: the same client.
    assert_eq!(
        service
            .subscribe(
                "again@example.org",
                &[("forwarded", "for=\"[2001:db8::1]:9999\"")]
            )
            .await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_forwarded_from_an_untrusted_peer_is_ignored() {
    // Nobody is trusted by default.
    let service = service(&[]).await;
    let forged = |i| {
        vec![
            ("forwarded".to_string(), format!("for=\"[2001:db8::{i}]\"")),
            ("x-forwarded-for".to_string(), format!("198.51.100.{i}")),
        ]
    };
    assert_limited(&service.exhaust(forged).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_headers_from_a_trusted_proxy_count_as_the_proxy() {
    let service = service(&["--trusted-proxies", "127.0.0.1"]).await;
    let garbage = |i| one("forwarded", &format!("for=\"198.51.100.{i}"));
    assert_limited(&service.exhaust(garbage).await);
    // The proxy's own bucket is spent; a well-formed client is not affected.
    assert_eq!(
        service.subscribe("p@example.org", &[]).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        service
            .subscribe("ok@example.org", &[("x-forwarded-for", "203.0.113.77")])
            .await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn links_come_from_the_base_url_not_the_request() {
    let service = service(&["--trusted-proxies", "127.0.0.1"]).await;
    let headers = [
        ("host", "evil.example"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
        (
            "forwarded",
            "for=198.51.100.1;host=evil.example;proto=https",
        ),
    ];
    assert_eq!(
        service.subscribe("link@example.org", &headers).await,
        StatusCode::OK
    );
    notify::dispatch(&service.app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    let messages = service.world.sink.messages();
    assert_eq!(messages.len(), 1);
    let text = MessageParser::default()
        .parse(&messages[0].data)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .expect("text part");
    let link = common::site::link_in(&text, &format!("{}confirm/", service.base));
    assert!(!text.contains("evil.example"), "{text}");
    // The confirmation page's form posts to the base URL's path.
    let page = service
        .client
        .get(&link)
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-prefix", "/evil")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body")
        .replace("&#x2f;", "/");
    assert!(!page.contains("evil"), "{page}");
    assert!(page.contains("action=\"/confirm/"), "{page}");
}

#[tokio::test]
async fn a_bad_trusted_proxies_entry_stops_herald_naming_it() {
    let world = World::new().await;
    let sandbox = &world.sandbox;
    let out = sandbox
        .command(&["migrate"])
        .env("HERALD_DATABASE_URL", sandbox.db_url())
        .env("HERALD_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/33")
        .output()
        .expect("run herald");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HERALD_TRUSTED_PROXIES") && stderr.contains("`10.0.0.0/33`"),
        "{stderr}"
    );
}
