//! Delivery benchmark (P4): one release announced to 10,000 subscribers, received by
//! Postfix's `smtp-sink` (a fast, real SMTP server that writes every message to a file, here
//! on tmpfs when `/dev/shm` exists, so that the receiver's disk is not what is measured).
//!
//! `cargo bench --bench delivery` (`HERALD_BENCH_SUBSCRIBERS` for another count). It installs
//! `postfix` through `scripts/install-bench-tools` when `smtp-sink` is missing. In one run it
//! measures Herald with the default connections and with 32 (each: a real check run records
//! the release and queues one message per subscriber in the same transaction, then the
//! dispatcher renders, sends and records every message) and, as the peer, Python's `smtplib`
//! sending pre-built messages over one connection (before and after Herald, averaged), and
//! prints the goals: 10,000 messages within 5 s with the default connections, and at least
//! twice the peer's rate.

#[path = "../tests/common/mod.rs"]
#[allow(dead_code, unused_macros, unused_imports)]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, Upstream, at};
use herald::notify::{self, DispatchOptions};
use serde_json::json;

fn simple(versions: &[&str]) -> serde_json::Value {
    let files: Vec<_> = versions
        .iter()
        .map(|v| {
            json!({"filename": format!("pretalx-{v}-py3-none-any.whl"), "url": "https://files.example/x.whl",
                   "hashes": {}, "upload-time": "2026-07-08T10:00:00Z", "yanked": false})
        })
        .collect();
    json!({"meta": {"api-version": "1.1"}, "name": "pretalx", "versions": versions, "files": files})
}

