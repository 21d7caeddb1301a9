//! A running web service (`herald::http`) on a real socket, over a local upstream serving
//! pretalx's history and a real SMTP sink, for page and browser tests.

use std::path::Path;

use herald::app::{App, ManualClock};
use herald::check::{self, CheckOptions};
use herald::notify::{self, DispatchOptions};
use mail_parser::MessageParser;
use reqwest::StatusCode;

use super::pretalx::{self, Row};
use super::smtp::SmtpSink;
use super::web::WebListener;
use super::{Sandbox, Upstream, World, at};

/// The service, its app and its doubles.
pub struct Site {
    pub app: App,
    pub clock: std::sync::Arc<ManualClock>,
    pub base: String,
    pub sink: SmtpSink,
    pub client: reqwest::Client,
    pub rows: Vec<Row>,
    pub upstream: Upstream,
    _stop: tokio::sync::oneshot::Sender<()>,
    _sandbox: Sandbox,
}

/// Starts a site whose upstream serves the first `served` releases of pretalx's history,
/// after one check run (the baseline).
pub async fn site(served: usize) -> Site {
    let world = World::new().await;
    world.serve_history(served);
    world.upstream.put_json(
        "/simple/pretalx-pages/",
        "application/vnd.pypi.simple.v1+json",
        &serde_json::json!({"meta": {"api-version": "1.1"}, "name": "pretalx-pages", "versions": ["1.9.0"],
            "files": [{"filename": "pretalx_pages-1.9.0-py3-none-any.whl", "url": "x", "hashes": {}, "upload-time": "2026-04-17T21:49:03Z", "yanked": false}]}),
    );
    let projects = world.pretalx_projects(
        "\n[[project]]\nname = \"pretalx-pages\"\nplugin_of = \"pretalx\"\nmodule = \"pretalx_pages\"\npypi = \"pretalx-pages\"\n",
    );
    start(world, &projects, at("2026-11-22T06:00:00Z")).await
}

/// The four official plugins the board and advice tests follow, with their repositories.
pub const PLUGINS: [(&str, &str); 4] = [
    ("pretalx-pages", "pretalx/pretalx-pages"),
    ("pretalx-venueless", "pretalx/pretalx-venueless"),
    ("pretalx-public-voting", "pretalx/pretalx-public-voting"),
    ("pretalx-media-ccc-de", "pretalx/pretalx-media-ccc-de"),
];

/// Serves pretalx and the four plugins as they stood before `cutoff` (real history and
/// metadata), plus `extra` plugin releases (name, version, time).
pub fn serve_plugin_world(
    upstream: &Upstream,
    rows: &[Row],
    cutoff: chrono::DateTime<chrono::Utc>,
    extra: &[(&str, &str, &str)],
) {
    let fixtures = super::fixtures();
    let core: Vec<Row> = rows
        .iter()
        .filter(|r| r.published() < cutoff)
        .cloned()
        .collect();
    pretalx::serve_history(upstream, &core, &[]);
    for row in &core {
        upstream.put_json(
            &format!("/pypi/pretalx/{}/json", row.version),
            "application/json",
            &super::plugins::version_doc(&fixtures, "pretalx", &row.version),
        );
    }
    for (dist, repo) in PLUGINS {
        let mut releases: Vec<(String, chrono::DateTime<chrono::Utc>)> =
            super::plugins::history(&fixtures, dist, repo)
                .into_iter()
                .filter(|(_, d)| *d < cutoff)
                .collect();
        for (name, version, date) in extra {
            if *name == dist {
                releases.push((version.to_string(), at(date)));
            }
        }
        super::plugins::serve(upstream, &fixtures, dist, &releases);
    }
}

/// A site tracking pretalx and the four plugins as they stood before `cutoff`, its clock at
/// `now`, after one check run.
pub async fn plugin_site(cutoff: &str, now: &str) -> Site {
    let world = World::new().await;
    serve_plugin_world(&world.upstream, &world.rows, at(cutoff), &[]);
    let mut plugins = String::new();
    for (dist, _) in PLUGINS {
        plugins.push_str(&format!(
            "\n[[project]]\nname = \"{dist}\"\nplugin_of = \"pretalx\"\nmodule = \"{}\"\nscheme = \"semver\"\npypi = \"{dist}\"\n",
            dist.replace('-', "_")
        ));
    }
    let projects = world.pretalx_projects(&plugins);
    start(world, &projects, at(now)).await
}

/// Builds the world's app on `projects` with its clock at `now`, runs the baseline check and
/// serves the app on a free port.
async fn start(world: World, projects: &Path, now: chrono::DateTime<chrono::Utc>) -> Site {
    let listener = WebListener::bind().await;
    let base = listener.base.clone();
    let (app, clock) = world
        .app()
        .projects(projects)
        .now(now)
        .mail()
        .flags(&["--base-url", &base])
        .build()
        .await;
    check::run(&app, &CheckOptions::default())
        .await
        .expect("check");
    let stop = listener.serve(&app);
    Site {
        app,
        clock,
        base,
        sink: world.sink,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        rows: world.rows,
        upstream: world.upstream,
        _stop: stop,
        _sandbox: world.sandbox,
    }
}

impl Site {
    /// The sandbox the site's database and projects file live in.
    pub fn sandbox(&self) -> &Sandbox {
        &self._sandbox
    }

    /// GET a path with extra request headers.
    pub async fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let mut request = self
            .client
            .get(format!("{}{}", self.base, path.trim_start_matches('/')));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let r = request.send().await.expect("GET");
        let (status, headers) = (r.status(), r.headers().clone());
        (status, r.text().await.expect("body"), headers)
    }

    /// GET a path.
    pub async fn get(&self, path: &str) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let r = self
            .client
            .get(format!("{}{}", self.base, path.trim_start_matches('/')))
            .send()
            .await
            .expect("GET");
        let (status, headers) = (r.status(), r.headers().clone());
        (status, r.text().await.expect("body"), headers)
    }

    /// POST a form to a path.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let r = self
            .client
            .post(format!("{}{}", self.base, path.trim_start_matches('/')))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST");
        (r.status(), r.text().await.expect("body"))
    }

    /// Dispatches due mail and returns the text part of every message received so far.
    pub async fn mails(&self) -> Vec<String> {
        notify::dispatch(&self.app, &DispatchOptions::default())
            .await
            .expect("dispatch");
        self.sink
            .messages()
            .iter()
            .map(|m| {
                MessageParser::default()
                    .parse(&m.data)
                    .and_then(|p| p.body_text(0).map(|t| t.into_owned()))
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// The first URL in `text` that starts with `prefix`.
pub fn link_in(text: &str, prefix: &str) -> String {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {text}"));
    text[start..]
        .split_whitespace()
        .next()
        .expect("link")
        .to_string()
}
