//! The connections Herald opens itself, against real SMTP servers on 127.0.0.1: implicit TLS
//! and STARTTLS with a private CA trusted through `HERALD_SMTP_CA_FILE` (verification is never
//! switched off), AUTH PLAIN and LOGIN (aiosmtpd, `tests/support/tls_relay.py`); and, against
//! the in-repo sink, relays that close a connection after N messages (with or without `421`)
//! and a `421` on connect: nothing lost, nothing sent twice.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::smtp::Stage;
use common::{Sandbox, World};
use herald::app::App;
use herald::notify::{self, DispatchOptions, DispatchReport};
use herald::store::NewMessage;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    common::fixtures().join("tls").join(name)
}

/// aiosmtpd with TLS and AUTH; reports every accepted message as a JSON line.
struct Relay {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
}

impl Relay {
    fn start(mode: &str, only: Option<&str>) -> Relay {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/tls_relay.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(&script)
            .arg(mode)
            .arg("--cert")
            .arg(fixture("relay.pem"))
            .arg("--key")
            .arg(fixture("relay.key"))
            .args(["--user", "herald", "--password", "s3cret-relay-pass"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(mechanism) = only {
            cmd.args(["--only", mechanism]);
        }
        let mut child = cmd
            .spawn()
            .expect("/usr/bin/python3 with aiosmtpd (bash .ci/install-test-tools)");
        let stdout = child.stdout.take().expect("relay stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the relay says its port (is python3-aiosmtpd installed?)");
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {first}"));
        Relay { child, port, lines }
    }

    /// The messages accepted so far.
    fn accepted(&self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(300)) {
            out.push(serde_json::from_str(&line).expect("a JSON line"));
        }
        out
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An app on `sandbox` (the world's or a second one) mailing from `herald@example.org`.
async fn app_with_clock(
    world: &World,
    sandbox: &Sandbox,
    extra: &[&str],
) -> (App, std::sync::Arc<herald::app::ManualClock>) {
    let projects = sandbox.projects("[[project]]\nname = \"demo\"\npypi = \"demo\"\n");
    world
        .app()
        .sandbox(sandbox)
        .projects(&projects)
        .at("2026-11-30T06:00:00Z")
        .flags(&["--from", "herald@example.org"])
        .flags(extra)
        .build()
        .await
}

async fn app(world: &World, extra: &[&str]) -> App {
    app_with_clock(world, &world.sandbox, extra).await.0
}

/// Queues `n` test messages, each for its own recipient.
async fn queue(app: &App, n: usize) {
    for i in 0..n {
        let recipient = format!("op{i}@example.org");
        let subject_key = format!("test:{i}");
        app.store
            .enqueue(
                &NewMessage {
                    subscriber_id: None,
                    recipient: &recipient,
                    kind: "test_message",
                    subject_key: &subject_key,
                    payload: &serde_json::json!({"sent_at": "2026-11-30T06:00:00Z"}),
                    message_id: &app.notifier.message_id(&recipient, &subject_key),
                },
                app.clock.now(),
            )
            .await
            .expect("enqueue");
    }
}

async fn dispatch(app: &App) -> DispatchReport {
    notify::dispatch(app, &DispatchOptions::default())
        .await
        .expect("dispatch")
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_tls_with_auth_plain_and_a_private_ca() {
    let relay = Relay::start("implicit", Some("PLAIN"));
    let world = World::new().await;
    let url = format!("smtps://herald:s3cret-relay-pass@localhost:{}", relay.port);
    let ca = fixture("ca.pem").display().to_string();
    let app = app(&world, &["--smtp-url", &url, "--smtp-ca-file", &ca]).await;
    queue(&app, 5).await;
    let report = dispatch(&app).await;
    assert_eq!(
        (report.sent, report.retrying, report.dead),
        (5, 0, 0),
        "{report:?}"
    );
    let accepted = relay.accepted();
    assert_eq!(accepted.len(), 5, "{accepted:?}");
    for message in &accepted {
        assert_eq!(message["tls"], true, "{message}");
        assert_eq!(message["auth"], true, "{message}");
        assert_eq!(message["from"], "herald@example.org");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_with_auth_login_and_a_private_ca() {
    let relay = Relay::start("starttls", Some("LOGIN"));
    let world = World::new().await;
    let url = format!(
        "smtp://herald:s3cret-relay-pass@localhost:{}?tls=required",
        relay.port
    );
    let ca = fixture("ca.pem").display().to_string();
    let app = app(&world, &["--smtp-url", &url, "--smtp-ca-file", &ca]).await;
    queue(&app, 3).await;
    let report = dispatch(&app).await;
    assert_eq!((report.sent, report.dead), (3, 0), "{report:?}");
    let accepted = relay.accepted();
    assert_eq!(accepted.len(), 3);
    assert!(
        accepted
            .iter()
            .all(|m| m["tls"] == true && m["auth"] == true)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_certificate_or_a_wrong_password_sends_nothing() {
    let relay = Relay::start("implicit", None);
    let world = World::new().await;
    // Without the CA file the relay's certificate is not trusted: nothing goes out, the
    // message waits for a retry (an operator can fix the trust and lose nothing).
    let url = format!("smtps://herald:s3cret-relay-pass@localhost:{}", relay.port);
    let app1 = app(&world, &["--smtp-url", &url]).await;
    queue(&app1, 1).await;
    let report = dispatch(&app1).await;
    assert_eq!((report.sent, report.retrying), (0, 1), "{report:?}");
    let why = report.last_error.unwrap_or_default();
    assert!(why.contains("TLS") || why.contains("certificate"), "{why}");
    assert!(relay.accepted().is_empty());

    // A wrong password is refused by the relay (535): dead-lettered with its answer.
    let other = Sandbox::new();
    let bad = format!("smtps://herald:wrong@localhost:{}", relay.port);
    let ca = fixture("ca.pem").display().to_string();
    let app2 = app_with_clock(&world, &other, &["--smtp-url", &bad, "--smtp-ca-file", &ca])
        .await
        .0;
    queue(&app2, 1).await;
    let report = dispatch(&app2).await;
    assert_eq!((report.sent, report.dead), (0, 1), "{report:?}");
    assert!(report.last_error.unwrap_or_default().contains("535"));
    assert!(relay.accepted().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn relays_that_close_after_n_messages_lose_nothing_and_send_nothing_twice() {
    for say_421 in [true, false] {
        let world = World::new().await;
        let sink = &world.sink;
        sink.limit_per_connection(3, say_421);
        let url = sink.url();
        let app = app(&world, &["--smtp-url", &url, "--smtp-connections", "2"]).await;
        queue(&app, 20).await;
        let report = dispatch(&app).await;
        assert_eq!(
            (report.sent, report.retrying, report.dead),
            (20, 0, 0),
            "421: {say_421}: {report:?}"
        );
        assert_eq!(sink.count(), 20);
        for i in 0..20 {
            assert_eq!(sink.count_for(&format!("op{i}@example.org")), 1, "op{i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_421_on_connect_is_retried_later_and_then_delivered() {
    let world = World::new().await;
    let sink = &world.sink;
    sink.fail_next(
        Stage::Greeting,
        421,
        "4.3.2 Service not available, try later",
        1,
    );
    let url = sink.url();
    let (app, clock) = app_with_clock(
        &world,
        &world.sandbox,
        &["--smtp-url", &url, "--smtp-connections", "1"],
    )
    .await;
    queue(&app, 2).await;
    let first = dispatch(&app).await;
    assert_eq!(first.sent + first.retrying, 2, "{first:?}");
    assert!(
        first.retrying >= 1,
        "the refused connection's message waits: {first:?}"
    );
    assert!(
        first.last_error.unwrap_or_default().contains("421"),
        "the relay's answer is kept"
    );
    clock.advance(chrono::Duration::seconds(notify::RETRY_BASE_SECS + 1));
    let later = dispatch(&app).await;
    assert_eq!(first.sent + later.sent, 2, "{later:?}");
    assert_eq!(sink.count(), 2, "each message exactly once");
}
