//! Version rules: PEP 440 parsing (through `pep440_rs`), tag normalisation, the canonical
//! key that makes `v2025.1.0`, `2025.1.0` and `v.2025.1.0` one release, release classes and
//! lines, and version extraction from blog titles and URL slugs.
//!
//! Owns: every decision about what a version string means. Does not own: where strings come
//! from (`sources`) or what is stored (`store`). Pure: no I/O, no clock.

use std::str::FromStr;
use std::sync::LazyLock;

use pep440_rs::Version;
use regex::Regex;

use crate::model::ReleaseClass;

/// Longest version string Herald will try to parse; anything longer is refused outright.
pub const MAX_VERSION_LEN: usize = 128;

/// A string that is not a PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a PEP 440 version: {reason}")]
pub struct VersionError {
    /// The input, shortened when very long.
    pub input: String,
    /// Why it was refused.
    pub reason: String,
}

/// `s`, cut to 60 characters with `...` when longer (for messages).
pub fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        let head: String = s.chars().take(57).collect();
        format!("{head}...")
    } else {
        s.to_string()
    }
}

/// Parses a PEP 440 version (surrounding whitespace and a leading `v` are allowed, as PEP 440
/// permits).
pub fn parse(input: &str) -> Result<Version, VersionError> {
    if input.len() > MAX_VERSION_LEN {
        return Err(VersionError {
            input: shorten(input),
            reason: format!("longer than {MAX_VERSION_LEN} bytes"),
        });
    }
    Version::from_str(input.trim()).map_err(|err| VersionError {
        input: shorten(input),
        reason: err.to_string(),
    })
}

/// Reads a git tag or release title as a version: strips an optional project `prefix`
/// (monorepos tag `pkg-1.2.0`), then `v`, `V` or `v.`, then parses.
///
/// Returns `None` when the tag does not start with the prefix (it belongs to another package).
pub fn parse_tag(tag: &str, prefix: Option<&str>) -> Option<Result<Version, VersionError>> {
    let mut rest = tag.trim();
    if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
        rest = rest.strip_prefix(prefix)?;
    }
    Some(parse_v(rest).map_err(|mut err| {
        err.input = shorten(tag);
        err
    }))
}

/// Parses a version that may be spelled with a leading `v`, `V` or `v.` (`v2.3.1`, `v.1.6.1`).
pub fn parse_v(text: &str) -> Result<Version, VersionError> {
    let text = text.trim();
    let stripped = text
        .strip_prefix("v.")
        .or_else(|| text.strip_prefix("V."))
        .or_else(|| text.strip_prefix('v'))
        .or_else(|| text.strip_prefix('V'))
        .unwrap_or(text);
    parse(stripped)
}

/// Whether a string has the shape of a date (`2022-09-23`, `2024.05.01`), which Herald never
/// reads as a version.
pub fn is_date(text: &str) -> bool {
    DATE_SHAPE.is_match(text)
}

/// The canonical key of a version: its PEP 440 normal form with trailing zero release
/// numbers removed, so every spelling PEP 440 calls equal maps to the same key
/// (`2025.2` and `2025.2.0`, `v2025.01.0` and `2025.1.0`).
pub fn canonical_key(version: &Version) -> String {
    let release = version.release();
    let mut keep = release.len();
    while keep > 1 && release[keep - 1] == 0 {
        keep -= 1;
    }
    let plain = version.epoch() == 0
        && version.pre().is_none()
        && version.post().is_none()
        && version.dev().is_none()
        && version.local().is_empty();
    if !plain {
        return version
            .clone()
            .with_release(release[..keep].to_vec())
            .to_string();
    }
    // Most versions are plain release numbers: written directly, without a copy.
    let mut key = String::with_capacity(keep * 4);
    for (i, n) in release[..keep].iter().enumerate() {
        if i > 0 {
            key.push('.');
        }
        key.push_str(itoa::Buffer::new().format(*n));
    }
    key
}

/// The release line of a version: its first two release numbers (`2025.2` for `2025.2.1`,
/// `0.2` for `0.2`, `3.0` for `3`), prefixed by a non-zero epoch.
pub fn line(version: &Version) -> String {
    let release = version.release();
    let major = release.first().copied().unwrap_or(0);
    let minor = release.get(1).copied().unwrap_or(0);
    if version.epoch() > 0 {
        format!("{}!{major}.{minor}", version.epoch())
    } else {
        format!("{major}.{minor}")
    }
}

