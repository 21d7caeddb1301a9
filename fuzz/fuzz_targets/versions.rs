//! Version and tag parsing: `parse`, `parse_tag` (bare and with a monorepo prefix), and on
//! success every derived form (canonical key, line, line opener, class, post-release match).
#![no_main]

use herald::version;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let mut parsed = Vec::new();
    if let Ok(v) = version::parse(&s) {
        parsed.push(v);
    }
    if let Some(Ok(v)) = version::parse_tag(&s, None) {
        parsed.push(v);
    }
    for prefix in ["pkg-", "pretalx-", "v", ""] {
        if let Some(Ok(v)) = version::parse_tag(&s, Some(prefix)) {
            parsed.push(v);
        }
    }
    // A prefix taken from the input itself: the first line is the prefix, the rest the tag.
    if let Some((prefix, tag)) = s.split_once('\n') {
        if let Some(Ok(v)) = version::parse_tag(tag, Some(prefix)) {
            parsed.push(v);
        }
    }
    for v in &parsed {
        let key = version::canonical_key(v);
        let _ = version::line(v);
        let _ = version::line_opener(v);
        let _ = version::classify(v, |k| k == key);
        let _ = version::classify(v, |_| false);
        let _ = version::post_release_for(v, parsed.iter());
    }
});
