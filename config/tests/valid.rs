//! Valid files load into exactly the values they state, and omitted keys take the
//! documented defaults.

use std::path::Path;
use std::time::Duration;

use attest_config::load::{
    DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_RAW_RETENTION, DEFAULT_ROLLUP_RETENTION,
};
use attest_config::units::Ppm;
use attest_config::*;

fn testdata(name: &str) -> std::path::PathBuf {
    std::path::absolute(Path::new("testdata/valid").join(name)).expect("cwd is known")
}

/// An agent with only `[agent]` runs what the collector assigns; its summary says so
/// instead of "0 checks".
#[test]
fn central_only_agent_summary_says_where_its_checks_come_from() {
    let src = "[agent]\nid = \"a\"\ncollector_url = \"http://127.0.0.1:9850\"\ntoken = \"t\"\n";
    let cfg = parse_agent("/etc/attest/agent.toml", src).expect("valid");
    assert!(cfg.checks.is_empty());
    assert_eq!(
        summary_agent(&cfg),
        "agent \"a\": no own checks (runs the checks the collector assigns) → http://127.0.0.1:9850, spool /etc/attest/spool (256 MiB)"
    );
}

#[test]
fn minimal_agent_gets_documented_defaults() {
    let src = "[agent]\nid = \"a\"\ncollector_url = \"http://127.0.0.1:9850\"\ntoken = \"t\"\n\n[[check]]\nid = \"c\"\nkind = \"tcp\"\naddress = \"127.0.0.1:22\"\n";
    let cfg = parse_agent("/etc/attest/agent.toml", src).expect("valid");
    assert_eq!(cfg.agent.listen, None);
    assert_eq!(cfg.agent.max_concurrency, 64);
    assert_eq!(cfg.spool.dir, Path::new("/etc/attest/spool"));
    assert_eq!(cfg.spool.max_bytes, 256 << 20);
    assert_eq!(cfg.spool.when_full, WhenFull::DropOldest);
    assert_eq!(cfg.transport.batch_max_measurements, 1000);
    assert_eq!(cfg.transport.batch_max_age, Duration::from_secs(1));
    assert_eq!(cfg.transport.request_timeout, Duration::from_secs(10));
    assert_eq!(cfg.transport.backoff_initial, Duration::from_secs(1));
    assert_eq!(cfg.transport.backoff_max, Duration::from_secs(60));
    assert_eq!(cfg.transport.failback_after, Duration::from_secs(60));
    assert_eq!(cfg.agent.collector_urls, ["http://127.0.0.1:9850"]);
    assert_eq!(cfg.checks[0].interval, Duration::from_secs(30));
    assert_eq!(cfg.checks[0].timeout, Duration::from_secs(10));
    let CheckSpec::Tcp(tcp) = &cfg.checks[0].spec else {
        panic!("not tcp")
    };
    assert_eq!(tcp.tls, None);
    assert!(tcp.steps.is_empty());
}

#[test]
fn default_timeout_stays_below_short_intervals() {
    assert_eq!(
        load::default_timeout(Duration::from_secs(5)),
        Duration::from_secs(4)
    );
    assert_eq!(
        load::default_timeout(Duration::from_secs(60)),
        Duration::from_secs(10)
    );
}

