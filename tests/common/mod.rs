//! The integration tests' one harness: the real fixtures folder, a local upstream that
//! serves documents with ETags and injected faults, temporary databases, and the [`World`]
//! (upstream, sandbox, SMTP sink) every integration test starts from: apps through
//! [`World::app`] (over `App::build`), the real binary through [`World::args`] and
//! [`Sandbox::command`]. A bare [`Sandbox`] is made by hand only as a second database beside
//! a world's (a restored backup); the benches use [`Sandbox`] and [`Upstream`] directly.
//!
//! Compiled into the `it` test binary, `tests/statements.rs` and the benches (which include
//! it by `#[path]` and use only part of it, so they allow dead code where they include it).

pub mod browser;
pub mod plugins;
pub mod pretalx;
pub mod receivers;
pub mod site;
pub mod smtp;
pub mod web;
pub mod world;

pub use world::{World, run_check, subscribe, subscribe_instant};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Parser;
use herald::app::{App, ManualClock};
use herald::config::Config;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The real upstream data the tests read: `tests/fixtures/` of this repository (copied from
/// upstream with provenance in each folder's SOURCES.md). A missing folder fails the test.
pub fn fixtures() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    assert!(
        dir.join("pretalx/pretalx_releases.csv").is_file(),
        "the fixtures folder {} is incomplete: it is part of the repository, restore it with git",
        dir.display()
    );
    dir
}

/// Reads a fixture file.
pub fn read(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap_or_else(|err| panic!("fixture {rel}: {err}"))
}

/// A fault the upstream injects for every path under a prefix.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and a short body.
    Status(u16),
    /// Answer after this long (longer than the client's timeout).
    Delay(Duration),
    /// Answer 200 with the first half of the document.
    Truncated,
    /// Answer 200 with an HTML error page.
    HtmlErrorPage,
    /// Answer 429 with `Retry-After: N`.
    RateLimited(u64),
    /// Answer 403 with GitHub's exhausted-limit headers, the limit resetting at this epoch second.
    GithubLimit(i64),
    /// Answer normally, but only after this long.
    Slow(Duration),
    /// Redirect to the same URL, forever.
    RedirectLoop,
    /// Answer 200 with a body larger than Herald's default cap (20 MiB).
    Oversized,
}

#[derive(Debug, Clone)]
struct Doc {
    body: Vec<u8>,
    content_type: String,
    headers: Vec<(String, String)>,
}

#[derive(Default)]
struct State {
    docs: HashMap<String, Doc>,
    faults: Vec<(String, Fault)>,
    /// Send no `ETag`/`Last-Modified` (and so never a 304), like some proxies and blogs.
    no_validators: bool,
}

struct Responder(Arc<Mutex<State>>);

