//! The repository tests itself: every test and benchmark reads its data from inside this
//! repository (`tests/fixtures/`), and every fixture folder says where its files came from.

use std::path::{Path, PathBuf};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A test that read the shared folder beside the repository (or any folder outside it) would pass on the CI
/// checkout and fail, or quietly skip, on a plain clone.
#[test]
fn no_test_reads_outside_the_repository() {
    let mut files = Vec::new();
    for dir in ["tests", "benches", "scripts", "fuzz/fuzz_targets", ".ci"] {
        files_under(&root().join(dir), &mut files);
    }
    let code: Vec<&PathBuf> = files
        .iter()
        .filter(|p| !p.starts_with(root().join("tests/fixtures")))
        .filter(|p| !p.starts_with(root().join("tests/it/snapshots")))
        .collect();
    assert!(code.len() > 20, "found only {} test files", code.len());
    // Spelled in pieces so that this file does not name what it forbids.
    let forbidden = [
        concat!(".", "./shared"),
        concat!("HERALD_", "FIXTURES"),
        concat!("shared", "/fixtures"),
        concat!("\"", ".", ".", "\""),
    ];
    let mut offenders = Vec::new();
    for path in code {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for needle in forbidden {
            if text.contains(needle) {
                offenders.push(format!("{} mentions {needle}", path.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// Every fixture folder carries its provenance, and the real-data folders are all there.
#[test]
fn every_fixture_folder_names_its_sources() {
    let dir = root().join("tests/fixtures");
    for folder in [
        "",
        "pretalx",
        "pretalx/metadata",
        "pypi",
        "github",
        "feeds",
        "pep440",
        "tls",
    ] {
        let sources = dir.join(folder).join("SOURCES.md");
        let text = std::fs::read_to_string(&sources)
            .unwrap_or_else(|err| panic!("{}: {err}", sources.display()));
        assert!(text.len() > 200, "{} is too short", sources.display());
    }
    let mut files = Vec::new();
    files_under(&dir, &mut files);
    assert!(files.len() >= 100, "only {} fixture files", files.len());
}