/// Postfix's smtp-sink on a free port, writing every message it accepts to a file in `dir`.
struct PostfixSink {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PostfixSink {
    fn start() -> PostfixSink {
        const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
        if !std::path::Path::new(SMTP_SINK).exists() {
            let status = Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/scripts/install-bench-tools"
                ))
                .status()
                .expect("run scripts/install-bench-tools");
            assert!(status.success(), "cannot install postfix's smtp-sink");
        }
        // The receiver's files go to memory (tmpfs) when the machine has it: on a disk
        // filesystem that has seen many files come and go, creating each file (ext4's inode
        // search) cost smtp-sink about 1.3 ms of CPU per message here, so the receiver, not the
        // sender, set every rate (Herald's and the peer's alike, about 750 messages/s).
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("tempdir");
        // smtp-sink drops its privileges to `nobody` before writing.
        let status = Command::new("chown")
            .arg("nobody")
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(SMTP_SINK)
            .args(["-u", "nobody", "-d"])
            .arg(format!("{}/m.", dir.path().display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdin(Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        PostfixSink { child, port, dir }
    }

    /// Messages written so far.
    fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for PostfixSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Herald: record the release (one outbox row per subscriber), then render, send and record
/// every message; returns (queue time, dispatch time).
async fn herald(count: usize, connections: &str, sink: &PostfixSink) -> (Duration, Duration) {
    let upstream = Upstream::start().await;
    upstream.put_json(
        "/simple/pretalx/",
        "application/vnd.pypi.simple.v1+json",
        &simple(&["2026.2.0"]),
    );
    let sandbox = Sandbox::new();
    let projects = sandbox
        .projects("[[project]]\nname = \"pretalx\"\nscheme = \"calver\"\npypi = \"pretalx\"\n");
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let mut flags = vec!["--smtp-url", &url, "--from", "herald@example.org"];
    if connections != "default" {
        flags.extend(["--smtp-connections", connections]);
    }
    let (app, _) = sandbox
        .app_with(
            &upstream.url(),
            Some(&projects),
            at("2026-07-08T12:00:00Z"),
            &flags,
        )
        .await;
    for i in 0..count {
        common::subscribe_instant(&app, &format!("operator{i}@example.org"), "pretalx").await;
    }
    let run = common::run_check;
    run(&app).await; // baseline
    upstream.put_json(
        "/simple/pretalx/",
        "application/vnd.pypi.simple.v1+json",
        &simple(&["2026.2.0", "2026.2.1"]),
    );
    let before = sink.count();
    let t = Instant::now();
    let summary = run(&app).await;
    let queue_time = t.elapsed();
    assert_eq!(summary.queued(), count, "one message per subscriber queued");
    let profile = Profile::start(connections);
    let t = Instant::now();
    let report = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    let dispatch_time = t.elapsed();
    drop(profile);
    assert_eq!(report.sent, count, "{report:?}");
    assert_eq!(
        sink.count() - before,
        count,
        "every message reached smtp-sink"
    );
    (queue_time, dispatch_time)
}

/// With `P4_PERF=DIR`, `perf record` of this process while one dispatch runs, into
/// `DIR/p4-<connections>.data` (for profiling; the figures then include perf's cost).
struct Profile(Option<std::process::Child>);

impl Profile {
    fn start(connections: &str) -> Profile {
        let Ok(dir) = std::env::var("P4_PERF") else {
            return Profile(None);
        };
        let out = format!("{dir}/p4-{connections}.data");
        let pid = std::process::id().to_string();
        let child = Command::new("perf")
            .args(["record", "-F", "1999", "-g", "-o", &out, "-p", &pid])
            .stderr(Stdio::null())
            .spawn()
            .expect("run perf");
        std::thread::sleep(Duration::from_millis(300));
        Profile(Some(child))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// The peer: Python's smtplib sending pre-built messages over one connection, nothing
/// recorded; returns messages per second.
fn smtplib_peer(count: usize, sink: &PostfixSink) -> f64 {
    const PEER: &str = r#"
import smtplib, sys, time
from email.message import EmailMessage
port, n = int(sys.argv[1]), int(sys.argv[2])
messages = []
for i in range(n):
    m = EmailMessage()
    m["From"] = "herald@example.org"
    m["To"] = f"operator{i}@example.org"
    m["Subject"] = "pretalx 2026.2.1 released (bugfix release)"
    m.set_content("text")
    m.add_alternative("<p>html</p>", subtype="html")
    messages.append(m)
start = time.perf_counter()
with smtplib.SMTP("127.0.0.1", port) as smtp:
    for m in messages:
        smtp.send_message(m)
print(n / (time.perf_counter() - start))
"#;
    let before = sink.count();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", PEER, &sink.port.to_string(), &count.to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sink.count() - before, count, "the peer's messages arrived");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a rate")
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("HERALD_BENCH_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let sink = PostfixSink::start();
    let peer_count = count.min(3_000);
    let peer_rate = smtplib_peer(peer_count, &sink);
    let mut rows = Vec::new();
    for connections in ["default", "32"] {
        let (queue, dispatch) = herald(count, connections, &sink).await;
        rows.push((connections, queue, dispatch));
    }
    let peer_after = smtplib_peer(peer_count, &sink);
    let peer_rate = (peer_rate + peer_after) / 2.0;
    println!("P4 delivery: one release to {count} subscribers, Postfix smtp-sink on 127.0.0.1:");
    println!(
        "  peer: Python smtplib, one connection, {peer_count} pre-built messages, nothing recorded: {peer_rate:>7.0} messages/s"
    );
    for (connections, queue, dispatch) in &rows {
        let total = *queue + *dispatch;
        let rate = count as f64 / total.as_secs_f64();
        println!(
            "  herald, {connections:>7} connections: queue {:>5.2} s + render, send, record {:>5.2} s = {:>5.2} s  {rate:>7.0} messages/s  ({:.1}x the peer)",
            queue.as_secs_f64(),
            dispatch.as_secs_f64(),
            total.as_secs_f64(),
            rate / peer_rate
        );
    }
    let (_, queue, dispatch) = rows[0];
    let total = (queue + dispatch).as_secs_f64();
    let rate = count as f64 / total;
    println!(
        "  goals (default connections): {count} messages within 5 s: {:.2} s -> {}; at least 2x the peer: {:.1}x -> {}",
        total,
        if count < 10_000 {
            "n/a (fewer than 10,000)"
        } else if total <= 5.0 {
            "met"
        } else {
            "MISSED"
        },
        rate / peer_rate,
        if rate >= 2.0 * peer_rate {
            "met"
        } else {
            "MISSED"
        }
    );
}