fn etag_of(body: &[u8]) -> String {
    // FNV-1a: stable, dependency-free.
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in body {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("W/\"{hash:016x}\"")
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let state = self.0.lock().expect("upstream state");
        let path = req.url.path().to_string();
        let key = match req.url.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let doc = state
            .docs
            .get(&key)
            .or_else(|| state.docs.get(&path))
            .cloned();
        let fault = state
            .faults
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, f)| f.clone());
        let mut delay = None;
        if let Some(Fault::Slow(d)) = fault {
            delay = Some(d);
        } else if let Some(fault) = fault {
            return match &fault {
                Fault::Status(code) => ResponseTemplate::new(*code).set_body_string(format!("upstream says {code}")),
                Fault::Delay(d) => ResponseTemplate::new(200).set_delay(*d).set_body_string("late"),
                Fault::Truncated => {
                    let body = doc.map(|d| d.body).unwrap_or_else(|| b"{\"releases\": {\"1.0\": [".to_vec());
                    ResponseTemplate::new(200)
                        .set_body_raw(body[..body.len() / 2].to_vec(), "application/json")
                }
                Fault::HtmlErrorPage => ResponseTemplate::new(200).set_body_raw(
                    "<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body><h1>Sorry</h1></body></html>",
                    "text/html",
                ),
                Fault::RateLimited(secs) => ResponseTemplate::new(429)
                    .insert_header("retry-after", secs.to_string().as_str())
                    .set_body_string("slow down"),
                Fault::GithubLimit(reset) => ResponseTemplate::new(403)
                    .insert_header("x-ratelimit-remaining", "0")
                    .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                    .set_body_raw(r#"{"message": "API rate limit exceeded"}"#, "application/json"),
                Fault::Slow(_) => unreachable!("handled above"),
                Fault::RedirectLoop => ResponseTemplate::new(302).insert_header("location", key.as_str()),
                Fault::Oversized => ResponseTemplate::new(200).set_body_raw(vec![b' '; 21 * 1024 * 1024], "application/json"),
            };
        }
        let Some(doc) = doc else {
            return ResponseTemplate::new(404)
                .set_body_raw(r#"{"message": "Not Found"}"#, "application/json");
        };
        // A recorded ETag (real upstream headers) wins over the computed one.
        let etag = doc
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("etag"))
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| etag_of(&doc.body));
        let matches = !state.no_validators
            && req
                .headers
                .get("if-none-match")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == etag);
        let mut template = if matches {
            ResponseTemplate::new(304)
        } else {
            ResponseTemplate::new(200).set_body_raw(doc.body.clone(), &doc.content_type)
        };
        if !state.no_validators {
            template = template
                .insert_header("etag", etag.as_str())
                .insert_header("last-modified", "Wed, 08 Jul 2026 10:01:22 GMT");
        }
        for (name, value) in &doc.headers {
            template = template.insert_header(name.as_str(), value.as_str());
        }
        match delay {
            Some(d) => template.set_delay(d),
            None => template,
        }
    }
}

/// A local upstream serving documents by path (and query), with ETags and faults.
#[derive(Clone)]
pub struct Upstream {
    state: Arc<Mutex<State>>,
    server: Arc<MockServer>,
}

impl Upstream {
    /// Starts the server.
    pub async fn start() -> Upstream {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder(state.clone()))
            .mount(&server)
            .await;
        Upstream {
            state,
            server: Arc::new(server),
        }
    }

    /// Base URL, without a trailing slash.
    pub fn url(&self) -> String {
        self.server.uri()
    }

    /// Serves `body` at `path` (which may include a query).
    pub fn put(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) {
        self.put_with_headers(path, content_type, body, &[]);
    }

    /// Serves `body` at `path` with extra headers.
    pub fn put_with_headers(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
        headers: &[(&str, &str)],
    ) {
        self.state.lock().expect("state").docs.insert(
            path.to_string(),
            Doc {
                body: body.into(),
                content_type: content_type.to_string(),
                headers: headers
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            },
        );
    }

    /// Serves a JSON value.
    pub fn put_json(&self, path: &str, content_type: &str, value: &serde_json::Value) {
        self.put(
            path,
            content_type,
            serde_json::to_vec_pretty(value).expect("json"),
        );
    }

    /// Injects a fault for every path starting with `prefix`.
    pub fn fault(&self, prefix: &str, fault: Fault) {
        self.state
            .lock()
            .expect("state")
            .faults
            .push((prefix.to_string(), fault));
    }

    /// Stops (or starts again) sending `ETag` and `Last-Modified`, and so answering 304.
    /// Only `tests/statements.rs` (a binary of its own) asks for it.
    #[allow(dead_code)]
    pub fn send_validators(&self, send: bool) {
        self.state.lock().expect("state").no_validators = !send;
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.state.lock().expect("state").faults.clear();
    }

    /// Every request received so far.
    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    /// Forgets the requests received so far.
    pub async fn forget_requests(&self) {
        // Re-mounting resets the journal; the responder keeps its state.
        self.server.reset().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder(self.state.clone()))
            .mount(&self.server)
            .await;
    }
}

