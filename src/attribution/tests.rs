//! The rule over real tag, release-name, feed-title and slug shapes from public repositories
//! and feeds of several ecosystems. Each row names where the shape was seen; "fixture" rows come
//! from `tests/fixtures/` (see its SOURCES.md files), the few rows marked "the example"
//! are spellings the rule's description uses.

use super::*;
use crate::model::{GithubRepo, Scheme};

fn project(name: &str, repo: &str, prefix: &str) -> Project {
    let (owner, repo) = repo.split_once('/').expect("owner/repo");
    Project {
        name: name.into(),
        scheme: Scheme::Pep440,
        pypi: None,
        github: Some(GithubRepo {
            owner: owner.into(),
            name: repo.into(),
        }),
        feed: None,
        plugin_of: None,
        module: None,
        tag_prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
        upgrade_steps: Vec::new(),
        compat: Vec::new(),
    }
}

/// `"1.2.3"` (the project's, in PEP 440 normal form), `"other"`, `"unreadable"` or `"none"`.
fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Own(v) => v.to_string(),
        Verdict::Other(_) => "other".into(),
        Verdict::Unreadable(_) => "unreadable".into(),
        Verdict::NotARelease => "none".into(),
    }
}

/// (project, repository, tag_prefix, tag, release name, verdict).
type ReleaseRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
);

