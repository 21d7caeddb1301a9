//! Regression tests from fuzzing (`fuzz/`, run with `scripts/fuzz`): the nastiest inputs the
//! fuzz targets met, fed to each parser they cover. Every parser must answer with a value or
//! an error, never panic, and stay quick. Inputs are inlined: the fuzzer's corpus and
//! artifacts folders are not committed.

use std::time::Duration;

use herald::model::{GithubRepo, Project, Scheme};
use herald::sources::feed;
use herald::sources::github;
use herald::sources::http::Body;
use herald::sources::pypi::{self, PypiSource};
use herald::version;
use url::Url;

fn project(name: &str) -> Project {
    Project {
        name: name.into(),
        scheme: Scheme::Pep440,
        pypi: Some(name.into()),
        github: Some(GithubRepo {
            owner: "owner".into(),
            name: name.into(),
        }),
        feed: Url::parse("https://fuzz.example/feed").ok(),
        plugin_of: None,
        module: None,
        tag_prefix: None,
        upgrade_steps: Vec::new(),
        compat: Vec::new(),
    }
}

fn body(bytes: &[u8], content_type: &str) -> Body {
    let url = "https://fuzz.example/doc";
    Body {
        url: url.into(),
        final_url: Url::parse(url).expect("url"),
        content_type: Some(content_type.into()),
        bytes: bytes.to_vec(),
        validators: Default::default(),
        next_link: None,
    }
}

/// The CPU time this thread has used so far. A bound on it, unlike one on the wall clock,
/// does not depend on how busy the rest of the machine is.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux provides.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f`, failing when it uses more than a generous bound of CPU time (a debug build):
/// hostile input must not make parsing blow up.
fn quickly<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = thread_cpu();
    let out = f();
    let used = thread_cpu() - start;
    assert!(
        used < Duration::from_secs(20),
        "{what} took {used:?} of CPU time"
    );
    out
}

/// Everything the `versions` target does with one input.
fn all_version_functions(s: &str) {
    let mut parsed = Vec::new();
    parsed.extend(version::parse(s).ok());
    parsed.extend(version::parse_tag(s, None).and_then(Result::ok));
    for prefix in ["pkg-", "pretalx-", "v", "", "é", s] {
        parsed.extend(version::parse_tag(s, Some(prefix)).and_then(Result::ok));
    }
    for v in &parsed {
        let key = version::canonical_key(v);
        assert!(
            version::parse(&key).is_ok(),
            "canonical key `{key}` of `{s}` parses"
        );
        let _ = version::line(v);
        let _ = version::line_opener(v);
        let _ = version::classify(v, |k| k == key);
        let _ = version::post_release_for(v, parsed.iter());
    }
}

#[test]
fn absurd_versions_are_refused_or_read() {
    let long_number = "9".repeat(127);
    let many_parts = vec!["1"; 64].join(".");
    let inputs: Vec<String> = vec![
        String::new(),
        " ".into(),
        "v".into(),
        "v.".into(),
        "V.V.".into(),
        "\u{0}".into(),
        "1.0\u{0}".into(),
        long_number.clone(),
        format!("{long_number}!1"),
        "18446744073709551615.18446744073709551615".into(),
        "18446744073709551616".into(),
        "18446744073709551615!18446744073709551615.0.post18446744073709551615".into(),
        "1.0a18446744073709551616".into(),
        "1.0.post99999999999999999999".into(),
        "1.0.dev18446744073709551615".into(),
        many_parts.clone(),
        format!("{many_parts}.0.0.0"),
        format!("1.0+{}", vec!["a"; 60].join(".")),
        "1.0+".into(),
        "1.0+..".into(),
        "1!".into(),
        "!1".into(),
        "1.0-".into(),
        "1.0.post".into(),
        "1.0-1-1".into(),
        "0.0.0.0.post0".into(),
        "1.0rc1.post2.dev3+local.7".into(),
        "\u{feff}1.0".into(),
        "\u{a0}1.0\u{3000}".into(),
        "١.٢".into(),
        "１.０".into(),
        "1.0\u{301}".into(),
        "é".repeat(64),
        "é".repeat(65),
        "1".repeat(128),
        "1".repeat(129),
        "pkg-".into(),
        "pkg-v.".into(),
        "pkg-v1.2.3".into(),
    ];
    for s in &inputs {
        quickly(s, || all_version_functions(s));
    }
    // The length cap counts bytes: 129 bytes are refused whatever they are.
    assert!(version::parse(&"1".repeat(129)).is_err());
    let err = version::parse(&"é".repeat(100)).expect_err("too long");
    assert!(err.input.chars().count() <= 60, "{}", err.input);
    // Invalid UTF-8, read lossily as the fuzz target does.
    for bytes in [
        &b"\xff\xfe1.0"[..],
        b"1.\xc0\x80",
        b"v\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
    ] {
        all_version_functions(&String::from_utf8_lossy(bytes));
    }
}

