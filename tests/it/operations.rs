//! The operator's toolbox through the real binary: JSON logs (every stderr line an object,
//! with the run id, project and source), no full recipient address or secret at `info`,
//! colour only on a terminal and never with `NO_COLOR`, the progress display only on a
//! terminal, `herald status` as report and probe, shell completions and the man page.

use crate::common;

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::smtp::Stage;
use common::{Fault, World, run_check};
use herald::app::{App, ManualClock};
use herald::notify::{self, DispatchOptions};
use serde_json::Value;

const TOKEN: &str = "ghp_OperationsTokenValue1234567890";
const PASSWORD: &str = "smtp-Passw0rd-for-ops";

/// The pretalx history before 2026.2.1, served by a local upstream, with a mail sink that
/// wants a password.
async fn ops_world() -> World {
    let world = World::pretalx().await;
    world.sink.require_auth("herald", PASSWORD);
    world
}

/// The sink's URL with the user and password it wants.
fn smtp_url(world: &World) -> String {
    format!("smtp://herald:{PASSWORD}@127.0.0.1:{}", world.sink.port())
}

/// The arguments for the real binary: this upstream, projects file, sink and secrets.
fn binary_args(world: &World) -> Vec<String> {
    let mut args = world.args(&world.pretalx_projects(""));
    args.extend([
        "--smtp-url".into(),
        smtp_url(world),
        "--github-token".into(),
        TOKEN.into(),
        "--from".into(),
        common::world::FROM.into(),
    ]);
    args
}

/// Runs the binary with `command` first, then the shared arguments.
fn run_binary(world: &World, command: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let args = binary_args(world);
    let mut all: Vec<&str> = command.to_vec();
    all.extend(args.iter().map(String::as_str));
    let mut cmd = world.sandbox.command(&all);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("run herald")
}

