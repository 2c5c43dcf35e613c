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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use attest_config::wire::{FailureReason, Measurement, Phase};

use crate::schedule::ScheduleStats;
use crate::spool::SharedSpool;
use crate::transport::TransportStats;
use crate::transport::collectors::Collectors;

/// A running check as the telemetry sees it. Kept small: one per check, and at 1,000
/// checks every byte here is a kilobyte of the agent's memory.
#[derive(Debug, Clone)]
struct CheckState {
    kind: &'static str,
    /// `None` until the check's first probe: a check without a probe has no series yet.
    last: Option<Box<LastProbe>>,
}

/// What the latest probe of a check found, and its counters.
#[derive(Debug, Clone, Default)]
struct LastProbe {
    ok: bool,
    /// Kept across later successes: the reason of the most recent failure.
    last_failure: Option<FailureReason>,
    duration: f64,
    probes: u64,
    failures: u64,
    phases: Box<[(Phase, f64)]>,
    values: Box<[LastValue]>,
}

/// One numeric observation; the metric-safe name is interned (shared by every check).
#[derive(Debug, Clone)]
struct LastValue {
    name: Arc<str>,
    resource: Option<Box<str>>,
    value: f64,
}

#[derive(Debug, Default)]
struct Checks {
    /// By id (the scheduler's own `Arc<str>`, shared) the running checks; replaced when the
    /// checks change.
    by_id: BTreeMap<Arc<str>, CheckState>,
    /// Sanitized value names, each allocated once for every check.
    names: BTreeSet<Arc<str>>,
}

/// Latest state per check plus the shared counters of the other agent stages.
pub struct Telemetry {
    checks: Mutex<Checks>,
    schedule: Arc<ScheduleStats>,
    transport: Arc<TransportStats>,
    collectors: Arc<Collectors>,
    spool: SharedSpool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("checks", &self.checks().by_id.len())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    pub fn new(
        schedule: Arc<ScheduleStats>,
        transport: Arc<TransportStats>,
        collectors: Arc<Collectors>,
        spool: SharedSpool,
    ) -> Telemetry {
        Telemetry {
            checks: Mutex::new(Checks::default()),
            schedule,
            transport,
            collectors,
            spool,
        }
    }

    fn checks(&self) -> MutexGuard<'_, Checks> {
        self.checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The running checks changed (assignment or reload), given as id and kind: a removed
    /// check's series go away with it; a check that stays keeps its counters.
    pub fn set_checks(&self, running: impl IntoIterator<Item = (Arc<str>, &'static str)>) {
        let mut checks = self.checks();
        let mut old = std::mem::take(&mut checks.by_id);
        checks.by_id = running
            .into_iter()
            .map(|(id, kind)| {
                let last = old.remove(&id).and_then(|s| s.last);
                (id, CheckState { kind, last })
            })
            .collect();
        drop(old);
        // A name only the set still holds belonged to removed checks only.
        checks.names.retain(|n| Arc::strong_count(n) > 1);
    }

    /// Records a finished measurement (called by the scheduler's sink).
    pub fn observe(&self, m: &Measurement) {
        let mut checks = self.checks();
        let Checks { by_id, names } = &mut *checks;
        let Some(st) = by_id.get_mut(m.check.as_str()) else {
            // The last attempt of a check that was just removed: not a series any more.
            return;
        };
        let last = st.last.get_or_insert_with(Box::default);
        last.ok = m.ok;
        last.duration = m.duration_seconds.unwrap_or(0.0);
        // In place when the probe reported the same phases and values as last time (the
        // usual case), so a probe does not reallocate its check's state.
        if last.phases.len() == m.phases.len()
            && last
                .phases
                .iter()
                .zip(&m.phases)
                .all(|((a, _), (b, _))| a == b)
        {
            for ((_, v), (_, new)) in last.phases.iter_mut().zip(&m.phases) {
                *v = *new;
            }
        } else {
            last.phases = m.phases.iter().map(|(p, v)| (*p, *v)).collect();
        }
        let same_values = last.values.len() == m.values.len()
            && last.values.iter().zip(&m.values).all(|(a, b)| {
                is_sanitized(&a.name, &b.name) && a.resource.as_deref() == b.resource.as_deref()
            });
        if same_values {
            for (a, b) in last.values.iter_mut().zip(&m.values) {
                a.value = b.value;
            }
        } else {
            last.values = m
                .values
                .iter()
                .map(|v| LastValue {
                    name: intern(names, &sanitize(&v.name)),
                    resource: v.resource.as_deref().map(Box::from),
                    value: v.value,
                })
                .collect();
        }
        last.probes += 1;
        if !m.ok {
            last.failures += 1;
            last.last_failure = m.reason;
        }
    }
}

/// The one shared allocation of a value name.
fn intern(names: &mut BTreeSet<Arc<str>>, name: &str) -> Arc<str> {
    if let Some(n) = names.get(name) {
        return n.clone();
    }
    let n: Arc<str> = Arc::from(name);
    names.insert(n.clone());
    n
}

/// Whether `sanitized` is what [`sanitize`] makes of `raw` (without allocating).
fn is_sanitized(sanitized: &str, raw: &str) -> bool {
    sanitized.chars().eq(raw.chars().map(sanitize_char))
}

/// Metric names allow `[a-zA-Z0-9_]`; anything else becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars().map(sanitize_char).collect()
}

fn sanitize_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || c == '_' {
        c
    } else {
        '_'
    }
}
