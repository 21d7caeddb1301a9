//! Local stand-ins for the services channels talk to, each on 127.0.0.1 and each checking
//! what the real service checks before it accepts a request:
//! - webhook: the Standard Webhooks signature and timestamp, verified by the independent
//!   `standardwebhooks` crate (401 otherwise), and the event's `type`/`timestamp`/`data`;
//! - Matrix: `PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txnId}` with the bearer
//!   token (401 `M_MISSING_TOKEN`/`M_UNKNOWN_TOKEN`), an `m.room.message` content, and txnId
//!   idempotency: a repeated txnId answers the first event's id and adds no event;
//! - Slack: `text` present and with `&`, `<`, `>` escaped outside `<url|label>` links (400
//!   `invalid_payload` otherwise);
//! - Discord: `?wait=true`, `content` within 2,000 characters, embeds within limits and
//!   `allowed_mentions` present (400 otherwise);
//! - ntfy: JSON publish to the root with `topic`, `message` within 4,096 bytes, a valid
//!   priority, and the bearer token when one is set (401/403 otherwise).
//!
//! Faults are scripted per receiver: the next requests get them before the normal behaviour.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Which service a receiver stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Webhook,
    Matrix,
    Slack,
    Discord,
    Ntfy,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Webhook,
        Kind::Matrix,
        Kind::Slack,
        Kind::Discord,
        Kind::Ntfy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Matrix => "matrix",
            Kind::Slack => "slack",
            Kind::Discord => "discord",
            Kind::Ntfy => "ntfy",
        }
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status, headers and body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// Wait this long, then answer 200 without accepting anything (a hung receiver).
    Hang(Duration),
    /// Redirect to another path of this receiver.
    Redirect,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Got {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The answer's status.
    pub status: u16,
}

impl Got {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// What a receiver knows and saw.
#[derive(Default)]
struct Inner {
    faults: VecDeque<Fault>,
    /// Every request, in order.
    requests: Vec<Got>,
    /// The requests accepted (2xx after the service's checks).
    accepted: Vec<Got>,
    /// Matrix: event id per txnId.
    txns: HashMap<String, String>,
    /// Matrix: the room's events (content), one per distinct txnId.
    events: Vec<Value>,
}

struct Config {
    kind: Kind,
    /// Webhook: the whsec_ secret to verify with; Matrix, ntfy: the token.
    secret: Option<String>,
    room: String,
    topic: String,
}

/// A receiver on 127.0.0.1.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub kind: Kind,
    inner: Arc<Mutex<Inner>>,
}

pub const ROOM: &str = "!herald:matrix.example.org";
pub const TOPIC: &str = "herald-releases";
pub const TOKEN: &str = "syt_aGVyYWxk_s3cr3tT0k3n_1x2y3z";
/// A Standard Webhooks secret (24 random bytes, base64).
pub const WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// The secret before a rotation.
pub const WHSEC_OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