/// The feature release that opens the line of `version` (`2025.2.0` for `2025.2.3`).
pub fn line_opener(version: &Version) -> Version {
    let release = version.release();
    let major = release.first().copied().unwrap_or(0);
    let minor = release.get(1).copied().unwrap_or(0);
    Version::new([major, minor, 0]).with_epoch(version.epoch())
}

/// Classifies a version as the contract defines. `published` answers whether a version (by
/// canonical key) is a known release of the same project; it decides whether a post-release
/// `X.Y.0.postN` stands in for a feature release that was never published itself.
pub fn classify(version: &Version, published: impl Fn(&str) -> bool) -> ReleaseClass {
    if version.any_prerelease() {
        return ReleaseClass::Prerelease;
    }
    let tail_is_zero = version.release().iter().skip(2).all(|n| *n == 0);
    if !tail_is_zero {
        return ReleaseClass::Bugfix;
    }
    if version.is_post() {
        let base = version.clone().with_post(None).without_local();
        if published(&canonical_key(&base)) {
            return ReleaseClass::Bugfix;
        }
    }
    ReleaseClass::Feature
}

/// For a version `X` that a secondary source reports but the primary does not, the
/// post-release of `X` the primary published instead (pretalx tagged `v0.2.0` and uploaded
/// `0.2.0.post1`). `known` lists the primary's versions; the lowest matching post wins.
pub fn post_release_for<'a>(
    version: &Version,
    known: impl Iterator<Item = &'a Version>,
) -> Option<&'a Version> {
    if version.is_post() || version.any_prerelease() {
        return None;
    }
    let key = canonical_key(version);
    known
        .filter(|candidate| {
            candidate.is_post()
                && !candidate.any_prerelease()
                && canonical_key(&(*candidate).clone().with_post(None)) == key
        })
        .min()
}

static VERSION_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    // A dotted version with optional PEP 440 suffixes, as it appears in prose.
    Regex::new(
        r"(?i)(?:^|[^\w.])v?\.?(\d+(?:\.\d+)+(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview|dev|post)[-_.]?\d*)*)(?:$|[^\w]|\.(?:\s|$))",
    )
    .expect("static regex")
});

static SLUG_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    // `2025-2-0`, `v0-8-0`, `v0.8.0`, `2024-1-0rc1` inside a slug.
    Regex::new(r"(?i)(?:^|-)v?\.?(\d+(?:[-.]\d+)+(?:(?:a|b|c|rc|dev|post)\d*)?)(?:$|-)")
        .expect("static regex")
});

static DATE_SHAPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(19|20)\d\d[-.](0\d|1[0-2])[-.]([0-2]\d|3[01])$").expect("static regex")
});

const RELEASE_WORDS: [&str; 5] = ["release", "releasing", "released", "version", "security"];

/// Where the first mention of one of `aliases` in `text` ends (an offset in the lower-case
/// text). A name counts only as a whole word: a letter, digit, `-`, `_`, `.`, `@` or `/` right
/// before or after it makes it part of another word (`react` in `eslint-plugin-react-hooks`,
/// `pretalx` in `pretalx-pages` or `pretalx.com`).
fn mentions(text: &str, aliases: &[String]) -> Option<usize> {
    let lower = text.to_lowercase();
    aliases
        .iter()
        .flat_map(|alias| {
            let spaced = alias.replace(['-', '_'], " ");
            [alias.clone(), spaced]
        })
        .filter(|alias| !alias.is_empty())
        .filter_map(|alias| whole_word(&lower, &alias))
        .min()
}

/// A character that joins the letters around it into one word.
pub(crate) fn joins_words(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '/')
}

/// The end of the first occurrence of `word` in `text` that stands as a word of its own.
fn whole_word(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word)
        .find(|(at, _)| {
            let before = text[..*at].chars().next_back();
            let after = text[at + word.len()..].chars().next();
            !before.is_some_and(joins_words) && !after.is_some_and(joins_words)
        })
        .map(|(at, _)| at + word.len())
}

fn has_release_word(text: &str) -> bool {
    let lower = text.to_lowercase();
    RELEASE_WORDS.iter().any(|word| lower.contains(word))
}

