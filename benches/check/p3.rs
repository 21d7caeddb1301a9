//! P3: many tracked projects, each served a real PyPI history (luigi's 84 releases from
//! `tests/fixtures/pypi/luigi.json`, as a Simple API document under the project's own name),
//! by one small local HTTP server. One table per size (500 and 5,000 projects), all rows
//! measured in the same run:
//!
//! - the fetch limit: a client that only downloads the same URLs, as many at once as Herald;
//! - `herald check` cold (empty database), warm (every answer a `304`), with one changed
//!   document, with every document one release longer, and without validators (the server
//!   stops sending `ETag`/`Last-Modified`; the bodies are unchanged);
//! - the database's floor: the `sqlite3` shell writing the very rows the cold run wrote (copied
//!   from its database, one transaction per project, the same schema and settings), with none
//!   of Herald's work: what any check storing these rows in SQLite costs at least;
//! - nvchecker (installed by `scripts/install-bench-tools` into `target/bench-tools/`), its
//!   generic `jq` source on `/pypi/NAME/json`, as many at once;
//! - with `HERALD_TEST_POSTGRES_URL` set (`scripts/with-postgres cargo bench --bench check --
//!   P3` starts a throw-away cluster for it), `herald check` cold, warm and with one changed
//!   document again on a fresh PostgreSQL database, beside SQLite's figures.
//!
//! Wall time, CPU time and peak memory of each child process come from GNU time. The cold run
//! and nvchecker are measured `P3_REPEAT` times (3 by default) and the run of median wall time
//! is shown: on a shared machine one run moves by up to 30%.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::Sandbox;

/// GNU time (Debian's `time`, installed by `scripts/install-bench-tools`).
const TIME: &str = "/usr/bin/time";

/// Requests at once, for every client of the table.
const CONCURRENCY: usize = 20;

/// One served document.
#[derive(Clone)]
struct Doc {
    body: axum::body::Bytes,
    etag: String,
    content_type: &'static str,
}

/// The benchmark's upstream: documents by path, `ETag`/`Last-Modified` switchable.
#[derive(Clone, Default)]
struct Server {
    docs: Arc<RwLock<HashMap<String, Doc>>>,
    no_validators: Arc<AtomicBool>,
}

impl Server {
    fn put(&self, path: String, content_type: &'static str, body: Vec<u8>) {
        use sha2::Digest;
        let etag = format!("\"{:x}\"", sha2::Sha256::digest(&body));
        self.docs.write().expect("docs").insert(
            path,
            Doc {
                body: body.into(),
                etag,
                content_type,
            },
        );
    }

    fn answer(&self, path: &str, headers: &HeaderMap) -> Response<Body> {
        let doc = self.docs.read().expect("docs").get(path).cloned();
        let Some(doc) = doc else {
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Body::from("not found"))
                .expect("response");
        };
        let validators = !self.no_validators.load(Ordering::Relaxed);
        let matches = validators
            && headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == doc.etag.as_bytes());
        let mut answer = Response::builder().header(header::CONTENT_TYPE, doc.content_type);
        if validators {
            answer = answer
                .header(header::ETAG, doc.etag.as_str())
                .header(header::LAST_MODIFIED, "Fri, 06 Dec 2024 00:58:03 GMT");
        }
        if matches {
            answer
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .expect("response")
        } else {
            answer.body(Body::from(doc.body)).expect("response")
        }
    }

    async fn start(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let server = self.clone();
            async move { server.answer(req.uri().path(), req.headers()) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }
}

/// luigi's real history: the JSON API document and its releases as Simple API files.
struct History {
    json_api: Value,
    /// (version, files) in the document's order.
    releases: Vec<(String, Vec<Value>)>,
}