/// The PostgreSQL server the store-touching tests run on instead of SQLite, when
/// `HERALD_TEST_POSTGRES_URL` names one (any database on it; each sandbox creates its own).
pub fn postgres_server() -> Option<String> {
    std::env::var("HERALD_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The signing key sandboxes on PostgreSQL configure (a database that is not a file keeps no
/// `.secret` beside it).
pub const POSTGRES_TEST_SECRET: &str = "test-secret-for-every-postgres-sandbox-0123456789";

/// For a test of something only SQLite has (its file, `VACUUM INTO`, WAL, a file opened by
/// hand): true, with a note on stderr, when the suite runs on PostgreSQL, so the test returns
/// at once; it runs in the SQLite pass of the suite.
pub fn sqlite_only(what: &str) -> bool {
    let on_postgres = postgres_server().is_some();
    if on_postgres {
        eprintln!("SQLite only ({what}): runs in the suite's SQLite pass");
    }
    on_postgres
}

/// The first column of every row `sql` returns, as text (NULLs left out), read from the
/// database at `url` on either backend: for the few tests that look at a row no command shows
/// (who claimed a message, who holds the lease).
pub async fn query_texts(url: &str, sql: &str) -> Vec<String> {
    let text = || sqlx::AssertSqlSafe(sql.to_string());
    let rows: Result<Vec<Option<String>>, sqlx::Error> = if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url)
            .await
            .expect("connect to PostgreSQL");
        let rows = sqlx::query_scalar(text()).fetch_all(&pool).await;
        pool.close().await;
        rows
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.expect("open SQLite");
        let rows = sqlx::query_scalar(text()).fetch_all(&pool).await;
        pool.close().await;
        rows
    };
    rows.unwrap_or_else(|err| panic!("{sql}: {err}"))
        .into_iter()
        .flatten()
        .collect()
}

/// Runs `statements` one by one on the database at `url`, on either backend: for the few
/// tests that change the schema under Herald (a trigger that refuses a write).
pub async fn execute(url: &str, statements: &[&str]) {
    for sql in statements {
        let text = sqlx::AssertSqlSafe(sql.to_string());
        let done = if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(url)
                .await
                .expect("connect to PostgreSQL");
            let done = sqlx::query(text).execute(&pool).await.map(|_| ());
            pool.close().await;
            done
        } else {
            let pool = sqlx::SqlitePool::connect(url).await.expect("open SQLite");
            let done = sqlx::query(text).execute(&pool).await.map(|_| ());
            pool.close().await;
            done
        };
        done.unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
}

/// A fresh database on the test PostgreSQL server, dropped with its sandbox.
struct PgDatabase {
    server: String,
    name: String,
}

impl PgDatabase {
    fn create(server: &str) -> PgDatabase {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("herald_test_{}_{n}_{nanos}", std::process::id());
        psql(server, &format!("CREATE DATABASE {name}"));
        PgDatabase {
            server: server.to_string(),
            name,
        }
    }

