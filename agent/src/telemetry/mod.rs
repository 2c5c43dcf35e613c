//! The agent's own `/metrics` (and `/-/healthy`) on an optional listen address:
//! [`Telemetry`] keeps the latest state of each check and the other stages' counters,
//! `render` turns them into the exposition, `serve` answers HTTP.
//!
//! Invariants:
//! - Metrics are rendered at scrape time from the latest state of each check, so a removed
//!   check leaves no stale series. Every name is in [`names`] and documented in
//!   docs/metrics.md.
//! - There is no endpoint that takes a probe target from a request: the agent probes only
//!   what its configuration names (blackbox_exporter's `/probe?target=` is an SSRF door).
//! - Plain hyper, no HTTP framework: the agent stays small.

pub mod names;
mod render;
mod serve;

pub use serve::{serve, serve_on, serve_secured};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use attest_config::wire::{Measurement, Phase};

use crate::schedule::ScheduleStats;
use crate::spool::SharedSpool;
use crate::transport::TransportStats;
use crate::transport::collectors::Collectors;

#[derive(Debug, Clone, Default)]
struct CheckState {
    kind: &'static str,
    ok: bool,
    duration: f64,
    phases: BTreeMap<Phase, f64>,
    last_failure: Option<String>,
    values: Vec<(String, Option<String>, f64)>,
    probes: u64,
    failures: u64,
}

/// Latest state per check plus the shared counters of the other agent stages.
pub struct Telemetry {
    checks: Mutex<BTreeMap<String, CheckState>>,
    /// Kind by check id of the running checks; replaced when the checks change.
    kinds: Mutex<BTreeMap<String, &'static str>>,
    schedule: Arc<ScheduleStats>,
    transport: Arc<TransportStats>,
    collectors: Arc<Collectors>,
    spool: SharedSpool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("checks", &self.kinds().len())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    pub fn new(
        kinds: BTreeMap<String, &'static str>,
        schedule: Arc<ScheduleStats>,
        transport: Arc<TransportStats>,
        collectors: Arc<Collectors>,
        spool: SharedSpool,
    ) -> Telemetry {
        Telemetry {
            checks: Mutex::new(BTreeMap::new()),
            kinds: Mutex::new(kinds),
            schedule,
            transport,
            collectors,
            spool,
        }
    }

    fn kinds(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, &'static str>> {
        self.kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The running checks changed (assignment or reload): a removed check's series go away
    /// with it.
    pub fn set_checks(&self, kinds: BTreeMap<String, &'static str>) {
        let mut checks = self
            .checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        checks.retain(|id, _| kinds.contains_key(id));
        *self.kinds() = kinds;
    }

    /// Records a finished measurement (called by the scheduler's sink).
    pub fn observe(&self, m: &Measurement) {
        let kind = self.kinds().get(&m.check).copied();
        let Some(kind) = kind else {
            // The last attempt of a check that was just removed: not a series any more.
            return;
        };
        let mut checks = self
            .checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = checks.entry(m.check.clone()).or_default();
        st.kind = kind;
        st.ok = m.ok;
        st.duration = m.duration_seconds.unwrap_or(0.0);
        st.phases = m.phases.clone();
        st.values = m
            .values
            .iter()
            .map(|v| (sanitize(&v.name), v.resource.clone(), v.value))
            .collect();
        st.probes += 1;
        if !m.ok {
            st.failures += 1;
            st.last_failure = m.reason.map(|r| r.as_str().to_string());
        }
    }
}

/// Metric names allow `[a-zA-Z0-9_]`; anything else becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
