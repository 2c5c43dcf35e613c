//! Data flows one way (ARCHITECTURE.md): probe → measurement → spool → transport → ingest →
//! store → SLA engine → metrics and reports. These rules keep each crate's modules from
//! reaching upstream or sideways; the scanner is `attest_tests::layers`.

use attest_tests::layers::{
    Rule, crate_modules, depth, files_of, longest_super_chain, src, violations,
};

const COLLECTOR: &[Rule] = &[
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
    // Ingest writes to the store and says "data changed"; it knows no reader.
    Rule {
        module: "ingest",
        may_use: &["ingest", "store", "reject", "changed", "clock"],
    },
    // The clock and the change signal are leaves every layer may hold.
    Rule {
        module: "clock",
        may_use: &["clock"],
    },
    Rule {
        module: "changed",
        may_use: &["changed"],
    },
];

const AGENT: &[Rule] = &[
    // A probe knows nothing of scheduling, the spool or the transport.
    Rule {
        module: "probe",
        may_use: &["probe", "clock"],
    },
    Rule {
        module: "schedule",
        may_use: &["schedule", "probe", "clock"],
    },
    // The spool knows neither who writes (probes) nor who reads (transport).
    Rule {
        module: "spool",
        may_use: &["spool", "clock"],
    },
    // The transport reads only from the spool.
    Rule {
        module: "transport",
        may_use: &["transport", "spool", "clock"],
    },
    Rule {
        module: "clock",
        may_use: &["clock"],
    },
];

fn assert_clean(krate: &str, rules: &[Rule]) {
    let found = violations(krate, rules);
    assert!(
        found.is_empty(),
        "data flows one way (ARCHITECTURE.md); these files reach too far:\n{}",
        found.join("\n")
    );
}

#[test]
fn collector_modules_use_only_what_their_layer_allows() {
    assert_clean("collector", COLLECTOR);
}

#[test]
fn agent_modules_use_only_what_their_layer_allows() {
    assert_clean("agent", AGENT);
}

#[test]
fn the_scanner_sees_plain_grouped_and_climbing_paths() {
    assert_eq!(
        crate_modules("use crate::store::X; use crate::{minutes::Y, sla};"),
        ["store", "minutes", "sla"]
    );
    assert_eq!(longest_super_chain("use super::super::super::store;"), 3);
    let src = src("collector");
    assert_eq!(depth(&src, &src.join("sla/mod.rs")), 1);
    assert_eq!(depth(&src, &src.join("sla/tests.rs")), 2);
    assert!(
        files_of(&src, "sla").len() > 5,
        "the sla sources were found"
    );
}

#[test]
fn a_planted_reach_is_reported() {
    // The rules are only worth something if a violation shows: forbid the agent's probes
    // the clock and the one probe module that uses it must be reported.
    let strict = [Rule {
        module: "probe",
        may_use: &["probe"],
    }];
    let found = violations("agent", &strict);
    assert!(
        found.iter().any(|f| f.contains("names crate::clock")),
        "{found:?}"
    );
}
