//! Check benchmarks, each printing its figure next to a simple peer measured in the same run:
//!
//! - P1: a cold check of the built-in preset (pretalx and its eleven plugins, every source)
//!   with 50 ms of upstream latency, against fetching the same URLs one after another.
//! - P2: a second run with nothing changed: share of 304 answers and body bytes, against the
//!   cold run.
//! - P3: 500 and 5,000 tracked projects, each a real 84-release PyPI history: Herald cold,
//!   warm, with changed documents and without validators, against the plain parallel fetch
//!   of the same documents and nvchecker (see `check/p3.rs`).
//! - P5: `herald serve`: time from start to a healthy `/healthcheck`, and idle memory.
//!
//! `cargo bench --bench check` runs them all; `cargo bench --bench check -- P3` one of them.

#[path = "../tests/common/mod.rs"]
#[allow(dead_code, unused_macros, unused_imports)]
mod common;
#[path = "check/p3.rs"]
mod p3;

use std::time::{Duration, Instant};

use common::pretalx;
use common::{Fault, Sandbox, Upstream, at};
use herald::check::RunSummary;
use herald::config::projects::preset;

const LATENCY_MS: u64 = 50;

async fn run(app: &herald::app::App) -> RunSummary {
    common::run_check(app).await
}

/// The preset, with its blog feed pointed at the local upstream.
fn preset_toml(upstream: &Upstream) -> String {
    let mut out = String::new();
    for p in preset().expect("preset") {
        out.push_str(&format!("[[project]]\nname = \"{}\"\n", p.name));
        if let Some(core) = &p.plugin_of {
            out.push_str(&format!("plugin_of = \"{core}\"\n"));
        }
        if let Some(d) = &p.pypi {
            out.push_str(&format!("pypi = \"{d}\"\n"));
        }
        if let Some(g) = &p.github {
            out.push_str(&format!("github = \"{g}\"\n"));
        }
        if p.feed.is_some() {
            out.push_str(&format!("feed = \"{}/p/news/feed/\"\n", upstream.url()));
        }
        out.push('\n');
    }
    out
}

fn serve_preset(upstream: &Upstream, fixtures: &std::path::Path) {
    let rows = pretalx::rows(fixtures);
    pretalx::serve_history(upstream, &rows, &[]);
    for p in preset()
        .expect("preset")
        .iter()
        .filter(|p| p.plugin_of.is_some())
    {
        let dist = p.pypi.clone().expect("pypi");
        let repo = p.github.as_ref().map(|g| g.to_string()).expect("github");
        let history = common::plugins::history(fixtures, &dist, &repo);
        common::plugins::serve(upstream, fixtures, &dist, &history);
        let releases: Vec<serde_json::Value> = history
            .iter()
            .rev()
            .map(|(v, d)| serde_json::json!({"tag_name": format!("v{v}"), "name": "", "draft": false, "prerelease": false,
                "published_at": d.to_rfc3339(), "html_url": format!("https://github.com/{repo}/releases/tag/v{v}"), "body": "Notes."}))
            .collect();
        pretalx::serve_github(upstream, &repo, &releases, 100);
    }
}

async fn p1_p2(fixtures: &std::path::Path, concurrency: &str) {
    let upstream = Upstream::start().await;
    serve_preset(&upstream, fixtures);
    upstream.fault("/", Fault::Slow(Duration::from_millis(LATENCY_MS)));
    let sandbox = Sandbox::new();
    let projects = sandbox.projects(&preset_toml(&upstream));
    let (app, _) = sandbox
        .app_with(
            &upstream.url(),
            Some(&projects),
            at("2026-11-22T06:00:00Z"),
            &["--http-timeout", "10", "--concurrency", concurrency],
        )
        .await;
    let t = Instant::now();
    let cold = run(&app).await;
    let cold_time = t.elapsed();
    assert_eq!(cold.exit_code(), 0, "{cold:#?}");
    let urls: Vec<String> = upstream
        .requests()
        .await
        .iter()
        .map(|r| match r.url.query() {
            Some(q) => format!("{}{}?{q}", upstream.url(), r.url.path()),
            None => format!("{}{}", upstream.url(), r.url.path()),
        })
        .collect();

    // Peer: the same URLs, one after another, with the same client settings.
    let client = reqwest::Client::new();
    let t = Instant::now();
    for url in &urls {
        let _ = client
            .get(url)
            .send()
            .await
            .expect("GET")
            .bytes()
            .await
            .expect("body");
    }
    let sequential = t.elapsed();
    // The longest chain of requests that depend on each other: a page that links the next.
    let chain = 2u32;
    let floor = Duration::from_millis(LATENCY_MS) * chain;

    upstream.forget_requests().await;
    let t = Instant::now();
    let warm = run(&app).await;
    let warm_time = t.elapsed();
    println!(
        "P1 cold check of the preset ({} projects, {} requests, {LATENCY_MS} ms latency each):",
        cold.projects.len(),
        cold.requests
    );
    println!(
        "  herald (at most {concurrency} requests at once): {:>7.0} ms",
        cold_time.as_secs_f64() * 1000.0
    );
    println!(
        "  peer (the same URLs one after another): {:>7.0} ms",
        sequential.as_secs_f64() * 1000.0
    );
    println!(
        "  longest dependent chain: {chain} requests = {} ms; herald is {:.1}x of it (goal: 2x)",
        floor.as_millis(),
        cold_time.as_secs_f64() / floor.as_secs_f64()
    );
    println!("P2 second run, nothing changed:");
    println!(
        "  {} of {} requests answered 304 ({:.0}%, goal 95%); body bytes {} vs {} cold ({:.2}%, goal 2%); {:.0} ms",
        warm.not_modified,
        warm.requests,
        100.0 * warm.not_modified as f64 / warm.requests.max(1) as f64,
        warm.body_bytes,
        cold.body_bytes,
        100.0 * warm.body_bytes as f64 / cold.body_bytes.max(1) as f64,
        warm_time.as_secs_f64() * 1000.0
    );
}

