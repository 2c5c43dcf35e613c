//! Every case in one fuzz binary, so CI builds and links the instrumented dependency tree
//! once instead of once per target. `ATTEST_FUZZ_TARGET` names the case (a name from
//! `cases::TARGETS`); each case keeps its own corpus directory, so runs of this binary and of
//! the per-target binaries share seeds and findings.
#![no_main]

#[path = "../cases.rs"]
mod cases;

use std::sync::OnceLock;

fn case() -> cases::Case {
    static CASE: OnceLock<cases::Case> = OnceLock::new();
    *CASE.get_or_init(|| {
        let name = std::env::var("ATTEST_FUZZ_TARGET").unwrap_or_default();
        match cases::TARGETS.iter().find(|(n, _)| *n == name) {
            Some((_, run)) => *run,
            None => {
                let known: Vec<&str> = cases::TARGETS.iter().map(|(n, _)| *n).collect();
                eprintln!("set ATTEST_FUZZ_TARGET to one of: {}", known.join(", "));
                std::process::exit(2);
            }
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| case()(data));
