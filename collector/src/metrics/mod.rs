//! Prometheus exposition of the collector: renders the latest figures snapshot (SLA
//! figures, capacity, agent status, store counts), the ingest counters and the newest
//! result per check.
//!
//! Invariants:
//! - Renders only, from memory: every SLA figure comes from the engine's snapshot
//!   (`figures`), so Grafana, the API and reports show the same numbers, and a scrape makes
//!   no store call (the fleet state is read into the snapshot by its refresh).
//! - Names live in [`names`]; units are base units (`_seconds`, `_ratio`), counters end in
//!   `_total` in the exposition. Serves OpenMetrics when asked, Prometheus text otherwise.
//! - A figure that is not determinable (N/A) is absent, never 0.
//! - Compression is the HTTP layer's choice ([`gzip`] when the scraper accepts it); the
//!   rendered text is the same either way.

pub mod names;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use attest_config::CollectorConfig;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::clock::SharedClock;
use crate::figures::{Figures, Snapshot};
use crate::ingest::{IngestStats, LatestResults};
use crate::report::monthly::archive::ArchiveDifferences;
use crate::server::ListenerStats;
use crate::store::AgentStatus;

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `body` gzip-compressed at the fastest level: text exposition still shrinks about tenfold,
/// for a fraction of the rendering's own CPU time.
pub fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(body)?;
    enc.finish()
}

pub struct Exporter {
    cfg: Arc<CollectorConfig>,
    figures: Arc<Figures>,
    ingest: Arc<IngestStats>,
    latest: Arc<LatestResults>,
    archive: Arc<ArchiveDifferences>,
    /// Only for the age of each service's figures at scrape time.
    clock: SharedClock,
    listener: Option<Arc<ListenerStats>>,
}

impl Exporter {
    pub fn new(
        cfg: Arc<CollectorConfig>,
        figures: Arc<Figures>,
        ingest: Arc<IngestStats>,
        latest: Arc<LatestResults>,
        clock: SharedClock,
    ) -> Exporter {
        Exporter {
            cfg,
            figures,
            ingest,
            latest,
            archive: Arc::default(),
            clock,
            listener: None,
        }
    }

    /// Also exports the differences the month-close archive found (`attest_report_archive_differences`).
    pub fn with_archive(mut self, archive: Arc<ArchiveDifferences>) -> Exporter {
        self.archive = archive;
        self
    }

    /// Also exports the listener's connection counts (`attest_http_connections*`).
    pub fn with_listener(mut self, listener: Arc<ListenerStats>) -> Exporter {
        self.listener = Some(listener);
        self
    }

    /// (content type, body).
    pub fn render(&self, openmetrics: bool) -> (&'static str, String) {
        let scrape = Scrape {
            snap: self.figures.latest(),
            now: self.clock.now_utc(),
            latest: self.latest.snapshot(),
            archive: self.archive.snapshot(),
            ingest: snapshot_ingest(&self.ingest),
            listener: self.listener.as_deref().map(snapshot_listener),
            max_skew_ms: self.cfg.ingest.max_clock_skew.as_millis() as i64,
            capacity: {
                let cfg = self.figures.config();
                (
                    cfg.capacity.warning.as_ratio(),
                    cfg.capacity.critical.as_ratio(),
                )
            },
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape));
        let mut out = String::new();
        let res = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        };
        if let Err(e) = res {
            tracing::error!("cannot encode metrics: {e}");
        }
        (
            if openmetrics {
                OPENMETRICS
            } else {
                PROMETHEUS_TEXT
            },
            out,
        )
    }
}

