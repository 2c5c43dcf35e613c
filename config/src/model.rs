//! The validated configuration model. Values of these types are produced only by the
//! loader (`crate::load`), which reports every problem of a file at once; code that
//! receives them may rely on the invariants stated in the crate's top comment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};

use crate::units::{Cidr, Ppm};

// ---------------------------------------------------------------- agent

/// `agent.toml`: who the agent is, where it sends, where it spools, what it probes.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub agent: AgentIdentity,
    pub spool: SpoolConfig,
    pub transport: TransportConfig,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentIdentity {
    /// Stable id; the collector binds the token to it.
    pub id: String,
    /// Base URLs of the collectors in order of preference, e.g. `https://collector:9850`:
    /// `collector_url` (one) or `collector_urls` (several) in the file. At least one, no
    /// two alike; the first is preferred and the agent fails over down the list.
    pub collector_urls: Vec<String>,
    /// Bearer token (read from `token` or `token_file`).
    pub token: String,
    /// Optional listen address for the agent's own `/metrics`.
    pub listen: Option<SocketAddr>,
    /// Global limit of probes in flight.
    pub max_concurrency: usize,
    /// Networks probes may reach; empty = any. A resolved target address outside every
    /// network here fails the probe before anything is sent.
    pub allow_targets: Vec<Cidr>,
    /// Networks probes never reach; wins over `allow_targets`.
    pub deny_targets: Vec<Cidr>,
    /// The Ed25519 key that signs every batch (docs/wire.md, "Agent keys"); `None`: the
    /// agent's own key in `<spool.dir>/agent.key`, created at first start.
    pub signing_key_file: Option<PathBuf>,
}

