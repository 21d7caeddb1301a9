//! Web benchmark: `herald serve` (the release binary) over a database holding pretalx's real
//! history (48 releases) and four plugins, driven over real sockets by ApacheBench
//! (`ab -k -c 50`, installed by `scripts/install-bench-tools` when missing; it shares the
//! cores with Herald). Prints requests per second for `/healthcheck` (the reference, measured
//! first and last), for full answers and for `304` answers of the feeds and pages, and the
//! server's RSS before and after the load.
//!
//! `cargo bench --bench web`; `HERALD_BENCH_REQUESTS` sets the requests per figure (20,000).

#[path = "../tests/common/mod.rs"]
#[allow(dead_code, unused_macros, unused_imports)]
mod common;

use std::process::Command;
use std::time::Duration;

use common::site::{PLUGINS, serve_plugin_world};
use common::{Sandbox, Upstream, at, pretalx};

const CONCURRENCY: &str = "50";

fn ensure_ab() {
    if Command::new("ab").arg("-V").output().is_err() {
        let status = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/install-bench-tools"
            ))
            .status()
            .expect("run scripts/install-bench-tools");
        assert!(
            status.success(),
            "cannot install ApacheBench (apache2-utils)"
        );
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .expect("VmRSS")
        / 1024.0
}

/// One `ab` run: requests per second, and how many answers were not 2xx.
fn ab(url: &str, requests: usize, header: Option<&str>) -> (f64, usize, String) {
    let mut cmd = Command::new("ab");
    cmd.args(["-q", "-k", "-c", CONCURRENCY, "-n", &requests.to_string()]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    let command = format!(
        "ab -k -c {CONCURRENCY} -n {requests}{} {url}",
        header.map(|h| format!(" -H '{h}'")).unwrap_or_default()
    );
    let out = cmd.arg(url).output().expect("run ab");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{command}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_string)
    };
    let rps: f64 = field("Requests per second")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {text}"));
    let failed: usize = field("Failed requests")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(failed, 0, "{command}: {text}");
    let non_2xx: usize = field("Non-2xx responses")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (rps, non_2xx, command)
}

#[tokio::main]
async fn main() {
    ensure_ab();
    herald::sources::http::install_tls_provider();
    let requests: usize = std::env::var("HERALD_BENCH_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let fixtures = common::fixtures();
    let rows = pretalx::rows(&fixtures);
    let upstream = Upstream::start().await;
    serve_plugin_world(&upstream, &rows, at("2026-07-09T00:00:00Z"), &[]);
    let sandbox = Sandbox::new();
    let mut toml = pretalx::projects_toml(&upstream);
    for (dist, _) in PLUGINS {
        toml.push_str(&format!(
            "\n[[project]]\nname = \"{dist}\"\nplugin_of = \"pretalx\"\nmodule = \"{}\"\npypi = \"{dist}\"\n",
            dist.replace('-', "_")
        ));
    }
    let projects = sandbox.projects(&toml);
    let mut args = vec!["check".to_string()];
    args.extend(sandbox.args(&upstream.url(), Some(&projects)));
    let out = sandbox.herald(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (mut command, port) =
        common::web::serve_command(&sandbox, &upstream.url(), &projects, Some("0 6 1 1 *"));
    let listen = format!("127.0.0.1:{port}");
    let mut child = command.spawn().expect("serve");
    let client = reqwest::Client::new();
    let base = format!("http://{listen}");
    let mut healthy = false;
    for _ in 0..2_000 {
        if let Ok(r) = client.get(format!("{base}/healthcheck")).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(healthy, "herald serve never became healthy");
    // The catch-up run (if any) and the first dispatch finish before the load starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let paths = [
        "/releases.atom",
        "/releases.json",
        "/compat.json",
        "/projects/pretalx",
        "/compat",
    ];
    let mut etags = Vec::new();
    for path in paths {
        let r = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("warm-up");
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{path}");
        let etag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{path}: no ETag"));
        let bytes = r.bytes().await.expect("body").len();
        etags.push((path, etag, bytes));
    }
    let pid = child.id().expect("pid");
    let rss_before = rss_mib(pid);
    println!(
        "web: herald serve (release), pretalx with 48 releases and 4 plugins; {requests} requests per figure, {CONCURRENCY} concurrent, keep-alive; RSS {rss_before:.1} MiB before"
    );

    let health_url = format!("{base}/healthcheck");
    let (health_first, _, command) = ab(&health_url, requests, None);
    println!("  /healthcheck (reference): {health_first:>8.0} requests/s   [{command}]");
    let mut atom = (0.0, 0.0);
    for (path, etag, bytes) in &etags {
        let url = format!("{base}{path}");
        let (full, non_2xx, command) = ab(&url, requests, None);
        assert_eq!(non_2xx, 0, "{path}: every full answer is a 200");
        println!("  {path:<18} full ({bytes} bytes): {full:>8.0} requests/s   [{command}]");
        let header = format!("If-None-Match: {etag}");
        let (not_modified, non_2xx, command) = ab(&url, requests, Some(&header));
        assert_eq!(
            non_2xx, requests,
            "{path}: every conditional answer is a 304"
        );
        println!("  {path:<18} 304:              {not_modified:>8.0} requests/s   [{command}]");
        if *path == "/releases.atom" {
            atom = (full, not_modified);
        }
    }
    let (health_last, _, _) = ab(&health_url, requests, None);
    println!("  /healthcheck (reference, again): {health_last:>8.0} requests/s");
    let health = (health_first + health_last) / 2.0;
    let rss_after = rss_mib(pid);
    println!(
        "  /releases.atom: 304 at {:.2}x the health check (goal at least 0.5x); full answer {:.1}x the 1,000 requests/s measured before conditional answers (goal at least 5x)",
        atom.1 / health,
        atom.0 / 1000.0
    );
    println!(
        "  RSS {rss_before:.1} MiB before, {rss_after:.1} MiB after {} requests",
        requests * (2 + 2 * etags.len())
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait().await;
}
