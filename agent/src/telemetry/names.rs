//! Every metric name the agent exports, in one place (documented in docs/metrics.md).
//! Counter names omit `_total`: the encoder appends it to the samples.

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
pub const BATCHES_SENT_UNSIGNED: &str = "attest_agent_batches_sent_unsigned";
pub const LAST_ACK: &str = "attest_agent_last_ack_timestamp_seconds";
pub const COLLECTOR_ACTIVE: &str = "attest_agent_collector_active";
pub const COLLECTOR_FAILOVERS: &str = "attest_agent_collector_failovers";
pub const COLLECTOR_FAILBACKS: &str = "attest_agent_collector_failbacks";

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

#[cfg(test)]
mod tests {
    use super as names;
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
