//! Keeps the data flow one way: a test that reads the sources of some modules and fails
//! when one of them reaches into a module it must not know. Add a row to [`RULES`] when a
//! module earns a boundary.
//!
//! What counts as a reach: any `crate::<module>` path in the module's files (code, docs
//! and comments alike: a doc link is a dependency too), including `crate::{a, b}` groups,
//! and a `super::` chain that climbs out of the module's own folder (at most one inline
//! module deep is assumed, such as `mod tests`).

use std::path::{Path, PathBuf};

/// A module (folder or file under `src/`) and the crate modules it may name.
struct Rule {
    module: &'static str,
    may_use: &'static [&'static str],
}

const RULES: &[Rule] = &[
    // The SLA engine is pure: it reads its input rows and nothing of the store (so that it
    // can become its own crate).
    Rule {
        module: "sla",
        may_use: &["sla", "minutes"],
    },
    // The engine's input rows: a leaf.
    Rule {
        module: "minutes",
        may_use: &["minutes"],
    },
    // The store builds the engine's rows; nothing downstream (figures, metrics, http, sla).
    Rule {
        module: "store",
        may_use: &["store", "minutes"],
    },
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file of `module` (a folder with `mod.rs`, or a single file).
fn files_of(module: &str) -> Vec<PathBuf> {
    let dir = src().join(module);
    if !dir.is_dir() {
        return vec![src().join(format!("{module}.rs"))];
    }
    let mut out = Vec::new();
    let mut todo = vec![dir];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The top-level modules named by `crate::` paths in `text`.
fn crate_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        // `$crate::` in macros names this crate too; `attest_collector::` is not in here.
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            out.extend(
                inner
                    .split(',')
                    .filter_map(|p| first_segment(p.trim()))
                    .map(str::to_owned),
            );
        } else if let Some(name) = first_segment(rest) {
            out.push(name.to_owned());
        }
    }
    out
}

fn first_segment(path: &str) -> Option<&str> {
    let end = path
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(path.len());
    (end > 0).then(|| &path[..end])
}

/// How many modules deep `file` is below `src/` (`sla/mod.rs` = 1, `sla/tests.rs` = 2).
fn depth(file: &Path) -> usize {
    let rel = file.strip_prefix(src()).unwrap_or(file);
    let segments = rel.components().count();
    if rel.file_name().is_some_and(|n| n == "mod.rs") {
        segments - 1
    } else {
        segments
    }
}

/// The longest run of `super::` in `text`.
fn longest_super_chain(text: &str) -> usize {
    text.match_indices("super::")
        .map(|(at, _)| {
            text.as_bytes()[at..]
                .chunks(7)
                .take_while(|c| *c == b"super::")
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn violations() -> Vec<String> {
    let mut out = Vec::new();
    for rule in RULES {
        for file in files_of(rule.module) {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let shown = file
                .strip_prefix(src())
                .unwrap_or(&file)
                .display()
                .to_string();
            for name in crate_modules(&text) {
                if !rule.may_use.contains(&name.as_str()) {
                    out.push(format!("{shown} names crate::{name}"));
                }
            }
            // One level more than the file's depth allows for an inline `mod tests`.
            if longest_super_chain(&text) > depth(&file) {
                out.push(format!(
                    "{shown} climbs out of `{}` with super::",
                    rule.module
                ));
            }
        }
    }
    out
}

#[test]
fn modules_use_only_what_their_layer_allows() {
    let found = violations();
    assert!(
        found.is_empty(),
        "data flows one way (ARCHITECTURE.md); these files reach too far:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_sees_plain_grouped_and_climbing_paths() {
    assert_eq!(
        crate_modules("use crate::store::X; use crate::{minutes::Y, sla};"),
        ["store", "minutes", "sla"]
    );
    assert_eq!(longest_super_chain("use super::super::super::store;"), 3);
    assert_eq!(depth(&src().join("sla/mod.rs")), 1);
    assert_eq!(depth(&src().join("sla/tests.rs")), 2);
    assert!(files_of("sla").len() > 5, "the sla sources were found");
}