#[test]
fn empty_collector_file_gets_documented_defaults() {
    let cfg = parse_collector("/etc/attest/collector.toml", "").expect("valid");
    assert_eq!(cfg.server.listen, DEFAULT_LISTEN);
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:9850");
    assert_eq!(cfg.storage.backend, StorageBackend::Sqlite);
    assert_eq!(
        cfg.storage.data_dir,
        Path::new("/etc/attest").join(DEFAULT_DATA_DIR)
    );
    assert_eq!(cfg.storage.raw_retention, DEFAULT_RAW_RETENTION);
    assert_eq!(cfg.storage.rollup_retention, DEFAULT_ROLLUP_RETENTION);
    assert_eq!(cfg.storage.raw_retention, Duration::from_secs(35 * 86_400));
    assert_eq!(cfg.ingest.max_body_bytes, 8 << 20);
    assert_eq!(cfg.ingest.max_decompressed_bytes, 64 << 20);
    assert_eq!(cfg.ingest.max_measurements_per_batch, 10_000);
    assert_eq!(cfg.ingest.max_batches_per_second, 50.0);
    assert_eq!(cfg.ingest.max_clock_skew, Duration::from_secs(30));
    assert_eq!(cfg.ingest.clock_skew_policy, SkewPolicy::Flag);
    assert_eq!(
        cfg.ingest.max_backfill_age,
        Duration::from_secs(35 * 86_400)
    );
    assert_eq!(cfg.ingest.max_checks_per_agent, 1000);
    assert_eq!(cfg.ingest.checks, AcceptChecks::Any);
    assert_eq!(cfg.ingest.max_inflight_body_bytes, 64 << 20);
    assert_eq!(cfg.server.max_connections, 1024);
    assert_eq!(cfg.server.header_read_timeout, Duration::from_secs(30));
    assert_eq!(cfg.server.body_read_timeout, Duration::from_secs(60));
    assert_eq!(cfg.server.idle_timeout, Duration::from_secs(60));
    assert_eq!(cfg.server.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(cfg.capacity.warning, Ppm(800_000));
    assert_eq!(cfg.capacity.critical, Ppm(900_000));
    assert_eq!(cfg.capacity.trend_lookback, Duration::from_secs(7 * 86_400));
    assert_eq!(
        cfg.capacity.forecast_horizon,
        Duration::from_secs(90 * 86_400)
    );
    assert!(cfg.agents.is_empty() && cfg.services.is_empty());
    assert!(cfg.admins.is_empty(), "no admin API unless a token is set");
    assert_eq!(cfg.maintenance.max_retroactive, Duration::from_secs(86_400));
}

/// Named admins in file order, then `[server] admin_token` as "admin"; a zero
/// `max_retroactive` is allowed (no window may start before its registration).
#[test]
fn admins_are_named_and_the_server_token_is_admin() {
    let src = "[server]\nadmin_token = \"s\"\n\n[[admin]]\nname = \"alice\"\ntoken = \"a\"\n\n[[admin]]\nname = \"change-bot\"\ntoken = \"c\"\n\n[maintenance]\nmax_retroactive = \"0s\"\n";
    let cfg = parse_collector("/etc/attest/collector.toml", src).expect("valid");
    let admins: Vec<(&str, &str)> = cfg
        .admins
        .iter()
        .map(|a| (a.name.as_str(), a.token.as_str()))
        .collect();
    assert_eq!(
        admins,
        [("alice", "a"), ("change-bot", "c"), (ADMIN_TOKEN_NAME, "s")]
    );
    assert_eq!(cfg.maintenance.max_retroactive, Duration::ZERO);
}

#[test]
fn service_defaults() {
    let src = "[[service]]\nname = \"web\"\nchecks = [\"c\"]\ntarget = \"99.9%\"\n";
    let cfg = parse_collector("collector.toml", src).expect("valid");
    let s = &cfg.services[0];
    assert_eq!(s.target, Ppm(999_000));
    assert_eq!(s.time_zone, "UTC");
    assert_eq!(s.quorum, Quorum::Majority);
    assert_eq!(s.min_reporters, 1);
    assert_eq!(s.min_coverage, None);
    assert!(s.service_hours.is_empty() && s.holidays.is_empty() && s.maintenance.is_empty());
    assert_eq!(s.latency, None);
    assert_eq!(s.start, None);
}

#[test]
fn agent_with_every_key_loads_as_written() {
    let cfg = load_agent(&testdata("agent-all-kinds.toml")).unwrap_or_else(|e| panic!("{e}"));
    let dir = testdata("");
    assert_eq!(cfg.agent.token, "s3cr3t-from-file");
    assert_eq!(
        cfg.agent.listen.map(|a| a.to_string()).as_deref(),
        Some("[::1]:9851")
    );
    assert_eq!(cfg.spool.dir, Path::new("/var/lib/attest/spool"));
    assert_eq!(cfg.spool.max_bytes, 1 << 20);
    assert_eq!(cfg.transport.ca_file, Some(dir.join("certs/ca.pem")));
    assert_eq!(cfg.transport.backoff_initial, Duration::from_millis(500));
    let [http, tcp, dns, icmp, tls, host] = &cfg.checks[..] else {
        panic!("six checks expected, got {}", cfg.checks.len())
    };
    let CheckSpec::Http(h) = &http.spec else {
        panic!("http")
    };
    assert_eq!(h.method, "POST");
    assert_eq!(
        h.expect_status,
        [
            StatusRange { lo: 200, hi: 200 },
            StatusRange { lo: 300, hi: 399 },
            StatusRange { lo: 401, hi: 403 }
        ]
    );
    assert_eq!(h.headers.get("X-Probe").map(String::as_str), Some("attest"));
    assert_eq!(h.header_match.len(), 1);
    assert!(!h.follow_redirects && !h.tls.verify);
    assert_eq!(h.tls.server_name.as_deref(), Some("shop.internal"));
    assert_eq!(h.ip_family, IpFamily::Ipv6);
    assert_eq!(h.max_body_bytes, 64 << 10);
    let CheckSpec::Tcp(t) = &tcp.spec else {
        panic!("tcp")
    };
    assert_eq!(t.tls, Some(TlsClientOptions::default()));
    assert_eq!(
        t.steps,
        [
            TcpStep::Send("PING\r\n".into()),
            TcpStep::Expect("^\\+PONG".into())
        ]
    );
    let CheckSpec::Dns(d) = &dns.spec else {
        panic!("dns")
    };
    assert_eq!(
        (d.server.as_str(), d.record_type.as_str()),
        ("192.0.2.53:53", "MX")
    );
    assert_eq!(
        (d.transport, d.expect_authoritative),
        (DnsTransport::Tcp, Some(true))
    );
    let CheckSpec::Icmp(i) = &icmp.spec else {
        panic!("icmp")
    };
    assert_eq!(i.count, 3);
    let CheckSpec::Tls(c) = &tls.spec else {
        panic!("tls")
    };
    assert_eq!(c.min_days_left, 21);
    let CheckSpec::Host(hc) = &host.spec else {
        panic!("host")
    };
    assert!(!hc.load && !hc.network && hc.cpu);
    assert_eq!(hc.thresholds.get("memory_utilization_ratio"), Some(&1.0));
    assert_eq!(host.timeout, Duration::from_secs(10));
    assert_eq!(
        summary_agent(&cfg),
        "agent \"web-01\": 6 checks (http 1, tcp 1, dns 1, icmp 1, tls 1, host 1) → https://collector.example:9850, spool /var/lib/attest/spool (1 MiB)"
    );
}

#[test]
fn collector_with_postgres_and_tls_loads_as_written() {
    let cfg =
        load_collector(&testdata("collector-postgres.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.storage.backend,
        StorageBackend::Postgres {
            url: "postgres://attest@db.example:5432/attest".into(),
            tls: PostgresTls {
                mode: PostgresSslMode::VerifyFull,
                root_cert: Some(testdata("certs/db-ca.pem")),
            },
        }
    );
    assert_eq!(cfg.server.admin_token.as_deref(), Some("s3cr3t-from-file"));
    assert_eq!(cfg.server.client_ca, Some(testdata("certs/ca.pem")));
    assert_eq!(cfg.ingest.max_batches_per_second, 2.5);
    assert_eq!(cfg.ingest.clock_skew_policy, SkewPolicy::Correct);
    assert_eq!(cfg.agents[0].token, "s3cr3t-from-file");
    let s = &cfg.services[0];
    assert_eq!((s.quorum, s.min_reporters), (Quorum::All, 2));
    assert_eq!(s.service_hours[0].end, None);
    assert_eq!(s.service_hours[0].days.len(), 2);
    assert_eq!(s.start.map(jiff::Timestamp::as_second), Some(1_777_593_600));
    assert_eq!(
        summary_collector(&cfg),
        "collector on 0.0.0.0:9850 with TLS (postgres, raw 60d, rollups 2000d): 2 agents, 1 service (Shop (EU) 99.95%)"
    );
}

#[test]
fn report_section_defaults_and_values() {
    let base = "[[agent]]\nid = \"a\"\ntoken = \"t\"\n";
    let cfg = parse_collector("/etc/attest/collector.toml", base).expect("valid");
    assert_eq!(cfg.report.organisation, "");
    assert_eq!(cfg.report.title, "Monthly availability report");
    assert_eq!(cfg.report.signing_key_file, None);
    assert_eq!(cfg.report.archive_dir, None);
    assert_eq!(cfg.report.grace, Duration::from_secs(3 * 86_400));
    let src = format!(
        "{base}[report]\norganisation = \"Example Org\"\ntitle = \"SLA\"\nsigning_key_file = \"keys/report.key\"\narchive_dir = \"archive\"\ngrace = \"12h\"\ntemplates_dir = \"tpl\"\n"
    );
    let cfg = parse_collector("/etc/attest/collector.toml", &src).expect("valid");
    assert_eq!(cfg.report.organisation, "Example Org");
    assert_eq!(cfg.report.title, "SLA");
    assert_eq!(
        cfg.report.signing_key_file.as_deref(),
        Some(Path::new("/etc/attest/keys/report.key"))
    );
    assert_eq!(
        cfg.report.archive_dir.as_deref(),
        Some(Path::new("/etc/attest/archive"))
    );
    assert_eq!(cfg.report.grace, Duration::from_secs(12 * 3_600));
    assert_eq!(
        cfg.report.templates_dir.as_deref(),
        Some(Path::new("/etc/attest/tpl"))
    );
    let err = parse_collector(
        "/etc/attest/collector.toml",
        &format!("{base}[report]\narchive = \"x\"\n"),
    )
    .expect_err("unknown key");
    assert!(err.to_string().contains("archive"), "{err}");
}

#[test]
fn capacity_objectives_load_with_default_names_and_coverage() {
    let src = r#"
[capacity]
forecast_horizon = "60d"

[[agent]]
id = "web-01"
token = "token-web-01-0123456789"

[[service]]
name = "web"
checks = ["web-home"]
target = "99.9%"
hosts = ["web-01"]
capacity = [
  { kind = "cpu", statistic = "p95", max = "70%", only_service_hours = true },
  { kind = "filesystem", resource = "/var", statistic = "max", max = "90%" },
  { kind = "memory", statistic = "minutes_above", threshold = "85%", max_minutes = 60, exclude_maintenance = true },
  { name = "var fills", kind = "filesystem", resource = "/var", statistic = "days_to_threshold", threshold = "95%", min_days = 30, min_coverage = "50%" },
]
"#;
    let cfg = parse_collector("/etc/attest/collector.toml", src).expect("valid");
    assert_eq!(cfg.capacity.min_coverage, Ppm(900_000));
    let svc = &cfg.services[0];
    assert_eq!(svc.hosts, ["web-01"]);
    let names: Vec<&str> = svc.capacity.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cpu:p95",
            "filesystem[/var]:max",
            "memory:minutes_above",
            "var fills"
        ]
    );
    assert_eq!(
        svc.capacity[0].rule,
        CapacityRule::Level {
            statistic: CapacityStatistic::P95,
            max: Ppm(700_000)
        }
    );
    assert!(svc.capacity[0].only_service_hours && !svc.capacity[0].exclude_maintenance);
    assert_eq!(svc.capacity[1].resource.as_deref(), Some("/var"));
    assert_eq!(
        svc.capacity[2].rule,
        CapacityRule::MinutesAbove {
            threshold: Ppm(850_000),
            max_minutes: 60
        }
    );
    assert!(svc.capacity[2].exclude_maintenance);
    assert_eq!(
        svc.capacity[3].rule,
        CapacityRule::DaysToThreshold {
            threshold: Ppm(950_000),
            min_days: 30
        }
    );
    assert_eq!(svc.capacity[3].min_coverage, Some(Ppm(500_000)));
}

