//! Renders [`Telemetry`] as Prometheus text or OpenMetrics at scrape time, through a
//! `prometheus_client` collector (no state kept between scrapes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use attest_config::Check;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

use super::{LastProbe, Telemetry, names};
use crate::transport::collectors::Collectors;

impl Telemetry {
    pub fn render(self: &Arc<Self>, openmetrics: bool) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::new();
        let res = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        };
        if res.is_err() {
            tracing::error!("cannot encode metrics");
        }
        out
    }
}

type Labels = Vec<(&'static str, String)>;

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, f64)>,
) -> std::fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, u64)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

fn float_counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, f64)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, f64>(&v, None)?;
    }
    Ok(())
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    m.encode_gauge(&v)
}

impl Collector for Telemetry {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        self.encode_checks(&mut enc)?;
        self.encode_pipeline(&mut enc)?;
        self.encode_collectors(&mut enc)
    }
}

impl Telemetry {
    fn encode_checks(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        use names::*;
        // A copy, so the scrape does not hold the lock the probes report through.
        let checks: Vec<(Arc<Check>, &'static str, LastProbe)> = self
            .checks()
            .by_id
            .iter()
            .filter_map(|(c, last)| last.clone().map(|l| (c.clone(), c.spec.kind(), l)))
            .collect();
        let id = |c: &str, kind: &str| vec![("check", c.to_string()), ("kind", kind.to_string())];
        let (host, probe): (Vec<_>, Vec<_>) = checks.iter().partition(|(_, k, _)| *k == "host");
        gauges(
            enc,
            PROBE_SUCCESS,
            "1 if the check's last probe succeeded",
            checks
                .iter()
                .map(|(c, k, s)| (id(&c.id, k), f64::from(u8::from(s.ok))))
                .collect(),
        )?;
        gauges(
            enc,
            PROBE_DURATION,
            "Duration of the check's last probe",
            checks
                .iter()
                .map(|(c, k, s)| (id(&c.id, k), s.duration))
                .collect(),
        )?;
        let phases = checks
            .iter()
            .flat_map(|(c, _, s)| {
                s.phases().map(move |(p, v)| {
                    (
                        vec![("check", c.id.clone()), ("phase", p.as_str().to_string())],
                        v,
                    )
                })
            })
            .collect();
        gauges(
            enc,
            PROBE_PHASE_DURATION,
            "Duration of each phase of the check's last probe",
            phases,
        )?;
        let failures = checks
            .iter()
            .filter_map(|(c, _, s)| {
                s.last_failure.map(|r| {
                    (
                        vec![("check", c.id.clone()), ("reason", r.as_str().to_string())],
                        1.0,
                    )
                })
            })
            .collect();
        gauges(
            enc,
            PROBE_LAST_FAILURE,
            "The reason of the check's most recent failure",
            failures,
        )?;
        counters(
            enc,
            PROBES,
            "Probes run per check",
            checks
                .iter()
                .map(|(c, k, s)| (id(&c.id, k), s.probes))
                .collect(),
        )?;
        counters(
            enc,
            PROBE_FAILURES,
            "Failed probes per check",
            checks
                .iter()
                .map(|(c, k, s)| (id(&c.id, k), s.failures))
                .collect(),
        )?;
        let values = probe
            .iter()
            .flat_map(|(c, _, s)| {
                s.values()
                    .map(move |(n, r, v)| (value_labels(&c.id, n, r), v))
            })
            .collect();
        gauges(
            enc,
            PROBE_VALUE,
            "Numeric observations of the check's last probe (status code, certificate expiry, ...)",
            values,
        )?;
        self.encode_host(enc, &host)
    }

    /// Host values become one metric per value name (named by [`names::HOST`]), labelled by
    /// check (two host checks must not collide) and resource.
    fn encode_host(
        &self,
        enc: &mut DescriptorEncoder,
        host: &[&(Arc<Check>, &'static str, LastProbe)],
    ) -> std::fmt::Result {
        let mut by_name: BTreeMap<&str, Vec<(Labels, f64)>> = BTreeMap::new();
        for (c, _, s) in host {
            for (n, r, v) in s.values() {
                let mut labels = vec![("check", c.id.clone())];
                labels.extend(r.map(|r| ("resource", r.to_string())));
                by_name.entry(n).or_default().push((labels, v));
            }
        }
        for (n, rows) in by_name {
            match names::host(n) {
                Some(h) if h.counter => float_counters(enc, h.metric, h.help, rows)?,
                Some(h) => gauges(enc, h.metric, h.help, rows)?,
                None => gauges(
                    enc,
                    &format!("{}{n}", names::HOST_PREFIX),
                    "Host value from the last collection",
                    rows,
                )?,
            }
        }
        Ok(())
    }

    fn encode_pipeline(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        use names::*;
        let s = self.spool.stats();
        let t = &self.transport;
        counter(
            enc,
            MISSED_TICKS,
            "Ticks skipped because the previous probe of the check ran long",
            self.schedule.missed_ticks_total.load(Ordering::Relaxed),
        )?;
        gauge(
            enc,
            SPOOL_DEPTH,
            "Measurements in the spool not yet acknowledged",
            s.depth as f64,
        )?;
        gauge(
            enc,
            SPOOL_BYTES,
            "Bytes the spool occupies on disk",
            s.bytes as f64,
        )?;
        counter(
            enc,
            SPOOL_DROPPED,
            "Measurements dropped because the spool was full (reported as gaps)",
            s.dropped_total,
        )?;
        counter(
            enc,
            SPOOL_CORRUPT,
            "Spool records skipped because their checksum failed",
            s.corrupt_records_total,
        )?;
        counter(
            enc,
            BATCHES_SENT,
            "Delivery attempts of batches",
            t.batches_sent_total.load(Ordering::Relaxed),
        )?;
        counter(
            enc,
            BATCHES_ACKED,
            "Batches acknowledged by the collector",
            t.batches_acked_total.load(Ordering::Relaxed),
        )?;
        counter(
            enc,
            MEASUREMENTS_ACKED,
            "Measurements acknowledged by the collector",
            t.measurements_acked_total.load(Ordering::Relaxed),
        )?;
        counter(
            enc,
            SEND_ERRORS,
            "Failed delivery attempts (retried)",
            t.send_errors_total.load(Ordering::Relaxed),
        )?;
        counter(
            enc,
            BATCHES_QUARANTINED,
            "Batches the collector rejected as malformed, kept in the quarantine directory",
            t.batches_quarantined_total.load(Ordering::Relaxed),
        )?;
        counter(
            enc,
            BATCHES_SENT_UNSIGNED,
            "Delivery attempts sent unsigned (protocol version 1) to a collector that refused signed batches",
            t.batches_sent_unsigned_total.load(Ordering::Relaxed),
        )?;
        gauge(
            enc,
            LAST_ACK,
            "Unix time of the last acknowledgement (0 before the first)",
            t.last_ack_unix.load(Ordering::Relaxed) as f64,
        )
    }
}

impl Telemetry {
    /// Which collector is in use (one series per configured URL, 1 on the active one) and
    /// how often the agent moved between them.
    fn encode_collectors(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        use names::*;
        let c = &self.collectors;
        let active = c.active().index;
        let rows = c
            .bases()
            .iter()
            .enumerate()
            .map(|(i, base)| {
                let labels = vec![("url", Collectors::label(base))];
                (labels, f64::from(u8::from(i == active)))
            })
            .collect();
        gauges(
            enc,
            COLLECTOR_ACTIVE,
            "1 on the collector the agent sends to, 0 on the others of [agent] collector_urls",
            rows,
        )?;
        counter(
            enc,
            COLLECTOR_FAILOVERS,
            "Times the active collector failed (unreachable, timeout, 5xx) and the next took over",
            c.failovers(),
        )?;
        counter(
            enc,
            COLLECTOR_FAILBACKS,
            "Times the agent returned to a more preferred collector that was ready again",
            c.failbacks(),
        )
    }
}

fn value_labels(check: &str, name: &str, resource: Option<&str>) -> Labels {
    let mut l = vec![("check", check.to_string()), ("name", name.to_string())];
    if let Some(r) = resource {
        l.push(("resource", r.to_string()));
    }
    l
}
