//! A style check over the store's own source: every SQL statement numbers its placeholders
//! PostgreSQL's way (`$1`, `$2`, ...), never SQLite's `?` or `?N`.
//!
//! The scan reads `src/store/**/*.rs` at test time, finds the Rust string literals (normal,
//! byte and raw; comments and char literals skipped) that look like SQL (they name a keyword
//! such as SELECT, INSERT, UPDATE, DELETE, WHERE or VALUES) and reports every `?` in them
//! outside SQL's single-quoted strings, by file and line.

use std::path::{Path, PathBuf};

/// Words that make a string literal a SQL statement (or a piece of one).
const KEYWORDS: [&str; 7] = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "WHERE", "VALUES", "VACUUM",
];

/// A Rust string literal: the line it starts on and its text as written (escapes kept).
struct Literal<'a> {
    line: usize,
    text: &'a str,
}

/// The string literals of a Rust source file.
fn literals(src: &str) -> Vec<Literal<'_>> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let line_at = |at: usize| 1 + src[..at].bytes().filter(|b| *b == b'\n').count();
    while i < bytes.len() {
        let after_ident = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if bytes[i..].starts_with(b"//") {
            i = src[i..].find('\n').map_or(bytes.len(), |n| i + n);
        } else if bytes[i..].starts_with(b"/*") {
            i = block_comment_end(bytes, i);
        } else if bytes[i] == b'\'' {
            i = char_literal_end(bytes, i);
        } else if let Some((start, end, next)) = raw_string(src, i).filter(|_| !after_ident) {
            out.push(Literal {
                line: line_at(start),
                text: &src[start..end],
            });
            i = next;
        } else if bytes[i] == b'"' {
            let end = string_end(bytes, i + 1);
            out.push(Literal {
                line: line_at(i + 1),
                text: &src[i + 1..end],
            });
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Where a (possibly nested) block comment starting at `i` ends.
fn block_comment_end(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if bytes[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Past a char literal at `i` (`'x'`, `'\n'`, `'"'`), or past the quote of a lifetime.
fn char_literal_end(bytes: &[u8], i: usize) -> usize {
    if bytes.get(i + 1) == Some(&b'\\') {
        let close = bytes[i + 2..].iter().position(|b| *b == b'\'');
        return close.map_or(bytes.len(), |n| i + 2 + n + 1);
    }
    // One character, perhaps several bytes long, then the closing quote.
    let next = (i + 2..bytes.len().min(i + 6)).find(|&j| bytes[j] == b'\'');
    match next {
        Some(j) if std::str::from_utf8(&bytes[i + 1..j]).is_ok_and(|s| s.chars().count() == 1) => {
            j + 1
        }
        _ => i + 1,
    }
}

/// Where the body of a normal string whose body starts at `i` ends (its closing quote).
fn string_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i] != b'"' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    i.min(bytes.len())
}

/// A raw string (`r"..."`, `r#"..."#`, `br"..."`) at `i`: its body's start and end, and
/// where scanning goes on.
fn raw_string(src: &str, i: usize) -> Option<(usize, usize, usize)> {
    let rest = &src[i..];
    let rest = rest.strip_prefix('b').unwrap_or(rest).strip_prefix('r')?;
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    let body = rest[hashes..].strip_prefix('"')?;
    let start = src.len() - body.len();
    let close = format!("\"{}", "#".repeat(hashes));
    let end = start + body.find(&close)?;
    Some((start, end, end + close.len()))
}

/// The lines (counted from the literal's first line) of the placeholders written SQLite's way
/// in a SQL literal: a `?` outside single-quoted SQL strings.
fn question_marks(text: &str) -> Vec<usize> {
    if !KEYWORDS.iter().any(|k| text.contains(k)) {
        return Vec::new();
    }
    let mut quoted = false;
    let mut line = 0;
    let mut out = Vec::new();
    for c in text.chars() {
        match c {
            '\n' => line += 1,
            '\'' => quoted = !quoted,
            '?' if !quoted => out.push(line),
            _ => {}
        }
    }
    out
}

/// `file:line: source line` for every line holding a SQLite-style placeholder in one file.
fn offenders(path: &Path, src: &str) -> Vec<String> {
    let lines: Vec<&str> = src.lines().collect();
    let mut at: Vec<usize> = literals(src)
        .iter()
        .flat_map(|l| question_marks(l.text).into_iter().map(|n| l.line + n))
        .collect();
    at.dedup();
    at.iter()
        .map(|&n| {
            let text = lines.get(n - 1).map_or("", |l| l.trim());
            format!("{}:{n}: {text}", path.display())
        })
        .collect()
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the store's folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every statement under `src/store/` writes its placeholders `$1`, `$2`, ... (the SQLite
/// driver maps `$N` to argument N as it does `?N`; PostgreSQL knows only `$N`).
///
/// To see it fail, write a statement SQLite's way, e.g. `DELETE FROM run_lease WHERE id = 1
/// AND holder = ?` in `runs.rs`, and run `cargo test --lib store::sql_style`: it names
/// `src/store/runs.rs` and the line.
#[test]
fn statements_use_dollar_placeholders() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = rust_files(&root.join("src/store"));
    assert!(files.len() > 5, "the store's sources: {files:?}");
    let mut found = Vec::new();
    for path in files {
        let src = std::fs::read_to_string(&path).expect("read a store source");
        let shown = path.strip_prefix(root).unwrap_or(&path);
        found.extend(offenders(shown, &src));
    }
    assert!(
        found.is_empty(),
        "SQL with `?` placeholders (write $1, $2, ...):\n{}",
        found.join("\n")
    );
}

/// The scan finds `?` and `?N` in normal and raw literals, on the right line, and leaves
/// alone SQL strings, JSON paths, comments, char literals and literals that are not SQL.
#[test]
fn the_scan_finds_question_marks() {
    // Assembled at run time, so that this file itself holds no such literal.
    let q = "?";
    let src = format!(
        "// SELECT {q} in a comment\n\
         const A: &str = \"SELECT a FROM t \\\n   WHERE b = {q}1 AND c = '{q}'\";\n\
         const B: char = '\"'; let _: &'static str = \"https://x/{q}page=1\";\n\
         const C: &str = r#\"UPDATE t SET d = {q}\"#;\n\
         const D: &str = \"SELECT json_extract(v, '$[0]') FROM json_each($1) WHERE e = $2\";\n"
    );
    let found = offenders(Path::new("x.rs"), &src);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0], format!("x.rs:3: WHERE b = {q}1 AND c = '{q}'\";"));
    assert_eq!(
        found[1],
        format!("x.rs:5: const C: &str = r#\"UPDATE t SET d = {q}\"#;")
    );
}