/// `hosts_match` adds the agents whose labels contain the selector, after the listed ids,
/// each once, in the file's agent order.
#[test]
fn hosts_match_resolves_labels_to_agent_ids() {
    let src = r#"
[[agent]]
id = "db-01"
token = "token-db-01-0123456789"
labels = { role = "db", site = "ams" }

[[agent]]
id = "web-02"
token = "token-web-02-0123456789"
labels = { role = "web", site = "fra" }

[[agent]]
id = "web-01"
token = "token-web-01-0123456789"
labels = { role = "web", site = "ams" }

[[service]]
name = "web"
checks = ["web-home"]
target = "99.9%"
hosts = ["web-01"]
hosts_match = { role = "web" }

[[service]]
name = "ams"
checks = ["web-home"]
target = "99.9%"
hosts_match = { site = "ams", role = "db" }
"#;
    let cfg = parse_collector("/etc/attest/collector.toml", src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.services[0].hosts, ["web-01", "web-02"]);
    assert_eq!(cfg.services[1].hosts, ["db-01"]);
}

/// `description`, `owner`, `customer` and `agreement` load trimmed; omitted ones are `None`.
#[test]
fn service_info_keys_load_and_default_to_none() {
    let src = r#"
[[service]]
name = "web"
checks = ["web-home"]
target = "99.9%"
description = "Customer-facing web shop "
owner = "Web team (J. Doe)"
customer = "Example Retail GmbH"
agreement = "SLA-2026-014"

[[service]]
name = "erp"
checks = ["erp-home"]
target = "99.5%"
"#;
    let cfg = parse_collector("/etc/attest/collector.toml", src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.services[0].info,
        ServiceInfo {
            description: Some("Customer-facing web shop".into()),
            owner: Some("Web team (J. Doe)".into()),
            customer: Some("Example Retail GmbH".into()),
            agreement: Some("SLA-2026-014".into()),
        }
    );
    assert_eq!(cfg.services[1].info, ServiceInfo::default());
}