#[test]
fn absurd_titles_and_slugs_are_refused_or_read() {
    let aliases = vec!["pretalx".to_string(), "pretalx-pages".to_string()];
    let none: Vec<String> = Vec::new();
    let inputs: Vec<String> = vec![
        String::new(),
        "-".into(),
        "/".into(),
        "?".into(),
        "#".into(),
        "///".into(),
        "release".into(),
        "release-".into(),
        "-release-".into(),
        "pretalx".into(),
        "pretalx-".into(),
        "releasing-pretalx-".into(),
        "releasing-pretalx-1-".into(),
        "releasing-pretalx-2025-02-30".into(),
        "release 1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25".into(),
        format!("release {}", "1.".repeat(300)),
        format!("release {}", "9".repeat(200) + ".0"),
        format!("pretalx {}", "v.".repeat(200)),
        format!("Release {}", "1.0 ".repeat(200)),
        "Release 1.0rc1rc2rc3rc4rc5.post.post.dev".into(),
        format!("https://x.example/{}", "release-".repeat(40)),
        format!("https://x.example/release-{}", "1-".repeat(120)),
        format!("https://x.example/release-{}", "1-".repeat(200)),
        format!("https://x.example/{}?release-1-0", "a".repeat(300)),
        // Multi-byte letters whose lower case has another length, before the name.
        "İİİİ pretalx 2.0.1".into(),
        "ȺȺ pretalx 2.0.1".into(),
        "\u{212a}\u{212a}\u{212a} pretalx 2.0.1".into(),
        "https://x.example/İİİİ-pretalx-2-0-1".into(),
        "https://x.example/ȺȺ-pretalx-2-0-1".into(),
        "ß".repeat(256),
        format!("{}pretalx 1.0", "İ".repeat(170)),
        format!("{}pretalx 1.0", "é".repeat(255)),
        "\u{0}release 1.0\u{0}".into(),
        "release\u{2028}1.0".into(),
        "pretalx_pages 1.2.3".into(),
        "pretalx pages 1.2.3".into(),
    ];
    for s in &inputs {
        quickly(s, || {
            for a in [&aliases, &none] {
                let _ = version::from_title(s, a);
                let _ = version::from_slug(s, a);
            }
            let own = vec![s.to_lowercase()];
            let _ = version::from_title(s, &own);
            let _ = version::from_slug(s, &own);
        });
    }
    // Over the length caps: nothing is read.
    assert_eq!(
        version::from_title(&format!("release 1.0 {}", "x".repeat(600)), &aliases),
        None
    );
    assert_eq!(
        version::from_slug(
            &format!("https://x.example/release-1-0-{}", "x".repeat(300)),
            &aliases
        ),
        None
    );
}

fn nested(open: &str, close: &str, depth: usize) -> Vec<u8> {
    let mut out = open.repeat(depth);
    out.push_str(&close.repeat(depth));
    out.into_bytes()
}

const FEED_URL: &str = "https://fuzz.example/feed";

