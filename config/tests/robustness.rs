//! Arbitrary, truncated and mutated input never panics the loader: it either loads or
//! returns errors, and every error has a position inside the file.

use attest_config::{ConfigErrors, parse_agent, parse_collector};
use proptest::prelude::*;

const AGENT: &str = include_str!("../testdata/valid/agent-all-kinds.toml");
const COLLECTOR: &str = include_str!("../examples/collector.toml");

fn check_positions(src: &str, result: Result<(), ConfigErrors>) {
    let Err(errors) = result else { return };
    assert!(!errors.errors().is_empty());
    let lines = src.lines().count().max(1) + 1;
    for e in errors.errors() {
        let loc = e.location.expect("parsed text always has positions");
        assert!(
            loc.line >= 1 && loc.line <= lines,
            "{e} (file has {lines} lines)"
        );
        assert!(loc.column >= 1, "{e}");
    }
}

fn run_both(src: &str) {
    check_positions(src, parse_agent("a.toml", src).map(|_| ()));
    check_positions(src, parse_collector("c.toml", src).map(|_| ()));
}

/// Cuts at a char boundary at or before `at`.
fn cut(src: &str, at: usize) -> &str {
    let mut at = at.min(src.len());
    while !src.is_char_boundary(at) {
        at -= 1;
    }
    &src[..at]
}

#[test]
fn every_prefix_of_the_valid_files_is_handled() {
    // Exhaustive over byte positions: bounded by the file sizes (a few KiB).
    for src in [AGENT, COLLECTOR] {
        for at in 0..=src.len() {
            run_both(cut(src, at));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,400}") {
        run_both(&src);
    }

    #[test]
    fn toml_shaped_text_never_panics(
        src in "(\\[{1,2}[a-z_]{1,10}\\]{1,2}\n|[a-z_]{1,12} = (\"[^\"\n]{0,20}\"|[0-9-]{1,8}|true|\\[\\]|\\{ [a-z]{1,5} = [0-9]{1,3} \\}|20[0-9]{2}-[01][0-9]-[0-3][0-9](T[0-2][0-9]:[0-5][0-9]:00Z)?)\n){0,30}"
    ) {
        run_both(&src);
    }

    #[test]
    fn mutated_valid_files_never_panic(pos in 0usize..4000, byte in any::<u8>(), which in 0usize..2) {
        let base = [AGENT, COLLECTOR][which];
        let mut bytes = base.as_bytes().to_vec();
        let pos = pos % bytes.len();
        bytes[pos] = byte;
        let src = String::from_utf8_lossy(&bytes);
        run_both(&src);
    }
}