fn snapshot_ingest(s: &IngestStats) -> Vec<(&'static str, &'static str, u64)> {
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut out = vec![
        ("batches", "accepted", l(&s.batches_accepted)),
        ("batches", "duplicate", l(&s.batches_duplicate)),
        ("measurements", "stored", l(&s.measurements_stored)),
        ("measurements", "duplicate", l(&s.measurements_duplicate)),
        ("rejected", "unauthorized", l(&s.rejected_unauthorized)),
        ("rejected", "forbidden", l(&s.rejected_forbidden)),
        ("rejected", "malformed", l(&s.rejected_malformed)),
        ("rejected", "too_large", l(&s.rejected_too_large)),
        ("rejected", "rate_limited", l(&s.rejected_rate_limited)),
        ("rejected", "clock_skew", l(&s.rejected_skew)),
        ("rejected", "checks", l(&s.rejected_checks)),
        ("rejected", "slow_body", l(&s.rejected_slow)),
        ("rejected", "busy", l(&s.rejected_busy)),
        ("rejected", "storage_unavailable", l(&s.store_unavailable)),
        ("rejected", "evidence", l(&s.rejected_evidence)),
    ];
    out.push(("evidence", "signed", l(&s.evidence.signed)));
    out.push(("evidence", "unsigned", l(&s.evidence.unsigned)));
    for r in crate::ingest::evidence::Refusal::ALL {
        out.push(("evidence_refused", r.label(), s.evidence.refused(r)));
    }
    out
}

/// (open, limit, accepted, cap reached, timed out).
fn snapshot_listener(s: &ListenerStats) -> [u64; 5] {
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    [
        l(&s.open),
        l(&s.limit),
        l(&s.accepted),
        l(&s.cap_reached),
        l(&s.timed_out),
    ]
}

/// Everything one scrape renders, gathered before encoding.
#[derive(Debug)]
struct Scrape {
    listener: Option<[u64; 5]>,
    snap: Arc<Snapshot>,
    now: jiff::Timestamp,
    latest: Vec<((String, String), (jiff::Timestamp, bool))>,
    ingest: Vec<(&'static str, &'static str, u64)>,
    max_skew_ms: i64,
    capacity: (f64, f64),
    archive: Vec<(String, u64)>,
}

type Labels = Vec<(&'static str, String)>;

struct Enc<'a, 'b>(&'a mut DescriptorEncoder<'b>);

impl Enc<'_, '_> {
    fn gauges(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (Labels, Option<f64>)>,
    ) -> std::fmt::Result {
        let rows: Vec<(Labels, f64)> = rows
            .into_iter()
            .filter_map(|(l, v)| v.map(|v| (l, v)))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let mut m = self
            .0
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, v) in rows {
            m.encode_family(&labels)?.encode_gauge(&v)?;
        }
        Ok(())
    }

    fn counters(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (Labels, f64)>,
    ) -> std::fmt::Result {
        let rows: Vec<_> = rows.into_iter().collect();
        if rows.is_empty() {
            return Ok(());
        }
        let mut m = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, v) in rows {
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, f64>(&v, None)?;
        }
        Ok(())
    }
}

fn b(v: bool) -> f64 {
    f64::from(u8::from(v))
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let mut e = Enc(&mut enc);
        self.encode_sla(&mut e)?;
        self.encode_slo_counters(&mut e)?;
        self.encode_checks(&mut e)?;
        self.encode_capacity(&mut e)?;
        self.encode_capacity_objectives(&mut e)?;
        self.encode_agents(&mut e)?;
        self.encode_ingest(&mut e)?;
        self.encode_archive(&mut e)
    }
}