/// Finds the version a blog title announces: the title itself when it is a version
/// (`0.2.0`, `v1.2`), else the first version after the project's name
/// (`Releasing pretalx 2025.2.0`), else the first version in a title that speaks of a
/// release. `aliases` are the project's names, lower-case.
pub fn from_title(title: &str, aliases: &[String]) -> Option<Version> {
    let title = title.trim();
    if title.is_empty() || title.len() > 512 {
        return None;
    }
    if let Some(Ok(version)) = parse_tag(title, None) {
        return Some(version);
    }
    let after_name = mentions(title, aliases);
    let start = match after_name {
        Some(at) => at,
        None if has_release_word(title) => 0,
        None => return None,
    };
    // `mentions` measured the offset in the lower-case title: search that same string (a
    // letter's lower case may be longer or shorter than the letter; digits never change).
    let lower = title.to_lowercase();
    let haystack = lower.get(start..)?;
    VERSION_TOKEN
        .captures_iter(haystack)
        .filter_map(|caps| caps.get(1))
        .filter(|m| !DATE_SHAPE.is_match(m.as_str()))
        .find_map(|m| parse(m.as_str()).ok())
}

/// Finds the version in a post URL's last path segment (`releasing-pretalx-2025-2-0`,
/// `release-pretalx-v0.8.0`), when the slug names the project or speaks of a release.
/// Numbers without separators (`releasing-pretalx-11`) and dates are not versions.
pub fn from_slug(url: &str, aliases: &[String]) -> Option<Version> {
    let path = url.split(['?', '#']).next()?;
    let slug = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()?
        .to_lowercase();
    if slug.is_empty() || slug.len() > 256 {
        return None;
    }
    let slug_words = slug.replace(['-', '_'], " ");
    let start = match mentions(&slug_words, aliases) {
        Some(at) => at,
        None if has_release_word(&slug) => 0,
        None => return None,
    };
    // Map the word offset back onto the slug: both strings have the same length.
    let haystack = slug.get(start..)?.trim_start_matches(['-', '_']);
    SLUG_TOKEN
        .captures_iter(haystack)
        .filter_map(|caps| caps.get(1))
        .filter(|m| !DATE_SHAPE.is_match(m.as_str()))
        .find_map(|m| parse(&m.as_str().replace('-', ".")).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        parse(s).expect(s)
    }

    #[test]
    fn canonical_keys_written_directly_equal_the_normal_form() {
        for text in [
            "1",
            "1.0",
            "1.0.0",
            "2025.2.0",
            "2025.2.10",
            "0.0.1",
            "10.20.30",
            "3.6",
            "1.0.0a1",
            "1.0.post1",
            "1!2.0",
            "1.0+local",
            "1.0.dev0",
            "0",
            "0.0",
        ] {
            let version = v(text);
            let mut release = version.release().to_vec();
            while release.len() > 1 && release.last() == Some(&0) {
                release.pop();
            }
            let slow = version.clone().with_release(release).to_string();
            assert_eq!(canonical_key(&version), slow, "{text}");
        }
    }

    fn class_of(s: &str, published: &[&str]) -> ReleaseClass {
        let keys: Vec<String> = published.iter().map(|p| canonical_key(&v(p))).collect();
        classify(&v(s), |key| keys.iter().any(|k| k == key))
    }

    #[test]
    fn classes_follow_the_contract() {
        assert_eq!(class_of("2025.2.0", &[]), ReleaseClass::Feature);
        assert_eq!(class_of("1.7.0", &[]), ReleaseClass::Feature);
        assert_eq!(class_of("0.2", &[]), ReleaseClass::Feature);
        assert_eq!(class_of("2025.2.1", &[]), ReleaseClass::Bugfix);
        assert_eq!(class_of("2.3.2", &[]), ReleaseClass::Bugfix);
        assert_eq!(class_of("3.1.26.post2", &[]), ReleaseClass::Bugfix);
        assert_eq!(class_of("0.2.0.post1", &[]), ReleaseClass::Feature);
        assert_eq!(class_of("0.2.0.post1", &["0.2.0"]), ReleaseClass::Bugfix);
        assert_eq!(class_of("0.2.1.post1", &[]), ReleaseClass::Bugfix);
        assert_eq!(class_of("2024.1.0rc1", &[]), ReleaseClass::Prerelease);
        assert_eq!(class_of("2026.3.0.dev0", &[]), ReleaseClass::Prerelease);
        assert_eq!(class_of("1.0.post1.dev0", &[]), ReleaseClass::Prerelease);
    }

    #[test]
    fn lines_take_the_first_two_numbers() {
        assert_eq!(line(&v("2025.2.1")), "2025.2");
        assert_eq!(line(&v("0.2")), "0.2");
        assert_eq!(line(&v("3")), "3.0");
        assert_eq!(line(&v("1!2.3.4")), "1!2.3");
        assert_eq!(line_opener(&v("2025.2.3")).to_string(), "2025.2.0");
    }

    #[test]
    fn spellings_of_one_version_share_a_key() {
        let keys: Vec<String> = [
            "v2025.1.0",
            "2025.1.0",
            "v.2025.1.0",
            "V2025.01.0",
            "2025.1",
        ]
        .iter()
        .map(|t| canonical_key(&parse_tag(t, None).expect("prefix").expect(t)))
        .collect();
        assert!(keys.iter().all(|k| k == "2025.1"), "{keys:?}");
        assert_ne!(
            canonical_key(&v("2025.1.0")),
            canonical_key(&v("2025.1.0.post1"))
        );
    }

    #[test]
    fn tags_with_prefixes() {
        assert_eq!(
            parse_tag("Flurl.Http.2.4.0", Some("Flurl.Http.")).map(|r| r.ok()),
            Some(Some(v("2.4.0")))
        );
        assert_eq!(parse_tag("Flurl.2.8.0", Some("Flurl.Http.")), None);
        assert!(matches!(parse_tag("nightly", None), Some(Err(_))));
        assert_eq!(
            parse_tag("v1.0.0-beta.0", None).map(|r| r.ok()),
            Some(Some(v("1.0.0b0")))
        );
    }

    #[test]
    fn absurd_inputs_are_refused_quickly() {
        let long = "1.".repeat(50_000) + "0";
        let err = parse(&long).expect_err("too long");
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn post_release_stands_in_for_its_tag() {
        let known = [v("0.2.0.post1"), v("0.2.1.post1"), v("0.2.2")];
        assert_eq!(post_release_for(&v("0.2.0"), known.iter()), Some(&known[0]));
        assert_eq!(post_release_for(&v("0.2"), known.iter()), Some(&known[0]));
        assert_eq!(post_release_for(&v("0.2.2"), known.iter()), None);
    }

    #[test]
    fn titles() {
        let names = vec!["pretalx".to_string()];
        let t = |s: &str| from_title(s, &names).map(|v| v.to_string());
        assert_eq!(t("Releasing pretalx 2025.2.0").as_deref(), Some("2025.2.0"));
        assert_eq!(t("pretalx v2.0 is here").as_deref(), Some("2.0"));
        assert_eq!(t("0.2.0").as_deref(), Some("0.2.0"));
        assert_eq!(t("v4.0.0-beta.0").as_deref(), Some("4.0.0b0"));
        assert_eq!(t("Security release 2.3.2").as_deref(), Some("2.3.2"));
        assert_eq!(t("18.3.1 (April 26, 2024)"), None);
        assert_eq!(t("This Week in Matrix 2022-09-23"), None);
        assert_eq!(t("Send emails without publishing"), None);
        assert_eq!(t("Our roadmap for 2026"), None);
        assert_eq!(
            t("Releasing pretalx 2024.1.0rc1.").as_deref(),
            Some("2024.1.0rc1")
        );
    }

    #[test]
    fn slugs() {
        let names = vec!["pretalx".to_string()];
        let s = |u: &str| from_slug(u, &names).map(|v| v.to_string());
        assert_eq!(
            s("https://pretalx.com/p/news/releasing-pretalx-2025-2-0/").as_deref(),
            Some("2025.2.0")
        );
        assert_eq!(
            s("https://pretalx.com/p/news/release-pretalx-v0.8.0/").as_deref(),
            Some("0.8.0")
        );
        assert_eq!(
            s("https://pretalx.com/p/news/release-pretalx-v0.2/").as_deref(),
            Some("0.2")
        );
        assert_eq!(s("https://pretalx.com/p/news/releasing-pretalx-11/"), None);
        assert_eq!(s("https://pretalx.com/p/news/security-release-232/"), None);
        assert_eq!(s("https://pretalx.com/p/news/first-release/"), None);
        assert_eq!(
            s("https://matrix.org/blog/2022/09/23/this-week-in-matrix-2022-09-23"),
            None
        );
        assert_eq!(s("https://example.org/news/pretalx-2022-09-23/"), None);
    }
}
