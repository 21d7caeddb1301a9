//! The house rule on imports (see the crate docs, `# Layout`), checked on the source text.
//!
//! Every `crate::NAME` path in `src/` (in `use` lines and inline, test code included) is an
//! edge from the file's top-level module to `NAME`. The test fails, naming file and line, on:
//!
//! - a pure module (`version`, `attribution`, `model`, `merge`, `decide`, `compat`,
//!   `advice`, `inventory`, `schedule`) importing anything but another pure module or `config`;
//! - an adapter (`sources`, `store`, `notify`) importing an orchestration or entry module
//!   (`check`, `alerts`, `serve`, `http`, `cli`);
//! - any import cycle between top-level modules.
//!
//! To see it fail, add `use crate::store::Store;` to `src/merge.rs` (a forbidden edge), or
//! `use crate::check::CheckOptions;` to `src/store/mod.rs` (a cycle through `check`), and run
//! `cargo test --test it layout::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that do no I/O and decide things from data.
const PURE: &[&str] = &[
    "version",
    "attribution",
    "model",
    "merge",
    "decide",
    "compat",
    "advice",
    "inventory",
    "schedule",
];

/// What a pure module may import besides the pure modules: the validated settings.
const PURE_MAY_USE: &[&str] = &["config"];

/// Adapters talk to one outside thing each (upstreams, the database, the relay and channels).
const ADAPTERS: &[&str] = &["sources", "store", "notify"];

/// Orchestration and the front doors; adapters never call up into them.
const ABOVE_ADAPTERS: &[&str] = &["check", "alerts", "serve", "http", "cli"];

/// One `crate::NAME` reference.
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    file: String,
    line: usize,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for the crate root and `main`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "main").then_some(name)
}

fn ident_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The code of a line: comments (`//`, `///`, `//!`) left out.
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

/// Every `crate::NAME` and `crate::{A, B::..}` in one file.
fn edges_of(from: &str, file: &str, text: &str) -> Vec<Edge> {
    let mut edges = Vec::new();
    let lines: Vec<&str> = text.lines().map(code_of).collect();
    for (i, code) in lines.iter().enumerate() {
        let mut rest = *code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let mut targets = Vec::new();
            if let Some(group) = rest.strip_prefix('{') {
                // A grouped import may run over several lines: read to its closing brace.
                let mut body = group.to_string();
                let mut j = i + 1;
                while !balanced(&body) && j < lines.len() {
                    body.push_str(lines[j]);
                    j += 1;
                }
                targets.extend(top_names(&body));
            } else {
                targets.push(ident_at(rest).to_string());
            }
            for to in targets {
                if !to.is_empty() && to != from {
                    edges.push(Edge {
                        from: from.to_string(),
                        to,
                        file: file.to_string(),
                        line: i + 1,
                    });
                }
            }
        }
    }
    edges
}

/// Whether the text after `{` holds its closing brace.
fn balanced(body: &str) -> bool {
    let mut depth = 1i32;
    for c in body.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return true;
        }
    }
    false
}

/// The first segment of each path in a `{...}` group (nested groups skipped).
fn top_names(body: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0;
    let mut at_start = true;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_start = true,
            c if at_start && depth == 0 && (c.is_ascii_alphabetic() || c == '_') => {
                names.push(ident_at(&body[i..]).to_string());
                at_start = false;
            }
            _ => {}
        }
    }
    names
}

fn all_edges() -> Vec<Edge> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut edges = Vec::new();
    for path in files {
        let Some(from) = module_of(&src, &path) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read source");
        let shown = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        edges.extend(edges_of(&from, &shown, &text));
    }
    edges
}

fn forbidden(edge: &Edge) -> Option<&'static str> {
    let from = edge.from.as_str();
    let to = edge.to.as_str();
    if PURE.contains(&from) && !PURE.contains(&to) && !PURE_MAY_USE.contains(&to) {
        return Some("a pure module imports only pure modules and `config`");
    }
    if ADAPTERS.contains(&from) && ABOVE_ADAPTERS.contains(&to) {
        return Some("an adapter does not import orchestration or a front door");
    }
    None
}

/// A cycle through the module graph, as the edges that make it, if there is one.
fn find_cycle(edges: &[Edge]) -> Option<Vec<Edge>> {
    let mut graph: BTreeMap<&str, BTreeMap<&str, &Edge>> = BTreeMap::new();
    for e in edges {
        graph
            .entry(e.from.as_str())
            .or_default()
            .entry(e.to.as_str())
            .or_insert(e);
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for start in graph.keys().copied().collect::<Vec<_>>() {
        let mut path: Vec<&Edge> = Vec::new();
        if let Some(cycle) = visit(&graph, start, &mut path, &mut done) {
            return Some(cycle);
        }
    }
    None
}

fn visit<'a>(
    graph: &BTreeMap<&'a str, BTreeMap<&'a str, &'a Edge>>,
    node: &'a str,
    path: &mut Vec<&'a Edge>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<Edge>> {
    if done.contains(node) {
        return None;
    }
    if let Some(at) = path.iter().position(|e| e.from == node) {
        return Some(path[at..].iter().map(|e| (*e).clone()).collect());
    }
    for edge in graph.get(node).into_iter().flat_map(|m| m.values()) {
        path.push(edge);
        if let Some(cycle) = visit(graph, edge.to.as_str(), path, done) {
            return Some(cycle);
        }
        path.pop();
    }
    done.insert(node);
    None
}

fn shown(e: &Edge) -> String {
    format!("{} -> {} ({}:{})", e.from, e.to, e.file, e.line)
}

#[test]
fn pure_modules_and_adapters_import_only_downwards() {
    let bad: Vec<String> = all_edges()
        .iter()
        .filter_map(|e| forbidden(e).map(|why| format!("{}: {why}", shown(e))))
        .collect();
    assert!(bad.is_empty(), "forbidden imports:\n{}", bad.join("\n"));
}

#[test]
fn there_is_no_import_cycle_between_top_level_modules() {
    let edges = all_edges();
    if let Some(cycle) = find_cycle(&edges) {
        let steps: Vec<String> = cycle.iter().map(shown).collect();
        panic!("import cycle:\n{}", steps.join("\n"));
    }
}

#[test]
fn the_reader_sees_grouped_and_inline_paths() {
    let text = "use crate::{\n    model::Project,\n    store::{self, Store},\n};\n\
                fn f() { crate::notify::go(); } // crate::cli::x in a comment\n\
                /// [`crate::http`] in a doc\n";
    let edges = edges_of("merge", "src/merge.rs", text);
    let found: Vec<(&str, usize)> = edges.iter().map(|e| (e.to.as_str(), e.line)).collect();
    assert_eq!(found, [("model", 1), ("store", 1), ("notify", 5)]);
    assert!(forbidden(&edges[1]).is_some());
    assert!(forbidden(&edges[0]).is_none());
}

#[test]
fn a_cycle_is_found_and_named() {
    let edge = |from: &str, to: &str, line| Edge {
        from: from.into(),
        to: to.into(),
        file: "src/x.rs".into(),
        line,
    };
    let cycle = find_cycle(&[
        edge("a", "b", 1),
        edge("b", "c", 2),
        edge("c", "a", 3),
        edge("c", "d", 4),
    ])
    .expect("a cycle");
    let names: Vec<&str> = cycle.iter().map(|e| e.from.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(find_cycle(&[edge("a", "b", 1), edge("b", "c", 2)]).is_none());
}