impl Receiver {
    /// Starts a receiver of `kind`; `secret` is what it verifies against (see [`Config`]).
    pub async fn start(kind: Kind, secret: Option<&str>) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let config = Arc::new(Config {
            kind,
            secret: secret.map(str::to_string),
            room: ROOM.into(),
            topic: TOPIC.into(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .fallback(handle)
            .with_state((config, inner.clone(), addr));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, kind, inner }
    }

    /// The URL a channel of this kind is configured with.
    pub fn url(&self) -> String {
        match self.kind {
            Kind::Webhook => format!("http://{}/hooks/herald", self.addr),
            Kind::Slack => format!("http://{}/hooks/T000/B000/XXXXSECRET", self.addr),
            Kind::Discord => format!("http://{}/api/webhooks/1234/DISCORDSECRET", self.addr),
            Kind::Matrix | Kind::Ntfy => format!("http://{}", self.addr),
        }
    }

    pub fn fault(&self, fault: Fault) {
        self.inner.lock().expect("lock").faults.push_back(fault);
    }

    pub fn requests(&self) -> Vec<Got> {
        self.inner.lock().expect("lock").requests.clone()
    }

    pub fn accepted(&self) -> Vec<Got> {
        self.inner.lock().expect("lock").accepted.clone()
    }

    /// Matrix: the room's events.
    pub fn events(&self) -> Vec<Value> {
        self.inner.lock().expect("lock").events.clone()
    }

    /// Sends a request to this receiver as a client would (to show it rejects forgeries).
    pub async fn post_raw(&self, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> u16 {
        let client = reqwest::Client::new();
        let mut request = client
            .post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        request.send().await.expect("request").status().as_u16()
    }
}

type Shared = (Arc<Config>, Arc<Mutex<Inner>>, SocketAddr);

async fn handle(
    State((config, inner, addr)): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = inner.lock().expect("lock").faults.pop_front();
    let mut got = Got {
        method,
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers,
        body: body.to_vec(),
        status: 0,
    };
    let (status, response, accepted) = match fault {
        Some(Fault::Status(code, extra, text)) => {
            let mut response = (StatusCode::from_u16(code).expect("status"), text).into_response();
            for (k, v) in extra {
                response
                    .headers_mut()
                    .insert(k, v.parse().expect("header value"));
            }
            (code, response, false)
        }
        Some(Fault::Hang(delay)) => {
            tokio::time::sleep(delay).await;
            (200, StatusCode::OK.into_response(), false)
        }
        Some(Fault::Redirect) => {
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(
                "location",
                format!("http://{addr}/moved").parse().expect("location"),
            );
            (302, response, false)
        }
        None => match check(&config, &inner, &got) {
            Ok((status, response)) => (status, response, true),
            Err((status, message)) => (
                status,
                (StatusCode::from_u16(status).expect("status"), message).into_response(),
                false,
            ),
        },
    };
    got.status = status;
    let mut state = inner.lock().expect("lock");
    state.requests.push(got.clone());
    if accepted {
        state.accepted.push(got);
    }
    response
}

type Checked = Result<(u16, Response), (u16, String)>;

fn check(config: &Config, inner: &Mutex<Inner>, got: &Got) -> Checked {
    if got.method == Method::GET {
        return Err((405, "method not allowed".into()));
    }
    match config.kind {
        Kind::Webhook => webhook(config, got),
        Kind::Matrix => matrix(config, inner, got),
        Kind::Slack => slack(got),
        Kind::Discord => discord(got),
        Kind::Ntfy => ntfy(config, got),
    }
}

fn json_of(got: &Got) -> Result<Value, (u16, String)> {
    serde_json::from_slice(&got.body).map_err(|e| (400, format!("not JSON: {e}")))
}

fn webhook(config: &Config, got: &Got) -> Checked {
    let secret = config
        .secret
        .as_deref()
        .expect("webhook receivers know a secret");
    let hook = standardwebhooks::Webhook::new(secret).expect("secret");
    hook.verify(&got.body, &got.headers)
        .map_err(|e| (401, format!("signature: {e}")))?;
    let event = json_of(got)?;
    for field in ["type", "timestamp", "data"] {
        if event.get(field).is_none() {
            return Err((400, format!("missing {field}")));
        }
    }
    Ok((204, StatusCode::NO_CONTENT.into_response()))
}

fn matrix(config: &Config, inner: &Mutex<Inner>, got: &Got) -> Checked {
    let auth = got
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or((
            401,
            r#"{"errcode":"M_MISSING_TOKEN","error":"Missing access token"}"#.to_string(),
        ))?;
    let expected = format!("Bearer {}", config.secret.as_deref().unwrap_or_default());
    if auth != expected {
        return Err((
            401,
            r#"{"errcode":"M_UNKNOWN_TOKEN","error":"Unknown access token"}"#.into(),
        ));
    }
    if got.method != Method::PUT {
        return Err((405, r#"{"errcode":"M_UNRECOGNIZED"}"#.into()));
    }
    let prefix = "/_matrix/client/v3/rooms/";
    let rest = got
        .path
        .strip_prefix(prefix)
        .ok_or((404, r#"{"errcode":"M_UNRECOGNIZED"}"#.to_string()))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [room, "send", "m.room.message", txn] = parts.as_slice() else {
        return Err((404, r#"{"errcode":"M_UNRECOGNIZED"}"#.into()));
    };
    let room = percent_decode(room);
    if room != config.room {
        return Err((
            403,
            r#"{"errcode":"M_FORBIDDEN","error":"not in room"}"#.into(),
        ));
    }
    let content = json_of(got)?;
    if !content["msgtype"].is_string() || !content["body"].is_string() {
        return Err((400, r#"{"errcode":"M_BAD_JSON"}"#.into()));
    }
    if content.get("format").is_some() && !content["formatted_body"].is_string() {
        return Err((400, r#"{"errcode":"M_BAD_JSON"}"#.into()));
    }
    let mut state = inner.lock().expect("lock");
    let count = state.txns.len();
    let event_id = state
        .txns
        .entry((*txn).to_string())
        .or_insert_with(|| format!("$event{count}"))
        .clone();
    if state.txns.len() > count {
        state.events.push(content);
    }
    Ok((
        200,
        axum::Json(json!({ "event_id": event_id })).into_response(),
    ))
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether Slack text escapes `&`, `<` and `>` outside `<url|label>` links.
pub fn slack_escaped(text: &str) -> bool {
    let link = regex::Regex::new(r"<https?://[^|<>\s]+\|[^<>]+>").expect("regex");
    let rest = link.replace_all(text, "");
    let entity = regex::Regex::new(r"&(amp|lt|gt);").expect("regex");
    let bare = entity.replace_all(&rest, "");
    !bare.contains(['<', '>', '&'])
}

fn slack(got: &Got) -> Checked {
    let message = json_of(got)?;
    let Some(text) = message["text"].as_str() else {
        return Err((400, "no_text".into()));
    };
    if !slack_escaped(text) {
        return Err((400, "invalid_payload: unescaped & < >".into()));
    }
    Ok((200, "ok".into_response()))
}

fn discord(got: &Got) -> Checked {
    if !got
        .query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "wait=true"))
    {
        return Err((400, "expected ?wait=true in this test".into()));
    }
    let message = json_of(got)?;
    let content = message["content"].as_str().unwrap_or_default();
    if content.chars().count() > 2000 {
        return Err((
            400,
            r#"{"content": ["Must be 2000 or fewer in length."]}"#.into(),
        ));
    }
    let Some(parse) = message["allowed_mentions"]["parse"].as_array() else {
        return Err((
            400,
            r#"{"allowed_mentions": ["required by this receiver"]}"#.into(),
        ));
    };
    if !parse.is_empty() {
        return Err((400, r#"{"allowed_mentions": ["must not ping"]}"#.into()));
    }
    let embeds = message["embeds"].as_array().cloned().unwrap_or_default();
    if embeds.len() > 10 {
        return Err((
            400,
            r#"{"embeds": ["Must be 10 or fewer in length."]}"#.into(),
        ));
    }
    let mut total = 0;
    for e in &embeds {
        let title = e["title"].as_str().unwrap_or_default().chars().count();
        let description = e["description"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .count();
        if title > 256 || description > 4096 {
            return Err((400, r#"{"embeds": ["too long"]}"#.into()));
        }
        total += title + description;
    }
    if total > 6000 || (content.is_empty() && embeds.is_empty()) {
        return Err((400, r#"{"message": "Cannot send an empty message"}"#.into()));
    }
    Ok((
        200,
        axum::Json(json!({"id": "1100000000000000001", "type": 0, "content": content}))
            .into_response(),
    ))
}

fn ntfy(config: &Config, got: &Got) -> Checked {
    if got.path != "/" {
        return Err((
            404,
            r#"{"code":40401,"http":404,"error":"page not found"}"#.into(),
        ));
    }
    if let Some(token) = &config.secret {
        match got
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        {
            None => {
                return Err((
                    403,
                    r#"{"code":40301,"http":403,"error":"forbidden"}"#.into(),
                ));
            }
            Some(v) if v != format!("Bearer {token}") => {
                return Err((
                    401,
                    r#"{"code":40101,"http":401,"error":"unauthorized"}"#.into(),
                ));
            }
            Some(_) => {}
        }
    }
    let message = json_of(got)?;
    if message["topic"].as_str() != Some(config.topic.as_str()) {
        return Err((
            400,
            r#"{"code":40009,"http":400,"error":"invalid topic"}"#.into(),
        ));
    }
    let text = message["message"].as_str().unwrap_or_default();
    if text.len() > 4096 {
        return Err((
            413,
            r#"{"code":41301,"http":413,"error":"message too large"}"#.into(),
        ));
    }
    if let Some(p) = message.get("priority")
        && !p.as_u64().is_some_and(|p| (1..=5).contains(&p))
    {
        return Err((
            400,
            r#"{"code":40007,"http":400,"error":"invalid priority"}"#.into(),
        ));
    }
    if !message["tags"].is_array() && message.get("tags").is_some() {
        return Err((
            400,
            r#"{"code":40000,"http":400,"error":"invalid tags"}"#.into(),
        ));
    }
    Ok((
        200,
        axum::Json(json!({"id": "hwQ2YpKdmg", "time": 1_764_480_000, "event": "message", "topic": config.topic, "message": text}))
            .into_response(),
    ))
}
