//! Blog feeds: RSS / Atom / JSON Feed through `read_feed` and `entries`, and the same bytes
//! as an HTML page through `discover_feed` and `posts_from_page`.
#![no_main]

use herald::model::{GithubRepo, Project, Scheme};
use herald::sources::feed;
use libfuzzer_sys::fuzz_target;

const URL: &str = "https://fuzz.example/feed";

fn project() -> Project {
    Project {
        name: "pretalx".into(),
        scheme: Scheme::Pep440,
        pypi: Some("pretalx-pages".into()),
        github: Some(GithubRepo {
            owner: "pretalx".into(),
            name: "pretalx".into(),
        }),
        feed: url::Url::parse(URL).ok(),
        plugin_of: None,
        module: None,
        tag_prefix: None,
        upgrade_steps: Vec::new(),
        compat: Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let project = project();
    let _ = feed::read_feed(data, URL);
    let _ = feed::entries(data, URL, &project);
    let html = String::from_utf8_lossy(data);
    let base = url::Url::parse("https://fuzz.example/blog/").expect("static URL");
    let _ = feed::discover_feed(&html, &base);
    let _ = feed::posts_from_page(&html, &base, &project);
});
