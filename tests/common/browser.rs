//! End-to-end browser harness: real headless Chromium driven over WebDriver.
//!
//! A [`Browser`] owns a `chromedriver` process listening on a free 127.0.0.1 port, a fresh
//! temporary Chromium profile (`--user-data-dir`, which also holds chromedriver's log) and a
//! fantoccini [`Client`] session. Dropping it kills chromedriver and the Chromium it started;
//! [`Browser::close`] ends the session politely first. Debian's `chromium` and
//! `chromium-driver` packages provide the binaries (`.ci/install-browser` installs them).
//! Without them the harness skips loudly, except under `CI`, where it panics.
//!
//! Helpers wait for their element (up to [`WAIT`]) instead of sleeping: after a click that
//! navigates, read something that only the next page has.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a helper waits for its element.
pub const WAIT: Duration = Duration::from_secs(10);
/// chromedriver gets this many polls of `/status`, this far apart, to report `ready: true`.
const READY_ATTEMPTS: u32 = 200;
const READY_POLL: Duration = Duration::from_millis(50);

/// A headless Chromium session with its own chromedriver and profile.
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// Kept for its lifetime: the folder goes when the browser is dropped.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a Chromium session. `None`, with a loud message, when the
    /// binaries are missing and `CI` is unset; under `CI` a missing browser panics.
    pub async fn start() -> Option<Browser> {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|bin| !Path::new(bin).exists())
            .collect();
        if !missing.is_empty() {
            let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
            assert!(
                !in_ci,
                "CI is set but {missing:?} missing: run .ci/install-browser"
            );
            eprintln!(
                "\n!!! SKIPPED: {missing:?} missing; run `bash .ci/install-browser` to run browser tests !!!\n"
            );
            return None;
        }
        herald::sources::http::install_tls_provider();
        let profile = tempfile::tempdir().expect("temporary Chromium profile");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free 127.0.0.1 port for chromedriver")
            .port();
        let log = profile.path().join("chromedriver.log");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so Drop can kill the Chromium it starts too.
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        let mut guard = DriverGuard(Some(driver));
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&base, &mut guard, &log).await;
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "timeouts".into(),
            json!({ "pageLoad": 30_000, "script": 10_000 }),
        );
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1280,1024",
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&base)
            .await
            .unwrap_or_else(|err| panic!("WebDriver session at {base}: {err}\n{}", read_log(&log)));
        let driver = guard.0.take().expect("driver still owned");
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|err| panic!("goto {url}: {err}"));
    }

    /// Waits for the element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no element {css:?} within {WAIT:?}: {err}"))
    }

    /// Replaces the value of the field matching `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|err| panic!("clear {css:?}: {err}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("type into {css:?}: {err}"));
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|err| panic!("click {css:?}: {err}"));
    }

    /// The rendered text of the element matching `css`.
    pub async fn text_of(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|err| panic!("text of {css:?}: {err}"))
    }

    /// The rendered text of the page's body.
    pub async fn page_text(&self) -> String {
        self.text_of("body").await
    }

    /// The address the browser is on.
    pub async fn current_url(&self) -> url::Url {
        self.client
            .current_url()
            .await
            .unwrap_or_else(|err| panic!("current URL: {err}"))
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|err| panic!("screenshot for {}: {err}", path.display()));
        std::fs::write(path, png).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
    }

    /// Ends the WebDriver session (Chromium quits), then stops chromedriver.
    pub async fn close(self) {
        self.client
            .clone()
            .close()
            .await
            .unwrap_or_else(|err| panic!("close the WebDriver session: {err}"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Fields drop after this, so the profile folder goes once nothing writes to it.
        kill_group(&mut self.driver);
    }
}

/// Kills chromedriver while `start` is still setting up.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            kill_group(child);
        }
    }
}

/// SIGKILLs chromedriver's process group (it and its Chromium), then reaps chromedriver.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls chromedriver's `/status` until it reports ready, a bounded number of times.
async fn wait_ready(base: &str, driver: &mut DriverGuard, log: &Path) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("HTTP client for chromedriver /status");
    let started = Instant::now();
    for _ in 0..READY_ATTEMPTS {
        let child = driver.0.as_mut().expect("driver owned during start");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chromedriver exited early ({status})\n{}", read_log(log));
        }
        if let Ok(resp) = http.get(format!("{base}/status")).send().await
            && let Ok(body) = resp.json::<serde_json::Value>().await
            && body["value"]["ready"] == json!(true)
        {
            return;
        }
        tokio::time::sleep(READY_POLL).await;
    }
    panic!(
        "chromedriver at {base} not ready after {READY_ATTEMPTS} polls ({:?})\n{}",
        started.elapsed(),
        read_log(log)
    );
}

fn read_log(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => format!("chromedriver log {}:\n{text}", log.display()),
        Err(err) => format!("(no chromedriver log at {}: {err})", log.display()),
    }
}
