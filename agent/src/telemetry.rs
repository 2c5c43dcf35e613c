//! The agent's own `/metrics` (and `/-/healthy`) on an optional listen address.
//!
//! Invariants:
//! - Metrics are rendered at scrape time from the latest state of each check, so a removed
//!   check leaves no stale series. Names are in [`names`] and documented in docs/metrics.md.
//! - There is no endpoint that takes a probe target from a request: the agent probes only
//!   what its configuration names (blackbox_exporter's `/probe?target=` is an SSRF door).
//! - Plain hyper, no HTTP framework: the agent stays small.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use attest_config::wire::{Measurement, Phase};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::schedule::ScheduleStats;
use crate::spool::Spool;
use crate::transport::TransportStats;

/// Every metric name the agent exports, without the `_total` the encoder adds to counters.
pub mod names {
    pub const PROBE_SUCCESS: &str = "attest_agent_probe_success";
    pub const PROBE_DURATION: &str = "attest_agent_probe_duration_seconds";
    pub const PROBE_PHASE_DURATION: &str = "attest_agent_probe_phase_duration_seconds";
    pub const PROBE_LAST_FAILURE: &str = "attest_agent_probe_last_failure_info";
    pub const PROBE_VALUE: &str = "attest_agent_probe_value";
    pub const PROBES: &str = "attest_agent_probes";
    pub const PROBE_FAILURES: &str = "attest_agent_probe_failures";
    pub const HOST_PREFIX: &str = "attest_agent_host_";
    pub const MISSED_TICKS: &str = "attest_agent_missed_ticks";
    pub const SPOOL_DEPTH: &str = "attest_agent_spool_depth_measurements";
    pub const SPOOL_BYTES: &str = "attest_agent_spool_bytes";
    pub const SPOOL_DROPPED: &str = "attest_agent_spool_dropped_measurements";
    pub const SPOOL_CORRUPT: &str = "attest_agent_spool_corrupt_records";
    pub const BATCHES_SENT: &str = "attest_agent_batches_sent";
    pub const BATCHES_ACKED: &str = "attest_agent_batches_acked";
    pub const MEASUREMENTS_ACKED: &str = "attest_agent_measurements_acked";
    pub const SEND_ERRORS: &str = "attest_agent_send_errors";
    pub const BATCHES_QUARANTINED: &str = "attest_agent_batches_quarantined";
    pub const LAST_ACK: &str = "attest_agent_last_ack_timestamp_seconds";

    /// How one value of the host probe is exposed.
    #[derive(Debug, Clone, Copy)]
    pub struct HostMetric {
        /// The value name the host probe produces (`probe::host::VALUE_NAMES`).
        pub value: &'static str,
        /// The metric name; counters omit the `_total` the encoder adds.
        pub metric: &'static str,
        /// A running total since boot (network bytes and errors), so `rate()` applies.
        pub counter: bool,
        pub help: &'static str,
    }

    const fn g(value: &'static str, metric: &'static str, help: &'static str) -> HostMetric {
        HostMetric {
            value,
            metric,
            counter: false,
            help,
        }
    }

    const fn c(value: &'static str, metric: &'static str, help: &'static str) -> HostMetric {
        HostMetric {
            value,
            metric,
            counter: true,
            help,
        }
    }

    /// One fixed name per host value, so a value name never leaks into the exposition
    /// unreviewed (`filesystem_inodes_total` is a gauge and must not end in `_total`).
    pub const HOST: &[HostMetric] = &[
        g(
            "cpu_utilization_ratio",
            "attest_agent_host_cpu_utilization_ratio",
            "Busy fraction of all CPUs since the previous collection",
        ),
        g("load1", "attest_agent_host_load1", "1-minute load average"),
        g("load5", "attest_agent_host_load5", "5-minute load average"),
        g(
            "load15",
            "attest_agent_host_load15",
            "15-minute load average",
        ),
        g(
            "memory_used_bytes",
            "attest_agent_host_memory_used_bytes",
            "Memory in use",
        ),
        g(
            "memory_available_bytes",
            "attest_agent_host_memory_available_bytes",
            "Memory available to new programs without swapping",
        ),
        g(
            "memory_total_bytes",
            "attest_agent_host_memory_total_bytes",
            "Installed memory",
        ),
        g(
            "swap_used_bytes",
            "attest_agent_host_swap_used_bytes",
            "Swap in use",
        ),
        g(
            "swap_total_bytes",
            "attest_agent_host_swap_total_bytes",
            "Swap configured",
        ),
        g(
            "filesystem_used_bytes",
            "attest_agent_host_filesystem_used_bytes",
            "Bytes used on the filesystem",
        ),
        g(
            "filesystem_total_bytes",
            "attest_agent_host_filesystem_total_bytes",
            "Size of the filesystem",
        ),
        g(
            "filesystem_used_ratio",
            "attest_agent_host_filesystem_used_ratio",
            "Used / total bytes of the filesystem",
        ),
        g(
            "filesystem_inodes_used",
            "attest_agent_host_filesystem_inodes_used",
            "Inodes in use on the filesystem",
        ),
        g(
            "filesystem_inodes_total",
            "attest_agent_host_filesystem_inodes_capacity",
            "Inodes the filesystem has in all (used + free)",
        ),
        c(
            "network_rx_bytes",
            "attest_agent_host_network_receive_bytes",
            "Bytes received on the interface since boot",
        ),
        c(
            "network_tx_bytes",
            "attest_agent_host_network_transmit_bytes",
            "Bytes sent on the interface since boot",
        ),
        c(
            "network_rx_errors",
            "attest_agent_host_network_receive_errors",
            "Receive errors on the interface since boot",
        ),
        c(
            "network_tx_errors",
            "attest_agent_host_network_transmit_errors",
            "Transmit errors on the interface since boot",
        ),
        g(
            "network_speed_bytes_per_second",
            "attest_agent_host_network_speed_bytes",
            "Link speed of the interface in bytes per second (configured or from the OS)",
        ),
        g(
            "process_running",
            "attest_agent_host_process_running",
            "1 if a process with the configured name runs, 0 if not",
        ),
    ];