impl Scrape {
    fn encode_sla(&self, e: &mut Enc) -> std::fmt::Result {
        use names::*;
        let s = &self.snap.services;
        let svc = |r: &crate::sla::ServiceReport| vec![("service", r.service.clone())];
        e.gauges(
            SLA_AVAILABILITY,
            "Availability of the month so far: good / known minutes (absent when nothing is known)",
            s.iter().map(|r| (svc(r), r.availability)),
        )?;
        e.gauges(
            SLA_TARGET,
            "Agreed availability target",
            s.iter().map(|r| (svc(r), Some(r.target))),
        )?;
        e.gauges(SLA_COMPLIANT, "1 if the month so far meets the target (decided on integers), 0 if not; absent when not determinable", s.iter().map(|r| (svc(r), r.compliant.map(b))))?;
        e.gauges(
            SLA_DETERMINABLE,
            "1 if compliance can be decided (enough known minutes and coverage)",
            s.iter().map(|r| (svc(r), Some(b(r.compliant.is_some())))),
        )?;
        e.gauges(
            SLA_COVERAGE,
            "Known / eligible minutes of the month so far",
            s.iter().map(|r| (svc(r), r.coverage)),
        )?;
        e.gauges(
            SLA_AVAILABILITY_PESSIMISTIC,
            "Good / eligible minutes (unknown counted as bad)",
            s.iter().map(|r| (svc(r), r.bounds.pessimistic)),
        )?;
        e.gauges(
            SLA_AVAILABILITY_OPTIMISTIC,
            "(Good + unknown) / eligible minutes (unknown counted as good)",
            s.iter().map(|r| (svc(r), r.bounds.optimistic)),
        )?;
        let minutes = s.iter().flat_map(|r| {
            [
                ("eligible", r.eligible_minutes),
                ("good", r.good_minutes),
                ("bad", r.bad_minutes),
                ("unknown", r.unknown_minutes),
            ]
            .map(|(state, v)| {
                (
                    vec![("service", r.service.clone()), ("state", state.to_string())],
                    Some(v as f64),
                )
            })
        });
        e.gauges(SLA_MINUTES, "Minutes of the month so far by state", minutes)?;
        e.gauges(
            SLA_BUDGET_REMAINING,
            "Remaining error budget / allowed error budget of the month so far",
            s.iter().map(|r| (svc(r), r.error_budget.remaining_ratio)),
        )?;
        e.gauges(
            SLA_BUDGET_ALLOWED_MINUTES,
            "Bad minutes allowed so far: (1 - target) x known",
            s.iter()
                .map(|r| (svc(r), Some(r.error_budget.allowed_minutes))),
        )?;
        e.gauges(
            SLA_BUDGET_REMAINING_MINUTES,
            "Allowed minus bad minutes so far",
            s.iter()
                .map(|r| (svc(r), Some(r.error_budget.remaining_minutes))),
        )?;
        e.gauges(
            SLA_BUDGET_PLANNING_MINUTES,
            "Planning budget: (1 - target) x eligible minutes of the whole month",
            s.iter()
                .map(|r| (svc(r), Some(r.error_budget.planning_allowed_minutes))),
        )?;
        let burn = s.iter().flat_map(|r| {
            let br = &r.burn_rates;
            [
                ("5m", br.m5),
                ("30m", br.m30),
                ("1h", br.h1),
                ("6h", br.h6),
                ("1d", br.d1),
                ("3d", br.d3),
            ]
            .map(|(w, v)| {
                (
                    vec![("service", r.service.clone()), ("window", w.to_string())],
                    v,
                )
            })
        });
        e.gauges(
            SLA_BURN_RATE,
            "Error-budget burn rate over the window: (bad / known) / (1 - target)",
            burn,
        )?;
        e.gauges(
            SLA_LATENCY_OBJECTIVE,
            "Fraction of probes in eligible minutes at or under the latency threshold",
            s.iter().map(|r| (svc(r), r.latency.objective_ratio)),
        )?;
        e.gauges(
            SLA_LATENCY_TARGET,
            "Latency objective target",
            s.iter().map(|r| (svc(r), r.latency.target)),
        )?;
        e.gauges(
            SLA_LATENCY_THRESHOLD,
            "Latency objective threshold",
            s.iter().map(|r| (svc(r), r.latency.threshold_seconds)),
        )?;
        let q = s.iter().flat_map(|r| {
            let l = &r.latency;
            [
                ("p50", l.p50_seconds),
                ("p95", l.p95_seconds),
                ("p99", l.p99_seconds),
            ]
            .map(|(p, v)| {
                (
                    vec![
                        ("service", r.service.clone()),
                        ("percentile", p.to_string()),
                    ],
                    v,
                )
            })
        });
        e.gauges(
            SLA_LATENCY_QUANTILE,
            "Probe latency percentiles of the month so far (successful probes)",
            q,
        )?;
        e.gauges(
            SLA_INCIDENT_OPEN,
            "1 while an incident (a run of bad minutes) is open",
            s.iter().map(|r| (svc(r), Some(b(r.open_incident)))),
        )?;
        e.gauges(
            SLA_INCIDENTS,
            "Incidents in the month so far",
            s.iter().map(|r| (svc(r), Some(r.incident_count as f64))),
        )?;
        e.gauges(
            SLA_PERIOD_START,
            "Start of the reporting period (the month in the service's zone)",
            s.iter()
                .map(|r| (svc(r), Some(r.period.start.as_second() as f64))),
        )?;
        let computed = self
            .snap
            .computed_at
            .map(|t| t.as_millisecond() as f64 / 1000.0);
        e.gauges(
            SLA_COMPUTED_AT,
            "When the SLA figures were last refreshed (each service's own age: attest_sla_figures_age_seconds)",
            [(vec![], computed)],
        )?;
        let age = |i: usize| {
            self.snap
                .computed_of(i)
                .map(|t| (self.now.as_millisecond() - t.as_millisecond()).max(0) as f64 / 1000.0)
        };
        e.gauges(
            SLA_FIGURES_AGE,
            "Seconds since the service's figures were computed; grows while its refresh fails (the last good figures are kept)",
            s.iter().enumerate().map(|(i, r)| (svc(r), age(i))),
        )?;
        e.gauges(
            SLA_FIGURES_RESTORED,
            "Services whose figures shown are the ones published before the last start, not yet recomputed (0 once every service was refreshed)",
            [(vec![], Some(self.snap.restored_count() as f64))],
        )?;
        e.counters(
            SLA_REFRESH_FAILURES,
            "Refreshes of the service's figures that failed (store unavailable or a read failed)",
            self.snap
                .refresh_failures
                .iter()
                .map(|(name, n)| (vec![("service", name.clone())], *n as f64)),
        )
    }

