//! What an operator runs: installed distributions read from `NAME==VERSION` arguments
//! (`--installed pretalx==2026.1.2`) or from the output of `pip freeze` (or a pinned
//! requirements file).
//!
//! Owns: reading those texts into PEP 503 normalised names and PEP 440 versions, and saying
//! which lines were skipped and why. Does not own: which of these names Herald tracks
//! (`alerts`), storing an inventory (`store`), or what a version means (`version`). Pure: no
//! I/O; the caller reads the file.
//!
//! Notes never echo URLs or option values that may carry credentials (index URLs, VCS URLs,
//! direct references); they name the line and the distribution instead.

use std::sync::LazyLock;

use pep440_rs::Version;
use regex::Regex;

use crate::model::normalize_name;
use crate::version::parse;

/// One installed distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Distribution name, PEP 503 normalised (`Pretalx_Pages` is `pretalx-pages`).
    pub name: String,
    /// Installed version.
    pub version: Version,
    /// The requirement as written (`Pretalx_Pages==1.9.0`), without comments, options or
    /// line continuations.
    pub raw: String,
}

/// `NAME`, optional `[extras]`, then the rest (operator, version, marker).
static REQUIREMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*(?P<rest>.*)$",
    )
    .expect("static regex")
});

/// Why a requirement is not a usable pin.
enum Problem {
    /// Not `NAME...` at all.
    NotARequirement,
    /// `name @ URL`.
    DirectReference(String),
    /// No version, a range, or a wildcard.
    NotPinned(String),
    /// `name==X` where `X` is not a PEP 440 version.
    BadVersion(String, String),
}

impl Problem {
    fn describe(&self) -> String {
        match self {
            Problem::NotARequirement => "not a NAME==VERSION pin".to_string(),
            Problem::DirectReference(name) => {
                format!("{name} is a direct reference (`name @ URL`) with no version")
            }
            Problem::NotPinned(name) => format!("{name} is not pinned to one version with `==`"),
            Problem::BadVersion(name, err) => format!("{name}: {err}"),
        }
    }
}

fn shorten(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() > 60 {
        let head: String = clean.chars().take(57).collect();
        format!("{head}...")
    } else {
        clean
    }
}

/// Reads one requirement (no comments or pip options): `name[extras]==version ; marker`, with
/// `===` accepted and the old parenthesised `name (==version)` too.
fn parse_requirement(requirement: &str) -> Result<Installed, Problem> {
    let requirement = requirement.trim();
    let caps = REQUIREMENT
        .captures(requirement)
        .ok_or(Problem::NotARequirement)?;
    let raw_name = caps.name("name").map_or("", |m| m.as_str());
    let name = normalize_name(raw_name);
    let rest = caps.name("rest").map_or("", |m| m.as_str()).trim();
    if rest.starts_with('@') {
        return Err(Problem::DirectReference(name));
    }
    // An environment marker follows `;`; Herald cannot evaluate it and keeps the pin.
    let spec = rest.split(';').next().unwrap_or("").trim();
    let spec = spec
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(spec)
        .trim();
    let version_text = if let Some(v) = spec.strip_prefix("===") {
        v
    } else if let Some(v) = spec.strip_prefix("==") {
        v
    } else if spec.is_empty() || spec.starts_with(['<', '>', '~', '!', '=']) {
        return Err(Problem::NotPinned(name));
    } else {
        return Err(Problem::NotARequirement);
    };
    let version_text = version_text.trim();
    if version_text.contains([',', '*']) {
        return Err(Problem::NotPinned(name));
    }
    let version =
        parse(version_text).map_err(|err| Problem::BadVersion(name.clone(), err.to_string()))?;
    Ok(Installed {
        name,
        version,
        raw: requirement.to_string(),
    })
}

/// `NAME==VERSION` from the command line (`--installed pretalx==2026.1.2`). Extras, `===`
/// and surrounding whitespace are accepted. Errors name the input.
pub fn parse_installed(spec: &str) -> Result<Installed, String> {
    parse_requirement(spec).map_err(|problem| {
        format!(
            "`{}` is not NAME==VERSION (e.g. pretalx==2026.1.2): {}",
            shorten(spec.trim()),
            problem.describe()
        )
    })
}

/// Whether a physical line carries a comment in pip's sense: `#` at the start or after
/// whitespace (`...#egg=` inside a URL is not a comment).
fn comment_start(line: &str) -> Option<usize> {
    let mut previous_is_space = true;
    for (at, c) in line.char_indices() {
        if c == '#' && previous_is_space {
            return Some(at);
        }
        previous_is_space = c.is_whitespace();
    }
    None
}

/// Joins `\` continuations as pip does (a line with a comment never continues) and removes
/// comments. Returns each logical line with the number of its first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, physical) in text.split('\n').enumerate() {
        let number = index + 1;
        let physical = physical.strip_suffix('\r').unwrap_or(physical);
        let (content, commented) = match comment_start(physical) {
            Some(at) => (&physical[..at], true),
            None => (physical, false),
        };
        let trimmed = content.trim_end();
        let continues = !commented && trimmed.ends_with('\\');
        let piece = if continues {
            trimmed.strip_suffix('\\').unwrap_or(trimmed)
        } else {
            trimmed
        };
        let (first, mut joined) = pending.take().unwrap_or((number, String::new()));
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(piece);
        if continues {
            pending = Some((first, joined));
        } else {
            out.push((first, joined));
        }
    }
    if let Some(rest) = pending {
        out.push(rest);
    }
    out
}