fn all_feed_functions(bytes: &[u8]) {
    let project = project("pretalx");
    let _ = feed::read_feed(bytes, FEED_URL);
    let _ = feed::entries(bytes, FEED_URL, &project);
    let html = String::from_utf8_lossy(bytes);
    let base = Url::parse("https://fuzz.example/blog/").expect("url");
    let _ = feed::discover_feed(&html, &base);
    let _ = feed::posts_from_page(&html, &base, &project);
}

#[test]
fn hostile_feeds_and_pages_end_in_an_error_or_entries() {
    let rss_item = |title: &str, link: &str| {
        format!(
            "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title>\
             <item><title>{title}</title><link>{link}</link></item></channel></rss>"
        )
        .into_bytes()
    };
    let lol = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
        <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
        <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>\
        <rss version=\"2.0\"><channel><item><title>&lol3;</title></item></channel></rss>";
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\xff\xfe\x00<".to_vec(),
        b"\xef\xbb\xbf".to_vec(),
        b"<".to_vec(),
        b"<?xml".to_vec(),
        b"{".to_vec(),
        b"{\"version\":\"https://jsonfeed.org/version/1\",\"items\":[{}]}".to_vec(),
        b"{\"version\":\"https://jsonfeed.org/version/1.1\",\"title\":\"t\",\"items\":[{\"id\":\"1\",\"title\":\"pretalx 1.0\",\"url\":\"\",\"date_published\":\"9999-99-99\"}]}".to_vec(),
        lol.as_bytes().to_vec(),
        nested("<a>", "</a>", 20_000),
        nested("<div>", "</div>", 20_000),
        nested("<rss><channel><item>", "</item></channel></rss>", 5_000),
        nested("[", "]", 10_000),
        nested("{\"items\":", "}", 10_000),
        rss_item("Releasing pretalx 2025.2.0", "https://pretalx.com/p/news/releasing-pretalx-2025-2-0/"),
        rss_item(&"pretalx 1.0 ".repeat(1_000), "::::"),
        rss_item("ȺȺ pretalx 2.0.1", "https://x/İİ-pretalx-2-0-1"),
        rss_item("\u{0}", "\u{0}"),
        b"<rss version=\"2.0\"><channel><item><title>release 1.0</title><pubDate>Mon, 99 Foo 99999 99:99:99 +9999</pubDate></item></channel></rss>".to_vec(),
        b"<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><title type=\"xhtml\"><div>release 1.0</div></title><link href=\"javascript:alert(1)\"/><updated>0000-00-00T00:00:00Z</updated></entry></feed>".to_vec(),
        format!(
            "<html><head><link rel=\"alternate\" type=\"application/rss+xml\" href=\"{}\"></head></html>",
            "%".repeat(10_000)
        )
        .into_bytes(),
        format!(
            "<html><body>{}</body></html>",
            "<a href=\"/p/release-pretalx-1-0\">pretalx 1.0</a>".repeat(2_000)
        )
        .into_bytes(),
        b"<html><a href=\"//other.example/release-1-0\">release 1.0</a><a href=\"http://[::1\">x</a><a href=\"\">release 2.0</a></html>".to_vec(),
    ];
    for bytes in &inputs {
        quickly(
            &String::from_utf8_lossy(&bytes[..bytes.len().min(60)]),
            || all_feed_functions(bytes),
        );
    }
    assert!(feed::read_feed(b"", FEED_URL).is_err());
    assert!(feed::read_feed(&nested("[", "]", 10_000), FEED_URL).is_err());
}

fn all_pypi_functions(bytes: &[u8]) {
    let source = PypiSource::new(Url::parse("https://pypi.fuzz.example/").expect("url"));
    for dist in ["black", "isodate", "Zope.Interface"] {
        let simple = body(bytes, "application/vnd.pypi.simple.v1+json");
        let _ = source.parse_index_document(&project(dist), &simple);
        let _ = source.parse_index_document(&project(dist), &body(bytes, "text/html"));
    }
    let _ = pypi::parse_release_doc(&body(bytes, "application/json"));
}