async fn p5() {
    let sandbox = Sandbox::new();
    let upstream = Upstream::start().await;
    upstream.put_json(
        "/simple/demo/",
        "application/vnd.pypi.simple.v1+json",
        &serde_json::json!({"meta": {"api-version": "1.1"}, "name": "demo", "versions": [], "files": []}),
    );
    let projects = sandbox.projects("[[project]]\nname = \"demo\"\npypi = \"demo\"\n");
    // Migrate first: the figure is the start of a service whose database exists.
    let out = sandbox.herald(&["migrate", "--database-url", &sandbox.db_url()]);
    assert!(out.status.success());
    // `P5_BINARY=PATH` measures another build: the benchmark's own `herald` is built with the
    // features the tests' dev-dependencies add (HTTP/2 in hyper, for the recorded upstreams),
    // which a `cargo build --release` leaves out.
    let program = match std::env::var_os("P5_BINARY") {
        Some(path) => std::fs::canonicalize(&path).expect("P5_BINARY: no such file"),
        None => std::fs::canonicalize(env!("CARGO_BIN_EXE_herald")).expect("the herald binary"),
    };
    let (mut command, port) = common::web::serve_command_of(
        &program,
        &sandbox,
        &upstream.url(),
        &projects,
        Some("0 6 1 1 *"),
    );
    let listen = format!("127.0.0.1:{port}");
    // The binary wholly in the page cache, as after `install` or a build: the kernel then maps
    // the cached pages around each page of code a start touches (fault-around), so this is
    // the most a start keeps resident. With part of the file out of the cache the figure is
    // lower and varies with what happened to be read before (up to 2 MiB here).
    let mut binary = std::fs::File::open(&program).expect("open the herald binary");
    std::io::copy(&mut binary, &mut std::io::sink()).expect("read the herald binary");
    herald::sources::http::install_tls_provider();
    let client = reqwest::Client::new();
    let t = Instant::now();
    let mut child = command.spawn().expect("serve");
    let mut healthy = None;
    for _ in 0..2_000 {
        if let Ok(r) = client
            .get(format!("http://{listen}/healthcheck"))
            .send()
            .await
            && r.status() == reqwest::StatusCode::OK
        {
            healthy = Some(t.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let healthy = healthy.expect("never healthy");
    // Let the catch-up run and the first dispatch finish, then read the idle footprint.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = child.id().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .expect("VmRSS");
    // Of which Herald's own code: the resident part of its executable mapping. A mapping's
    // header line is `START-END PERMS OFFSET DEVICE INODE PATH`; its fields follow as `Name: N kB`.
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut code_kib = None;
    let mut in_code = false;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Rss:", kb, ..] if in_code => {
                *code_kib.get_or_insert(0.0) += kb.parse::<f64>().expect("Rss");
            }
            [name, ..] if name.ends_with(':') => {}
            [_, perms, _, _, _, path, ..] => {
                in_code = perms.contains('x') && std::path::Path::new(path) == program;
            }
            _ => in_code = false,
        }
    }
    let code_kib = code_kib.expect("no executable mapping of the herald binary in smaps");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait().await;
    let rss_mb = rss_kib * 1024.0 / 1e6;
    println!("P5 {}", program.display());
    println!(
        "P5 herald serve: healthy {:.0} ms after start (goal 100 ms), idle memory {:.1} MiB RSS = {rss_mb:.1} MB ({:.2}x the goal of 20 MB), of which Herald's code {:.1} MiB",
        healthy.as_secs_f64() * 1000.0,
        rss_kib / 1024.0,
        rss_mb / 20.0,
        code_kib / 1024.0,
    );
}

#[tokio::main]
async fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.starts_with('P'))
        .collect();
    let want = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let fixtures = common::fixtures();
    if want("P1") || want("P2") {
        // Half the default, the default (16), and every request of the preset at once.
        for concurrency in ["8", "16", "32"] {
            p1_p2(&fixtures, concurrency).await;
        }
    }
    if want("P3") {
        p3::p3(&fixtures).await;
    }
    if want("P5") {
        p5().await;
    }
}