    fn encode_slo_counters(&self, e: &mut Enc) -> std::fmt::Result {
        use names::*;
        let rows = |f: fn(&crate::figures::Totals) -> f64| {
            self.snap
                .services
                .iter()
                .zip(&self.snap.totals)
                .map(move |(r, t)| (vec![("service", r.service.clone())], f(t)))
                .collect::<Vec<_>>()
        };
        e.counters(
            SLO_GOOD_MINUTES,
            "Good eligible minutes since the service was first measured",
            rows(|t| t.good as f64),
        )?;
        e.counters(
            SLO_ELIGIBLE_KNOWN_MINUTES,
            "Known (good + bad) eligible minutes since the service was first measured",
            rows(|t| t.known as f64),
        )?;
        e.counters(
            SLO_BAD_MINUTES,
            "Bad eligible minutes since the service was first measured",
            rows(|t| t.bad as f64),
        )?;
        e.counters(
            SLO_DOWN_SECONDS,
            "Confirmed-down (bad) eligible time since the service was first measured",
            rows(|t| t.bad as f64 * 60.0),
        )
    }

    fn encode_checks(&self, e: &mut Enc) -> std::fmt::Result {
        use names::*;
        let id = |a: &String, c: &String| vec![("agent", a.clone()), ("check", c.clone())];
        e.gauges(
            CHECK_SUCCESS,
            "1 if the newest stored probe of the check from the agent succeeded",
            self.latest
                .iter()
                .map(|((a, c), (_, ok))| (id(a, c), Some(b(*ok)))),
        )?;
        e.gauges(
            CHECK_LAST_SEEN,
            "Start time of the newest stored probe of the check from the agent",
            self.latest
                .iter()
                .map(|((a, c), (ts, _))| (id(a, c), Some(ts.as_millisecond() as f64 / 1000.0))),
        )
    }

    fn encode_archive(&self, e: &mut Enc) -> std::fmt::Result {
        e.gauges(
            names::REPORT_ARCHIVE_DIFFERENCES,
            "Summary fields of an archived month that a recomputation now gives differently (late data after close); 0 = the archive agrees",
            self.archive
                .iter()
                .map(|(m, n)| (vec![("month", m.clone())], Some(*n as f64))),
        )
    }

