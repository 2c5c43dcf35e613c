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
#[derive(Debug, Clone)]
struct LastProbe {
    ok: bool,
    /// Kept across later successes: the reason of the most recent failure.
    last_failure: Option<FailureReason>,
    duration: f64,
    probes: u64,
    failures: u64,
    /// Which phases and values the probe reported; shared by every check that reports the
    /// same (all plain HTTP checks, say).
    shape: Arc<Shape>,
    /// The phases' durations, then the values, in the order of `shape`.
    numbers: Box<[f64]>,
}

impl LastProbe {
    fn phases(&self) -> impl Iterator<Item = (Phase, f64)> + '_ {
        self.shape
            .phases
            .iter()
            .copied()
            .zip(self.numbers.iter().copied())
    }

    /// Values as (metric-safe name, resource, value).
    fn values(&self) -> impl Iterator<Item = (&str, Option<&str>, f64)> + '_ {
        let numbers = &self.numbers[self.shape.phases.len()..];
        self.shape
            .values
            .iter()
            .zip(numbers)
            .map(|((n, r), v)| (&**n, r.as_deref(), *v))
    }
}

/// A probe's report less its numbers: its phases and its values' (metric-safe) names and
/// resources, in order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Shape {
    phases: Box<[Phase]>,
    values: Box<[ValueKey]>,
}

/// A value's metric-safe name and its resource.
type ValueKey = (Box<str>, Option<Box<str>>);

impl Shape {
    fn of(m: &Measurement) -> Shape {
        Shape {
            phases: m.phases.keys().copied().collect(),
            values: m
                .values
                .iter()
                .map(|v| {
                    (
                        sanitize(&v.name).into(),
                        v.resource.as_deref().map(Box::from),
                    )
                })
                .collect(),
        }
    }

    /// Whether `m` reports exactly this (without allocating).
    fn fits(&self, m: &Measurement) -> bool {
        self.phases.len() == m.phases.len()
            && self.phases.iter().zip(m.phases.keys()).all(|(a, b)| a == b)
            && self.values.len() == m.values.len()
            && self.values.iter().zip(&m.values).all(|((n, r), v)| {
                is_sanitized(n, &v.name) && r.as_deref() == v.resource.as_deref()
            })
    }
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
    /// The shapes in use, each allocated once for every check that reports it.
    shapes: BTreeSet<Arc<Shape>>,
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
        // A shape only the set still holds belonged to removed checks only.
        checks.shapes.retain(|n| Arc::strong_count(n) > 1);
    }

    /// Records a finished measurement (called by the scheduler's sink).
    pub fn observe(&self, m: &Measurement) {
        let mut checks = self.checks();
        let Checks { by_id, shapes } = &mut *checks;
        let Ok(i) = by_id.binary_search_by(|(c, _)| c.id.as_str().cmp(&m.check)) else {
            // The last attempt of a check that was just removed: not a series any more.
            return;
        };
        let slot = &mut by_id[i].1;
        // The usual case: the same phases and values as last time, so a probe does not
        // reallocate its check's state.
        let last = match slot {
            Some(last) if last.shape.fits(m) => last,
            _ => {
                let shape = intern(shapes, Shape::of(m));
                let numbers = vec![0.0; shape.phases.len() + shape.values.len()].into();
                let old = slot.take();
                let (probes, failures, last_failure) = old
                    .as_ref()
                    .map_or((0, 0, None), |l| (l.probes, l.failures, l.last_failure));
                if let Some(old) = old {
                    forget_shape(shapes, old.shape);
                }
                slot.insert(LastProbe {
                    ok: false,
                    last_failure,
                    duration: 0.0,
                    probes,
                    failures,
                    shape,
                    numbers,
                })
            }
        };
        last.ok = m.ok;
        last.duration = m.duration_seconds.unwrap_or(0.0);
        let numbers = m
            .phases
            .values()
            .copied()
            .chain(m.values.iter().map(|v| v.value));
        for (slot, n) in last.numbers.iter_mut().zip(numbers) {
            *slot = n;
        }
        last.probes += 1;
        if !m.ok {
            last.failures += 1;
            last.last_failure = m.reason;
        }
    }
}

/// The one shared allocation of a shape.
fn intern(shapes: &mut BTreeSet<Arc<Shape>>, shape: Shape) -> Arc<Shape> {
    if let Some(s) = shapes.get(&shape) {
        return s.clone();
    }
    let s = Arc::new(shape);
    shapes.insert(s.clone());
    s
}

