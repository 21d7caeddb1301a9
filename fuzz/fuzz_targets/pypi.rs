//! The package index: the Simple API page (PEP 691/700) and, without `versions`, the JSON
//! API project document, both through the adapter's own `parse_index_document`; the
//! per-version document through `parse_release_doc`; distribution file names.
#![no_main]

use herald::model::{Project, Scheme};
use herald::sources::http::Body;
use herald::sources::pypi::{self, PypiSource};
use libfuzzer_sys::fuzz_target;

fn project(dist: &str) -> Project {
    Project {
        name: dist.into(),
        scheme: Scheme::Pep440,
        pypi: Some(dist.into()),
        github: None,
        feed: None,
        plugin_of: None,
        module: None,
        tag_prefix: None,
        upgrade_steps: Vec::new(),
        compat: Vec::new(),
    }
}

fn body(data: &[u8], content_type: Option<&str>) -> Body {
    let url = "https://pypi.fuzz.example/simple/black/";
    Body {
        url: url.into(),
        final_url: url::Url::parse(url).expect("static URL"),
        content_type: content_type.map(str::to_string),
        bytes: data.to_vec(),
        validators: Default::default(),
        next_link: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let source =
        PypiSource::new(url::Url::parse("https://pypi.fuzz.example/").expect("static URL"));
    // Simple API page (falls back to the JSON API reading when it lists no versions).
    let simple = body(data, Some("application/vnd.pypi.simple.v1+json"));
    for dist in ["black", "isodate", "pretalx", "Zope.Interface"] {
        let _ = source.parse_index_document(&project(dist), &simple);
    }
    // No JSON content type: straight to the JSON API project document.
    let _ = source.parse_index_document(&project("luigi"), &body(data, Some("text/html")));
    // Per-version document.
    let _ = pypi::parse_release_doc(&body(data, Some("application/json")));
    // File names, one per line: first line is the project name.
    let text = String::from_utf8_lossy(data);
    if data.len() < 4096 {
        let mut lines = text.lines();
        let name = lines.next().unwrap_or_default();
        for file in lines {
            let _ = pypi::file_version(file, name);
        }
    }
});