impl History {
    fn load(fixtures: &Path) -> History {
        let path = fixtures.join("pypi/luigi.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json_api: Value = serde_json::from_str(&text).expect("luigi.json");
        let releases = json_api["releases"]
            .as_object()
            .expect("releases")
            .iter()
            .map(|(version, files)| {
                let files = files
                    .as_array()
                    .expect("files")
                    .iter()
                    .map(|f| {
                        let yanked = match f["yanked_reason"].as_str() {
                            Some(reason) if f["yanked"] == true => json!(reason),
                            _ => f["yanked"].clone(),
                        };
                        json!({
                            "filename": f["filename"],
                            "url": f["url"],
                            "hashes": {"sha256": f["digests"]["sha256"]},
                            "requires-python": f["requires_python"],
                            "size": f["size"],
                            "upload-time": f["upload_time_iso_8601"],
                            "yanked": yanked,
                        })
                    })
                    .collect();
                (version.clone(), files)
            })
            .collect();
        History { json_api, releases }
    }

    /// The Simple API document for project `name`, with `extra` versions appended.
    fn simple(&self, name: &str, extra: &[&str]) -> Vec<u8> {
        let rename = |v: &Value| -> Value {
            let text = v.as_str().unwrap_or_default();
            json!(text.replace("luigi-", &format!("{name}-")))
        };
        let mut versions: Vec<&str> = self.releases.iter().map(|(v, _)| v.as_str()).collect();
        let mut files: Vec<Value> = Vec::new();
        for (_, list) in &self.releases {
            for f in list {
                let mut f = f.clone();
                f["filename"] = rename(&f["filename"]);
                f["url"] = rename(&f["url"]);
                files.push(f);
            }
        }
        for version in extra {
            versions.push(version);
            files.push(json!({
                "filename": format!("{name}-{version}.tar.gz"),
                "url": format!("https://files.pypi-mirror.test/packages/{name}-{version}.tar.gz"),
                "hashes": {"sha256": "0".repeat(64)},
                "requires-python": ">=3.9",
                "size": 1_236_109,
                "upload-time": "2026-11-30T06:00:00.000000Z",
                "yanked": false,
            }));
        }
        serde_json::to_vec(&json!({
            "meta": {"api-version": "1.1"},
            "name": name,
            "versions": versions,
            "files": files,
        }))
        .expect("json")
    }

    /// The JSON API document for project `name`.
    fn json_api(&self, name: &str) -> Vec<u8> {
        let mut doc = self.json_api.clone();
        doc["info"]["name"] = json!(name);
        serde_json::to_vec(&doc).expect("json")
    }
}

/// How many times the cold run and nvchecker are measured (`P3_REPEAT`, 3 by default): the
/// machine is shared, and one run moves by up to 30%.
fn repeats() -> usize {
    std::env::var("P3_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(3)
}

/// The run of median wall time.
fn median(mut costs: Vec<Cost>) -> Cost {
    costs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    costs[costs.len() / 2]
}

/// What one child process cost.
#[derive(Clone, Copy, Debug)]
struct Cost {
    wall: f64,
    cpu: f64,
    peak_mib: f64,
}

/// Runs a command to its end under GNU time: wall, CPU (user + system) and peak RSS of that
/// process alone (`wait4` on a child of this process would report this process's own peak,
/// which a fork hands down).
async fn measure(cmd: std::process::Command, what: &str) -> Cost {
    let report = tempfile::NamedTempFile::new().expect("tempfile");
    if !Path::new(TIME).exists() {
        install_tools();
    }
    let mut timed = wrapped(
        TIME,
        &[
            "-f".as_ref(),
            "%e %U %S %M".as_ref(),
            "-o".as_ref(),
            report.path().as_os_str(),
        ],
        &cmd,
    );
    timed.stdout(std::process::Stdio::null());
    let t = Instant::now();
    let out = tokio::process::Command::from(timed)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wall = t.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(report.path()).expect("time report");
    let f: Vec<f64> = text
        .split_whitespace()
        .map(|n| n.parse().expect("number"))
        .collect();
    assert_eq!(f.len(), 4, "time report: {text}");
    Cost {
        wall,
        cpu: f[1] + f[2],
        peak_mib: f[3] / 1024.0,
    }
}

/// curl, one process downloading every URL, `CONCURRENCY` at once.
async fn curl_fetch(urls: &[String], dir: &Path) -> Cost {
    let config = dir.join("curl.config");
    let mut text = String::new();
    for url in urls {
        text.push_str(&format!("url = \"{url}\"\noutput = \"/dev/null\"\n"));
    }
    std::fs::write(&config, text).expect("curl config");
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["--silent", "--fail", "--parallel", "--parallel-max"])
        .arg(CONCURRENCY.to_string())
        .arg("--config")
        .arg(&config);
    measure(cmd, "curl").await
}

/// The `sqlite3` shell (installed by `scripts/install-bench-tools`) copying the release and
/// evidence rows of the cold run's database `cold` into a fresh database with Herald's schema,
/// one transaction per project as a check commits them: WAL, `synchronous = NORMAL`, foreign
/// keys on. Each project's rows are read by a range of row ids (they are contiguous: a check
/// inserts them in one statement per table), the cheapest read there is.
async fn sqlite_floor(cold: &Path, dir: &Path) -> Cost {
    if which("sqlite3").is_none() {
        install_tools();
    }
    let sqlite3 = |db: &Path, sql: &str| {
        let out = std::process::Command::new("sqlite3")
            .arg(db)
            .arg(sql)
            .output()
            .expect("sqlite3");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let ranges = |sql: &str| -> HashMap<String, (i64, i64)> {
        sqlite3(cold, sql)
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split('|').collect();
                (
                    f[0].to_string(),
                    (f[1].parse().expect("id"), f[2].parse().expect("id")),
                )
            })
            .collect()
    };
    let releases = ranges("SELECT project, min(id), max(id) FROM releases GROUP BY project");
    let evidence = ranges(
        "SELECT r.project, min(e.id), max(e.id) FROM evidence e \
         JOIN releases r ON r.id = e.release_id GROUP BY r.project",
    );
    let target = dir.join("floor.db");
    let store = herald::store::Store::open(&format!("sqlite://{}", target.display()))
        .await
        .expect("the floor's database");
    store.close().await;
    // `.bail on`: a range holding another project's row would fail on its unique key.
    let mut script = format!(
        ".bail on\nPRAGMA journal_mode = WAL;\nPRAGMA synchronous = NORMAL;\n\
         PRAGMA foreign_keys = ON;\nATTACH '{}' AS cold;\n",
        cold.display()
    );
    for (project, (first, last)) in &releases {
        let (efirst, elast) = evidence.get(project).copied().unwrap_or((1, 0));
        script.push_str(&format!(
            "BEGIN IMMEDIATE;\n\
             INSERT INTO main.releases SELECT * FROM cold.releases WHERE id BETWEEN {first} AND {last};\n\
             INSERT INTO main.evidence SELECT * FROM cold.evidence WHERE id BETWEEN {efirst} AND {elast};\n\
             COMMIT;\n"
        ));
    }
    let path = dir.join("floor.sql");
    std::fs::write(&path, script).expect("floor.sql");
    let mut cmd = std::process::Command::new("sqlite3");
    cmd.arg(&target).arg(format!(".read {}", path.display()));
    let cost = measure(cmd, "sqlite3 floor").await;
    let count = "SELECT (SELECT count(*) FROM releases) || ' ' || (SELECT count(*) FROM evidence)";
    assert_eq!(
        sqlite3(&target, count),
        sqlite3(cold, count),
        "the floor copied every row"
    );
    cost
}