#[test]
fn hostile_index_documents_end_in_an_error_or_observations() {
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"\xff\xfe{}".to_vec(),
        nested("[", "]", 100_000),
        nested("{\"releases\":", "}", 10_000),
        b"{\"versions\":[]}".to_vec(),
        b"{\"versions\":null,\"releases\":{}}".to_vec(),
        b"{\"versions\":[\"\",\" \",\"v\",\"1.0\",\"1.0.0\",\"v1\",\"99999999999999999999999\"],\"files\":[{\"filename\":\"black-1.0.tar.gz\",\"yanked\":\"\"},{\"filename\":\"black-1.tar.gz\",\"yanked\":true,\"upload-time\":\"9999-12-31T23:59:60.999999999+23:59\"},{\"filename\":\".whl\"},{\"filename\":\"-.whl\"},{\"filename\":\".win.exe\"},{\"filename\":\"black-.win.msi\"},{\"filename\":\"black--1.0.tar.gz\"},{\"filename\":\"\\u00e9-\\u00e9.tar.gz\"}]}".to_vec(),
        b"{\"versions\":[\"1.0\"],\"files\":[{\"filename\":\"black-1.0.tar.gz\",\"yanked\":42}]}".to_vec(),
        format!(
            "{{\"versions\":[{}],\"files\":[]}}",
            vec!["\"1.0\""; 20_000].join(",")
        )
        .into_bytes(),
        format!("{{\"versions\":[\"{}\"]}}", "1".repeat(100_000)).into_bytes(),
        b"{\"releases\":{\"\":[],\"1.0\":[{\"upload_time\":\"2019-10-28T23:53:54\",\"yanked\":true,\"yanked_reason\":\"\"}],\"../../x?y#z\":[{}],\"1.0.0\":[{\"upload_time_iso_8601\":\"+262143-12-31T23:59:59Z\"}]}}".to_vec(),
        b"{\"releases\":{\"1.0\":null}}".to_vec(),
        b"{\"releases\":{\"1.0\":[{\"upload_time\":\"-9999-01-01T00:00:00.99999999999999999999\"}]}}".to_vec(),
        b"{\"info\":{\"requires_dist\":[\"\",\";\",\"x ; python_version < '3'\"],\"requires_python\":\"   \"},\"vulnerabilities\":[{\"id\":\"\",\"withdrawn\":\"yes\"},{\"id\":\"GHSA\"}]}".to_vec(),
        b"{\"info\":null}".to_vec(),
        b"{\"info\":{},\"vulnerabilities\":{}}".to_vec(),
        b"{\"info\":{\"requires_dist\":null},\"vulnerabilities\":[{\"id\":1}]}".to_vec(),
        b"1e999999".to_vec(),
        b"\"\\ud800\"".to_vec(),
        b"{\"versions\":[\"\\ud800\"]}".to_vec(),
    ];
    for bytes in &inputs {
        quickly(
            &String::from_utf8_lossy(&bytes[..bytes.len().min(60)]),
            || all_pypi_functions(bytes),
        );
    }
    let source = PypiSource::new(Url::parse("https://pypi.fuzz.example/").expect("url"));
    let err = source
        .parse_index_document(&project("black"), &body(b"{}", "text/html"))
        .expect_err("no releases map");
    assert!(err.to_string().contains("releases"), "{err}");
    let fetched = source
        .parse_index_document(
            &project("black"),
            &body(
                b"{\"versions\":[\"1.0\",\"nope\"],\"files\":[{\"filename\":\"black-1.0.tar.gz\",\"yanked\":\"bad\"}]}",
                "application/vnd.pypi.simple.v1+json",
            ),
        )
        .expect("simple page");
    assert_eq!(fetched.observations.len(), 1);
    assert!(fetched.observations[0].yanked);
    assert_eq!(fetched.warnings.len(), 1);
    assert!(
        pypi::parse_release_doc(&body(&nested("[", "]", 100_000), "application/json")).is_err()
    );
    for (file, project) in [
        ("", ""),
        ("-", "-"),
        (".whl", "x"),
        ("x-.win.exe", "x"),
        ("é-1.0.tar.gz", "é"),
        ("İ-1.0.tar.gz", "i̇"),
        ("a--b-1.0.tar.gz", "a-b"),
    ] {
        let _ = pypi::file_version(file, project);
    }
}

