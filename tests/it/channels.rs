//! Channels end to end: real check runs queue channel deliveries with the mail, the real
//! dispatcher sends them to local receivers that check what the real services check (see
//! `common::receivers`), and every fault a receiver can answer is handled as documented.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::pretalx;
use common::receivers::{self, Fault, Kind, Receiver};
use common::{World, run_check};
use herald::app::{App, ManualClock};
use herald::notify::{self, DispatchOptions, DispatchReport};
use herald::store::OutboxRow;
use serde_json::Value;

const UPGRADE: &str = "pip install -U 'pretalx>={version}' && systemctl restart pretalx";

/// The common world (pretalx's history before 2026.2.1, a sink) and one receiver of each
/// channel kind.
struct ChannelWorld {
    world: World,
    receivers: HashMap<&'static str, Receiver>,
}

impl std::ops::Deref for ChannelWorld {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

/// The channel names of the world's receivers.
fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Webhook => "hook",
        Kind::Matrix => "room",
        Kind::Slack => "slack",
        Kind::Discord => "discord",
        Kind::Ntfy => "phone",
    }
}

impl ChannelWorld {
    async fn new() -> ChannelWorld {
        let world = World::pretalx().await;
        let mut receivers = HashMap::new();
        for kind in Kind::ALL {
            let secret = match kind {
                Kind::Webhook => Some(receivers::WHSEC),
                Kind::Matrix | Kind::Ntfy => Some(receivers::TOKEN),
                _ => None,
            };
            receivers.insert(name(kind), Receiver::start(kind, secret).await);
        }
        ChannelWorld { world, receivers }
    }

    fn receiver(&self, kind: Kind) -> &Receiver {
        &self.receivers[name(kind)]
    }

    /// One channel of every kind, and `extra` entries.
    fn channels_toml(&self, extra: &str) -> String {
        let r = |k: Kind| self.receiver(k).url();
        format!(
            r#"[[channel]]
name = "hook"
kind = "webhook"
url = "{}"
secret = "{}"

[[channel]]
name = "room"
kind = "matrix"
url = "{}"
room = "{}"
secret = "{}"

[[channel]]
name = "slack"
kind = "slack"
url = "{}"

[[channel]]
name = "discord"
kind = "discord"
url = "{}"

[[channel]]
name = "phone"
kind = "ntfy"
url = "{}"
topic = "{}"
secret = "{}"
priority = 4
{extra}"#,
            r(Kind::Webhook),
            receivers::WHSEC,
            r(Kind::Matrix),
            receivers::ROOM,
            receivers::TOKEN,
            r(Kind::Slack),
            r(Kind::Discord),
            r(Kind::Ntfy),
            receivers::TOPIC,
            receivers::TOKEN,
        )
    }

    async fn app(&self, extra_channels: &str) -> (App, Arc<ManualClock>) {
        let projects = self.pretalx_and_other(&[UPGRADE]);
        let channels = self.sandbox.path("channels.toml");
        std::fs::write(&channels, self.channels_toml(extra_channels)).expect("write channels");
        let channels = channels.display().to_string();
        self.world
            .app()
            .projects(&projects)
            .mail()
            .flags(&["--channels", &channels])
            .build()
            .await
    }

    fn request_count(&self) -> usize {
        self.receivers.values().map(|r| r.requests().len()).sum()
    }
}

async fn check(app: &App) {
    run_check(app).await;
}

async fn dispatch(app: &App) -> DispatchReport {
    notify::dispatch(app, &DispatchOptions::default())
        .await
        .expect("dispatch")
}

/// A world after the baseline run, with `extra` channels, one mail subscriber, and pretalx
/// 2026.2.1 found and queued (not yet sent).
async fn queued_release(extra: &str) -> (ChannelWorld, App, Arc<ManualClock>) {
    let w = ChannelWorld::new().await;
    let (app, clock) = w.app(extra).await;
    check(&app).await;
    dispatch(&app).await;
    assert_eq!(w.request_count(), 0, "the baseline announces nothing");
    common::subscribe_instant(&app, "alice@example.org", "pretalx").await;
    w.release_2026_2_1();
    check(&app).await;
    (w, app, clock)
}

async fn channel_row(app: &App, channel: &str) -> OutboxRow {
    app.store
        .outbox(&[], 1000)
        .await
        .expect("outbox")
        .into_iter()
        .find(|r| r.channel.as_deref() == Some(channel))
        .unwrap_or_else(|| panic!("a delivery for {channel}"))
}

