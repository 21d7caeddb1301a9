//! GitHub releases: one page of `/repos/OWNER/REPO/releases` through the adapter's own
//! `parse_releases_page`, for a project without and with a monorepo tag prefix.
#![no_main]

use herald::model::{GithubRepo, Project, Scheme};
use herald::sources::github;
use herald::sources::http::Body;
use libfuzzer_sys::fuzz_target;

fn project(tag_prefix: Option<&str>) -> Project {
    Project {
        name: "ember-cp-validations".into(),
        scheme: Scheme::Pep440,
        pypi: None,
        github: Some(GithubRepo {
            owner: "offirgolan".into(),
            name: "ember-cp-validations".into(),
        }),
        feed: None,
        plugin_of: None,
        module: None,
        tag_prefix: tag_prefix.map(str::to_string),
        upgrade_steps: Vec::new(),
        compat: Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let url = "https://api.fuzz.example/repos/o/r/releases?per_page=100";
    let body = Body {
        url: url.into(),
        final_url: url::Url::parse(url).expect("static URL"),
        content_type: Some("application/json".into()),
        bytes: data.to_vec(),
        validators: Default::default(),
        next_link: None,
    };
    let _ = github::parse_releases_page(&body, &project(None));
    let _ = github::parse_releases_page(&body, &project(Some("pkg-")));
});