    /// Per service and objective: the engine's verdict, the constraint's value and the limit.
    fn encode_capacity_objectives(&self, e: &mut Enc) -> std::fmt::Result {
        use crate::sla::capacity_objectives::{ObjectiveResult, Verdict};
        use names::*;
        let rows: Vec<(&str, &ObjectiveResult)> = self
            .snap
            .services
            .iter()
            .flat_map(|r| {
                r.capacity
                    .objectives
                    .iter()
                    .map(|o| (r.service.as_str(), o))
            })
            .collect();
        let id = |s: &str, o: &ObjectiveResult| {
            vec![
                ("service", s.to_string()),
                ("objective", o.name.clone()),
                ("statistic", o.statistic.to_string()),
            ]
        };
        e.gauges(
            CAPACITY_OBJECTIVE_MET,
            "1 if the capacity objective is met this month so far, 0 if breached (absent: not determinable)",
            rows.iter().map(|(s, o)| {
                let met = match o.verdict {
                    Verdict::Met => Some(1.0),
                    Verdict::Breached => Some(0.0),
                    Verdict::NotDeterminable => None,
                };
                (id(s, o), met)
            }),
        )?;
        e.gauges(
            CAPACITY_OBJECTIVE_DETERMINABLE,
            "1 if the hosts reported enough to decide the capacity objective (or a breach is already certain)",
            rows.iter()
                .map(|(s, o)| (id(s, o), Some(b(o.verdict != Verdict::NotDeterminable)))),
        )?;
        e.gauges(
            CAPACITY_OBJECTIVE_VALUE,
            "Measured value of the objective's constraint: ratio (p95, max, average), minutes (minutes_above) or days (days_to_threshold; absent when not within the horizon)",
            rows.iter().map(|(s, o)| (id(s, o), o.value)),
        )?;
        e.gauges(
            CAPACITY_OBJECTIVE_LIMIT,
            "Agreed limit of the objective, in the unit of its value (a minimum for days_to_threshold)",
            rows.iter().map(|(s, o)| (id(s, o), Some(o.limit))),
        )
    }

    fn encode_capacity(&self, e: &mut Enc) -> std::fmt::Result {
        use names::*;
        let c = &self.snap.capacity;
        let id = |f: &crate::sla::CapacityFigure| {
            vec![
                ("agent", f.agent.clone()),
                ("resource_kind", f.kind.clone()),
                ("resource", f.resource.clone()),
            ]
        };
        e.gauges(
            CAPACITY_UTILIZATION,
            "p95 utilisation of the month so far",
            c.iter().map(|f| (id(f), f.p95)),
        )?;
        e.gauges(
            CAPACITY_UTILIZATION_MAX,
            "Maximum utilisation of the month so far",
            c.iter().map(|f| (id(f), f.max)),
        )?;
        e.gauges(
            CAPACITY_WARNING,
            "Configured warning threshold",
            [(vec![], Some(self.capacity.0))],
        )?;
        e.gauges(
            CAPACITY_CRITICAL,
            "Configured critical threshold",
            [(vec![], Some(self.capacity.1))],
        )?;
        let above = c.iter().flat_map(|f| {
            [
                ("warning", f.minutes_above_warning),
                ("critical", f.minutes_above_critical),
            ]
            .map(|(lvl, v)| {
                let mut l = id(f);
                l.push(("threshold", lvl.to_string()));
                (l, Some(v as f64))
            })
        });
        e.gauges(
            CAPACITY_MINUTES_ABOVE,
            "Minutes of the month so far above the threshold",
            above,
        )?;
        e.gauges(
            CAPACITY_TIME_TO_CRITICAL,
            "Seconds until the linear trend reaches the critical threshold (absent: not within the horizon)",
            c.iter()
                .map(|f| (id(f), f.days_until_critical.map(|d| d * 86_400.0))),
        )
    }