/// Drops a shape a check no longer reports, from the set too when no other check does
/// (a host check's disks and interfaces come and go).
fn forget_shape(shapes: &mut BTreeSet<Arc<Shape>>, shape: Arc<Shape>) {
    // Held by the set and by `shape` only.
    if Arc::strong_count(&shape) == 2 {
        shapes.remove(&shape);
    }
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

#[cfg(test)]
mod tests {
    use super::names::*;
    use super::*;
    use attest_config::wire::Value;

    fn telemetry(dir: &std::path::Path) -> Arc<Telemetry> {
        let spool = crate::spool::Spool::open(dir, 1 << 20, attest_config::WhenFull::DropOldest)
            .expect("spool");
        let collectors = Collectors::new(
            &["http://127.0.0.1:9".to_string()],
            std::time::Duration::from_secs(60),
        )
        .expect("collectors");
        Arc::new(Telemetry::new(
            Arc::new(ScheduleStats::default()),
            Arc::new(TransportStats::default()),
            Arc::new(collectors),
            SharedSpool::new(spool),
        ))
    }

    fn check(id: &str, kind: &str) -> Arc<Check> {
        let spec = match kind {
            "host" => "kind = \"host\"".to_string(),
            _ => "kind = \"http\"\nurl = \"http://127.0.0.1:9/\"".to_string(),
        };
        let src = format!("[[check]]\nid = \"{id}\"\n{spec}\n");
        Arc::new(
            attest_config::parse_checks("test", &src)
                .expect("valid")
                .remove(0),
        )
    }

    fn measurement(check: &str, ok: bool, values: &[(&str, Option<&str>, f64)]) -> Measurement {
        let mut m = Measurement::new(check, jiff::Timestamp::UNIX_EPOCH, ok);
        m.duration_seconds = Some(0.5);
        m.reason = (!ok).then_some(FailureReason::Status);
        m.phases.insert(Phase::Connect, 0.25);
        m.values = values
            .iter()
            .map(|(n, r, v)| Value {
                name: (*n).to_string(),
                resource: r.map(str::to_string),
                value: *v,
            })
            .collect();
        m
    }

    #[test]
    fn renders_the_last_probe_and_forgets_removed_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = telemetry(dir.path());
        t.set_checks(vec![check("web", "http"), check("h", "host")]);
        let text = t.render(false);
        assert!(
            !text.contains("check=\"web\""),
            "no series before a probe:\n{text}"
        );

        t.observe(&measurement(
            "web",
            true,
            &[("http_status_code", None, 200.0)],
        ));
        t.observe(&measurement(
            "web",
            false,
            &[("http_status_code", None, 500.0)],
        ));
        t.observe(&measurement(
            "h",
            true,
            &[("test.thing", Some("total"), 0.5)],
        ));
        t.observe(&measurement("gone", true, &[]));
        let text = t.render(false);
        for line in [
            &format!("{PROBE_SUCCESS}{{check=\"web\",kind=\"http\"}} 0"),
            &format!("{PROBE_DURATION}{{check=\"web\",kind=\"http\"}} 0.5"),
            &format!("{PROBE_PHASE_DURATION}{{check=\"web\",phase=\"connect\"}} 0.25"),
            &format!("{PROBE_LAST_FAILURE}{{check=\"web\",reason=\"status\"}} 1"),
            &format!("{PROBES}_total{{check=\"web\",kind=\"http\"}} 2"),
            &format!("{PROBE_FAILURES}_total{{check=\"web\",kind=\"http\"}} 1"),
            &format!("{PROBE_VALUE}{{check=\"web\",name=\"http_status_code\"}} 500"),
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        let host = format!("{HOST_PREFIX}test_thing{{check=\"h\",resource=\"total\"}} 0.5");
        assert!(text.contains(&host), "{text}");
        assert!(
            !text.contains("gone"),
            "an unknown check got series:\n{text}"
        );
        assert_eq!(t.checks().shapes.len(), 2, "one shape per kind of report");

        // A new shape (another value) replaces the old one; a success keeps the failure.
        t.observe(&measurement("web", true, &[("http_redirects", None, 1.0)]));
        let text = t.render(false);
        assert!(text.contains("name=\"http_redirects\"} 1"), "{text}");
        assert!(!text.contains("http_status_code"), "{text}");
        assert!(text.contains("reason=\"status\"} 1"), "{text}");
        let probes = format!("{PROBES}_total{{check=\"web\",kind=\"http\"}} 3");
        assert!(text.contains(&probes), "{text}");

        // Removed: its series and its shape go; the one that stays keeps its counters.
        t.set_checks(vec![check("h", "host")]);
        let text = t.render(false);
        assert!(!text.contains("check=\"web\""), "{text}");
        assert!(text.contains("check=\"h\""), "{text}");
        assert_eq!(t.checks().shapes.len(), 1);
    }
}