/// The program's path on `PATH`, if any.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// Downloads every URL in this process, `CONCURRENCY` at once, and returns the wall time and the bytes.
async fn plain_fetch(urls: &[String]) -> (f64, usize) {
    herald::sources::http::install_tls_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    let t = Instant::now();
    let bytes: usize = futures::stream::iter(urls.iter().map(|url| {
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .expect("GET")
                .bytes()
                .await
                .expect("body")
                .len()
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .fold(0, |sum, n| async move { sum + n })
    .await;
    (t.elapsed().as_secs_f64(), bytes)
}

fn install_tools() {
    let status = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/install-bench-tools"
        ))
        .status()
        .expect("run scripts/install-bench-tools");
    assert!(status.success(), "scripts/install-bench-tools failed");
}

fn nvchecker_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-tools/nvchecker/bin/nvchecker");
    if !bin.is_file() {
        let status = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/install-bench-tools"
            ))
            .status()
            .expect("run scripts/install-bench-tools");
        assert!(status.success(), "cannot install nvchecker");
    }
    assert!(bin.is_file(), "{} is missing", bin.display());
    bin
}

fn nvchecker_config(dir: &Path, base: &str, count: usize) -> PathBuf {
    let mut toml = format!(
        "[__config__]\nnewver = \"{}\"\nmax_concurrency = {CONCURRENCY}\n\n",
        dir.join("new.json").display()
    );
    for i in 0..count {
        toml.push_str(&format!(
            "[p{i}]\nsource = \"jq\"\nurl = \"{base}/pypi/p{i}/json\"\nfilter = \".info.version\"\n\n"
        ));
    }
    let path = dir.join("nvchecker.toml");
    std::fs::write(&path, toml).expect("nvchecker.toml");
    path
}