    fn encode_agents(&self, e: &mut Enc) -> std::fmt::Result {
        use names::*;
        let a = &self.snap.agents;
        let id = |s: &AgentStatus| vec![("agent", s.agent.clone())];
        e.gauges(
            AGENT_LAST_SEEN,
            "When the agent's last batch was committed",
            a.iter()
                .map(|s| (id(s), Some(s.last_seen.as_millisecond() as f64 / 1000.0))),
        )?;
        e.gauges(
            AGENT_CLOCK_OFFSET,
            "Agent clock minus collector clock at the last batch",
            a.iter()
                .map(|s| (id(s), Some(s.clock_offset_ms as f64 / 1000.0))),
        )?;
        e.gauges(
            AGENT_CLOCK_SKEWED,
            "1 if the agent's clock offset exceeds the configured bound",
            a.iter()
                .map(|s| (id(s), Some(b(s.clock_offset_ms.abs() > self.max_skew_ms)))),
        )?;
        e.gauges(
            AGENT_SPOOL_DEPTH,
            "Measurements waiting in the agent's spool at its last batch",
            a.iter()
                .map(|s| (id(s), s.spool.as_ref().map(|p| p.depth_measurements as f64))),
        )?;
        // The agent reports a running total, so it is a counter here too: `rate()` works and
        // an agent restart reads as a counter reset.
        e.counters(
            AGENT_SPOOL_DROPPED,
            "Measurements the agent dropped because its spool was full (reported as gaps), as of its last batch",
            a.iter().filter_map(|s| {
                s.spool
                    .as_ref()
                    .map(|p| (id(s), p.dropped_total as f64))
            }),
        )
    }

    fn encode_ingest(&self, e: &mut Enc) -> std::fmt::Result {
        use names::*;
        let pick = |kind: &str| {
            self.ingest
                .iter()
                .filter(move |(k, _, _)| *k == kind)
                .map(|(_, r, v)| (vec![("result", r.to_string())], *v as f64))
                .collect::<Vec<_>>()
        };
        e.counters(
            INGEST_BATCHES,
            "Batches received, by result",
            pick("batches"),
        )?;
        e.counters(
            INGEST_MEASUREMENTS,
            "Measurements received in accepted batches, by result",
            pick("measurements"),
        )?;
        e.counters(
            INGEST_REJECTED,
            "Batches refused, by reason",
            pick("rejected"),
        )?;
        e.counters(
            INGEST_EVIDENCE_BATCHES,
            "Batches that passed evidence verification, signed or unsigned",
            pick("evidence"),
        )?;
        e.counters(
            INGEST_EVIDENCE_REFUSED,
            "Batches refused for their evidence (signature, key, chain link), by reason",
            pick("evidence_refused"),
        )?;
        e.gauges(
            STORE_MEASUREMENTS,
            "Raw measurements currently stored",
            [(vec![], self.snap.stored_measurements.map(|v| v as f64))],
        )?;
        self.encode_listener(e)
    }

    fn encode_listener(&self, e: &mut Enc) -> std::fmt::Result {
        use names::*;
        let Some([open, limit, accepted, capped, timed_out]) = self.listener else {
            return Ok(());
        };
        let one = |v: u64| [(Vec::new(), v as f64)];
        e.gauges(
            HTTP_CONNECTIONS,
            "HTTP connections open now",
            [(vec![], Some(open as f64))],
        )?;
        e.gauges(
            HTTP_CONNECTIONS_LIMIT,
            "Connections served at once ([server] max_connections)",
            [(vec![], Some(limit as f64))],
        )?;
        e.counters(
            HTTP_CONNECTIONS_ACCEPTED,
            "HTTP connections accepted",
            one(accepted),
        )?;
        e.counters(
            HTTP_CONNECTION_CAP_REACHED,
            "Times the listener reached max_connections and stopped accepting until a connection closed",
            one(capped),
        )?;
        e.counters(
            HTTP_CONNECTIONS_TIMED_OUT,
            "Connections closed for idling or for sending headers too slowly",
            one(timed_out),
        )
    }
}