/// The distribution an editable install names, from `#egg=NAME` or a local path's last part.
fn editable_name(target: &str) -> Option<String> {
    if let Some(at) = target.find("egg=") {
        let name = target[at + 4..].split(['&', ' ']).next().unwrap_or("");
        return (!name.is_empty()).then(|| normalize_name(name));
    }
    if target.contains("://") || target.contains('@') {
        return None;
    }
    target
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .filter(|s| !s.is_empty() && *s != ".")
        .map(normalize_name)
}

/// The note for a line that holds only pip options.
fn option_note(number: usize, options: &[&str]) -> String {
    let first = options.first().copied().unwrap_or("");
    let (flag, inline_value) = match first.split_once('=') {
        Some((flag, value)) if first.starts_with("--") => (flag, Some(value)),
        _ => (first, None),
    };
    let value = inline_value
        .or_else(|| options.get(1).copied())
        .unwrap_or("");
    match flag {
        "-e" | "--editable" => match editable_name(value) {
            Some(name) => format!(
                "line {number}: editable install of {name} skipped: it has no released version"
            ),
            None => format!("line {number}: editable install skipped: it has no released version"),
        },
        "-r" | "--requirement" | "-c" | "--constraint" => format!(
            "line {number}: `{flag} {}` skipped: Herald does not follow other files",
            shorten(value)
        ),
        _ => format!("line {number}: pip option `{}` skipped", shorten(flag)),
    }
}