/// The sign-off keys of `[report]` load; omitted, they are empty.
#[test]
fn report_sign_off_keys_load_and_default_to_empty() {
    let src = r#"
[report]
prepared_by = "Service level manager"
approved_by = "Head of IT operations"
distribution = ["Customer", "Service owner"]
"#;
    let cfg = parse_collector("/etc/attest/collector.toml", src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.report.prepared_by.as_deref(),
        Some("Service level manager")
    );
    assert_eq!(
        cfg.report.approved_by.as_deref(),
        Some("Head of IT operations")
    );
    assert_eq!(cfg.report.distribution, ["Customer", "Service owner"]);
    let bare = parse_collector("/etc/attest/collector.toml", "").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (bare.report.prepared_by, bare.report.approved_by),
        (None, None)
    );
    assert!(bare.report.distribution.is_empty());
}

#[test]
fn host_network_speeds_are_bytes_per_second() {
    let src = "[agent]\nid = \"a\"\ncollector_url = \"http://127.0.0.1:9850\"\ntoken = \"t\"\n\n[[check]]\nid = \"h\"\nkind = \"host\"\nnetwork_speed = { eth0 = \"1Gbit/s\", ens3 = \"2.5Gbit/s\", wg0 = \"100Mbit/s\" }\n";
    let cfg = parse_agent("/etc/attest/agent.toml", src).expect("valid");
    let CheckSpec::Host(h) = &cfg.checks[0].spec else {
        panic!("not host")
    };
    let speeds: Vec<(&str, u64)> = h
        .network_speeds
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        speeds,
        [
            ("ens3", 312_500_000),
            ("eth0", 125_000_000),
            ("wg0", 12_500_000)
        ]
    );
}

