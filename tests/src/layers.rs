//! Keeps the data flow one way in both binaries: reads the sources of some modules and
//! reports each reach into a module they must not know (`tests/tests/layers.rs` holds the
//! rules of each crate). Add a rule when a module earns a boundary.
//!
//! What counts as a reach: any `crate::<module>` path in the module's files (code, docs
//! and comments alike: a doc link is a dependency too), including `crate::{a, b}` groups,
//! and a `super::` chain that climbs out of the module's own folder (at most one inline
//! module deep is assumed, such as `mod tests`).

use std::path::{Path, PathBuf};

/// A module (folder or file under a crate's `src/`) and the crate modules it may name.
pub struct Rule {
    pub module: &'static str,
    pub may_use: &'static [&'static str],
}

/// The `src/` folder of the workspace crate in folder `krate` (`"agent"`, `"collector"`).
pub fn src(krate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src")
}

/// Every `.rs` file of `module` (a folder with `mod.rs`, or a single file).
pub fn files_of(src: &Path, module: &str) -> Vec<PathBuf> {
    let dir = src.join(module);
    if !dir.is_dir() {
        return vec![src.join(format!("{module}.rs"))];
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
pub fn crate_modules(text: &str) -> Vec<String> {
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
pub fn depth(src: &Path, file: &Path) -> usize {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let segments = rel.components().count();
    if rel.file_name().is_some_and(|n| n == "mod.rs") {
        segments - 1
    } else {
        segments
    }
}

/// The longest run of `super::` in `text`.
pub fn longest_super_chain(text: &str) -> usize {
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

/// Every reach of the crate in `krate` that its `rules` do not allow, one line each.
pub fn violations(krate: &str, rules: &[Rule]) -> Vec<String> {
    let src = src(krate);
    let mut out = Vec::new();
    for rule in rules {
        for file in files_of(&src, rule.module) {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let shown = file
                .strip_prefix(&src)
                .unwrap_or(&file)
                .display()
                .to_string();
            for name in crate_modules(&text) {
                if !rule.may_use.contains(&name.as_str()) {
                    out.push(format!("{krate}/src/{shown} names crate::{name}"));
                }
            }
            // One level more than the file's depth allows for an inline `mod tests`.
            if longest_super_chain(&text) > depth(&src, &file) {
                out.push(format!(
                    "{krate}/src/{shown} climbs out of `{}` with super::",
                    rule.module
                ));
            }
        }
    }
    out
}
