//! PEP 440 vectors from pypa/packaging: every valid version parses, every invalid one is
//! refused, and the total order of `versions_sorted.txt` is reproduced exactly.

use crate::common;

use herald::version;

fn lines(text: &str) -> Vec<&str> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn valid_versions_parse() {
    let dir = common::fixtures();
    let text = String::from_utf8(common::read(&dir, "pep440/valid_versions.txt")).expect("utf-8");
    let valid = lines(&text);
    assert!(valid.len() > 200, "{} vectors", valid.len());
    let refused: Vec<String> = valid
        .iter()
        .filter_map(|v| version::parse(v).err().map(|e| e.to_string()))
        .collect();
    assert!(refused.is_empty(), "refused valid versions: {refused:#?}");
}

#[test]
fn invalid_versions_are_refused() {
    let dir = common::fixtures();
    let text = String::from_utf8(common::read(&dir, "pep440/invalid_versions.txt")).expect("utf-8");
    let invalid = lines(&text);
    assert_eq!(invalid.len(), 20);
    for v in invalid {
        let err = version::parse(v).expect_err(v);
        assert!(
            err.to_string().contains("is not a PEP 440 version"),
            "{err}"
        );
        // Tags and titles go through the same parser: no back door.
        assert!(
            matches!(version::parse_tag(v, None), Some(Err(_))),
            "tag {v:?} accepted"
        );
    }
}

#[test]
fn the_order_is_reproduced_exactly() {
    let dir = common::fixtures();
    let text = String::from_utf8(common::read(&dir, "pep440/versions_sorted.txt")).expect("utf-8");
    let expected = lines(&text);
    assert_eq!(expected.len(), 92);
    let mut parsed: Vec<(pep440_rs::Version, &str)> = expected
        .iter()
        .map(|v| (version::parse(v).expect(v), *v))
        .collect();
    parsed.reverse();
    parsed.sort_by(|a, b| a.0.cmp(&b.0));
    let sorted: Vec<&str> = parsed.iter().map(|(_, s)| *s).collect();
    assert_eq!(sorted, expected);
    // Strictly ordered: no two entries compare equal, and keys are distinct.
    for pair in parsed.windows(2) {
        assert!(pair[0].0 < pair[1].0, "{} < {}", pair[0].1, pair[1].1);
    }
    let keys: std::collections::HashSet<String> = parsed
        .iter()
        .map(|(v, _)| version::canonical_key(v))
        .collect();
    assert_eq!(keys.len(), expected.len());
}