#[test]
fn hostile_input_limits_load_as_written() {
    let src = r#"
[server]
max_connections = 40
header_read_timeout = "5s"
body_read_timeout = "10s"
idle_timeout = "15s"
shutdown_timeout = "3s"

[ingest]
max_backfill_age = "3d"
max_checks_per_agent = 12
checks = "known"
max_inflight_body_bytes = "16MiB"

[[service]]
name = "web"
checks = ["shop-home", "shop-api"]
target = "99.9%"

[[service]]
name = "api"
checks = ["shop-api", "dns"]
target = "99%"
"#;
    let cfg = parse_collector("/etc/attest/collector.toml", src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.server.max_connections, 40);
    assert_eq!(cfg.server.header_read_timeout, Duration::from_secs(5));
    assert_eq!(cfg.server.body_read_timeout, Duration::from_secs(10));
    assert_eq!(cfg.server.idle_timeout, Duration::from_secs(15));
    assert_eq!(cfg.server.shutdown_timeout, Duration::from_secs(3));
    assert_eq!(cfg.ingest.max_backfill_age, Duration::from_secs(3 * 86_400));
    assert_eq!(cfg.ingest.max_checks_per_agent, 12);
    assert_eq!(cfg.ingest.max_inflight_body_bytes, 16 << 20);
    let AcceptChecks::Known(ids) = &cfg.ingest.checks else {
        panic!("checks = \"known\" expected, got {:?}", cfg.ingest.checks)
    };
    assert_eq!(
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        ["dns", "shop-api", "shop-home"]
    );
    assert!(cfg.ingest.checks.accepts("dns") && !cfg.ingest.checks.accepts("../../etc/passwd"));
}