/// A `herald check` of every project. With `P3_PERF=DIR`, each run is recorded by `perf`
/// into `DIR/<size>-<n>.data` (for profiling; the figures then include perf's cost).
fn herald_check(sandbox: &Sandbox, base: &str, projects: &Path) -> std::process::Command {
    let cmd = herald_check_plain(sandbox, base, projects);
    let Ok(dir) = std::env::var("P3_PERF") else {
        return cmd;
    };
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    let data = Path::new(&dir).join(format!("herald-{n}.data"));
    let mut args: Vec<&std::ffi::OsStr> = [
        "record",
        "--quiet",
        "-F",
        "999",
        "--call-graph",
        "dwarf,32768",
        "-o",
    ]
    .iter()
    .map(|a| a.as_ref())
    .collect();
    args.extend([data.as_os_str(), "--".as_ref()]);
    wrapped("perf", &args, &cmd)
}

/// `program ARGS...` running `cmd` (its program, arguments, folder and environment).
fn wrapped(
    program: &str,
    args: &[&std::ffi::OsStr],
    cmd: &std::process::Command,
) -> std::process::Command {
    let mut outer = std::process::Command::new(program);
    outer.args(args).arg(cmd.get_program()).args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        outer.current_dir(dir);
    }
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => outer.env(key, value),
            None => outer.env_remove(key),
        };
    }
    outer
}

