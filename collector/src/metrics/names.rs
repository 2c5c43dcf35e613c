//! Every metric name the collector exports, in one place (documented in docs/metrics.md).
//! Counter names omit `_total`: the OpenMetrics encoder appends it to the samples.

// Per service, month to date in the service's zone.
pub const SLA_AVAILABILITY: &str = "attest_sla_availability_ratio";
pub const SLA_TARGET: &str = "attest_sla_target_ratio";
pub const SLA_COMPLIANT: &str = "attest_sla_compliant";
pub const SLA_DETERMINABLE: &str = "attest_sla_determinable";
pub const SLA_COVERAGE: &str = "attest_sla_coverage_ratio";
pub const SLA_AVAILABILITY_PESSIMISTIC: &str = "attest_sla_availability_pessimistic_ratio";
pub const SLA_AVAILABILITY_OPTIMISTIC: &str = "attest_sla_availability_optimistic_ratio";
pub const SLA_MINUTES: &str = "attest_sla_minutes";
pub const SLA_BUDGET_REMAINING: &str = "attest_sla_error_budget_remaining_ratio";
pub const SLA_BUDGET_ALLOWED_MINUTES: &str = "attest_sla_error_budget_allowed_minutes";
pub const SLA_BUDGET_REMAINING_MINUTES: &str = "attest_sla_error_budget_remaining_minutes";
pub const SLA_BUDGET_PLANNING_MINUTES: &str = "attest_sla_error_budget_planning_minutes";
pub const SLA_BURN_RATE: &str = "attest_sla_burn_rate";
pub const SLA_LATENCY_OBJECTIVE: &str = "attest_sla_latency_objective_ratio";
pub const SLA_LATENCY_TARGET: &str = "attest_sla_latency_target_ratio";
pub const SLA_LATENCY_THRESHOLD: &str = "attest_sla_latency_threshold_seconds";
pub const SLA_LATENCY_QUANTILE: &str = "attest_sla_latency_seconds";
pub const SLA_INCIDENT_OPEN: &str = "attest_sla_incident_open";
pub const SLA_INCIDENTS: &str = "attest_sla_incidents";
pub const SLA_PERIOD_START: &str = "attest_sla_period_start_timestamp_seconds";
pub const SLA_COMPUTED_AT: &str = "attest_sla_computed_timestamp_seconds";
pub const SLA_FIGURES_AGE: &str = "attest_sla_figures_age_seconds";
pub const SLA_FIGURES_RESTORED: &str = "attest_sla_figures_restored_services";
pub const SLA_REFRESH_FAILURES: &str = "attest_sla_refresh_failures";

// Counters for SLO tools (Pyrra, Sloth, Grafana SLO): monotonically increasing.
pub const SLO_GOOD_MINUTES: &str = "attest_slo_good_minutes";
pub const SLO_ELIGIBLE_KNOWN_MINUTES: &str = "attest_slo_known_minutes";
/// `known − good`, as its own counter: Pyrra's ratio indicator takes a plain selector.
pub const SLO_BAD_MINUTES: &str = "attest_slo_bad_minutes";
pub const SLO_DOWN_SECONDS: &str = "attest_slo_down_seconds";

// Per check and agent: the latest minute's verdict.
pub const CHECK_SUCCESS: &str = "attest_check_success";
pub const CHECK_LAST_SEEN: &str = "attest_check_last_seen_timestamp_seconds";

// Per host and resource.
pub const CAPACITY_UTILIZATION: &str = "attest_capacity_utilization_ratio";
pub const CAPACITY_UTILIZATION_MAX: &str = "attest_capacity_utilization_max_ratio";
pub const CAPACITY_WARNING: &str = "attest_capacity_warning_ratio";
pub const CAPACITY_CRITICAL: &str = "attest_capacity_critical_ratio";
pub const CAPACITY_MINUTES_ABOVE: &str = "attest_capacity_minutes_above";
/// Seconds, the base unit (it was `attest_capacity_days_to_critical` until 0.1; dashboards and
/// rules divide by 86400 to show days).
pub const CAPACITY_TIME_TO_CRITICAL: &str = "attest_capacity_time_to_critical_seconds";

// Per service and capacity objective, month to date in the service's zone.
pub const CAPACITY_OBJECTIVE_MET: &str = "attest_capacity_objective_met";
pub const CAPACITY_OBJECTIVE_DETERMINABLE: &str = "attest_capacity_objective_determinable";
pub const CAPACITY_OBJECTIVE_VALUE: &str = "attest_capacity_objective_value";
pub const CAPACITY_OBJECTIVE_LIMIT: &str = "attest_capacity_objective_limit";

// Per agent.
pub const AGENT_LAST_SEEN: &str = "attest_agent_last_seen_timestamp_seconds";
pub const AGENT_CLOCK_OFFSET: &str = "attest_agent_clock_offset_seconds";
pub const AGENT_CLOCK_SKEWED: &str = "attest_agent_clock_skewed";
pub const AGENT_SPOOL_DEPTH: &str = "attest_agent_spool_depth_measurements";
pub const AGENT_SPOOL_DROPPED: &str = "attest_agent_spool_dropped_measurements";

// Ingest pipeline.
pub const INGEST_BATCHES: &str = "attest_ingest_batches";
pub const INGEST_MEASUREMENTS: &str = "attest_ingest_measurements";
pub const INGEST_REJECTED: &str = "attest_ingest_rejected_batches";
pub const INGEST_EVIDENCE_BATCHES: &str = "attest_ingest_evidence_batches";
pub const INGEST_EVIDENCE_REFUSED: &str = "attest_ingest_evidence_refused_batches";
pub const STORE_MEASUREMENTS: &str = "attest_store_measurements";
/// Monthly report archive (`[report] archive_dir`).
pub const REPORT_ARCHIVE_DIFFERENCES: &str = "attest_report_archive_differences";

// Listener.
pub const HTTP_CONNECTIONS: &str = "attest_http_connections";
pub const HTTP_CONNECTIONS_LIMIT: &str = "attest_http_connections_limit";
pub const HTTP_CONNECTIONS_ACCEPTED: &str = "attest_http_connections_accepted";
pub const HTTP_CONNECTION_CAP_REACHED: &str = "attest_http_connection_cap_reached";
pub const HTTP_CONNECTIONS_TIMED_OUT: &str = "attest_http_connections_timed_out";
