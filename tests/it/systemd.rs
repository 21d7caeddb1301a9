//! The systemd units in `contrib/systemd/`: `systemd-analyze verify` accepts them without a
//! word (with `/usr/local/bin/herald` pointed at the binary under test), their hardening rates
//! "OK" in `systemd-analyze security`, every `ExecStart=` names a command the binary has, the
//! two services share user, state and hardening, and `herald serve` speaks systemd's notify
//! protocol (`Type=notify`): `READY=1` once it answers, `STOPPING=1` on SIGTERM.
//!
//! `systemd-analyze` is required: a machine without it fails these tests (`scripts/test`
//! installs it through `.ci/install-test-tools`).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::World;

const INSTALLED: &str = "/usr/local/bin/herald";
const UNITS: [&str; 3] = [
    "herald.service",
    "herald-check.service",
    "herald-check.timer",
];

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd")
}

fn read_unit(name: &str) -> String {
    let path = contrib().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `systemd-analyze`, or a failure that says how to get it.
fn systemd_analyze() -> Command {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join("systemd-analyze").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "systemd-analyze is missing: install Debian's systemd package (bash .ci/install-test-tools)"
    );
    let mut cmd = Command::new("systemd-analyze");
    cmd.env_remove("SYSTEMD_LOG_LEVEL");
    cmd
}

/// The units copied into a temporary folder, with the installed binary's path replaced by
/// the binary under test (verify checks that `ExecStart=` names an executable file).
fn units_for_this_binary() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in UNITS {
        let text = read_unit(name).replace(INSTALLED, env!("CARGO_BIN_EXE_herald"));
        std::fs::write(dir.path().join(name), text).expect("write unit");
    }
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `KEY=value` lines of one section, in order (comments and blank lines skipped).
fn section(unit: &str, name: &str) -> Vec<(String, String)> {
    let header = format!("[{name}]");
    let mut inside = false;
    let mut lines = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {line}"));
            lines.push((key.to_string(), value.to_string()));
        }
    }
    lines
}