/// Checks `value` against the subset of JSON Schema the webhook schema uses.
fn conforms(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits =
            allowed.contains(&actual) || (actual == "integer" && allowed.contains(&"number"));
        if !fits {
            return Err(format!("{at}: {actual} is not {allowed:?}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return Err(format!("{at}: {value} is not {constant}"));
    }
    for field in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if value.get(field).is_none() {
            return Err(format!("{at}: `{field}` is missing"));
        }
    }
    if let (Some(properties), Some(object)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (key, sub) in properties {
            if let Some(v) = object.get(key) {
                conforms(sub, v, &format!("{at}.{key}"))?;
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            conforms(items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn schema() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/webhook-v1.schema.json");
    serde_json::from_slice(&std::fs::read(&path).expect("the webhook schema")).expect("schema JSON")
}

#[tokio::test]
async fn a_release_reaches_mail_and_every_matching_channel_once() {
    let filtered = Receiver::start(Kind::Slack, None).await;
    let elsewhere = Receiver::start(Kind::Webhook, Some(receivers::WHSEC)).await;
    let mattermost = Receiver::start(Kind::Slack, None).await;
    let extra = format!(
        r#"
[[channel]]
name = "mm"
kind = "slack"
url = "{}"
flavor = "mattermost"

[[channel]]
name = "features-only"
kind = "slack"
url = "{}"
classes = ["feature"]

[[channel]]
name = "other-only"
kind = "webhook"
url = "{}"
secret = "{}"
projects = ["other"]
"#,
        mattermost.url(),
        filtered.url(),
        elsewhere.url(),
        receivers::WHSEC
    );
    let (w, app, clock) = queued_release(&extra).await;
    let report = dispatch(&app).await;
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(report.channels.sent, 6, "{report:?}");
    // Mattermost and Rocket.Chat take attachments, one per release.
    let mm = mattermost.accepted();
    assert_eq!(mm.len(), 1, "{:?}", mattermost.requests());
    let mm = mm[0].json();
    assert_eq!(mm["attachments"][0]["title"], "pretalx 2026.2.1");
    assert!(
        mm["attachments"][0]["title_link"]
            .as_str()
            .is_some_and(|l| l.starts_with("https://"))
    );
    assert!(mm.get("blocks").is_none(), "{mm}");
    assert_eq!(w.sink.count_for("alice@example.org"), 1);
    for kind in Kind::ALL {
        let r = w.receiver(kind);
        assert_eq!(r.requests().len(), 1, "{kind:?}: {:?}", r.requests());
        assert_eq!(
            r.accepted().len(),
            1,
            "{kind:?} accepts: {:?}",
            r.requests()
        );
    }
    assert!(
        filtered.requests().is_empty(),
        "a bugfix release is not for a features-only channel"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "pretalx is not for a channel of `other`"
    );

    // Webhook: the contract's event, the schema, and the delivery id of the outbox row.
    let hook = &w.receiver(Kind::Webhook).accepted()[0];
    let event = hook.json();
    assert_eq!(event["type"], "release.published");
    let data = &event["data"];
    assert_eq!(data["project"], "pretalx");
    assert_eq!(data["version"], "2026.2.1");
    assert_eq!(data["class"], "bugfix");
    assert_eq!(data["line"], "2026.2");
    assert!(
        data["published_at"]
            .as_str()
            .is_some_and(|p| p.starts_with("20")),
        "{data}"
    );
    assert!(data["urls"]["package"].as_str().is_some(), "{data}");
    assert_eq!(data["releases"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        data["upgrade_steps"][0],
        UPGRADE.replace("{version}", "2026.2.1")
    );
    conforms(&schema(), &event, "event").expect("the event follows the schema");
    let row = channel_row(&app, "hook").await;
    assert_eq!(
        hook.header("webhook-id").as_deref(),
        Some(row.message_id.as_str())
    );
    assert_eq!(row.status, "sent");

    // Matrix: an m.notice with HTML, sent with the delivery's txnId.
    let room = w.receiver(Kind::Matrix);
    let events = room.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["msgtype"], "m.notice");
    assert!(
        events[0]["body"]
            .as_str()
            .is_some_and(|b| b.contains("pretalx 2026.2.1"))
    );
    assert_eq!(events[0]["format"], "org.matrix.custom.html");
    let html = events[0]["formatted_body"]
        .as_str()
        .expect("formatted_body");
    assert!(html.contains("<strong>pretalx 2026.2.1</strong>"), "{html}");
    assert!(
        html.contains("&amp;&amp;") && html.contains("&gt;="),
        "escaped: {html}"
    );
    let txn = room.accepted()[0]
        .path
        .rsplit('/')
        .next()
        .map(str::to_string);
    assert_eq!(
        txn.as_deref(),
        Some(channel_row(&app, "room").await.message_id.as_str())
    );

    // Slack: escaped text, links in Slack's syntax, blocks for the slack flavor.
    let slack = w.receiver(Kind::Slack).accepted()[0].json();
    let text = slack["text"].as_str().expect("text");
    assert!(text.contains("*pretalx 2026.2.1*"), "{text}");
    assert!(
        text.contains("&amp;&amp;") && text.contains("&gt;="),
        "{text}"
    );
    assert!(text.contains("|Release notes>"), "{text}");
    assert_eq!(slack["blocks"][0]["text"]["type"], "mrkdwn");

    // Discord: never a ping, an embed per release.
    let discord = w.receiver(Kind::Discord).accepted()[0].json();
    assert_eq!(
        discord["allowed_mentions"],
        serde_json::json!({"parse": []})
    );
    assert_eq!(discord["embeds"][0]["title"], "pretalx 2026.2.1");

    // ntfy: JSON to the root, the delivery's sequence id.
    let ntfy = w.receiver(Kind::Ntfy).accepted()[0].clone();
    let message = ntfy.json();
    assert_eq!(message["topic"], receivers::TOPIC);
    assert_eq!(message["title"], "pretalx 2026.2.1 released");
    assert_eq!(message["priority"], 4);
    assert_eq!(message["markdown"], true);
    assert_eq!(
        message["sequence_id"],
        channel_row(&app, "phone").await.message_id
    );
    assert!(
        message["click"]
            .as_str()
            .is_some_and(|c| c.starts_with("https://"))
    );

    // A re-run, and one a day later, send nothing anywhere.
    let before = w.request_count();
    check(&app).await;
    let again = dispatch(&app).await;
    clock.advance(chrono::Duration::days(1));
    check(&app).await;
    dispatch(&app).await;
    assert_eq!(again.sent + again.channels.sent, 0, "{again:?}");
    assert_eq!(w.request_count(), before);
    assert_eq!(w.sink.count(), 1);
    assert!(filtered.requests().is_empty() && elsewhere.requests().is_empty());
}

#[tokio::test]
async fn the_webhook_receiver_rejects_a_tampered_body_and_a_stale_timestamp() {
    let (w, app, _) = queued_release("").await;
    dispatch(&app).await;
    let receiver = w.receiver(Kind::Webhook);
    let genuine = receiver.accepted()[0].clone();
    let headers: Vec<(&str, String)> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .map(|h| (*h, genuine.header(h).expect("header")))
        .collect();
    // The genuine request, replayed as it was, verifies: the receiver is not refusing everything.
    assert_eq!(
        receiver
            .post_raw("/hooks/herald", &headers, genuine.body.clone())
            .await,
        204
    );
    let tampered = String::from_utf8(genuine.body.clone())
        .expect("utf-8")
        .replace("2026.2.1", "2026.2.9");
    assert_eq!(
        receiver
            .post_raw("/hooks/herald", &headers, tampered.into_bytes())
            .await,
        401,
        "a tampered body"
    );
    // Signed correctly by Herald's signer, but ten minutes old.
    let id = genuine.header("webhook-id").expect("id");
    let stale = chrono::Utc::now().timestamp() - 600;
    let secret = secrecy::SecretString::from(receivers::WHSEC);
    let signature =
        herald::notify::channels::webhook::sign(&secret, &id, stale, &genuine.body).expect("signs");
    let old = vec![
        ("webhook-id", id.clone()),
        ("webhook-timestamp", stale.to_string()),
        ("webhook-signature", signature),
    ];
    assert_eq!(
        receiver
            .post_raw("/hooks/herald", &old, genuine.body.clone())
            .await,
        401,
        "a stale timestamp"
    );
    // The same signer with a fresh timestamp verifies.
    let now = chrono::Utc::now().timestamp();
    let fresh = vec![
        ("webhook-id", id.clone()),
        ("webhook-timestamp", now.to_string()),
        (
            "webhook-signature",
            herald::notify::channels::webhook::sign(&secret, &id, now, &genuine.body)
                .expect("signs"),
        ),
    ];
    assert_eq!(
        receiver
            .post_raw("/hooks/herald", &fresh, genuine.body)
            .await,
        204
    );
}

#[tokio::test]
async fn while_keys_rotate_every_secret_signs() {
    // The receiver still knows only the old secret; Herald signs with the new and the old.
    let old_only = Receiver::start(Kind::Webhook, Some(receivers::WHSEC_OLD)).await;
    let extra = format!(
        "\n[[channel]]\nname = \"rotating\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = [\"{}\", \"{}\"]\n",
        old_only.url(),
        receivers::WHSEC,
        receivers::WHSEC_OLD
    );
    let (_w, app, _) = queued_release(&extra).await;
    dispatch(&app).await;
    let got = old_only.accepted();
    assert_eq!(got.len(), 1, "{:?}", old_only.requests());
    let signatures = got[0].header("webhook-signature").expect("signature");
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    assert!(
        signatures.split(' ').all(|s| s.starts_with("v1,")),
        "{signatures}"
    );
}

/// Runs `fault` on every channel at once, then returns the world, app and clock after the
/// first dispatch.
async fn with_fault(fault: impl Fn(Kind) -> Fault) -> (ChannelWorld, App, Arc<ManualClock>) {
    let (w, app, clock) = queued_release("").await;
    for kind in Kind::ALL {
        w.receiver(kind).fault(fault(kind));
    }
    dispatch(&app).await;
    (w, app, clock)
}

#[tokio::test]
async fn a_server_error_is_retried_with_the_same_id_and_delivered_once() {
    let (w, app, clock) = with_fault(|_| Fault::Status(500, vec![], "oops".into())).await;
    for kind in Kind::ALL {
        let row = channel_row(&app, name(kind)).await;
        assert_eq!(row.status, "retrying", "{kind:?}");
        assert_eq!(row.last_response.as_deref(), Some("HTTP 500: oops"));
        assert!(w.receiver(kind).accepted().is_empty());
    }
    // Not before the backoff.
    dispatch(&app).await;
    assert_eq!(w.request_count(), 5);
    clock.advance(notify::retry_delay(0) + chrono::Duration::seconds(1));
    let report = dispatch(&app).await;
    assert_eq!(report.channels.sent, 5, "{report:?}");
    for kind in Kind::ALL {
        let r = w.receiver(kind);
        let requests = r.requests();
        assert_eq!(requests.len(), 2, "{kind:?}");
        assert_eq!(r.accepted().len(), 1, "{kind:?}: one delivery");
        let row = channel_row(&app, name(kind)).await;
        assert_eq!((row.status.as_str(), row.attempts), ("sent", 2));
        match kind {
            Kind::Webhook => {
                assert_eq!(
                    requests[0].header("webhook-id"),
                    requests[1].header("webhook-id")
                );
                assert_eq!(
                    requests[1].header("webhook-id").as_deref(),
                    Some(row.message_id.as_str())
                );
            }
            Kind::Matrix => assert_eq!(requests[0].path, requests[1].path, "same txnId"),
            Kind::Ntfy => assert_eq!(
                requests[0].json()["sequence_id"],
                requests[1].json()["sequence_id"]
            ),
            _ => assert_eq!(requests[0].body, requests[1].body),
        }
    }
}

#[tokio::test]
async fn rate_limits_are_honoured_as_each_service_states_them() {
    let (w, app, clock) = with_fault(|kind| match kind {
        Kind::Matrix => Fault::Status(
            429,
            vec![],
            r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":120000}"#
                .into(),
        ),
        Kind::Discord => Fault::Status(
            429,
            vec![("retry-after", "120".into())],
            r#"{"message":"You are being rate limited.","retry_after":120.0,"global":false}"#
                .into(),
        ),
        _ => Fault::Status(429, vec![("retry-after", "120".into())], String::new()),
    })
    .await;
    let now = app.clock.now();
    for kind in Kind::ALL {
        let row = channel_row(&app, name(kind)).await;
        assert_eq!(row.status, "retrying", "{kind:?}");
        assert_eq!(
            row.next_attempt_at,
            now + chrono::Duration::seconds(120),
            "{kind:?}"
        );
    }
    // The usual backoff (60 s) has passed, the receiver's 120 s have not.
    clock.advance(chrono::Duration::seconds(90));
    dispatch(&app).await;
    assert_eq!(w.request_count(), 5);
    clock.advance(chrono::Duration::seconds(31));
    let report = dispatch(&app).await;
    assert_eq!(report.channels.sent, 5, "{report:?}");
    for kind in Kind::ALL {
        assert_eq!(w.receiver(kind).accepted().len(), 1, "{kind:?}");
    }
}

#[tokio::test]
async fn a_missing_target_is_dead_lettered_with_the_answer() {
    let (w, app, clock) = with_fault(|kind| {
        if kind == Kind::Ntfy {
            // A huge answer is read only in part, and kept shorter still.
            Fault::Status(404, vec![], "Unknown Webhook ".repeat(200_000))
        } else {
            Fault::Status(404, vec![], "Unknown Webhook".into())
        }
    })
    .await;
    for kind in Kind::ALL {
        let row = channel_row(&app, name(kind)).await;
        assert_eq!(row.status, "dead", "{kind:?}");
        let answer = row.last_response.unwrap_or_default();
        if kind == Kind::Ntfy {
            assert!(
                answer.starts_with("HTTP 404: Unknown Webhook Unknown"),
                "{answer}"
            );
            assert!(answer.len() < 400, "{}", answer.len());
        } else {
            assert_eq!(answer, "HTTP 404: Unknown Webhook");
        }
    }
    clock.advance(chrono::Duration::days(1));
    dispatch(&app).await;
    assert_eq!(w.request_count(), 5, "a dead letter is not retried");
    assert!(
        app.store
            .disabled_channels()
            .await
            .expect("state")
            .is_empty(),
        "404 disables nothing"
    );
}

#[tokio::test]
async fn gone_disables_the_channel_visibly_until_a_test_goes_through() {
    let (w, app, clock) = with_fault(|_| Fault::Status(410, vec![], "Gone".into())).await;
    let disabled = app.store.disabled_channels().await.expect("state");
    for kind in Kind::ALL {
        assert_eq!(channel_row(&app, name(kind)).await.status, "dead");
        assert_eq!(disabled[name(kind)].reason, "HTTP 410: Gone", "{kind:?}");
    }
    // The next release gets no request and is dead-lettered saying why.
    let extra = [("2026.2.2", "2026-07-10T10:00:00Z")];
    pretalx::serve_history(&w.upstream, &w.rows, &extra);
    clock.advance(chrono::Duration::hours(1));
    check(&app).await;
    dispatch(&app).await;
    assert_eq!(w.request_count(), 5);
    let rows = app.store.outbox(&["dead"], 1000).await.expect("outbox");
    let later = rows
        .iter()
        .find(|r| r.channel.as_deref() == Some("room") && r.subject_key.ends_with("2026.2.2"))
        .expect("the later delivery");
    assert!(
        later.last_response.as_deref().is_some_and(
            |a| a.contains("channel room is disabled") && a.contains("herald send-test room")
        ),
        "{later:?}"
    );
    // /metrics says so.
    let listener = common::web::WebListener::bind().await;
    let addr = listener.addr;
    let stop = listener.serve(&app);
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("herald_channel_disabled{channel=\"room\",kind=\"matrix\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "herald_channel_deliveries{channel=\"room\",kind=\"matrix\",state=\"dead\"} 2"
        ),
        "{metrics}"
    );
    let _ = stop.send(());
    // A test notification that goes through enables the channel again.
    herald_send_test(&app, "room").await;
    let disabled = app.store.disabled_channels().await.expect("state");
    assert!(!disabled.contains_key("room"), "{disabled:?}");
    assert!(disabled.contains_key("hook"));
}

/// What `herald send-test` does, in process.
async fn herald_send_test(app: &App, channel: &str) {
    let now = app.clock.now();
    let key = format!("test:{}", now.timestamp_micros());
    let id = herald::notify::channels::delivery_id(channel, &key);
    let payload = serde_json::json!({ "sent_at": now.to_rfc3339() });
    let row = app
        .store
        .enqueue_channel(
            &herald::store::ChannelDelivery {
                channel,
                kind: "test",
                subject_key: &key,
                payload: &payload,
                delivery_id: &id,
            },
            now,
        )
        .await
        .expect("queue")
        .expect("queued");
    notify::dispatch(
        app,
        &DispatchOptions {
            only: Some(row),
            ..DispatchOptions::default()
        },
    )
    .await
    .expect("dispatch");
    let row = app
        .store
        .outbox_message(row)
        .await
        .expect("row")
        .expect("row");
    assert_eq!(row.status, "sent", "{row:?}");
}

#[tokio::test]
async fn a_timeout_is_retried() {
    // The sandbox's HTTP timeout is 0.5 s.
    let (w, app, clock) = with_fault(|_| Fault::Hang(Duration::from_millis(1500))).await;
    for kind in Kind::ALL {
        let row = channel_row(&app, name(kind)).await;
        assert_eq!(row.status, "retrying", "{kind:?}");
        assert!(
            row.last_response
                .as_deref()
                .is_some_and(|a| a.starts_with("timed out")),
            "{row:?}"
        );
    }
    clock.advance(notify::retry_delay(0) + chrono::Duration::seconds(1));
    dispatch(&app).await;
    for kind in Kind::ALL {
        assert_eq!(w.receiver(kind).accepted().len(), 1, "{kind:?}");
        assert_eq!(channel_row(&app, name(kind)).await.status, "sent");
    }
}

#[tokio::test]
async fn a_redirect_is_refused_not_followed() {
    let (w, app, clock) = with_fault(|_| Fault::Redirect).await;
    for kind in Kind::ALL {
        let r = w.receiver(kind);
        assert_eq!(
            r.requests().len(),
            1,
            "{kind:?}: the redirect was not followed"
        );
        let row = channel_row(&app, name(kind)).await;
        assert_eq!(row.status, "dead", "{kind:?}");
        let answer = row.last_response.unwrap_or_default();
        assert!(
            answer.starts_with("HTTP 302: redirect to http://127.0.0.1:"),
            "{answer}"
        );
        assert!(answer.contains("follows no redirects"), "{answer}");
    }
    clock.advance(chrono::Duration::days(1));
    dispatch(&app).await;
    assert_eq!(w.request_count(), 5);
}

#[tokio::test]
async fn the_matrix_stub_holds_herald_to_bearer_auth_and_txn_idempotency() {
    // A wrong token is refused, and Herald dead-letters the refusal with the answer.
    let w = ChannelWorld::new().await;
    let strict = Receiver::start(Kind::Matrix, Some("syt_another_token")).await;
    let extra = format!(
        "\n[[channel]]\nname = \"strict\"\nkind = \"matrix\"\nurl = \"{}\"\nroom = \"{}\"\nsecret = \"{}\"\n",
        strict.url(),
        receivers::ROOM,
        receivers::TOKEN
    );
    let (app, _) = w.app(&extra).await;
    check(&app).await;
    w.release_2026_2_1();
    check(&app).await;
    dispatch(&app).await;
    let row = channel_row(&app, "strict").await;
    assert_eq!(row.status, "dead");
    assert!(
        row.last_response
            .unwrap_or_default()
            .contains("M_UNKNOWN_TOKEN")
    );
    assert!(strict.events().is_empty());
    // The same delivery sent twice (a crash after the homeserver accepted it) is one event.
    let room = w.receiver(Kind::Matrix);
    let first = room.accepted()[0].clone();
    let auth = first.header("authorization").expect("auth");
    let client = reqwest::Client::new();
    let again = client
        .put(format!("http://{}{}", room.addr, first.path))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(first.body.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(again.status().as_u16(), 200);
    let event: Value = again.json().await.expect("json");
    assert_eq!(event["event_id"], "$event0");
    assert_eq!(room.events().len(), 1);
    let without = client
        .put(format!("http://{}{}", room.addr, first.path))
        .body(first.body)
        .send()
        .await
        .expect("put");
    assert_eq!(without.status().as_u16(), 401, "no token, no event");
}

#[tokio::test]
async fn the_discord_stub_refuses_a_message_that_could_ping() {
    let discord = Receiver::start(Kind::Discord, None).await;
    let body = serde_json::json!({"content": "@everyone pretalx 2026.2.1"});
    let status = discord
        .post_raw(
            "/api/webhooks/1/x?wait=true",
            &[],
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 400, "no allowed_mentions");
    let body = serde_json::json!({"content": "@everyone", "allowed_mentions": {"parse": []}});
    let status = discord
        .post_raw(
            "/api/webhooks/1/x?wait=true",
            &[],
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 200);
}

#[test]
fn the_slack_check_catches_unescaped_text() {
    assert!(receivers::slack_escaped(
        "a &amp; b &lt;c&gt; <https://x.example/y|link>"
    ));
    assert!(!receivers::slack_escaped("a & b"));
    assert!(!receivers::slack_escaped("<script>"));
}

#[tokio::test]
async fn long_text_stays_within_each_services_limits() {
    // Thirty releases found at once: Discord's 2,000 characters and 10 embeds, ntfy's
    // 4,096 bytes.
    let w = ChannelWorld::new().await;
    let (app, _) = w.app("").await;
    check(&app).await;
    let versions: Vec<String> = (2..32).map(|n| format!("2026.2.{n}")).collect();
    let extra: Vec<(&str, &str)> = versions
        .iter()
        .map(|v| (v.as_str(), "2026-07-10T10:00:00Z"))
        .collect();
    pretalx::serve_history(&w.upstream, &w.rows, &extra);
    check(&app).await;
    let report = dispatch(&app).await;
    assert_eq!(report.channels.sent, 5, "{report:?}");
    let discord = w.receiver(Kind::Discord).accepted()[0].json();
    let content = discord["content"].as_str().expect("content");
    assert!(content.chars().count() <= 2000, "{}", content.len());
    assert!(content.ends_with('…'), "cut, and says so");
    assert_eq!(discord["embeds"].as_array().map(Vec::len), Some(10));
    let ntfy = w.receiver(Kind::Ntfy).accepted()[0].json();
    assert!(ntfy["message"].as_str().expect("message").len() <= 4096);
    assert_eq!(ntfy["title"], "pretalx 2026.2.31 and 30 more released");
    let hook = w.receiver(Kind::Webhook).accepted()[0].json();
    assert_eq!(hook["data"]["version"], "2026.2.31");
    assert_eq!(hook["data"]["releases"].as_array().map(Vec::len), Some(31));
}

/// Runs the real binary with `env`, off the runtime's threads.
async fn herald(w: &ChannelWorld, args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let mut cmd = w.sandbox.command(args);
    cmd.args(w.sandbox.args(&w.upstream.url(), None));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::process::Command::from(cmd)
        .output()
        .await
        .expect("run herald");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn send_test_reads_secrets_from_the_environment_and_never_prints_them() {
    let w = ChannelWorld::new().await;
    let slack_url = w.receiver(Kind::Slack).url();
    let discord_url = w.receiver(Kind::Discord).url();
    let toml = format!(
        r#"[[channel]]
name = "hook"
kind = "webhook"
url = "{}"
secret = "${{HOOK_SECRET}}"

[[channel]]
name = "room"
kind = "matrix"
url = "{}"
room = "{}"
secret = "${{MATRIX_TOKEN}}"

[[channel]]
name = "slack"
kind = "slack"
url = "${{SLACK_URL}}"

[[channel]]
name = "discord"
kind = "discord"
url = "${{DISCORD_URL}}"

[[channel]]
name = "phone"
kind = "ntfy"
url = "{}"
topic = "{}"
secret = "${{NTFY_TOKEN}}"
"#,
        w.receiver(Kind::Webhook).url(),
        w.receiver(Kind::Matrix).url(),
        receivers::ROOM,
        w.receiver(Kind::Ntfy).url(),
        receivers::TOPIC,
    );
    let file = w.sandbox.path("channels.toml");
    std::fs::write(&file, &toml).expect("write");
    let env = vec![
        ("HERALD_CHANNELS", file.display().to_string()),
        ("HERALD_LOG", "trace".to_string()),
        ("HOOK_SECRET", receivers::WHSEC.to_string()),
        ("MATRIX_TOKEN", receivers::TOKEN.to_string()),
        ("NTFY_TOKEN", receivers::TOKEN.to_string()),
        ("SLACK_URL", slack_url),
        ("DISCORD_URL", discord_url),
    ];
    let secrets = [
        receivers::WHSEC.trim_start_matches("whsec_"),
        receivers::TOKEN,
        "XXXXSECRET",
        "DISCORDSECRET",
    ];
    let clean = |text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "a secret was printed: {text}");
        }
    };
    for kind in Kind::ALL {
        let (code, out, err) = herald(&w, &["send-test", name(kind)], &env).await;
        assert_eq!(code, 0, "{kind:?}: {out}{err}");
        assert!(
            out.starts_with(&format!(
                "Sent a test notification through the {} channel {}",
                kind.as_str(),
                name(kind)
            )),
            "{out}"
        );
        assert!(out.contains("The receiver answered: HTTP 20"), "{out}");
        clean(&out);
        clean(&err);
        assert_eq!(w.receiver(kind).accepted().len(), 1, "{kind:?}");
    }
    let test = w.receiver(Kind::Webhook).accepted()[0].json();
    assert_eq!(test["type"], "herald.test");
    conforms(&schema(), &test, "event").expect("the test event follows the schema");

    // A refusal is printed with the answer, and still no secret.
    w.receiver(Kind::Discord).fault(Fault::Status(
        404,
        vec![],
        r#"{"message": "Unknown Webhook", "code": 10015}"#.into(),
    ));
    let (code, out, err) = herald(&w, &["send-test", "discord"], &env).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(
            "the test notification through the discord channel discord (http://127.0.0.1:"
        ),
        "{err}"
    );
    assert!(
        err.contains("HTTP 404: {\"message\": \"Unknown Webhook\", \"code\": 10015}"),
        "{err}"
    );
    clean(&out);
    clean(&err);

    // 410 disables the channel, and `herald outbox` says so until a test goes through.
    w.receiver(Kind::Slack)
        .fault(Fault::Status(410, vec![], "no_service".into()));
    let (code, _, _) = herald(&w, &["send-test", "slack"], &env).await;
    assert_eq!(code, 1);
    let (code, out, err) = herald(&w, &["outbox"], &env).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Channel slack is DISABLED since"), "{out}");
    assert!(out.contains("HTTP 410: no_service"), "{out}");
    assert!(
        out.contains("#slack"),
        "deliveries name their channel: {out}"
    );
    clean(&out);
    let (code, out, _) = herald(&w, &["status"], &env).await;
    assert_eq!(code, 2, "a disabled channel needs attention: {out}");
    assert!(
        out.contains("channel slack is disabled since") && out.contains("herald send-test slack"),
        "{out}"
    );
    let (code, _, err) = herald(&w, &["send-test", "slack"], &env).await;
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = herald(&w, &["outbox"], &env).await;
    assert!(!out.contains("DISABLED"), "{out}");
    let (_, out, _) = herald(&w, &["status"], &env).await;
    assert!(!out.contains("channel slack is disabled"), "{out}");

    let (code, _, err) = herald(&w, &["send-test", "nope"], &env).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("no channel is named `nope` (configured: hook, room, slack, discord, phone)"),
        "{err}"
    );

    // A missing variable stops Herald at start, naming the file, the line and the variable.
    let without: Vec<(&str, String)> = env
        .iter()
        .filter(|(k, _)| *k != "MATRIX_TOKEN")
        .cloned()
        .collect();
    let (code, _, err) = herald(&w, &["send-test", "hook"], &without).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "{}:12: `${{MATRIX_TOKEN}}` refers to the environment variable MATRIX_TOKEN, which is not set",
            file.display()
        )),
        "{err}"
    );
    // So does a broken file.
    std::fs::write(
        &file,
        toml.replace("kind = \"ntfy\"", "kind = \"telegram\""),
    )
    .expect("write");
    let (code, _, err) = herald(&w, &["check", "--dry-run"], &env).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "{}:26: unknown variant `telegram`",
            file.display()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_crash_after_the_receiver_accepted_resends_the_same_delivery_id() {
    for kind in Kind::ALL {
        let w = ChannelWorld::new().await;
        // Only this channel, and no relay: the crash hits this channel's delivery.
        let block = w
            .channels_toml("")
            .split("[[channel]]")
            .find(|b| b.contains(&format!("kind = \"{}\"", kind.as_str())))
            .map(|b| format!("[[channel]]{b}"))
            .expect("the channel's block");
        let channels = w.sandbox.path("one-channel.toml");
        std::fs::write(&channels, block).expect("write");
        let channels = channels.display().to_string();
        let (app, clock) = w
            .world
            .app()
            .projects(&w.pretalx_projects(""))
            .flags(&["--channels", &channels])
            .build()
            .await;
        check(&app).await;
        w.release_2026_2_1();
        check(&app).await;
        let crash = notify::dispatch(
            &app,
            &DispatchOptions {
                crash_after_accepting: Some(1),
                ..DispatchOptions::default()
            },
        )
        .await;
        assert!(
            crash.is_err(),
            "{kind:?}: the dispatcher stopped as a crash would"
        );
        let r = w.receiver(kind);
        assert_eq!(r.accepted().len(), 1, "{kind:?}");
        assert_eq!(channel_row(&app, name(kind)).await.status, "sending");
        // The claim of a dispatcher that may still live elsewhere expires, then the delivery
        // goes out again, with the same id.
        clock.advance(chrono::Duration::seconds(notify::CLAIM_SECS + 1));
        let report = dispatch(&app).await;
        assert_eq!(report.channels.sent, 1, "{kind:?}: {report:?}");
        let got = r.accepted();
        assert_eq!(got.len(), 2, "{kind:?}");
        let row = channel_row(&app, name(kind)).await;
        assert_eq!(row.status, "sent");
        match kind {
            Kind::Webhook => {
                for g in &got {
                    assert_eq!(
                        g.header("webhook-id").as_deref(),
                        Some(row.message_id.as_str())
                    );
                }
            }
            Kind::Matrix => {
                assert_eq!(got[0].path, got[1].path, "the same txnId");
                assert_eq!(r.events().len(), 1, "the homeserver shows one event");
            }
            Kind::Ntfy => {
                for g in &got {
                    assert_eq!(g.json()["sequence_id"], row.message_id);
                }
            }
            // Slack and Discord have no idempotency key: the same message, twice.
            Kind::Slack | Kind::Discord => assert_eq!(got[0].body, got[1].body),
        }
    }
}