#[test]
fn several_collectors_load_in_order_of_preference() {
    let src = r#"
[agent]
id = "web-01"
collector_urls = ["https://a.example:9850", "https://b.example:9850/", "http://c:9850"]
token = "t"

[transport]
failback_after = "2m"
"#;
    let cfg = parse_agent("/etc/attest/agent.toml", src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.agent.collector_urls,
        [
            "https://a.example:9850",
            "https://b.example:9850/",
            "http://c:9850"
        ]
    );
    assert_eq!(cfg.transport.failback_after, Duration::from_secs(120));
    assert!(
        summary_agent(&cfg)
            .contains("→ https://a.example:9850 (failover https://b.example:9850/, http://c:9850)"),
        "{}",
        summary_agent(&cfg)
    );
}

#[test]
fn agent_target_networks_load_and_decide() {
    let src = r#"
[agent]
id = "web-01"
collector_url = "http://127.0.0.1:9850"
token = "t"
allow_targets = ["10.0.0.0/8", "2001:db8::/32"]
deny_targets = ["10.9.0.0/16", "169.254.169.254"]
"#;
    let cfg = parse_agent("/etc/attest/agent.toml", src).unwrap_or_else(|e| panic!("{e}"));
    let a = &cfg.agent;
    assert_eq!(a.allow_targets.len(), 2);
    assert_eq!(a.deny_targets[1].to_string(), "169.254.169.254/32");
    let ip = |s: &str| s.parse().unwrap();
    assert!(a.target_allowed(ip("10.1.2.3")));
    assert!(a.target_allowed(ip("2001:db8::5")));
    assert!(!a.target_allowed(ip("10.9.1.1")), "deny wins over allow");
    assert!(!a.target_allowed(ip("169.254.169.254")));
    assert!(
        !a.target_allowed(ip("192.0.2.1")),
        "outside every allowed network"
    );
    let open = parse_agent(
        "/etc/attest/agent.toml",
        &src.replace("allow_targets", "# allow"),
    )
    .unwrap();
    assert!(
        open.agent.target_allowed(ip("192.0.2.1")),
        "no allow list: any address not denied"
    );
}

#[test]
fn status_section_defaults_and_values() {
    let base = "[[service]]\nname = \"web\"\nchecks = [\"c\"]\ntarget = \"99.9%\"\n\
                [[service]]\nname = \"shop api\"\nchecks = [\"d\"]\ntarget = \"99%\"\n";
    let cfg = parse_collector("collector.toml", base).expect("valid");
    assert_eq!(cfg.status, attest_config::StatusConfig::default());
    assert!(!cfg.status.public && cfg.status.services.is_empty());
    let src = format!("{base}[status]\npublic = true\nservices = [\"shop api\", \"web\"]\n");
    let cfg = parse_collector("collector.toml", &src).expect("valid");
    assert!(cfg.status.public);
    assert_eq!(
        cfg.status.services,
        ["shop api", "web"],
        "in the order given"
    );
    let src = format!("{base}[status]\npublic = false\n");
    assert!(
        !parse_collector("collector.toml", &src)
            .expect("valid")
            .status
            .public
    );
}