fn value<'a>(lines: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn systemd_analyze_verify_accepts_the_units_without_a_word() {
    let dir = units_for_this_binary();
    let paths: Vec<PathBuf> = UNITS.iter().map(|n| dir.path().join(n)).collect();
    let out = systemd_analyze()
        .current_dir(dir.path())
        .arg("verify")
        .args(&paths)
        .output()
        .expect("run systemd-analyze verify");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // verify exits 0 on directives it ignores ("Unknown key name", "Failed to parse"), and
    // says so on stderr: silence is the only clean answer.
    assert_eq!(text(&out.stderr), "", "systemd-analyze verify complained");
    assert_eq!(text(&out.stdout), "");

    // The same check sees a broken unit, so its silence above means something.
    let broken = dir.path().join("herald-check.service");
    let unit = read_unit("herald-check.service").replace("Type=oneshot", "Type=oneshoot");
    std::fs::write(&broken, unit).expect("write");
    let out = systemd_analyze()
        .current_dir(dir.path())
        .arg("verify")
        .arg(&broken)
        .output()
        .expect("run systemd-analyze verify");
    assert!(
        text(&out.stderr).contains("Failed to parse service type"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_services_hardening_rates_ok_in_systemd_analyze_security() {
    let dir = units_for_this_binary();
    for name in ["herald.service", "herald-check.service"] {
        // --threshold=20: a non-zero exit when the exposure level is above 2.0 of 10.
        let out = systemd_analyze()
            .current_dir(dir.path())
            .args(["security", "--offline=yes", "--threshold=20"])
            .arg(dir.path().join(name))
            .output()
            .expect("run systemd-analyze security");
        let report = text(&out.stdout);
        assert!(
            out.status.success(),
            "{name} is exposed:\n{report}{}",
            text(&out.stderr)
        );
        assert!(
            report.contains(&format!("Overall exposure level for {name}: 1.")),
            "{report}"
        );
    }
}

#[test]
fn every_exec_start_names_a_command_the_binary_has() {
    let mut seen = Vec::new();
    for name in UNITS.iter().filter(|n| n.ends_with(".service")) {
        let service = section(&read_unit(name), "Service");
        let starts = value(&service, "ExecStart");
        assert_eq!(starts.len(), 1, "{name}: one ExecStart= line");
        for line in starts {
            // Prefixes systemd allows before the path: - @ : + !
            let line = line.trim_start_matches(['-', '@', ':', '+', '!']);
            let mut words = line.split_whitespace();
            assert_eq!(words.next(), Some(INSTALLED), "{name}: {line}");
            let args: Vec<&str> = words.collect();
            assert!(!args.is_empty(), "{name}: no subcommand in {line}");
            let out = Command::new(env!("CARGO_BIN_EXE_herald"))
                .args(&args)
                .arg("--help")
                .output()
                .expect("run herald");
            assert!(
                out.status.success(),
                "{name}: `herald {} --help` failed: {}",
                args.join(" "),
                text(&out.stderr)
            );
            let usage = format!("Usage: herald {} ", args.join(" "));
            assert!(text(&out.stdout).contains(&usage), "{}", text(&out.stdout));
            seen.push(args.join(" "));
        }
    }
    assert_eq!(seen, ["serve", "check"]);
}

#[test]
fn the_units_share_user_state_configuration_and_hardening() {
    let serve = section(&read_unit("herald.service"), "Service");
    let check = section(&read_unit("herald-check.service"), "Service");
    assert_eq!(value(&serve, "Type"), ["notify"]);
    assert_eq!(value(&check, "Type"), ["oneshot"]);
    // Everything but how each one runs is the same, so both see one database and one key.
    let own = [
        "Type",
        "ExecStart",
        "Restart",
        "RestartSec",
        "TimeoutStopSec",
    ];
    let shared = |lines: &[(String, String)]| -> Vec<(String, String)> {
        lines
            .iter()
            .filter(|(k, _)| !own.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    assert_eq!(shared(&serve), shared(&check));
    let settings: BTreeMap<&str, Vec<&str>> = [
        "DynamicUser",
        "StateDirectory",
        "WorkingDirectory",
        "Environment",
        "EnvironmentFile",
        "UMask",
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "CapabilityBoundingSet",
    ]
    .into_iter()
    .map(|key| (key, value(&serve, key)))
    .collect();
    let expected: BTreeMap<&str, Vec<&str>> = [
        ("DynamicUser", vec!["yes"]),
        ("StateDirectory", vec!["herald"]),
        ("WorkingDirectory", vec!["/var/lib/herald"]),
        (
            "Environment",
            vec!["HERALD_DATABASE_URL=sqlite:///var/lib/herald/herald.db"],
        ),
        ("EnvironmentFile", vec!["-/etc/herald/herald.env"]),
        ("UMask", vec!["0077"]),
        ("NoNewPrivileges", vec!["yes"]),
        ("ProtectSystem", vec!["strict"]),
        ("ProtectHome", vec!["yes"]),
        ("CapabilityBoundingSet", vec![""]),
    ]
    .into_iter()
    .collect();
    assert_eq!(settings, expected);

    let timer = read_unit("herald-check.timer");
    let schedule = section(&timer, "Timer");
    assert_eq!(value(&schedule, "OnCalendar"), ["daily"]);
    assert_eq!(value(&schedule, "Persistent"), ["true"]);
    assert_eq!(value(&schedule, "RandomizedDelaySec").len(), 1);
    assert_eq!(
        value(&section(&timer, "Install"), "WantedBy"),
        ["timers.target"]
    );
    // The timer starts the service of its own name, which exists beside it.
    assert!(contrib().join("herald-check.service").is_file());
}

async fn datagram(socket: &tokio::net::UnixDatagram, what: &str) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(60), socket.recv(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no {what} notification from herald serve"))
        .expect("recv");
    text(&buf[..n])
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_notifies_ready_once_it_answers_and_stopping_on_sigterm() {
    let world = World::new().await;
    let (upstream, sandbox) = (&world.upstream, &world.sandbox);
    upstream.put_json(
        "/simple/demo/",
        "application/vnd.pypi.simple.v1+json",
        &serde_json::json!({"meta": {"api-version": "1.1"}, "name": "demo", "versions": [], "files": []}),
    );
    let projects = sandbox.projects("[[project]]\nname = \"demo\"\npypi = \"demo\"\n");
    let socket_path = sandbox.path("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).expect("notify socket");
    let (mut command, port) = common::web::serve_command(sandbox, &upstream.url(), &projects, None);
    let listen = format!("127.0.0.1:{port}");
    command.env("NOTIFY_SOCKET", &socket_path);
    let mut child = command.spawn().expect("spawn herald serve");

    assert_eq!(datagram(&socket, "READY").await, "READY=1\n");
    // Ready means answering: the first health check, without a retry, gets its 200.
    herald::sources::http::install_tls_provider();
    let health = reqwest::get(format!("http://{listen}/healthcheck"))
        .await
        .expect("the health check answers as soon as READY=1 is sent");
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    let pid = child.id().expect("pid");
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    assert_eq!(datagram(&socket, "STOPPING").await, "STOPPING=1\n");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}