#[rustfmt::skip]
const RELEASES: &[ReleaseRow] = &[
    // Python. pretalx/pretalx: tests/fixtures/pretalx/pretalx_releases.csv (tags as released).
    ("pretalx", "pretalx/pretalx", "", "v2026.2.1", Some("v2026.2.1"), "2026.2.1"),
    ("pretalx", "pretalx/pretalx", "", "v0.2.0", None, "0.2.0"),
    // pretalx/pretalx git tags (fixture pretalx_git_tags.txt): a version with a suffix is no
    // version, and a tag with a version in it never falls back to the release name.
    ("pretalx", "pretalx/pretalx", "", "0.9.0-python3.5", Some("pretalx 0.9.0"), "unreadable"),
    // pretalx/pretalx-pages and pretalx/pretalx-broadcast-tools (fixture plugin_git_tags.csv).
    ("pretalx-pages", "pretalx/pretalx-pages", "", "v.1.6.1", None, "1.6.1"),
    ("pretalx-broadcast-tools", "pretalx/pretalx-broadcast-tools", "", "1.1.0-beta1", None, "1.1.0b1"),
    // The examples of the project's own name, one separator and a version.
    ("pretalx", "pretalx/pretalx", "", "pretalx-2.3.1", None, "2.3.1"),
    ("pretalx", "pretalx/pretalx", "", "pretalx@2.3.1", None, "2.3.1"),
    ("pretalx", "pretalx/pretalx", "", "pretalx/2.3.1", None, "2.3.1"),
    ("pretalx", "pretalx/pretalx", "", "pretalx_v2.3.1", None, "2.3.1"),
    ("pretalx", "pretalx/pretalx", "", "pretalx-pages-1.2.0", None, "other"),
    // lxml/lxml (github.com/lxml/lxml/releases/tag/lxml-4.4.1, .../lxml-5.4.0).
    ("lxml", "lxml/lxml", "", "lxml-4.4.1", None, "4.4.1"),
    ("lxml", "lxml/lxml", "", "lxml-5.4.0", None, "5.4.0"),
    // pallets/jinja (releases/tag/2.10.3), Python-Markdown/markdown (releases/tag/3.1.1).
    ("jinja", "pallets/jinja", "", "2.10.3", None, "2.10.3"),
    ("markdown", "Python-Markdown/markdown", "", "3.1.1", None, "3.1.1"),
    // sqlalchemy/sqlalchemy (releases/tag/rel_2_0_44) and sqlalchemy/alembic
    // (releases/tag/rel_1_19_1): underscores are no version, and no name says one.
    ("sqlalchemy", "sqlalchemy/sqlalchemy", "", "rel_2_0_44", None, "unreadable"),
    ("alembic", "sqlalchemy/alembic", "", "rel_1_19_1", Some(""), "unreadable"),
    // googleapis/google-cloud-python (releases/tag/google-cloud-documentai-toolbox-v0.17.3,
    // google-cloud-secret-manager-v1.16.0): release-please names that nest.
    ("google-cloud-documentai-toolbox", "googleapis/google-cloud-python", "", "google-cloud-documentai-toolbox-v0.17.3", None, "0.17.3"),
    ("google-cloud-documentai", "googleapis/google-cloud-python", "", "google-cloud-documentai-toolbox-v0.17.3", None, "other"),
    ("google-cloud-secret-manager", "googleapis/google-cloud-python", "", "google-cloud-secret-manager-v1.16.0", None, "1.16.0"),
    // apache/airflow: core tags (2.10.3, 2.11.0rc1, 1.10.15, listed beside providers-amazon/9.0.0
    // in a release tool's test), provider tags (dev/README_RELEASE_PROVIDER_PACKAGES.md:
    // providers-amazon/7.0.0rc2, the older providers-amazon-1.0.0rc1; providers-edge3/1.3.0 as a
    // Go client fetches it), the chart (dev/README_RELEASE_HELM_CHART.md: helm-chart/${VERSION})
    // and the constraints (raw.githubusercontent.com/apache/airflow/constraints-2.4.3).
    ("apache-airflow", "apache/airflow", "", "2.10.3", None, "2.10.3"),
    ("apache-airflow", "apache/airflow", "", "2.11.0rc1", None, "2.11.0rc1"),
    ("apache-airflow", "apache/airflow", "", "1.10.15", None, "1.10.15"),
    ("apache-airflow", "apache/airflow", "", "providers-amazon/9.0.0", None, "other"),
    ("apache-airflow", "apache/airflow", "", "providers-amazon/7.0.0rc2", None, "other"),
    ("apache-airflow", "apache/airflow", "", "providers-amazon-1.0.0rc1", None, "other"),
    ("apache-airflow", "apache/airflow", "", "helm-chart/1.11.0", None, "other"),
    ("apache-airflow", "apache/airflow", "", "constraints-2.4.3", None, "other"),
    ("apache-airflow-providers-edge3", "apache/airflow", "providers-edge3/", "providers-edge3/1.3.0", None, "1.3.0"),
    ("apache-airflow-providers-edge3", "apache/airflow", "providers-edge3/", "providers-amazon/9.0.0", None, "other"),
    ("apache-airflow-providers-edge3", "apache/airflow", "providers-edge3/", "2.10.3", None, "other"),
    ("airflow-helm-chart", "apache/airflow", "helm-chart/", "helm-chart/1.11.0", None, "1.11.0"),
    // JavaScript. facebook/react (fixture releases_facebook_react_mixed_tags.json).
    ("react", "facebook/react", "", "eslint-plugin-react-hooks@5.0.0", Some("eslint-plugin-react-hooks@5.0.0 (Oct 11, 2024)"), "other"),
    ("react", "facebook/react", "", "v18.3.1", Some("18.3.1 (April 26, 2024)"), "18.3.1"),
    ("react", "facebook/react", "", "v18.3.0", Some("18.3.0 (April 25, 2024)"), "18.3.0"),
    // changesets/changesets: `changeset tag` writes NAME@VERSION (packages/cli/CHANGELOG.md for
    // @changesets/cli 2.25.2 and @changesets/apply-release-plan 6.1.2;
    // packages/release-utils/src/fake-publish-script-multi-package.js for pkg-a@1.0.0, pkg-b@1.0.0).
    ("changesets-cli", "changesets/changesets", "@changesets/cli@", "@changesets/cli@2.25.2", None, "2.25.2"),
    ("changesets-cli", "changesets/changesets", "@changesets/cli@", "@changesets/apply-release-plan@6.1.2", None, "other"),
    ("changesets", "changesets/changesets", "", "@changesets/cli@2.25.2", None, "other"),
    ("pkg-a", "changesets/changesets", "", "pkg-a@1.0.0", None, "1.0.0"),
    ("pkg-a", "changesets/changesets", "", "pkg-b@1.0.0", None, "other"),
    // sveltejs/kit (releases/tag/@sveltejs/kit@2.49.5, @sveltejs/adapter-node@5.5.1,
    // @sveltejs/kit@3.0.0-next.31: npm's `next` is no PEP 440 label) and sveltejs/svelte
    // (releases/tag/svelte@4.2.20).
    ("sveltekit", "sveltejs/kit", "@sveltejs/kit@", "@sveltejs/kit@2.49.5", None, "2.49.5"),
    ("sveltekit", "sveltejs/kit", "@sveltejs/kit@", "@sveltejs/adapter-node@5.5.1", None, "other"),
    ("sveltekit", "sveltejs/kit", "@sveltejs/kit@", "@sveltejs/kit@3.0.0-next.31", None, "unreadable"),
    ("svelte", "sveltejs/svelte", "", "svelte@4.2.20", None, "4.2.20"),
    // vitejs/vite (releases/tag/create-vite@9.2.0 beside releases/tag/v8.3.0).
    ("vite", "vitejs/vite", "", "create-vite@9.2.0", None, "other"),
    ("vite", "vitejs/vite", "", "v8.3.0", None, "8.3.0"),
    // .NET. tmenier/Flurl (fixture releases_tmenier_Flurl.json): two packages whose prefixes
    // are prefixes of each other.
    ("Flurl", "tmenier/Flurl", "Flurl.", "Flurl.Http.2.4.0", Some("Flurl.Http 2.4.0"), "other"),
    ("Flurl", "tmenier/Flurl", "Flurl.", "Flurl.2.8.0", Some("Flurl 2.8.0"), "2.8.0"),
    ("Flurl", "tmenier/Flurl", "Flurl.", "Flurl.2.1.0-beta7", Some("Flurl 2.1"), "2.1.0b7"),
    ("Flurl", "tmenier/Flurl", "", "Flurl.Http.2.2.0", Some("Flurl.Http 2.2"), "other"),
    ("Flurl", "tmenier/Flurl", "", "Flurl.2.2.0", Some("Flurl 2.2"), "2.2.0"),
    ("Flurl.Http", "tmenier/Flurl", "Flurl.Http.", "Flurl.Http.2.0", Some("Flurl.Http 2.0"), "2.0"),
    ("Flurl.Http", "tmenier/Flurl", "Flurl.Http.", "Flurl.2.8.0", Some("Flurl 2.8.0"), "other"),
    // Azure/azure-sdk-for-net (releases/tag/Azure.Identity_1.17.0, Azure.AI.OpenAI_2.0.0,
    // Azure.Monitor.Query.Logs_1.0.0, Fluent-v1.3) and Azure/azure-sdk-for-js
    // (releases/tag/@azure/identity_3.2.0).
    ("Azure.Identity", "Azure/azure-sdk-for-net", "", "Azure.Identity_1.17.0", None, "1.17.0"),
    ("Azure.AI.OpenAI", "Azure/azure-sdk-for-net", "", "Azure.AI.OpenAI_2.0.0", None, "2.0.0"),
    ("Azure.Monitor.Query", "Azure/azure-sdk-for-net", "", "Azure.Monitor.Query.Logs_1.0.0", None, "other"),
    ("azure-sdk-for-net", "Azure/azure-sdk-for-net", "", "Fluent-v1.3", None, "other"),
    ("azure-identity", "Azure/azure-sdk-for-js", "@azure/identity_", "@azure/identity_3.2.0", None, "3.2.0"),
    // Rust. tokio-rs/tokio (releases/tag/tokio-1.49.0 named "Tokio v1.49.0";
    // compare/tokio-util-0.7.15...tokio-util-0.7.16). The repository's name is tokio's: the
    // other crates of the repository need their tag_prefix.
    ("tokio", "tokio-rs/tokio", "", "tokio-1.49.0", Some("Tokio v1.49.0"), "1.49.0"),
    ("tokio", "tokio-rs/tokio", "", "tokio-util-0.7.16", None, "other"),
    ("tokio-util", "tokio-rs/tokio", "tokio-util-", "tokio-util-0.7.16", None, "0.7.16"),
    ("tokio-util", "tokio-rs/tokio", "tokio-util-", "tokio-1.49.0", None, "other"),
    // Go. googleapis/google-cloud-go (releases/tag/v0.111.0, storage/v1.23.0, pubsub/v2.5.1).
    ("google-cloud-go", "googleapis/google-cloud-go", "", "v0.111.0", None, "0.111.0"),
    ("google-cloud-go", "googleapis/google-cloud-go", "", "storage/v1.23.0", None, "other"),
    ("cloud-storage-go", "googleapis/google-cloud-go", "storage/", "storage/v1.23.0", None, "1.23.0"),
    ("cloud-storage-go", "googleapis/google-cloud-go", "storage/", "pubsub/v2.5.1", None, "other"),
    // Kernel style: torvalds/linux v5.7-rc4 (git.kernel.org/torvalds/p/v5.7-rc4/v5.6).
    ("linux", "torvalds/linux", "", "v5.7-rc4", None, "5.7rc4"),
    // ADORSYS-GIS/moodle-plugin docs/guides/07-plugin-release.md: theme-{name}-v{version},
    // where the name itself ends in `_v1`.
    ("theme-adorsys_theme_v1", "ADORSYS-GIS/moodle-plugin", "", "theme-adorsys_theme_v1-v1.2.3", None, "1.2.3"),
    ("moodle-plugin", "ADORSYS-GIS/moodle-plugin", "", "provider-openai_compatible_v1-v1.0.0", None, "other"),
    // Tags without any version fall back to the release name (the examples; `nightly`
    // with an empty name is tests/documents.rs's case).
    ("pretalx", "pretalx/pretalx", "", "stable", Some("pretalx 2.3.1"), "2.3.1"),
    ("pretalx", "pretalx/pretalx", "", "latest-release", Some("v2.3.1"), "2.3.1"),
    ("pretalx", "pretalx/pretalx", "", "latest-release", Some("pretalx-pages 1.2.0"), "unreadable"),
    ("pretalx", "pretalx/pretalx", "", "latest-release", Some("Release 1.2.0"), "unreadable"),
    ("pretalx", "pretalx/pretalx", "", "nightly", Some(""), "unreadable"),
];

