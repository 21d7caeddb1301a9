//! Version extraction from blog titles and URL slugs, with and without project aliases.
#![no_main]

use herald::version;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let aliases = vec![
        "pretalx".to_string(),
        "pretalx-pages".to_string(),
        "ember_cp".to_string(),
    ];
    let none: Vec<String> = Vec::new();
    let _ = version::from_title(&s, &aliases);
    let _ = version::from_title(&s, &none);
    let _ = version::from_slug(&s, &aliases);
    let _ = version::from_slug(&s, &none);
    // Aliases from the input itself (first line), as a configured project name could be.
    if let Some((alias, rest)) = s.split_once('\n') {
        let own = vec![alias.to_lowercase()];
        let _ = version::from_title(rest, &own);
        let _ = version::from_slug(rest, &own);
    }
});