impl AgentIdentity {
    /// Whether a probe may send to `ip` under `allow_targets`/`deny_targets`.
    pub fn target_allowed(&self, ip: std::net::IpAddr) -> bool {
        crate::units::target_allowed(&self.allow_targets, &self.deny_targets, ip)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub when_full: WhenFull,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Drop the oldest unacknowledged measurements and report them as gaps (default).
    DropOldest,
    /// Drop new measurements and report them as gaps.
    DropNewest,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TransportConfig {
    pub batch_max_measurements: usize,
    pub batch_max_age: Duration,
    pub request_timeout: Duration,
    /// CA bundle to trust for the collector (PEM); system roots are not used otherwise.
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long a more preferred collector must answer its readiness probe without a
    /// failure before the agent returns to it after a failover.
    pub failback_after: Duration,
}

/// One configured probe. The scheduler owns interval, timeout and the timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub id: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub spec: CheckSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckSpec {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Dns(DnsCheck),
    Icmp(IcmpCheck),
    Tls(TlsCheck),
    Host(HostCheck),
}

impl CheckSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            CheckSpec::Http(_) => "http",
            CheckSpec::Tcp(_) => "tcp",
            CheckSpec::Dns(_) => "dns",
            CheckSpec::Icmp(_) => "icmp",
            CheckSpec::Tls(_) => "tls",
            CheckSpec::Host(_) => "host",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpFamily {
    #[default]
    Any,
    Ipv4,
    Ipv6,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsClientOptions {
    pub verify: bool,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// SNI / verification name when it differs from the target host.
    pub server_name: Option<String>,
}

impl Default for TlsClientOptions {
    fn default() -> Self {
        Self {
            verify: true,
            ca_file: None,
            client_cert: None,
            client_key: None,
            server_name: None,
        }
    }
}

/// Inclusive status code range; a single code is `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub lo: u16,
    pub hi: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// Empty means 200–299.
    pub expect_status: Vec<StatusRange>,
    pub body_contains: Vec<String>,
    pub body_regex: Vec<String>,
    pub body_not_regex: Vec<String>,
    /// Header name → regex the value must match.
    pub header_match: BTreeMap<String, String>,
    pub follow_redirects: bool,
    pub max_redirects: u32,
    pub tls: TlsClientOptions,
    pub ip_family: IpFamily,
    pub max_body_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TcpCheck {
    /// `host:port`.
    pub address: String,
    pub tls: Option<TlsClientOptions>,
    /// Send-then-expect steps, run in order.
    pub steps: Vec<TcpStep>,
    pub ip_family: IpFamily,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TcpStep {
    Send(String),
    /// Regex a received line must match.
    Expect(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsTransport {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnsCheck {
    /// `ip:port` of the server to ask.
    pub server: String,
    pub name: String,
    /// Record type, e.g. `A`, `AAAA`, `MX`, `TXT`.
    pub record_type: String,
    pub transport: DnsTransport,
    /// Expected rcode name (`NOERROR` by default).
    pub expect_rcode: String,
    /// Each must match some answer exactly (rdata text).
    pub expect_answers: Vec<String>,
    /// Each must match some answer's rdata text.
    pub expect_answer_regex: Vec<String>,
    pub expect_authoritative: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IcmpCheck {
    pub host: String,
    pub count: u32,
    pub ip_family: IpFamily,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsCheck {
    /// `host:port`.
    pub address: String,
    pub tls: TlsClientOptions,
    /// Fail when the earliest expiry of the chain is closer than this.
    pub min_days_left: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostCheck {
    pub cpu: bool,
    pub memory: bool,
    pub load: bool,
    pub filesystems: bool,
    pub network: bool,
    /// Named processes that must be running.
    pub processes: Vec<String>,
    /// Value name (e.g. `cpu_utilization_ratio`) → upper bound; exceeding one fails the check.
    pub thresholds: BTreeMap<String, f64>,
    /// Interface → link speed in bytes per second, for interfaces whose speed the OS does
    /// not report (virtual NICs, some drivers); overrides what the OS says.
    pub network_speeds: BTreeMap<String, u64>,
}

// ---------------------------------------------------------------- collector

/// `collector.toml`: listener, storage, the agents allowed in, and the services with
/// their service levels.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub ingest: IngestLimits,
    pub agents: Vec<AgentAuth>,
    /// `[[reader]]`: read-only tokens (SLA figures, reports, agents list, `/metrics`).
    pub readers: Vec<ReaderAuth>,
    /// Every admin token: each `[[admin]]`, then `[server] admin_token` (named
    /// [`ADMIN_TOKEN_NAME`]) when set.
    pub admins: Vec<AdminAuth>,
    pub maintenance: MaintenanceConfig,
    pub services: Vec<Service>,
    pub capacity: CapacityConfig,
    /// Checks defined centrally (`[[check]]`), handed to agents by `assignments`.
    pub checks: Vec<CentralCheck>,
    /// `[[assign]]`: which central checks run on which agents.
    pub assignments: Vec<AssignRule>,
    pub report: ReportConfig,
    /// `[status]`: who may read the live status page.
    pub status: StatusConfig,
}

/// `[status]`: the live status page (`GET /status`). Without it the page is a read route
/// like `/reports/` (open, or a reader credential once readers or basic auth exist).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusConfig {
    /// Anyone may read the page without credentials, showing only [`Self::services`]; a
    /// request with a read credential still sees every service.
    pub public: bool,
    /// The services of the public page, in this order (names of `[[service]]`); empty
    /// unless `public`.
    pub services: Vec<String>,
}

/// `[report]`: monthly availability reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportConfig {
    /// Printed on the cover; empty = none.
    pub organisation: String,
    pub title: String,
    /// Ed25519 key (PKCS#8 PEM or 64 hex digits) that signs every report's seal.
    pub signing_key_file: Option<PathBuf>,
    /// Where closed months are archived (written once, never rewritten); `None` = no archive.
    pub archive_dir: Option<PathBuf>,
    /// How long after a month's end late data is awaited before it is archived.
    pub grace: Duration,
    /// Directory with `report.html` / `report.md` replacing the built-in templates.
    pub templates_dir: Option<PathBuf>,
    /// The sign-off block: who prepares the report (a person or role).
    pub prepared_by: Option<String>,
    /// Who approves it.
    pub approved_by: Option<String>,
    /// Who receives it, in this order.
    pub distribution: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    /// Token for the admin API (maintenance registration).
    pub admin_token: Option<String>,
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Time a client has to send its request headers (plain HTTP and TLS alike).
    pub header_read_timeout: Duration,
    /// Time a client has to send a request body once its headers were accepted.
    pub body_read_timeout: Duration,
    /// An idle keep-alive connection is closed after this long.
    pub idle_timeout: Duration,
    /// On SIGTERM, how long requests in flight may still run before the collector exits
    /// anyway (long polls and idle connections end at once, not after this).
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StorageBackend {
    Sqlite,
    /// `url` carries no TLS settings: those are in `tls` (`postgres_sslmode`,
    /// `postgres_sslrootcert`).
    Postgres {
        url: String,
        tls: PostgresTls,
    },
}

/// How the collector protects its connections to PostgreSQL (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PostgresSslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, plain otherwise; the server is not verified.
    #[default]
    Prefer,
    /// TLS or no connection; the server is not verified (encrypts, does not authenticate).
    Require,
    /// TLS, and the server's certificate must chain to the configured CA (any host name).
    VerifyCa,
    /// TLS, the chain as with `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

impl PostgresSslMode {
    /// Whether the server's certificate is checked against a CA (then one is required).
    pub fn verifies(self) -> bool {
        matches!(
            self,
            PostgresSslMode::VerifyCa | PostgresSslMode::VerifyFull
        )
    }

    /// The libpq spelling, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            PostgresSslMode::Disable => "disable",
            PostgresSslMode::Prefer => "prefer",
            PostgresSslMode::Require => "require",
            PostgresSslMode::VerifyCa => "verify-ca",
            PostgresSslMode::VerifyFull => "verify-full",
        }
    }
}

/// TLS to PostgreSQL. Invariant (kept by the loader): `root_cert` is set exactly when
/// `mode` verifies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PostgresTls {
    pub mode: PostgresSslMode,
    /// PEM file of the CA certificate(s) the server's certificate must chain to.
    pub root_cert: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    pub data_dir: PathBuf,
    pub raw_retention: Duration,
    pub rollup_retention: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestLimits {
    pub max_body_bytes: u64,
    pub max_decompressed_bytes: u64,
    pub max_measurements_per_batch: usize,
    /// Batches per second per agent (token bucket refill).
    pub max_batches_per_second: f64,
    pub max_clock_skew: Duration,
    pub clock_skew_policy: SkewPolicy,
    /// Measurements and gaps older than this (before the collector's clock) are refused.
    pub max_backfill_age: Duration,
    /// Distinct check ids one agent may have; a batch adding more is refused.
    pub max_checks_per_agent: usize,
    /// Which check ids an agent may report.
    pub checks: AcceptChecks,
    /// Request bodies being read at once, summed over all connections; beyond it 503.
    pub max_inflight_body_bytes: u64,
    /// What a signed batch from an agent without a configured `public_key` does.
    pub trust_new_agent_keys: TrustNewKeys,
}

/// `[ingest] trust_new_agent_keys`: whether the collector pins an agent's key on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustNewKeys {
    /// The first signed batch of an agent without a configured key pins its key (default);
    /// `attest-collector agents` shows the pinned key until it is configured.
    FirstUse,
    /// Signed batches of an agent without a configured key are refused (403).
    Never,
}

/// `[ingest] checks`: which check ids are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptChecks {
    /// Any id that passes the id rule (default).
    Any,
    /// Only ids some `[[service]]` lists (resolved at load time).
    Known(std::collections::BTreeSet<String>),
}

impl AcceptChecks {
    pub fn accepts(&self, check: &str) -> bool {
        match self {
            AcceptChecks::Any => true,
            AcceptChecks::Known(ids) => ids.contains(check),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkewPolicy {
    /// Store as sent, flag the agent (metric).
    Flag,
    /// Shift timestamps by the measured offset.
    Correct,
    /// Refuse the batch with 400.
    Reject,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentAuth {
    pub id: String,
    pub token: String,
    /// Free-form labels (`site = "ams"`) that `[[assign]] match` selects on.
    pub labels: BTreeMap<String, String>,
    /// The agent's batch signing key (`public_key = "ed25519:…"`): only batches it signed
    /// are accepted. `None`: `[ingest] trust_new_agent_keys` decides.
    pub public_key: Option<crate::evidence::keys::PublicKey>,
}

/// A bearer token with the name of who holds it: the name is what logs and records show
/// (a maintenance window's registrant), never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedToken {
    /// Who holds it (a dashboard, an auditor, a person, a change system).
    pub name: String,
    pub token: String,
}

/// A read-only token (`[[reader]]`): it may GET the read routes and nothing else.
pub type ReaderAuth = NamedToken;

/// An admin token (`[[admin]]`, or `[server] admin_token` under the name
/// [`ADMIN_TOKEN_NAME`]): it may register and cancel maintenance windows and add report
/// notes; what it does is recorded under its name.
pub type AdminAuth = NamedToken;

/// The name under which what `[server] admin_token` does is recorded.
pub const ADMIN_TOKEN_NAME: &str = "admin";

/// `[maintenance]`: rules for windows registered through the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// How long after its start a window may still be registered. A window registered later
    /// would rewrite figures already reported as bad minutes; refusing it keeps the
    /// register an honest record. Windows registered after their start within this bound
    /// are accepted and marked "registered after the fact" in reports.
    pub max_retroactive: Duration,
}

/// A check defined in collector.toml. `source` is the check's own `[[check]]` table as
/// TOML text: that text (not a Rust value) is what an agent receives and validates with the
/// same loader as its own file, so both sides agree on every key.
#[derive(Debug, Clone, PartialEq)]
pub struct CentralCheck {
    pub check: Check,
    pub source: String,
}

/// `[[assign]]`: the checks go to every agent named in `agents` and to every agent whose
/// labels contain all of `labels` (`match`). At least one of the two selectors is set.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignRule {
    pub agents: Vec<String>,
    /// `match = { role = "web" }`; empty = no label selector.
    pub labels: BTreeMap<String, String>,
    pub checks: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    Any,
    Majority,
    All,
    AtLeast(u32),
}

/// A weekly window in local wall-clock time of the service's zone: `[start, end)` on
/// each listed day. `end` of `00:00` means midnight at the end of the day.
#[derive(Debug, Clone, PartialEq)]
pub struct WeeklyWindow {
    pub days: Vec<Weekday>,
    pub start: Time,
    /// `None` = end of day (24:00).
    pub end: Option<Time>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MaintenanceWindow {
    /// One-off, `[start, end)` in UTC.
    Once {
        start: Timestamp,
        end: Timestamp,
        reason: String,
    },
    /// Recurring weekly, in the service's zone.
    Weekly {
        window: WeeklyWindow,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LatencyObjective {
    pub threshold: Duration,
    pub target: Ppm,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    /// Ids of the checks (as sent by agents) that measure this service.
    pub checks: Vec<String>,
    pub target: Ppm,
    /// IANA zone name, validated.
    pub time_zone: String,
    pub quorum: Quorum,
    pub min_reporters: u32,
    pub min_coverage: Option<Ppm>,
    /// Empty = 24x7.
    pub service_hours: Vec<WeeklyWindow>,
    pub holidays: Vec<Date>,
    pub maintenance: Vec<MaintenanceWindow>,
    pub latency: Option<LatencyObjective>,
    /// Minutes before this instant are not eligible (the service did not exist yet).
    pub start: Option<Timestamp>,
    /// Agent ids whose host values the capacity objectives judge; empty = the agents that
    /// measure the service's checks.
    pub hosts: Vec<String>,
    /// Agreed capacity levels, each judged per month.
    pub capacity: Vec<CapacityObjective>,
    /// Who and what the agreement is about, printed in reports (no effect on figures).
    pub info: ServiceInfo,
}

/// The optional `[[service]]` keys that name the agreement's parties for the report's
/// reader: an auditor needs to know whose service it is and under which contract.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceInfo {
    /// What the service is, in a sentence.
    pub description: Option<String>,
    /// The service owner (a person or team) accountable for the service level.
    pub owner: Option<String>,
    /// The customer the service level is agreed with.
    pub customer: Option<String>,
    /// The agreement's reference (contract or SLA document number).
    pub agreement: Option<String>,
}

/// Resource kinds a capacity objective may name (the utilisation series of the engine).
pub const CAPACITY_KINDS: &[&str] = &["cpu", "memory", "swap", "filesystem", "network"];

/// One agreed capacity level of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityObjective {
    /// Unique within the service; the `objective` label of its metrics.
    pub name: String,
    /// One of [`CAPACITY_KINDS`].
    pub kind: String,
    /// Mount point or interface; `None` = every resource of the kind on each host.
    pub resource: Option<String>,
    pub rule: CapacityRule,
    /// Count only minutes in the service's hours (and not on its holidays).
    pub only_service_hours: bool,
    /// Leave out minutes in the service's maintenance windows (config and API).
    pub exclude_maintenance: bool,
    /// Overrides `[capacity] min_coverage` for this objective.
    pub min_coverage: Option<Ppm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityStatistic {
    /// Nearest-rank 95th percentile of the minute averages.
    P95,
    /// Highest minute peak.
    Max,
    /// Mean of the minute averages.
    Average,
}

impl CapacityStatistic {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityStatistic::P95 => "p95",
            CapacityStatistic::Max => "max",
            CapacityStatistic::Average => "average",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityRule {
    /// The statistic of utilisation over the month is at most `max`.
    Level {
        statistic: CapacityStatistic,
        max: Ppm,
    },
    /// At most `max_minutes` minutes with an average above `threshold`.
    MinutesAbove { threshold: Ppm, max_minutes: u64 },
    /// The trend over `trend_lookback` reaches `threshold` no sooner than `min_days`
    /// after the end of the evaluated span.
    DaysToThreshold { threshold: Ppm, min_days: u32 },
}

impl CapacityRule {
    /// The `statistic` word of the configuration.
    pub fn statistic(&self) -> &'static str {
        match self {
            CapacityRule::Level { statistic, .. } => statistic.as_str(),
            CapacityRule::MinutesAbove { .. } => "minutes_above",
            CapacityRule::DaysToThreshold { .. } => "days_to_threshold",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CapacityConfig {
    pub warning: Ppm,
    pub critical: Ppm,
    pub trend_lookback: Duration,
    pub forecast_horizon: Duration,
    /// Default share of counted minutes each host must have reported for a capacity
    /// objective to be decided.
    pub min_coverage: Ppm,
}