/// (project, repository, title, link, verdict).
#[rustfmt::skip]
const ENTRIES: &[(&str, &str, &str, Option<&str>, &str)] = &[
    // kernel.org's kdist.xml (fixture rss_2.0_kdist_rebuilt.xml, from feed-rs's parse).
    ("linux", "torvalds/linux", "5.7-rc4: mainline", Some("http://www.kernel.org/"), "5.7rc4"),
    // github.com/feed-rs/feed-rs/releases.atom (fixture atom_example_6.xml).
    ("feed-rs", "feed-rs/feed-rs", "0.2.0", Some("https://github.com/feed-rs/feed-rs/releases/tag/v0.2.0"), "0.2.0"),
    // facebook/react's releases.atom titles its entries with the release names (fixture).
    ("react", "facebook/react", "18.3.1 (April 26, 2024)", Some("https://github.com/facebook/react/releases/tag/v18.3.1"), "18.3.1"),
    ("react", "facebook/react", "eslint-plugin-react-hooks@5.0.0 (Oct 11, 2024)", Some("https://github.com/facebook/react/releases/tag/eslint-plugin-react-hooks%405.0.0"), "other"),
    // tmenier/Flurl's release names as feed titles (fixture): `Flurl` inside `Flurl.Http` is
    // part of another word.
    ("Flurl", "tmenier/Flurl", "Flurl.Http 2.4.0", Some("https://github.com/tmenier/Flurl/releases/tag/Flurl.Http.2.4.0"), "none"),
    ("Flurl.Http", "tmenier/Flurl", "Flurl.Http 2.4.0", Some("https://github.com/tmenier/Flurl/releases/tag/Flurl.Http.2.4.0"), "2.4.0"),
    // tokio-rs/tokio: the release name "Tokio v1.49.0", and the headings of tokio/CHANGELOG.md
    // and tokio-macros/CHANGELOG.md ("1.26.0 (March 1st, 2023)", "2.2.0 (November 19th, 2023)").
    ("tokio", "tokio-rs/tokio", "Tokio v1.49.0", Some("https://github.com/tokio-rs/tokio/releases/tag/tokio-1.49.0"), "1.49.0"),
    ("tokio", "tokio-rs/tokio", "1.26.0 (March 1st, 2023)", None, "1.26.0"),
    ("tokio-macros", "tokio-rs/tokio", "2.2.0 (November 19th, 2023)", None, "2.2.0"),
    // matrix.org's and Ghost's blog feeds (fixtures rss_2.0_matrix.xml, rss_2.0_ghost_2.xml).
    ("matrix", "matrix-org/matrix.org", "This Week in Matrix 2022-09-23", Some("https://matrix.org/blog/2022/09/23/this-week-in-matrix-2022-09-23"), "none"),
    ("ghost", "TryGhost/Ghost", "Send emails without publishing", Some("https://ghost.org/changelog/email-without-publishing/"), "none"),
    // The pretalx blog (fixture pretalx_releases.csv: post URLs).
    ("pretalx", "pretalx/pretalx", "News from the pretalx blog", Some("https://pretalx.com/p/news/releasing-pretalx-2025-2-0/"), "2025.2.0"),
    ("pretalx", "pretalx/pretalx", "", Some("https://pretalx.com/p/news/release-pretalx-v0.8.0/"), "0.8.0"),
    ("pretalx", "pretalx/pretalx", "Releasing pretalx 2025.2.0", None, "2025.2.0"),
    // sqlalchemy.org's blog (www.sqlalchemy.org/blog/2026/09/15/sqlalchemy-2.0.54-released/).
    ("sqlalchemy", "sqlalchemy/sqlalchemy", "", Some("https://www.sqlalchemy.org/blog/2026/09/15/sqlalchemy-2.0.54-released/"), "2.0.54"),
    // The examples of version-led titles.
    ("pretalx", "pretalx/pretalx", "2.1.0 (2024-05-01)", None, "2.1.0"),
    ("pretalx", "pretalx/pretalx", "v3.2 - notes", None, "3.2"),
];