fn herald_check_plain(sandbox: &Sandbox, base: &str, projects: &Path) -> std::process::Command {
    let mut args: Vec<String> = vec!["check".into()];
    args.extend(sandbox.args(base, Some(projects)));
    args.extend([
        "--http-timeout".into(),
        "60".into(),
        "--concurrency".into(),
        CONCURRENCY.to_string(),
    ]);
    sandbox.command(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The figures of one size, for the growth line.
struct Size {
    count: usize,
    cold: Cost,
}

fn row(name: &str, cost: Cost, note: String) {
    println!(
        "  {name:<44} {:>7.2} s wall {:>7.2} s CPU {:>7.1} MiB  {note}",
        cost.wall, cost.cpu, cost.peak_mib
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// Serves every project's Simple API page, with `extra` versions appended.
fn serve_pages(server: &Server, history: &History, count: usize, extra: &[&str]) {
    for i in 0..count {
        let name = format!("p{i}");
        server.put(
            format!("/simple/{name}/"),
            "application/vnd.pypi.simple.v1+json",
            history.simple(&name, extra),
        );
    }
}

async fn one_size(history: &History, count: usize) -> Size {
    let server = Server::default();
    let base = server.clone().start().await;
    serve_pages(&server, history, count, &[]);
    for i in 0..count {
        let name = format!("p{i}");
        server.put(
            format!("/pypi/{name}/json"),
            "application/json",
            history.json_api(&name),
        );
    }
    let releases = history.releases.len() * count;
    let urls: Vec<String> = (0..count).map(|i| format!("{base}/simple/p{i}/")).collect();
    let sandbox = Sandbox::sqlite();
    let mut toml = String::new();
    for i in 0..count {
        toml.push_str(&format!(
            "[[project]]\nname = \"p{i}\"\npypi = \"p{i}\"\n\n"
        ));
    }
    let projects = sandbox.projects(&toml);

    // The limit, then each Herald run, then the peer.
    let (in_process, bytes) = plain_fetch(&urls).await;
    let curl = curl_fetch(&urls, sandbox.dir.path()).await;
    let fetch = curl.wall;
    // The cold run again on fresh databases, for the median (the later runs use the first's).
    let repeats = repeats();
    let mut colds = vec![measure(herald_check(&sandbox, &base, &projects), "herald cold").await];
    let floor = sqlite_floor(&sandbox.path("herald.db"), sandbox.dir.path()).await;
    for _ in 1..repeats {
        let fresh = Sandbox::sqlite();
        let projects = fresh.projects(&toml);
        colds.push(measure(herald_check(&fresh, &base, &projects), "herald cold").await);
    }
    let cold = median(colds);
    let warm = measure(herald_check(&sandbox, &base, &projects), "herald warm").await;
    server.put(
        "/simple/p0/".into(),
        "application/vnd.pypi.simple.v1+json",
        history.simple("p0", &["3.7.0"]),
    );
    let one = measure(
        herald_check(&sandbox, &base, &projects),
        "herald one changed",
    )
    .await;
    serve_pages(&server, history, count, &["3.7.0", "3.7.1"]);
    let all = measure(
        herald_check(&sandbox, &base, &projects),
        "herald all changed",
    )
    .await;
    server.no_validators.store(true, Ordering::Relaxed);
    // The first run without validators reads every body once (the headers changed); the
    // second finds each body equal to the one recorded.
    let switch = measure(
        herald_check(&sandbox, &base, &projects),
        "herald validators gone",
    )
    .await;
    let plain = measure(
        herald_check(&sandbox, &base, &projects),
        "herald no validators",
    )
    .await;
    server.no_validators.store(false, Ordering::Relaxed);
    let config = nvchecker_config(sandbox.dir.path(), &base, count);
    let mut nvcheckers = Vec::new();
    for _ in 0..repeats {
        let mut nv = std::process::Command::new(nvchecker_bin());
        nv.arg("-c").arg(&config).arg("-l").arg("warning");
        nvcheckers.push(measure(nv, "nvchecker").await);
    }
    let nvchecker = median(nvcheckers);

    println!(
        "P3 {count} projects, {} releases ({} per project), {:.1} MB of Simple API documents, {CONCURRENCY} requests at once; herald cold and nvchecker: the run of median wall time of {} each:",
        releases,
        history.releases.len(),
        bytes as f64 / 1e6,
        repeats
    );
    println!(
        "  {:<44} {in_process:>7.2} s wall  (reqwest inside the benchmark: no process start)",
        "plain fetch inside this process"
    );
    row(
        "plain parallel fetch, curl (the limit)",
        curl,
        String::new(),
    );
    let per_release_us = cold.cpu / releases as f64 * 1e6;
    row(
        "herald cold",
        cold,
        format!(
            "{:.2}x the fetch (goal <= 2: {}), {:.1}x faster than nvchecker (goal >= 3: {}), {per_release_us:.1} us CPU per release (goal <= 10: {})",
            cold.wall / fetch,
            verdict(cold.wall / fetch <= 2.0),
            nvchecker.wall / cold.wall,
            verdict(nvchecker.wall / cold.wall >= 3.0),
            verdict(per_release_us <= 10.0),
        ),
    );
    let floor_us = floor.cpu / releases as f64 * 1e6;
    row(
        "sqlite3 alone writing the cold run's rows",
        floor,
        format!(
            "{:.2}x the fetch, {floor_us:.1} us CPU per release: the floor of any check that stores these rows in SQLite",
            floor.wall / fetch
        ),
    );
    let warm_ms = warm.cpu / count as f64 * 1e3;
    row(
        "herald warm (all 304)",
        warm,
        format!(
            "{:.1}x faster than nvchecker (goal >= 20: {}), {warm_ms:.3} ms CPU per source (goal <= 0.3: {})",
            nvchecker.wall / warm.wall,
            verdict(nvchecker.wall / warm.wall >= 20.0),
            verdict(warm_ms <= 0.3),
        ),
    );
    row(
        "herald, one document one release longer",
        one,
        format!("{:.2}x the warm run", one.wall / warm.wall),
    );
    row(
        "herald, every document gains two releases",
        all,
        format!(
            "{:.2}x the cold run's CPU for 2 new releases per project (cold: {})",
            all.cpu / cold.cpu,
            history.releases.len()
        ),
    );
    row(
        "herald, validators gone (every body read once)",
        switch,
        format!("{:.2}x the cold run's CPU", switch.cpu / cold.cpu),
    );
    let plain_ms = plain.cpu / count as f64 * 1e3;
    row(
        "herald without validators (bodies unchanged)",
        plain,
        format!(
            "{plain_ms:.3} ms CPU per source, {:.2}x the fetch, {:.1}x faster than nvchecker",
            plain.wall / fetch,
            nvchecker.wall / plain.wall
        ),
    );
    row("nvchecker, jq on /pypi/NAME/json", nvchecker, String::new());
    let sqlite = [cold, warm, one];
    on_postgres(history, &server, &base, &toml, count, sqlite).await;
    Size { count, cold }
}

/// The cold, warm and one-changed runs again on a fresh PostgreSQL database of the server
/// `HERALD_TEST_POSTGRES_URL` names, each beside SQLite's figure. The documents are first put
/// back as the cold run read them.
async fn on_postgres(
    history: &History,
    server: &Server,
    base: &str,
    toml: &str,
    count: usize,
    sqlite: [Cost; 3],
) {
    if crate::common::postgres_server().is_none() {
        println!(
            "  PostgreSQL: not measured (run under scripts/with-postgres, which sets HERALD_TEST_POSTGRES_URL)"
        );
        return;
    }
    serve_pages(server, history, count, &[]);
    let sandbox = Sandbox::new();
    assert!(sandbox.on_postgres());
    let projects = sandbox.projects(toml);
    let cold = measure(
        herald_check(&sandbox, base, &projects),
        "herald cold, PostgreSQL",
    )
    .await;
    let warm = measure(
        herald_check(&sandbox, base, &projects),
        "herald warm, PostgreSQL",
    )
    .await;
    server.put(
        "/simple/p0/".into(),
        "application/vnd.pypi.simple.v1+json",
        history.simple("p0", &["3.7.0"]),
    );
    let one = measure(
        herald_check(&sandbox, base, &projects),
        "herald one changed, PostgreSQL",
    )
    .await;
    let releases = history.releases.len() * count;
    for (name, cost, on_sqlite) in [
        ("herald cold, PostgreSQL", cold, sqlite[0]),
        ("herald warm, PostgreSQL", warm, sqlite[1]),
        ("herald one changed, PostgreSQL", one, sqlite[2]),
    ] {
        row(
            name,
            cost,
            format!(
                "{:.2}x SQLite's time, {:.2}x its CPU (Herald's process only; the server's CPU is not counted){}",
                cost.wall / on_sqlite.wall,
                cost.cpu / on_sqlite.cpu,
                if name.contains("cold") {
                    format!(
                        ", {:.1} us CPU per release",
                        cold.cpu / releases as f64 * 1e6
                    )
                } else {
                    String::new()
                }
            ),
        );
    }
}

/// P3 at 500 and 5,000 projects, with the growth between them. `P3_SIZES=500` (a
/// comma-separated list) measures other sizes, for profiling.
pub async fn p3(fixtures: &Path) {
    let history = History::load(fixtures);
    let sizes: Vec<usize> = std::env::var("P3_SIZES")
        .unwrap_or_else(|_| "500,5000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("P3_SIZES: numbers"))
        .collect();
    let mut measured: Vec<Size> = Vec::new();
    for count in sizes {
        measured.push(one_size(&history, count).await);
    }
    for pair in measured.windows(2) {
        let (small, large) = (&pair[0], &pair[1]);
        let factor = large.count as f64 / small.count as f64;
        println!(
            "  growth for {factor:.0}x the projects: cold time {:.1}x, cold CPU {:.1}x, peak memory {:.1}x (goal: linear); peak at {}: {:.1} MiB (goal <= 150 MB: {})",
            large.cold.wall / small.cold.wall,
            large.cold.cpu / small.cold.cpu,
            large.cold.peak_mib / small.cold.peak_mib,
            large.count,
            large.cold.peak_mib,
            verdict(large.cold.peak_mib * 1.048_576 <= 150.0),
        );
    }
}