fn all_github_functions(bytes: &[u8]) {
    let mut monorepo = project("ember-cp-validations");
    for prefix in [None, Some("pkg-"), Some("é")] {
        monorepo.tag_prefix = prefix.map(str::to_string);
        let _ = github::parse_releases_page(&body(bytes, "application/json"), &monorepo);
    }
}

#[test]
fn hostile_release_pages_end_in_an_error_or_observations() {
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"[{}]".to_vec(),
        b"[null]".to_vec(),
        b"{\"message\":\"\"}".to_vec(),
        b"{\"message\":null}".to_vec(),
        nested("[", "]", 100_000),
        nested("{\"message\":", "}", 10_000),
        b"[{\"tag_name\":\"\"},{\"tag_name\":\"v\"},{\"tag_name\":\"pkg-\"},{\"tag_name\":\"pkg-v1.0\",\"draft\":true},{\"tag_name\":\"weird\",\"name\":\"   \"},{\"tag_name\":\"weird\",\"name\":\"ember-cp-validations 1.2.3\"},{\"tag_name\":\"v1.0\",\"published_at\":\"not a date\"}]".to_vec(),
        b"[{\"tag_name\":\"v1.0\",\"published_at\":\"+262143-12-31T23:59:59Z\",\"body\":\"\\u0000\"}]".to_vec(),
        format!("[{}]", vec!["{\"tag_name\":\"v1.0\"}"; 20_000].join(",")).into_bytes(),
        format!("[{{\"tag_name\":\"{}\",\"name\":\"{}\"}}]", "1".repeat(100_000), "é".repeat(100_000)).into_bytes(),
        b"[{\"tag_name\":\"\\ud800\"}]".to_vec(),
        b"\xff[]".to_vec(),
    ];
    for bytes in &inputs {
        quickly(
            &String::from_utf8_lossy(&bytes[..bytes.len().min(60)]),
            || all_github_functions(bytes),
        );
    }
    let page = body(
        b"[{\"tag_name\":\"v1.0\"},{\"tag_name\":\"nope\"},{\"tag_name\":\"v2.0\",\"draft\":true}]",
        "application/json",
    );
    let fetched =
        github::parse_releases_page(&page, &project("ember-cp-validations")).expect("page");
    assert_eq!(fetched.observations.len(), 1);
    assert_eq!(fetched.warnings.len(), 1);
    let err = github::parse_releases_page(
        &body(b"{\"message\":\"Not Found\"}", "application/json"),
        &project("x"),
    )
    .expect_err("message");
    assert!(err.to_string().contains("Not Found"), "{err}");
}

/// Not a crash: a correctness bug found while fuzzing, now fixed. `from_title` found the
/// project's name in the lower-cased title but cut the original title at that byte offset;
/// letters whose lower case has another UTF-8 length (`Ⱥ`, `İ`, the Kelvin sign) shifted the
/// cut, so a version was misread (`0.1` for `2.0.1`) or lost.
#[test]
fn title_versions_survive_letters_whose_lower_case_is_longer_or_shorter() {
    let aliases = vec!["pretalx".to_string()];
    for title in [
        "ȺȺ pretalx 2.0.1",
        "İİ pretalx 2.0.1",
        "ȺȺȺȺ pretalx 2.0.1",
        "\u{212a}\u{212a}\u{212a}\u{212a}\u{212a}\u{212a} pretalx 2.0.1",
    ] {
        assert_eq!(
            version::from_title(title, &aliases).map(|v| v.to_string()),
            Some("2.0.1".to_string()),
            "{title}"
        );
    }
}