/// The output of `pip freeze` (or a pinned requirements file): returns the pinned
/// distributions and one note per line skipped.
///
/// Tolerates blank lines, `#` comments (whole-line and trailing), `\` continuations and
/// `--hash=...` options, CRLF line endings, extras, environment markers (kept, not
/// evaluated), any spelling of a name (`Pretalx_Pages` is `pretalx-pages`) and `===`. Skips,
/// with a note naming the line: editable installs (`-e`), direct references (`name @ URL`),
/// option lines (`-i`, `--index-url`, `-r other.txt`), unpinned requirements and versions that
/// are not PEP 440. A later pin of the same name replaces an earlier one (with a note when the
/// version differs); the result keeps the order of first appearance.
pub fn parse_freeze(text: &str) -> (Vec<Installed>, Vec<String>) {
    let mut pins: Vec<(usize, Installed)> = Vec::new();
    let mut notes = Vec::new();
    for (number, line) in logical_lines(text) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.is_empty() {
            continue;
        }
        let split = tokens
            .iter()
            .position(|t| t.starts_with('-'))
            .unwrap_or(tokens.len());
        let (requirement, options) = tokens.split_at(split);
        if requirement.is_empty() {
            notes.push(option_note(number, options));
            continue;
        }
        match parse_requirement(&requirement.join(" ")) {
            Ok(pin) => match pins.iter_mut().find(|(_, p)| p.name == pin.name) {
                Some((earlier_line, earlier)) => {
                    if earlier.version != pin.version {
                        notes.push(format!(
                            "line {number}: {} pinned again; {} replaces {} from line {earlier_line}",
                            pin.name, pin.version, earlier.version
                        ));
                    }
                    *earlier_line = number;
                    *earlier = pin;
                }
                None => pins.push((number, pin)),
            },
            Err(problem) => notes.push(format!("line {number}: {}; skipped", problem.describe())),
        }
    }
    (pins.into_iter().map(|(_, pin)| pin).collect(), notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        parse(s).expect(s)
    }

    /// A realistic `pip freeze` of a pretalx host, with what people add to such files by hand.
    const FREEZE: &str = concat!(
        "# Generated on the pretalx host, 2026-07-01\r\n",
        "-i https://user:secret@pypi.example.org/simple\r\n",
        "--extra-index-url https://pypi.org/simple\r\n",
        "-r base.txt\r\n",
        "\r\n",
        "amqp==5.3.1\r\n",
        "beautifulsoup4==4.13.4\r\n",
        "Django==5.2.4 # pinned for pretalx 2026.1\r\n",
        "pretalx[postgres,redis]==2026.1.2 \\\r\n",
        "    --hash=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef \\\r\n",
        "    --hash=sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\r\n",
        "Pretalx_Pages==1.8.0\r\n",
        "pretalx.venueless==1.8.0 ; python_version >= \"3.11\"\r\n",
        "-e git+https://github.com/pretalx/pretalx-pages.git@4f2c1d0#egg=pretalx_pages\r\n",
        "# Editable install with no version control (pretalx-youtube==3.0.0)\r\n",
        "-e /srv/pretalx/plugins/pretalx-youtube\r\n",
        "pretalx-media-ccc-de @ https://token@github.com/pretalx/pretalx-media-ccc-de/archive/main.zip\r\n",
        "pretalx-vimeo===2.8.0\r\n",
        "pretalx-downstream==1.6.x\r\n",
        "psycopg>=3.2\r\n",
        "pretalx-pages==1.9.0\r\n",
        "   \r\n",
        "  # indented comment\r\n",
        "PyJWT==2.10.1\r\n",
    );

    #[test]
    fn a_realistic_freeze_file() {
        let (pins, notes) = parse_freeze(FREEZE);
        let got: Vec<(String, String)> = pins
            .iter()
            .map(|p| (p.name.clone(), p.version.to_string()))
            .collect();
        let want = [
            ("amqp", "5.3.1"),
            ("beautifulsoup4", "4.13.4"),
            ("django", "5.2.4"),
            ("pretalx", "2026.1.2"),
            ("pretalx-pages", "1.9.0"),
            ("pretalx-venueless", "1.8.0"),
            ("pretalx-vimeo", "2.8.0"),
            ("pyjwt", "2.10.1"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect();
        assert_eq!(got, want, "{notes:#?}");
        assert_eq!(
            notes,
            [
                "line 2: pip option `-i` skipped",
                "line 3: pip option `--extra-index-url` skipped",
                "line 4: `-r base.txt` skipped: Herald does not follow other files",
                "line 14: editable install of pretalx-pages skipped: it has no released version",
                "line 16: editable install of pretalx-youtube skipped: it has no released version",
                "line 17: pretalx-media-ccc-de is a direct reference (`name @ URL`) with no version; skipped",
                "line 19: pretalx-downstream: `1.6.x` is not a PEP 440 version: after parsing `1.6`, found `.x`, which is not part of a valid version; skipped",
                "line 20: psycopg is not pinned to one version with `==`; skipped",
                "line 21: pretalx-pages pinned again; 1.9.0 replaces 1.8.0 from line 12",
            ]
        );
        // No note repeats a credential from an index or VCS URL.
        assert!(
            notes
                .iter()
                .all(|n| !n.contains("secret") && !n.contains("token"))
        );
        let pretalx = pins.iter().find(|p| p.name == "pretalx").expect("pretalx");
        assert_eq!(pretalx.raw, "pretalx[postgres,redis]==2026.1.2");
        let pages = pins
            .iter()
            .find(|p| p.name == "pretalx-pages")
            .expect("pages");
        assert_eq!(pages.raw, "pretalx-pages==1.9.0");
    }

    #[test]
    fn freeze_edge_cases() {
        // LF endings, a BOM, a trailing continuation at the end of the file, no final newline.
        let (pins, notes) = parse_freeze("\u{feff}pretalx==2026.2.0 \\\n  --hash=sha256:00");
        assert_eq!(pins.len(), 1, "{notes:?}");
        assert_eq!(pins[0].version, v("2026.2.0"));
        assert!(notes.is_empty());

        // A commented line ends a continuation, as in pip.
        let (pins, _) = parse_freeze("pretalx==2026.2.0 \\\n# comment\nPyJWT==2.10.1\n");
        assert_eq!(pins.len(), 2);

        // A stray option-only line and a bare URL line.
        let (pins, notes) = parse_freeze("--hash=sha256:00\nhttps://example.org/x.whl\n");
        assert!(pins.is_empty());
        assert_eq!(
            notes,
            [
                "line 1: pip option `--hash` skipped",
                "line 2: not a NAME==VERSION pin; skipped"
            ]
        );

        // The same pin twice is not worth a note; old-style parentheses are accepted.
        let (pins, notes) =
            parse_freeze("pretalx==2026.2\npretalx == 2026.2.0\nDjango (==5.2.4)\n");
        assert_eq!(pins.len(), 2);
        assert!(notes.is_empty(), "{notes:?}");

        assert_eq!(parse_freeze(""), (Vec::new(), Vec::new()));
        assert_eq!(
            parse_freeze("\r\n\n# only comments\n"),
            (Vec::new(), Vec::new())
        );
    }

    #[test]
    fn installed_from_the_command_line() {
        let pin = parse_installed("pretalx==2026.1.2").expect("pin");
        assert_eq!(pin.name, "pretalx");
        assert_eq!(pin.version, v("2026.1.2"));
        assert_eq!(pin.raw, "pretalx==2026.1.2");

        let pin = parse_installed(" Pretalx_Pages[extra]===1.9.0 ").expect("pin");
        assert_eq!(pin.name, "pretalx-pages");
        assert_eq!(pin.raw, "Pretalx_Pages[extra]===1.9.0");

        for bad in [
            "pretalx",
            "pretalx>=2026.1",
            "pretalx==2026.*",
            "pretalx==banana",
            "==2026.1.2",
            "pretalx @ https://example.org/p.whl",
            "",
        ] {
            let err = parse_installed(bad).expect_err(bad);
            assert!(
                err.starts_with(&format!("`{}` is not NAME==VERSION", bad.trim())),
                "{err}"
            );
        }
        let err = parse_installed("pretalx==banana").expect_err("bad");
        assert!(err.contains("`banana` is not a PEP 440 version"), "{err}");
    }
}