    fn url(&self) -> String {
        let mut url = url::Url::parse(&self.server).expect("HERALD_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{}", self.name));
        url.to_string()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement on the test server with `psql` (Debian's postgresql-client).
fn psql(server: &str, sql: &str) {
    let out = std::process::Command::new("psql")
        .args([server, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql (postgresql-client) is installed when HERALD_TEST_POSTGRES_URL is set");
    assert!(
        out.status.success(),
        "psql `{sql}` on {server}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A temporary folder with a database: a SQLite file in the folder, or, when
/// `HERALD_TEST_POSTGRES_URL` is set, a fresh database on that server.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    postgres: Option<PgDatabase>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
            postgres: postgres_server().map(|server| PgDatabase::create(&server)),
        }
    }

    /// A sandbox on SQLite whatever the suite runs on (the source of `herald copy-db`).
    pub fn sqlite() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
            postgres: None,
        }
    }

    /// The sandbox's database URL.
    pub fn db_url(&self) -> String {
        match &self.postgres {
            Some(db) => db.url(),
            None => format!("sqlite://{}", self.dir.path().join("herald.db").display()),
        }
    }

    /// Whether the sandbox's database is on PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a projects file and returns its path.
    pub fn projects(&self, toml: &str) -> PathBuf {
        let path = self.path("projects.toml");
        std::fs::write(&path, toml).expect("write projects");
        path
    }

    /// The command-line arguments pointing Herald at this sandbox and `upstream`.
    pub fn args(&self, upstream: &str, projects: Option<&Path>) -> Vec<String> {
        let mut args = vec![
            "--database-url".to_string(),
            self.db_url(),
            "--pypi-url".into(),
            format!("{upstream}/"),
            "--github-api-url".into(),
            format!("{upstream}/"),
            "--http-timeout".into(),
            "0.5".into(),
            "--connect-timeout".into(),
            "0.5".into(),
            "--http-retries".into(),
            "1".into(),
            "--retry-backoff-ms".into(),
            "5".into(),
        ];
        if let Some(p) = projects {
            args.push("--projects".into());
            args.push(p.display().to_string());
        }
        if self.on_postgres() {
            args.push("--secret".into());
            args.push(POSTGRES_TEST_SECRET.into());
        }
        args
    }

    /// Validated settings with extra flags.
    pub fn config_with(&self, upstream: &str, projects: Option<&Path>, extra: &[&str]) -> Config {
        let mut argv = vec!["herald".to_string()];
        argv.extend(self.args(upstream, projects));
        argv.extend(extra.iter().map(|s| s.to_string()));
        argv.push("migrate".into());
        let cli = herald::cli::Cli::try_parse_from(argv).expect("arguments parse");
        Config::from_settings(cli.settings).expect("config validates")
    }

    /// An app with a manual clock and extra flags. The integration tests do not call it: they
    /// build apps through [`World::app`], which ends here; the benches call it directly.
    pub async fn app_with(
        &self,
        upstream: &str,
        projects: Option<&Path>,
        now: DateTime<Utc>,
        extra: &[&str],
    ) -> (App, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(now));
        let app = App::build(self.config_with(upstream, projects, extra))
            .await
            .expect("app builds")
            .with_clock(clock.clone());
        (app, clock)
    }

    /// Runs the real binary in this sandbox.
    pub fn herald(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("run herald")
    }

    /// The real binary, ready to run.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        self.command_of(Path::new(env!("CARGO_BIN_EXE_herald")), args)
    }

    /// [`Sandbox::command`] with another build of `herald` (P5 measures a shipped build).
    pub fn command_of(&self, program: &Path, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        cmd.current_dir(self.dir.path()).args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("HERALD_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("HERALD_LOG", "warn");
        if self.on_postgres() {
            cmd.env("HERALD_SECRET", POSTGRES_TEST_SECRET);
        }
        cmd
    }
}

/// `2026-07-08T12:00:00Z` and friends.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("timestamp")
        .with_timezone(&Utc)
}

/// Queues `n` test messages at `now`, to `op0@example.org`, `op1@example.org`, ..., with
/// message ids `<0@example.org>`, ...: mail with no subscriber behind it, for store tests.
pub async fn queue_test_messages(store: &herald::store::Store, n: usize, now: DateTime<Utc>) {
    for i in 0..n {
        let recipient = format!("op{i}@example.org");
        let message = herald::store::NewMessage {
            subscriber_id: None,
            recipient: &recipient,
            kind: "test_message",
            subject_key: "test",
            payload: &serde_json::json!({}),
            message_id: &format!("<{i}@example.org>"),
        };
        store.enqueue(&message, now).await.expect("enqueue");
    }
}
