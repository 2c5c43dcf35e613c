//! Habits of the house that a reviewer would otherwise check by eye: the test script keeps the
//! code formatted and free of clippy warnings, and no script stops or kills a process it did
//! not start (a user's Prometheus is not ours to stop).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every shell script the project runs on a user's or CI's machine.
fn scripts() -> Vec<PathBuf> {
    let mut out = vec![root().join(".ci/run"), root().join("bench/run")];
    for dir in ["scripts", "dist"] {
        collect(&root().join(dir), &mut out);
    }
    out.retain(|p| p.is_file());
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if std::fs::read_to_string(&p).is_ok_and(|s| s.starts_with("#!")) {
            out.push(p);
        }
    }
}

#[test]
fn no_script_stops_a_process_it_did_not_start() {
    let banned = [
        "pkill",
        "killall",
        "systemctl stop",
        "systemctl kill",
        "service stop",
    ];
    let scripts = scripts();
    assert!(
        scripts.iter().any(|p| p.ends_with("scripts/test")),
        "scripts/test not found among {scripts:?}"
    );
    let mut found = Vec::new();
    for p in &scripts {
        let text = std::fs::read_to_string(p).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or("");
            for word in banned {
                if code.contains(word) {
                    found.push(format!("{}:{}: {word}", p.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "scripts stop processes they did not start:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_test_script_fails_on_unformatted_code_and_clippy_warnings() {
    let text = std::fs::read_to_string(root().join("scripts/test")).unwrap();
    let code: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .collect();
    assert!(
        code.contains(&"cargo fmt --all --check"),
        "scripts/test must run cargo fmt --check"
    );
    assert!(
        code.iter()
            .any(|l| l.starts_with("cargo clippy --workspace --all-targets")
                && l.ends_with("-D warnings")),
        "scripts/test must run clippy over every target with -D warnings"
    );
    assert!(text.starts_with("#!/usr/bin/env bash\n"));
    assert!(
        text.contains("set -euo pipefail"),
        "a failing step must fail the script"
    );
}

/// The package check must package the binaries the tests ran, not build them again (a second
/// build of both binaries cost minutes of every CI run): one profile for the build, the tests
/// and the package, and the package step told not to build.
#[test]
fn the_test_script_packages_the_build_its_tests_ran() {
    let text = std::fs::read_to_string(root().join("scripts/test")).unwrap();
    let code: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    let profile_of = |prefix: &str| -> Option<String> {
        let line = code.iter().find(|l| l.starts_with(prefix))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let i = words.iter().position(|w| *w == "--profile")?;
        words.get(i + 1).map(|w| (*w).to_string())
    };
    let build = profile_of("cargo build --workspace").expect("scripts/test builds with --profile");
    let test = profile_of("cargo test --workspace").expect("scripts/test tests with --profile");
    assert_eq!(
        build, test,
        "the tests must run on the build the package uses"
    );
    assert_ne!(build, "dev", "cargo-deb refuses the dev profile");
    let package = code
        .iter()
        .find(|l| l.ends_with("./scripts/test-package"))
        .expect("scripts/test checks the packages");
    assert!(
        package.contains(&format!("ATTEST_DEB_PROFILE={build}"))
            && package.contains("ATTEST_DEB_NO_BUILD=1"),
        "the package check must reuse the {build} build: {package}"
    );
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("[profile.{build}]")),
        "profile {build} is defined in Cargo.toml"
    );
}