#[test]
fn the_rule_over_real_shapes() {
    let mut failures = Vec::new();
    for (name, repo, prefix, tag, release_name, want) in RELEASES {
        let got = attribute(
            &project(name, repo, prefix),
            Candidate::Release {
                tag,
                name: *release_name,
            },
        );
        if verdict(&got) != *want {
            failures.push(format!(
                "{name} tag `{tag}` ({release_name:?}): got {got:?}, want {want}"
            ));
        }
    }
    for (name, repo, title, link, want) in ENTRIES {
        let got = attribute(
            &project(name, repo, ""),
            Candidate::Entry { title, link: *link },
        );
        if verdict(&got) != *want {
            failures.push(format!(
                "{name} entry `{title}` ({link:?}): got {got:?}, want {want}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(RELEASES.len() + ENTRIES.len() >= 40);
}

#[test]
fn skipped_tags_say_whose_they_are() {
    let flurl = project("Flurl", "tmenier/Flurl", "Flurl.");
    let why = |tag: &str| match attribute(&flurl, Candidate::Release { tag, name: None }) {
        Verdict::Other(why) => why,
        other => panic!("{tag}: {other:?}"),
    };
    assert_eq!(
        why("Flurl.Http.2.4.0"),
        "names another package (`Flurl.Http`)"
    );
    assert_eq!(why("v1.0.0"), "is outside tag_prefix `Flurl.`");
    let react = project("react", "facebook/react", "");
    assert_eq!(
        attribute(
            &react,
            Candidate::Release {
                tag: "eslint-plugin-react-hooks@5.0.0",
                name: None
            }
        ),
        Verdict::Other("names another package (`eslint-plugin-react-hooks`)".into())
    );
    match attribute(
        &project("pretalx", "pretalx/pretalx", ""),
        Candidate::Release {
            tag: "nightly",
            name: None,
        },
    ) {
        Verdict::Unreadable(err) => {
            assert!(
                err.to_string()
                    .contains("`nightly` is not a PEP 440 version")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_index_lists_only_the_project() {
    let p = project("black", "psf/black", "");
    assert_eq!(
        verdict(&attribute(&p, Candidate::IndexVersion("21.11b0"))),
        "21.11b0"
    );
    assert_eq!(
        verdict(&attribute(&p, Candidate::IndexVersion("nope"))),
        "unreadable"
    );
}

#[test]
fn version_led_titles_end_at_a_separator() {
    let led = |s: &str| version_led(s).map(|v| v.to_string());
    assert_eq!(led("5.7-rc4: mainline").as_deref(), Some("5.7rc4"));
    assert_eq!(led("v3.2 - notes").as_deref(), Some("3.2"));
    assert_eq!(led("2.1.0 (2024-05-01)").as_deref(), Some("2.1.0"));
    assert_eq!(led("2.1.0–notes").as_deref(), Some("2.1.0"));
    assert_eq!(led("0.9.0-python3.5").as_deref(), Some("0.9.0"));
    assert_eq!(led("2022.09.23 weekly"), None);
    assert_eq!(led("2026: the year ahead"), None);
    assert_eq!(led("This Week in Matrix 2022-09-23"), None);
    assert_eq!(led(&"1.".repeat(10_000)), None);
}