/// An in-process app on the same database, reading time from a manual clock.
async fn ops_app(world: &World, now: chrono::DateTime<Utc>) -> (App, Arc<ManualClock>) {
    let url = smtp_url(world);
    world
        .app()
        .projects(&world.pretalx_projects(""))
        .now(now)
        .flags(&["--smtp-url", &url, "--from", common::world::FROM])
        .build()
        .await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// SGR colour sequences (`ESC [ ... m`); cursor movement is not colour.
fn has_colour(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(2).enumerate().any(|(i, w)| {
        w == b"\x1b[" && {
            let rest = &bytes[i + 2..];
            let digits = rest
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b';')
                .count();
            rest.get(digits) == Some(&b'm')
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line_with_run_project_and_source() {
    let world = ops_world().await;
    let baseline = run_binary(&world, &["check"], &[]);
    assert_eq!(
        baseline.status.code(),
        Some(0),
        "{}",
        text(&baseline.stderr)
    );
    for (email, project) in [
        ("ops@example.org", "pretalx"),
        ("dev.team@example.org", "pretalx"),
    ] {
        let out = run_binary(&world, &["subscribe", email, "--project", project], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    // The relay refuses one recipient, quoting the address, and asks the other to retry.
    world.sink.reject_recipient(
        "ops@example.org",
        550,
        "5.1.1 <ops@example.org>: Recipient address rejected",
    );
    world.sink.fail_next(
        Stage::RcptTo,
        451,
        "4.2.0 <dev.team@example.org> greylisted",
        1,
    );
    world.release_2026_2_1();
    world.upstream.fault("/repos/", Fault::Status(500));

    let out = run_binary(
        &world,
        &["check"],
        &[("HERALD_LOG_FORMAT", "json"), ("HERALD_LOG", "info")],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "GitHub failed: {stderr}");
    assert!(
        text(&out.stdout).contains("2026.2.1"),
        "{}",
        text(&out.stdout)
    );

    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|err| panic!("not JSON ({err}): {line:?}\nall:\n{stderr}"))
        })
        .collect();
    // The failure (once), the new release, the greylisted retry.
    assert!(lines.len() >= 3, "{stderr}");
    let retry = lines
        .iter()
        .find_map(|l| {
            l["message"]
                .as_str()
                .filter(|m| m.starts_with("will retry"))
        })
        .unwrap_or_else(|| panic!("no retry line: {stderr}"));
    assert_eq!(
        retry.matches("greylisted").count(),
        1,
        "the relay's answer quoted once: {retry}"
    );
    for line in &lines {
        assert!(line.is_object(), "{line}");
        for field in ["timestamp", "level", "message"] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
        let ts = line["timestamp"].as_str().expect("timestamp is text");
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
            "timestamp {ts}"
        );
    }
    let run_id = |line: &Value| {
        line.get("run_id")
            .or_else(|| line.get("span").and_then(|s| s.get("run_id")))
            .and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
    };
    // The failure as it happened: a tracing event inside the run's span.
    let event = lines
        .iter()
        .find(|l| {
            l["level"] == "WARN"
                && l["project"] == "pretalx"
                && l["source"] == "github"
                && l.get("span").is_some()
        })
        .unwrap_or_else(|| panic!("no failure event for pretalx/github: {stderr}"));
    let id = run_id(event).expect("the event carries the run id");
    // It says what failed and carries the state and the run id as fields.
    let summary = lines
        .iter()
        .find(|l| l.get("state").is_some() && l["project"] == "pretalx" && l["source"] == "github")
        .unwrap_or_else(|| panic!("no failure line with a state: {stderr}"));
    assert_eq!(summary["state"], "failed");
    assert_eq!(run_id(summary), Some(id));
    // And it is the only report of the failure on stderr: logged once, where it is handled.
    let reports = lines
        .iter()
        .filter(|l| l["project"] == "pretalx" && l["source"] == "github" && l["level"] == "WARN")
        .count();
    assert_eq!(reports, 1, "the failure reported more than once: {stderr}");
    assert!(
        event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("pretalx: github failed: ")),
        "{event}"
    );
    // The new release was logged inside the run.
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["version"] == "2026.2.1" && run_id(l) == Some(id)),
        "{stderr}"
    );

    // At info, recipients are masked (also inside the relay's answer) and secrets absent.
    assert!(stderr.contains("***@example.org"), "{stderr}");
    for secret in ["ops@example.org", "dev.team@example.org", TOKEN, PASSWORD] {
        assert!(!stderr.contains(secret), "{secret} in the log:\n{stderr}");
    }
    // The sink saw what was refused: nothing was lost from the record either.
    let outbox = run_binary(&world, &["outbox", "--json"], &[]);
    assert!(text(&outbox.stdout).contains("ops@example.org"));

    // The text format written to a file (as the README's cron line does) has no colour.
    let plain = run_binary(&world, &["check"], &[("HERALD_LOG", "info")]);
    let plain_err = text(&plain.stderr);
    assert!(
        plain_err.contains("INFO") || plain_err.contains("WARN"),
        "{plain_err}"
    );
    assert!(
        !plain_err.contains('\x1b'),
        "escape codes in a file: {plain_err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_are_json_in_the_json_format() {
    let world = World::new().await;
    let sandbox = &world.sandbox;
    let out = sandbox
        .command(&["check", "--no-such-flag"])
        .env("HERALD_LOG_FORMAT", "json")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let line: Value = serde_json::from_str(stderr.trim()).expect("one JSON line");
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["message"]
            .as_str()
            .is_some_and(|m| m.contains("--no-such-flag")),
        "{line}"
    );
    // A bad value of the format itself is refused in plain words.
    let out = sandbox
        .command(&["status", "--log-format", "yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("yaml"));
}

/// Runs `cmd` with stderr on a pseudo-terminal (80x24); returns the exit code and what the
/// terminal showed.
fn on_terminal(mut cmd: Command) -> (Option<i32>, String) {
    // Both ends close on exec: tests in this binary spawn children concurrently, and one
    // that inherited the terminal's other end would keep the read below from ending.
    let master = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")
        .expect("open /dev/ptmx");
    // SAFETY: grantpt and unlockpt take the descriptor of the open master.
    let ready = unsafe {
        libc::grantpt(master.as_raw_fd()) == 0 && libc::unlockpt(master.as_raw_fd()) == 0
    };
    assert!(
        ready,
        "grantpt/unlockpt: {}",
        std::io::Error::last_os_error()
    );
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: ptsname_r writes a NUL-terminated name of at most `name.len()` bytes.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    assert_eq!(
        rc,
        0,
        "ptsname_r: {}",
        std::io::Error::from_raw_os_error(rc)
    );
    // SAFETY: ptsname_r succeeded, so `name` holds a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(name.to_str().expect("terminal name"))
        .expect("open the terminal");
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer given.
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    let (master, slave) = (OwnedFd::from(master), OwnedFd::from(slave));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave));
    let mut child = cmd.spawn().expect("spawn on a terminal");
    // Only the child holds the terminal's other end now: reading ends when it exits.
    drop(cmd);
    let mut terminal = std::fs::File::from(master);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match terminal.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let status = child.wait().expect("wait");
    (status.code(), text(&seen))
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_and_colour_appear_only_on_a_terminal_and_colour_never_with_no_color() {
    let world = ops_world().await;
    // A failing source (a warning to colour) and slow answers, so the display has time to draw.
    world.upstream.fault("/repos/", Fault::Status(500));
    world
        .upstream
        .fault("/", Fault::Slow(Duration::from_millis(300)));
    let args = binary_args(&world);
    let command = |extra_env: &[(&str, &str)]| {
        let mut all = vec!["check"];
        all.extend(args.iter().map(String::as_str));
        let mut cmd = world.sandbox.command(&all);
        cmd.env("HERALD_LOG", "info").env_remove("NO_COLOR");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd
    };

    let (code, shown) = tokio::task::block_in_place(|| on_terminal(command(&[])));
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("checking:"),
        "no progress display: {shown:?}"
    );
    assert!(shown.contains("projects"), "{shown:?}");
    assert!(shown.contains("requests"), "{shown:?}");
    assert!(has_colour(&shown), "a terminal gets colour: {shown:?}");

    let (code, shown) = tokio::task::block_in_place(|| on_terminal(command(&[("NO_COLOR", "1")])));
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("checking:"), "{shown:?}");
    assert!(!has_colour(&shown), "NO_COLOR is set: {shown:?}");

    // Piped (as in cron): neither progress nor colour.
    let out = command(&[]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("checking:"), "{stderr:?}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    // In the JSON format, not even on a terminal.
    let (_, shown) = tokio::task::block_in_place(|| {
        on_terminal({
            let mut cmd = command(&[]);
            cmd.env("HERALD_LOG_FORMAT", "json");
            cmd
        })
    });
    assert!(!shown.contains("checking:"), "{shown:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_runs_failing_sources_dead_letters_and_the_next_run() {
    let world = ops_world().await;
    let now = Utc::now();
    let (app, clock) = ops_app(&world, now - chrono::Duration::days(3)).await;

    // A fresh database is healthy; a first run too.
    let out = run_binary(&world, &["status"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("none yet"),
        "{}",
        text(&out.stdout)
    );
    let first = run_check(&app).await;
    assert_eq!(first.exit_code(), 0);
    let out = run_binary(&world, &["status"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).starts_with("Healthy."),
        "{}",
        text(&out.stdout)
    );

    // GitHub starts failing two days ago and still fails.
    world.upstream.fault("/repos/", Fault::Status(500));
    clock.set(now - chrono::Duration::days(2));
    assert_eq!(run_check(&app).await.exit_code(), 2);
    // A subscriber whose address the relay refuses; 2026.2.1 comes out.
    let out = run_binary(
        &world,
        &["subscribe", "ops@example.org", "--project", "pretalx"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    world
        .sink
        .reject_recipient("ops@example.org", 550, "5.1.1 Recipient address rejected");
    world.release_2026_2_1();
    clock.set(Utc::now());
    let last = run_check(&app).await;
    assert_eq!(last.exit_code(), 2);
    let report = notify::dispatch(&app, &DispatchOptions::default())
        .await
        .expect("dispatch");
    assert_eq!(report.dead, 1, "{report:?}");

    let out = run_binary(&world, &["status"], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.starts_with("NEEDS ATTENTION:"), "{stdout}");
    assert!(
        stdout.contains("pretalx github has been failing since"),
        "{stdout}"
    );
    assert!(stdout.contains("1 message dead-lettered since"), "{stdout}");
    assert!(stdout.contains("new: pretalx 2026.2.1"), "{stdout}");
    assert!(stdout.contains("partial"), "{stdout}");
    assert!(stdout.contains("2 failed attempts"), "{stdout}");
    assert!(stdout.contains("1 dead"), "{stdout}");
    assert!(stdout.contains("Next scheduled run"), "{stdout}");

    // The dead letter was seen; the failing source still needs attention.
    let out = run_binary(&world, &["status", "--json"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["healthy"], false);
    assert_eq!(
        json["attention"].as_array().map(Vec::len),
        Some(1),
        "{json}"
    );
    assert_eq!(json["outbox"]["counts"]["dead"], 1);
    assert_eq!(json["outbox"]["dead_since_last_look"], 0);
    assert!(json["outbox"]["last_look_at"].is_string());
    let sources = json["sources"].as_array().expect("sources");
    assert_eq!(sources.len(), 1, "{json}");
    assert_eq!(sources[0]["project"], "pretalx");
    assert_eq!(sources[0]["source"], "github");
    assert_eq!(sources[0]["state"], "failing");
    assert_eq!(sources[0]["consecutive_failures"], 2);
    let since = sources[0]["since"].as_str().expect("since");
    let since = chrono::DateTime::parse_from_rfc3339(since).expect("time");
    assert!(
        (since.with_timezone(&Utc) - (now - chrono::Duration::days(2)))
            .num_seconds()
            .abs()
            < 2,
        "failing since the first failure, not the last: {since}"
    );
    let runs = json["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["status"], "partial");
    assert_eq!(runs[0]["new_releases"][0], "pretalx 2026.2.1");
    assert_eq!(runs[0]["failed_sources"], 1);
    assert_eq!(runs[2]["status"], "ok");
    assert!(runs[0]["duration_ms"].is_u64());
    assert_eq!(json["schedule"]["expression"], "0 6 * * *");
    let next = json["schedule"]["next_run"].as_str().expect("next run");
    assert!(next.contains("T06:00:00"), "{next}");

    // GitHub answers again: healthy.
    world.upstream.heal();
    clock.set(Utc::now());
    assert_eq!(run_check(&app).await.exit_code(), 0);
    let out = run_binary(&world, &["status"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("none: every source answered"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn completions_and_the_man_page_come_from_the_command_line_definition() {
    let world = World::new().await;
    let sandbox = &world.sandbox;
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = sandbox.herald(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["herald", "status", "check", "log-format"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let out = sandbox.herald(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH herald"),
        "{page}"
    );
    for word in ["HERALD_DATABASE_URL", "status", "completions"] {
        assert!(page.contains(word), "the man page lacks {word}");
    }
    // Neither needs a database.
    assert!(!sandbox.path("herald.db").exists());
    let out = sandbox.herald(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}
