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

use attest_config::Check;
use std::sync::{Arc, Mutex, MutexGuard};

use attest_config::wire::{FailureReason, Measurement, Phase};

use crate::schedule::ScheduleStats;
use crate::spool::SharedSpool;
use crate::transport::TransportStats;
use crate::transport::collectors::Collectors;

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

/// A running check (its definition, shared with the scheduler) and its last probe, `None`
/// until the first: a check without a probe has no series yet. Kept small: one per check,
/// and at 1,000 checks every byte here is a kilobyte of the agent's memory.
type CheckState = (Arc<Check>, Option<LastProbe>);

#[derive(Debug, Default)]
struct Checks {
    /// The running checks sorted by id (a plain sorted list: exact size); replaced when the
    /// checks change.
    by_id: Vec<CheckState>,
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

    /// The running checks changed (assignment or reload): a removed check's series go away
    /// with it; a check that stays keeps its counters.
    pub fn set_checks(&self, running: Vec<Arc<Check>>) {
        let mut checks = self.checks();
        let mut old: BTreeMap<String, Option<LastProbe>> = std::mem::take(&mut checks.by_id)
            .into_iter()
            .map(|(c, last)| (c.id.clone(), last))
            .collect();
        let mut by_id: Vec<CheckState> = running
            .into_iter()
            .map(|c| {
                let last = old.remove(&c.id).flatten();
                (c, last)
            })
            .collect();
        by_id.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        by_id.shrink_to_fit();
        checks.by_id = by_id;
        drop(old);
        // A name only the set still holds belonged to removed checks only.
        checks.names.retain(|n| Arc::strong_count(n) > 1);
    }

    /// Records a finished measurement (called by the scheduler's sink).
    pub fn observe(&self, m: &Measurement) {
        let mut checks = self.checks();
        let Checks { by_id, names } = &mut *checks;
        let Ok(i) = by_id.binary_search_by(|(c, _)| c.id.as_str().cmp(&m.check)) else {
            // The last attempt of a check that was just removed: not a series any more.
            return;
        };
        let last = by_id[i].1.get_or_insert_with(LastProbe::default);
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