    /// The exposition of a host value name; `None` for a name the table does not know.
    pub fn host(value: &str) -> Option<&'static HostMetric> {
        HOST.iter().find(|h| h.value == value)
    }
}

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
    kinds: BTreeMap<String, &'static str>,
    schedule: Arc<ScheduleStats>,
    transport: Arc<TransportStats>,
    spool: Arc<Mutex<Spool>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("checks", &self.kinds.len())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    pub fn new(
        kinds: BTreeMap<String, &'static str>,
        schedule: Arc<ScheduleStats>,
        transport: Arc<TransportStats>,
        spool: Arc<Mutex<Spool>>,
    ) -> Telemetry {
        Telemetry {
            checks: Mutex::new(BTreeMap::new()),
            kinds,
            schedule,
            transport,
            spool,
        }
    }

    /// Records a finished measurement (called by the scheduler's sink).
    pub fn observe(&self, m: &Measurement) {
        let mut checks = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        let st = checks.entry(m.check.clone()).or_default();
        st.kind = self.kinds.get(&m.check).copied().unwrap_or("unknown");
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
        self.encode_pipeline(&mut enc)
    }
}

impl Telemetry {
    fn encode_checks(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        use names::*;
        let checks = self
            .checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let id =
            |c: &String, s: &CheckState| vec![("check", c.clone()), ("kind", s.kind.to_string())];
        let (host, probe): (Vec<_>, Vec<_>) = checks.iter().partition(|(_, s)| s.kind == "host");
        gauges(
            enc,
            PROBE_SUCCESS,
            "1 if the check's last probe succeeded",
            checks
                .iter()
                .map(|(c, s)| (id(c, s), f64::from(u8::from(s.ok))))
                .collect(),
        )?;
        gauges(
            enc,
            PROBE_DURATION,
            "Duration of the check's last probe",
            checks.iter().map(|(c, s)| (id(c, s), s.duration)).collect(),
        )?;
        let phases = checks
            .iter()
            .flat_map(|(c, s)| {
                s.phases.iter().map(move |(p, v)| {
                    (
                        vec![("check", c.clone()), ("phase", p.as_str().to_string())],
                        *v,
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
            .filter_map(|(c, s)| {
                s.last_failure
                    .as_ref()
                    .map(|r| (vec![("check", c.clone()), ("reason", r.clone())], 1.0))
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
            checks.iter().map(|(c, s)| (id(c, s), s.probes)).collect(),
        )?;
        counters(
            enc,
            PROBE_FAILURES,
            "Failed probes per check",
            checks.iter().map(|(c, s)| (id(c, s), s.failures)).collect(),
        )?;
        let values = probe
            .iter()
            .flat_map(|(c, s)| {
                s.values
                    .iter()
                    .map(move |(n, r, v)| (value_labels(c, n, r), *v))
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
        host: &[(&String, &CheckState)],
    ) -> std::fmt::Result {
        let mut by_name: BTreeMap<String, Vec<(Labels, f64)>> = BTreeMap::new();
        for (c, s) in host {
            for (n, r, v) in &s.values {
                let mut labels = vec![("check", c.to_string())];
                labels.extend(r.iter().map(|r| ("resource", r.clone())));
                by_name.entry(n.clone()).or_default().push((labels, *v));
            }
        }
        for (n, rows) in by_name {
            match names::host(&n) {
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
        let s = crate::transport::lock(&self.spool).stats();
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
        gauge(
            enc,
            LAST_ACK,
            "Unix time of the last acknowledgement (0 before the first)",
            t.last_ack_unix.load(Ordering::Relaxed) as f64,
        )
    }
}

fn value_labels(check: &str, name: &str, resource: &Option<String>) -> Labels {
    let mut l = vec![("check", check.to_string()), ("name", name.to_string())];
    if let Some(r) = resource {
        l.push(("resource", r.clone()));
    }
    l
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

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `/metrics` and `/-/healthy` until `cancel` fires.
pub async fn serve(
    addr: SocketAddr,
    telemetry: Arc<Telemetry>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "agent metrics listening");
    loop {
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { tracing::warn!("accept failed: {e}"); continue; }
            },
        };
        let t = telemetry.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let t = t.clone();
                async move { Ok::<_, Infallible>(route(&t, &req)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}

fn route(t: &Arc<Telemetry>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &str, body: String| {
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, ctype)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => {
            let om = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            reply(
                StatusCode::OK,
                if om { OPENMETRICS } else { PROMETHEUS_TEXT },
                t.render(om),
            )
        }
        (&hyper::Method::GET, "/-/healthy") => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: this agent serves /metrics and /-/healthy only\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::names;
    use crate::probe::host::VALUE_NAMES;

    #[test]
    fn every_host_value_has_a_reviewed_metric_name() {
        for v in VALUE_NAMES {
            let h = names::host(v)
                .unwrap_or_else(|| panic!("host value {v} has no entry in names::HOST"));
            assert!(h.metric.starts_with(names::HOST_PREFIX), "{}", h.metric);
            assert!(
                !h.metric.ends_with("_total"),
                "{}: counters get _total from the encoder, gauges must not end in it",
                h.metric
            );
        }
        assert_eq!(
            names::HOST.len(),
            VALUE_NAMES.len(),
            "names::HOST lists a value the probe does not produce"
        );
    }
}
