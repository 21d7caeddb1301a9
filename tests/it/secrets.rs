//! Secrets stay secret: the SMTP password and the GitHub token appear in no log line and no
//! error message, even at the most verbose log level; header injection through addresses is
//! refused.

use crate::common;

use common::{Fault, World};

const TOKEN: &str = "ghp_S3cretTokenValue1234567890";
const PASSWORD: &str = "hunter2-smtp-Passw0rd";

#[tokio::test(flavor = "multi_thread")]
async fn the_smtp_password_and_github_token_never_reach_logs_or_errors() {
    let world = World::new().await;
    let (upstream, sink, sandbox) = (&world.upstream, &world.sink, &world.sandbox);
    upstream.fault("/repos/", Fault::Status(500));
    upstream.fault("/simple/", Fault::RateLimited(60));
    sink.require_auth("herald", "another-password");
    let projects =
        sandbox.projects("[[project]]\nname = \"demo\"\npypi = \"demo\"\ngithub = \"o/demo\"\n");
    let smtp = format!("smtp://herald:{PASSWORD}@127.0.0.1:{}", sink.port());
    let mut base = world.args(&projects);
    base.extend([
        "--github-token".into(),
        TOKEN.into(),
        "--smtp-url".into(),
        smtp.clone(),
        "--from".into(),
        "herald@example.org".into(),
    ]);
    let run = |extra: &[&str], log: &str| {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(base.iter().map(String::as_str));
        let mut cmd = sandbox.command(&args);
        cmd.env("HERALD_LOG", log);
        cmd.output().expect("run")
    };
    let mut everything = String::new();
    for (args, log) in [
        (vec!["check"], "trace"),
        (vec!["check", "--json"], "debug"),
        (vec!["send-test-email", "ops@example.org"], "trace"),
        (vec!["outbox", "--all", "--json"], "trace"),
        (vec!["subscribe", "ops@example.org"], "trace"),
    ] {
        let out = run(&args, log);
        everything.push_str(&String::from_utf8_lossy(&out.stdout));
        everything.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    // Bad settings are reported without their secret parts.
    let bad = format!("smtps://herald:{PASSWORD}@/");
    let out = sandbox.herald(&[
        "releases",
        "--database-url",
        &sandbox.db_url(),
        "--smtp-url",
        &bad,
    ]);
    assert_eq!(out.status.code(), Some(1));
    everything.push_str(&String::from_utf8_lossy(&out.stderr));

    assert!(
        everything.contains("github"),
        "the runs did talk about GitHub: {everything}"
    );
    assert!(
        everything.contains("535") || everything.contains("authentication"),
        "the relay refused the login: {everything}"
    );
    assert!(!everything.contains(TOKEN), "the GitHub token leaked");
    assert!(!everything.contains(PASSWORD), "the SMTP password leaked");
    // The token was sent where it belongs.
    let sent = upstream.requests().await.iter().any(|r| {
        r.headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"))
    });
    assert!(sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn addresses_with_line_breaks_cannot_inject_headers() {
    let world = World::new().await;
    let sandbox = &world.sandbox;
    for address in [
        "ops@example.org\r\nBcc: all@example.org",
        "ops@example.org\nSubject: hi",
        "\"a\r\nb\"@example.org",
    ] {
        let out = sandbox.herald(&["subscribe", address, "--database-url", &sandbox.db_url()]);
        assert_eq!(out.status.code(), Some(1), "{address:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid email address"));
        let out = sandbox.herald(&[
            "releases",
            "--database-url",
            &sandbox.db_url(),
            "--from",
            address,
        ]);
        assert_eq!(out.status.code(), Some(1), "HERALD_FROM {address:?}");
    }
}
