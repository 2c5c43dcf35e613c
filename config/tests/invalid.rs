//! One invalid file per validation rule under `testdata/`, each with the exact messages
//! it must produce (file, line, column, key path, expectation and what was found).
//! A change of wording or position is a user-visible change and fails here.

use std::path::Path;

use attest_config::{ConfigErrors, EXIT_CONFIG_INVALID, load_agent, load_collector, parse_agent};

/// `(file, expected messages)`; `{dir}` stands for the absolute testdata directory.
const CASES: &[(&str, &[&str])] = &[
    (
        "agent-backoff-order.toml",
        &[
            "testdata/agent-backoff-order.toml:7:19: error: transport.backoff_initial: expected at most backoff_max (30s), found \"2m\"",
        ],
    ),
    (
        "agent-bad-duration.toml",
        &[
            "testdata/agent-bad-duration.toml:10:12: error: check[0].interval: expected a positive duration like \"10s\", \"5m\" or \"1h30m\", found \"10 parsecs\"",
        ],
    ),
    (
        "agent-bad-id.toml",
        &[
            "testdata/agent-bad-id.toml:2:6: error: agent.id: expected an id of letters, digits and - _ . : / (at most 128 characters, starting with a letter or digit, no \"..\" or empty path segment), like \"web-01\", found \"web 01\"",
        ],
    ),
    (
        "agent-bad-listen.toml",
        &[
            "testdata/agent-bad-listen.toml:5:10: error: agent.listen: expected an IP address and port like \"127.0.0.1:9850\" or \"[::1]:9850\", found \"localhost:9851\"",
        ],
    ),
    (
        "agent-bad-size.toml",
        &[
            "testdata/agent-bad-size.toml:7:13: error: spool.max_bytes: expected a positive size like \"64MiB\" or \"1GiB\", found \"lots\"",
        ],
    ),
    (
        "agent-bad-targets.toml",
        &[
            "testdata/agent-bad-targets.toml:5:32: error: agent.allow_targets[1]: expected a network in CIDR form like \"10.0.0.0/8\" or \"2001:db8::/32\" with the host bits zero (\"10.1.2.3/8\" has bits set past the prefix), found \"10.1.2.3/8\"",
            "testdata/agent-bad-targets.toml:5:46: error: agent.allow_targets[2]: expected a network in CIDR form like \"10.0.0.0/8\" or \"2001:db8::/32\" (prefix length at most 128), found \"2001:db8::/129\"",
            "testdata/agent-bad-targets.toml:6:16: error: agent.deny_targets: expected an array of networks like [\"10.0.0.0/8\", \"2001:db8::/32\"], found \"169.254.0.0/16\"",
        ],
    ),
    (
        "agent-bad-url.toml",
        &[
            "testdata/agent-bad-url.toml:3:17: error: agent.collector_url: expected an http:// or https:// URL like \"https://collector.example:9850\", found \"ftp://collector.example\"",
        ],
    ),
    (
        "agent-collector-missing.toml",
        &[
            "testdata/agent-collector-missing.toml:1:1: error: agent: missing key \"collector_url\" in [agent] (or \"collector_urls\": the collector's base URL like \"https://collector:9850\")",
        ],
    ),
    (
        "agent-collector-urls-bad.toml",
        &[
            "testdata/agent-collector-urls-bad.toml:3:45: error: agent.collector_urls[1]: expected an http:// or https:// URL like \"https://collector.example:9850\", found \"b.example:9850\"",
            "testdata/agent-collector-urls-bad.toml:3:63: error: agent.collector_urls[2]: expected a URL not listed already (agent.collector_urls[0] is the same), found \"https://a.example:9850/\"",
            "testdata/agent-collector-urls-bad.toml:3:90: error: agent.collector_urls[3]: expected an http:// or https:// URL like \"https://collector.example:9850\", found integer 7",
        ],
    ),
    (
        "agent-collector-urls-both.toml",
        &[
            "testdata/agent-collector-urls-both.toml:4:1: error: agent: set either \"collector_url\" or \"collector_urls\", not both",
        ],
    ),
    (
        "agent-collector-urls-empty.toml",
        &[
            "testdata/agent-collector-urls-empty.toml:3:18: error: agent.collector_urls: expected a non-empty array of URLs like [\"https://a:9850\", \"https://b:9850\"], found an empty array",
        ],
    ),
    (
        "agent-failback-zero.toml",
        &[
            "testdata/agent-failback-zero.toml:7:18: error: transport.failback_after: expected a positive duration like \"10s\", \"5m\" or \"1h30m\", found \"0s\"",
        ],
    ),
    (
        "agent-bad-when-full.toml",
        &[
            "testdata/agent-bad-when-full.toml:7:13: error: spool.when_full: expected one of \"drop_oldest\", \"drop_newest\", found \"block\"",
        ],
    ),
    (
        "agent-client-cert-without-key.toml",
        &[
            "testdata/agent-client-cert-without-key.toml:6:1: error: transport: missing key \"client_key\" in [transport] (\"client_cert\" needs \"client_key\")",
        ],
    ),
    (
        "agent-dns-bad-record-type.toml",
        &[
            "testdata/agent-dns-bad-record-type.toml:11:15: error: check[0].record_type: expected one of \"A\", \"AAAA\", \"CNAME\", \"MX\", \"NS\", \"PTR\", \"SOA\", \"SRV\", \"TXT\", \"CAA\", found \"ANY\"",
        ],
    ),
    (
        "agent-dns-bad-server.toml",
        &[
            "testdata/agent-dns-bad-server.toml:9:10: error: check[0].server: expected a server IP address, optionally with a port, like \"192.0.2.53\" or \"[::1]:5353\", found \"ns1.example\"",
        ],
    ),
    (
        "agent-duplicate-check-id.toml",
        &[
            "testdata/agent-duplicate-check-id.toml:12:6: error: check[1].id: expected a unique id, found \"c1\" (also used by check[0])",
        ],
    ),
    (
        "agent-host-bad-threshold.toml",
        &[
            "testdata/agent-host-bad-threshold.toml:9:40: error: check[0].thresholds.cpu_utilization_ratio: expected a non-negative number, found integer -1",
        ],
    ),
    (
        "agent-http-bad-method.toml",
        &[
            "testdata/agent-http-bad-method.toml:10:10: error: check[0].method: expected one of \"GET\", \"HEAD\", \"POST\", \"PUT\", \"DELETE\", \"OPTIONS\", \"PATCH\", found \"get\"",
        ],
    ),
    (
        "agent-http-bad-regex.toml",
        &[
            "testdata/agent-http-bad-regex.toml:10:21: error: check[0].body_regex[1]: expected a valid regular expression (Rust regex syntax), found \"(unclosed\"",
        ],
    ),
    (
        "agent-http-bad-status.toml",
        &[
            "testdata/agent-http-bad-status.toml:10:23: error: check[0].expect_status[1]: expected an integer from 100 to 599, found integer 99",
            "testdata/agent-http-bad-status.toml:10:27: error: check[0].expect_status[2]: expected a status code like 200, or a range like \"2xx\" or \"200-399\", found \"6xx\"",
        ],
    ),
    (
        "agent-http-missing-url.toml",
        &[
            "testdata/agent-http-missing-url.toml:6:1: error: check[0]: missing key \"url\" in [[check]] (the URL to request)",
        ],
    ),
    (
        "agent-icmp-bad-count.toml",
        &[
            "testdata/agent-icmp-bad-count.toml:10:9: error: check[0].count: expected an integer from 1 to 100, found integer 0",
        ],
    ),
    (
        "agent-key-of-other-kind.toml",
        &[
            "testdata/agent-key-of-other-kind.toml:10:1: error: check[0]: unknown key \"address\" in [[check]] of kind \"http\" (expected one of: id, kind, interval, timeout, url, method, headers, body, expect_status, body_contains, body_regex, body_not_regex, header_match, follow_redirects, max_redirects, tls, ip_family, max_body_bytes)",
        ],
    ),
    (
        "agent-many-errors.toml",
        &[
            "testdata/agent-many-errors.toml:3:17: error: agent.collector_url: expected an http:// or https:// URL like \"https://collector.example:9850\", found \"collector:9850\"",
            "testdata/agent-many-errors.toml:4:9: error: agent.token: expected a non-empty string, found \"\"",
            "testdata/agent-many-errors.toml:7:13: error: spool.max_bytes: expected a positive size like \"64MiB\" or \"1GiB\", found \"lots\"",
            "testdata/agent-many-errors.toml:13:1: error: check[0]: unknown key \"intervall\" in [[check]] of kind \"tcp\": did you mean \"interval\"? (expected one of: id, kind, interval, timeout, address, tls, steps, ip_family)",
            "testdata/agent-many-errors.toml:19:12: error: check[1].interval: expected a positive duration like \"10s\", \"5m\" or \"1h30m\", found \"10 parsecs\"",
            "testdata/agent-many-errors.toml:22:6: error: check[2].id: expected a unique id, found \"c1\" (also used by check[0])",
        ],
    ),
    (
        "agent-misspelt-transport-key.toml",
        &[
            "testdata/agent-misspelt-transport-key.toml:7:1: error: transport: unknown key \"request_timout\" in [transport]: did you mean \"request_timeout\"? (expected one of: batch_max_measurements, batch_max_age, request_timeout, ca_file, client_cert, client_key, backoff_initial, backoff_max, failback_after)",
        ],
    ),
    (
        "agent-missing-agent.toml",
        &[
            "testdata/agent-missing-agent.toml:1:1: error: missing key \"agent\" in the file (the agent's id, collector_url and token)",
        ],
    ),
    (
        "agent-missing-id.toml",
        &[
            "testdata/agent-missing-id.toml:1:1: error: agent: missing key \"id\" in [agent] (a stable id like \"web-01\")",
        ],
    ),
    (
        "agent-missing-kind.toml",
        &[
            "testdata/agent-missing-kind.toml:6:1: error: check[0]: missing key \"kind\" in [[check]] (one of http, tcp, dns, icmp, tls, host)",
        ],
    ),
    (
        "agent-syntax.toml",
        &[
            "testdata/agent-syntax.toml:8:8: error: invalid TOML: string values must be quoted, expected literal string",
        ],
    ),
    (
        "agent-tcp-bad-address.toml",
        &[
            "testdata/agent-tcp-bad-address.toml:9:11: error: check[0].address: expected an address like \"host:port\", \"192.0.2.1:443\" or \"[2001:db8::1]:443\", found \"db.example\"",
        ],
    ),
    (
        "agent-tcp-bad-step.toml",
        &[
            "testdata/agent-tcp-bad-step.toml:10:10: error: check[0].steps[0]: expected exactly one of \"send\" or \"expect\" in a step, like { send = \"PING\\r\\n\" }",
        ],
    ),
    (
        "agent-timeout-not-below-interval.toml",
        &[
            "testdata/agent-timeout-not-below-interval.toml:11:11: error: check[0].timeout: expected a duration shorter than the interval (10s), found \"10s\"",
        ],
    ),
    (
        "agent-tls-bad-option.toml",
        &[
            "testdata/agent-tls-bad-option.toml:10:18: error: check[0].tls.verify: expected true or false, found \"no\"",
        ],
    ),
    (
        "agent-token-both.toml",
        &[
            "testdata/agent-token-both.toml:5:1: error: agent: set either \"token\" or \"token_file\", not both",
        ],
    ),
    (
        "agent-token-file-empty.toml",
        &[
            "testdata/agent-token-file-empty.toml:4:14: error: agent.token_file: {dir}/empty.token is empty; put the token in it",
        ],
    ),
    (
        "agent-token-file-missing.toml",
        &[
            "testdata/agent-token-file-missing.toml:4:14: error: agent.token_file: cannot read {dir}/no-such.token: No such file or directory (os error 2); check the path (relative paths start at the configuration file's directory) and permissions",
        ],
    ),
    (
        "agent-token-missing.toml",
        &[
            "testdata/agent-token-missing.toml:1:1: error: agent: missing key \"token\" in [agent] (or \"token_file\": the bearer token the collector expects)",
        ],
    ),
    (
        "agent-unknown-key.toml",
        &[
            "testdata/agent-unknown-key.toml:10:1: error: check[0]: unknown key \"intervall\" in [[check]] of kind \"tcp\": did you mean \"interval\"? (expected one of: id, kind, interval, timeout, address, tls, steps, ip_family)",
        ],
    ),
    (
        "agent-unknown-kind.toml",
        &[
            "testdata/agent-unknown-kind.toml:8:8: error: check[0].kind: expected one of \"http\", \"tcp\", \"dns\", \"icmp\", \"tls\", \"host\", found \"smtp\"",
        ],
    ),
    (
        "agent-unknown-section.toml",
        &[
            "testdata/agent-unknown-section.toml:6:2: error: unknown key \"spol\" in the file: did you mean \"spool\"? (expected one of: agent, spool, transport, check)",
        ],
    ),
    (
        "agent-wrong-type.toml",
        &[
            "testdata/agent-wrong-type.toml:5:19: error: agent.max_concurrency: expected an integer from 1 to 100000, found \"many\"",
        ],
    ),
    (
        "agent-zero-interval.toml",
        &[
            "testdata/agent-zero-interval.toml:10:12: error: check[0].interval: expected a positive duration like \"10s\", \"5m\" or \"1h30m\", found \"0s\"",
        ],
    ),
    (
        "collector-agent-misspelt-key.toml",
        &[
            "testdata/collector-agent-misspelt-key.toml:4:1: error: agent[0]: unknown key \"lables\" in [[agent]]: did you mean \"labels\"? (expected one of: id, token, token_file, labels, public_key)",
        ],
    ),
    (
        "collector-agent-bad-key.toml",
        &[
            "testdata/collector-agent-bad-key.toml:2:24: error: ingest.trust_new_agent_keys: expected one of \"first_use\", \"never\", found \"always\"",
            "testdata/collector-agent-bad-key.toml:7:14: error: agent[0].public_key: expected an Ed25519 public key as `attest-agent key show` prints it, `ed25519:` and the base64 of 32 bytes (3 bytes instead of 32), found \"ed25519:AAAA\"",
        ],
    ),
    (
        "collector-agent-no-token.toml",
        &[
            "testdata/collector-agent-no-token.toml:1:1: error: agent[0]: missing key \"token\" in [[agent]] (or \"token_file\": the bearer token this agent sends)",
        ],
    ),
    (
        "collector-bad-days.toml",
        &[
            "testdata/collector-bad-days.toml:6:27: error: service[0].service_hours[0].days: expected days like \"mon-fri\", \"sat,sun\" or \"mon\" (mon tue wed thu fri sat sun), found \"monday-friday\"",
        ],
    ),
    (
        "collector-bad-hostile-limits.toml",
        &[
            "testdata/collector-bad-hostile-limits.toml:2:19: error: server.max_connections: expected an integer from 1 to 1000000, found integer 0",
            "testdata/collector-bad-hostile-limits.toml:3:23: error: server.header_read_timeout: expected a positive duration like \"10s\", \"5m\" or \"1h30m\", found \"0s\"",
            "testdata/collector-bad-hostile-limits.toml:4:21: error: server.body_read_timeout: expected a positive duration like \"10s\", \"5m\" or \"1h30m\", found \"forever\"",
            "testdata/collector-bad-hostile-limits.toml:7:20: error: ingest.max_backfill_age: expected a positive duration like \"10s\", \"5m\" or \"1h30m\", found \"soon\"",
            "testdata/collector-bad-hostile-limits.toml:8:24: error: ingest.max_checks_per_agent: expected an integer from 1 to 10000000, found integer 0",
            "testdata/collector-bad-hostile-limits.toml:9:10: error: ingest.checks: expected one of \"any\", \"known\", found \"some\"",
        ],
    ),
    (
        "collector-bad-holiday.toml",
        &[
            "testdata/collector-bad-holiday.toml:6:25: error: service[0].holidays[1]: expected a date like 2026-12-25, found \"2026-02-30\"",
        ],
    ),
    (
        "collector-bad-listen.toml",
        &[
            "testdata/collector-bad-listen.toml:2:10: error: server.listen: expected an IP address and port like \"127.0.0.1:9850\" or \"[::1]:9850\", found \"9850\"",
        ],
    ),
    (
        "collector-bad-quorum.toml",
        &[
            "testdata/collector-bad-quorum.toml:6:10: error: service[0].quorum: expected \"any\", \"majority\", \"all\" or { at_least = N }, found \"most\"",
        ],
    ),
    (
        "collector-bad-skew-policy.toml",
        &[
            "testdata/collector-bad-skew-policy.toml:2:21: error: ingest.clock_skew_policy: expected one of \"flag\", \"correct\", \"reject\", found \"ignore\"",
        ],
    ),
    (
        "collector-bad-target.toml",
        &[
            "testdata/collector-bad-target.toml:5:10: error: service[0].target: expected a percentage above 0% and at most 100% with at most four decimals, like \"99.9%\", found \"99.9\"",
        ],
    ),
    (
        "collector-bad-zone.toml",
        &[
            "testdata/collector-bad-zone.toml:6:13: error: service[0].time_zone: expected an IANA time zone like \"UTC\" or \"Europe/Berlin\", found \"Europe/Berln\"",
        ],
    ),
    (
        "collector-capacity-order.toml",
        &[
            "testdata/collector-capacity-order.toml:2:11: error: capacity.warning: expected a percentage below critical (90%), found \"95%\"",
        ],
    ),
    (
        "collector-decompressed-below-body.toml",
        &[
            "testdata/collector-decompressed-below-body.toml:3:26: error: ingest.max_decompressed_bytes: expected at least max_body_bytes (16 MiB), found \"8MiB\"",
        ],
    ),
    (
        "collector-duplicate-agent-id.toml",
        &[
            "testdata/collector-duplicate-agent-id.toml:6:6: error: agent[1].id: expected a unique id, found \"web-01\" (also used by agent[0])",
        ],
    ),
    (
        "collector-duplicate-check-in-service.toml",
        &[
            "testdata/collector-duplicate-check-in-service.toml:4:23: error: service[0].checks[1]: check \"web-home\" is listed twice",
        ],
    ),
    (
        "collector-duplicate-service.toml",
        &[
            "testdata/collector-duplicate-service.toml:8:8: error: service[1].name: expected a unique name, found \"web\" (also used by service[0])",
        ],
    ),
    (
        "collector-duplicate-token.toml",
        &[
            "testdata/collector-duplicate-token.toml:7:9: error: agent[1].token: expected a token of its own, found the token of agent[0]",
        ],
    ),
    (
        "collector-empty-checks.toml",
        &[
            "testdata/collector-empty-checks.toml:4:10: error: service[0].checks: expected at least one check id, found an empty array",
        ],
    ),
    (
        "collector-hours-end-before-start.toml",
        &[
            "testdata/collector-hours-end-before-start.toml:6:61: error: service[0].service_hours[0].end: expected a time after start \"18:00\" (\"24:00\" for midnight; split windows that cross midnight), found \"08:00\"",
        ],
    ),
    (
        "collector-inflight-below-body.toml",
        &[
            "testdata/collector-inflight-below-body.toml:3:27: error: ingest.max_inflight_body_bytes: expected at least max_body_bytes (16 MiB), found \"8MiB\"",
        ],
    ),
    (
        "collector-latency-missing-threshold.toml",
        &[
            "testdata/collector-latency-missing-threshold.toml:6:11: error: service[0].latency: missing key \"threshold\" in latency (the duration a probe must not exceed, like \"500ms\")",
        ],
    ),
    (
        "collector-maintenance-end-before-start.toml",
        &[
            "testdata/collector-maintenance-end-before-start.toml:6:59: error: service[0].maintenance[0].end: expected an instant after start (2026-03-01T03:00:00Z), found datetime 2026-03-01T02:00:00+01:00",
        ],
    ),
    (
        "collector-maintenance-local-time.toml",
        &[
            "testdata/collector-maintenance-local-time.toml:6:26: error: service[0].maintenance[0].start: expected an RFC 3339 date-time with offset like 2026-03-01T02:00:00+01:00 (or add \"days\" for a weekly window), found datetime 2026-03-01T02:00:00",
        ],
    ),
    (
        "collector-maintenance-no-reason.toml",
        &[
            "testdata/collector-maintenance-no-reason.toml:6:16: error: service[0].maintenance[0]: missing key \"reason\" in maintenance (why the window exists; it is printed in reports)",
        ],
    ),
    (
        "collector-min-reporters-zero.toml",
        &[
            "testdata/collector-min-reporters-zero.toml:6:17: error: service[0].min_reporters: expected an integer from 1 to 10000, found integer 0",
        ],
    ),
    (
        "collector-missing-target.toml",
        &[
            "testdata/collector-missing-target.toml:2:1: error: service[0]: missing key \"target\" in [[service]] (the availability target like \"99.9%\")",
        ],
    ),
    (
        "collector-postgres-bad-sslmode.toml",
        &[
            "testdata/collector-postgres-bad-sslmode.toml:4:20: error: storage.postgres_sslmode: expected one of \"disable\", \"prefer\", \"require\", \"verify-ca\", \"verify-full\", found \"verify\"",
        ],
    ),
    (
        "collector-postgres-require-with-rootcert.toml",
        &[
            "testdata/collector-postgres-require-with-rootcert.toml:5:24: error: storage.postgres_sslrootcert: \"postgres_sslrootcert\" is only used with postgres_sslmode = \"verify-ca\" or \"verify-full\"; \"require\" does not check the server's certificate",
        ],
    ),
    (
        "collector-postgres-sslmode-in-url.toml",
        &[
            "testdata/collector-postgres-sslmode-in-url.toml:3:16: error: storage.postgres_url: TLS is set with postgres_sslmode and postgres_sslrootcert in [storage], not with \"sslmode\" in the URL; remove it from postgres_url",
        ],
    ),
    (
        "collector-postgres-verify-no-rootcert.toml",
        &[
            "testdata/collector-postgres-verify-no-rootcert.toml:1:1: error: storage: missing key \"postgres_sslrootcert\" in [storage] (postgres_sslmode = \"verify-full\" needs the PEM file of the CA that signed the server's certificate)",
        ],
    ),
    (
        "collector-postgres-bad-url.toml",
        &[
            "testdata/collector-postgres-bad-url.toml:6:16: error: storage.postgres_url: expected a URL like \"postgres://user@host:5432/attest\", found a value not shown here (it may hold a password)",
        ],
    ),
    (
        "collector-postgres-no-url.toml",
        &[
            "testdata/collector-postgres-no-url.toml:1:1: error: storage: missing key \"postgres_url\" in [storage] (backend = \"postgres\" needs it)",
        ],
    ),
    (
        "collector-quorum-zero.toml",
        &[
            "testdata/collector-quorum-zero.toml:6:23: error: service[0].quorum.at_least: expected an integer from 1 to 4294967295, found integer 0",
        ],
    ),
    (
        "collector-retention-order.toml",
        &[
            "testdata/collector-retention-order.toml:3:20: error: storage.rollup_retention: expected at least raw_retention (90d), found \"30d\"",
        ],
    ),
    (
        "collector-sqlite-with-postgres-url.toml",
        &[
            "testdata/collector-sqlite-with-postgres-url.toml:3:16: error: storage.postgres_url: \"postgres_url\" is only used with backend = \"postgres\"; remove it or set the backend",
        ],
    ),
    (
        "collector-sqlite-with-sslmode.toml",
        &[
            "testdata/collector-sqlite-with-sslmode.toml:2:20: error: storage.postgres_sslmode: \"postgres_sslmode\" is only used with backend = \"postgres\"; remove it or set the backend",
        ],
    ),
    (
        "collector-tls-key-without-cert.toml",
        &[
            "testdata/collector-tls-key-without-cert.toml:1:1: error: server: missing key \"tls_cert\" in [server] (\"tls_key\" needs \"tls_cert\")",
        ],
    ),
    (
        "collector-unknown-key.toml",
        &[
            "testdata/collector-unknown-key.toml:3:1: error: server: unknown key \"listen_addr\" in [server]: did you mean \"listen\"? (expected one of: listen, tls_cert, tls_key, client_ca, admin_token, admin_token_file, max_connections, header_read_timeout, body_read_timeout, idle_timeout, shutdown_timeout)",
        ],
    ),
    (
        "collector-service-info-bad.toml",
        &[
            "testdata/collector-service-info-bad.toml:6:9: error: service[0].owner: expected a non-empty text of at most 200 characters on one line (no control characters), found \"ops team\\nsecond line\"",
            "testdata/collector-service-info-bad.toml:7:12: error: service[0].customer: expected a non-empty text of at most 200 characters on one line (no control characters), found \"  \"",
            "testdata/collector-service-info-bad.toml:8:13: error: service[0].agreement: expected a non-empty text of at most 200 characters on one line (no control characters), found integer 42",
        ],
    ),
    (
        "collector-report-sign-off-bad.toml",
        &[
            "testdata/collector-report-sign-off-bad.toml:2:15: error: report.prepared_by: expected a non-empty text of at most 200 characters on one line (no control characters), found \"\"",
            "testdata/collector-report-sign-off-bad.toml:3:29: error: report.distribution[1]: recipient \"Customer\" is listed twice",
            "testdata/collector-report-sign-off-bad.toml:3:41: error: report.distribution[2]: expected a non-empty text of at most 200 characters on one line (no control characters), found integer 7",
        ],
    ),
    (
        "collector-unknown-service-key.toml",
        &[
            "testdata/collector-unknown-service-key.toml:6:1: error: service[0]: unknown key \"timezone\" in [[service]]: did you mean \"time_zone\"? (expected one of: name, checks, target, time_zone, quorum, min_reporters, min_coverage, service_hours, holidays, maintenance, latency, start, hosts, hosts_match, capacity, description, owner, customer, agreement)",
        ],
    ),
    (
        "agent-host-bad-network-speed.toml",
        &[
            "testdata/agent-host-bad-network-speed.toml:9:44: error: check[0].network_speed.eth1: expected a link speed like \"100Mbit/s\", \"1Gbit/s\" or \"2.5Gbit/s\", found \"fast\"",
            "testdata/agent-host-bad-network-speed.toml:9:59: error: check[0].network_speed.eth2: expected a link speed like \"100Mbit/s\", \"1Gbit/s\" or \"2.5Gbit/s\", found integer 1000",
        ],
    ),
    (
        "collector-capacity-bad-objective.toml",
        &[
            "testdata/collector-capacity-bad-objective.toml:6:12: error: service[0].capacity[0].kind: expected one of \"cpu\", \"memory\", \"swap\", \"filesystem\", \"network\", found \"disk\"",
            "testdata/collector-capacity-bad-objective.toml:7:30: error: service[0].capacity[1].resource: expected no resource for kind \"cpu\" (one value per host), found \"cpu0\"",
            "testdata/collector-capacity-bad-objective.toml:8:34: error: service[0].capacity[2].statistic: expected one of \"p95\", \"max\", \"average\", \"minutes_above\", \"days_to_threshold\", found \"p99\"",
            "testdata/collector-capacity-bad-objective.toml:9:58: error: service[0].capacity[3]: unknown key \"min_days\" in capacity objective with statistic \"p95\" (expected one of: name, kind, resource, statistic, only_service_hours, exclude_maintenance, min_coverage, max)",
            "testdata/collector-capacity-bad-objective.toml:10:3: error: service[0].capacity[4]: missing key \"max_minutes\" in capacity objective (the most minutes a month may spend above the threshold)",
            "testdata/collector-capacity-bad-objective.toml:11:52: error: service[0].capacity[5].max: expected a percentage above 0% and at most 100% with at most four decimals, like \"99.9%\", found \"0.7\"",
        ],
    ),
    (
        "collector-capacity-duplicate-objective.toml",
        &[
            "testdata/collector-capacity-duplicate-objective.toml:7:3: error: service[0].capacity[1].name: expected a unique objective name, found \"cpu:p95\"; set \"name\" to tell them apart",
        ],
    ),
    (
        "collector-capacity-min-days-beyond-horizon.toml",
        &[
            "testdata/collector-capacity-min-days-beyond-horizon.toml:9:108: error: service[0].capacity[0].min_days: expected at most the [capacity] forecast_horizon (60 days), found integer 90",
        ],
    ),
    (
        "collector-capacity-unknown-host.toml",
        &[
            "testdata/collector-capacity-unknown-host.toml:9:20: error: service[0].hosts[1]: expected the id of an [[agent]] of this file, found \"web-02\"",
        ],
    ),
    (
        "collector-capacity-hosts-match-none.toml",
        &[
            "testdata/collector-capacity-hosts-match-none.toml:10:15: error: service[0].hosts_match: expected labels that at least one [[agent]] of this file has, found a table",
        ],
    ),
    (
        "collector-agent-bad-label.toml",
        &[
            "testdata/collector-agent-bad-label.toml:4:12: error: agent[0].labels.site name: expected a label name of letters, digits and - _ . : / (at most 128 characters), found \"site name\"",
            "testdata/collector-agent-bad-label.toml:4:40: error: agent[0].labels.role: expected a string, found integer 3",
        ],
    ),
    (
        "collector-assign-empty-match.toml",
        &[
            "testdata/collector-assign-empty-match.toml:11:9: error: assign[0].match: expected at least one label like { role = \"web\" }, found a table",
        ],
    ),
    (
        "collector-assign-no-checks.toml",
        &[
            "testdata/collector-assign-no-checks.toml:5:1: error: assign[0]: missing key \"checks\" in [[assign]] (the ids of central [[check]] tables to run)",
        ],
    ),
    (
        "collector-assign-no-selector.toml",
        &[
            "testdata/collector-assign-no-selector.toml:10:1: error: assign[0]: missing key \"match\" in [[assign]] (or \"agents\": which agents get these checks, like match = { role = \"web\" })",
        ],
    ),
    (
        "collector-assign-unknown-agent.toml",
        &[
            "testdata/collector-assign-unknown-agent.toml:11:11: error: assign[0].agents[0]: expected an [[agent]] id of this file, found \"web-02\"",
        ],
    ),
    (
        "collector-assign-unknown-check.toml",
        &[
            "testdata/collector-assign-unknown-check.toml:13:24: error: assign[0].checks[1]: expected the id of a [[check]] of this file, found \"shop-api\"",
        ],
    ),
    (
        "collector-central-check-duplicate.toml",
        &[
            "testdata/collector-central-check-duplicate.toml:7:6: error: check[1].id: expected a unique id, found \"shop-home\" (also used by check[0])",
        ],
    ),
    (
        "collector-central-check-invalid.toml",
        &[
            "testdata/collector-central-check-invalid.toml:6:11: error: check[0].timeout: expected a duration shorter than the interval (10s), found \"20s\"",
        ],
    ),
    (
        "collector-central-check-relative-path.toml",
        &[
            "testdata/collector-central-check-relative-path.toml:5:19: error: check[0].tls.ca_file: expected an absolute path (a central check runs on the agent's host), found \"ca.pem\"",
        ],
    ),
    (
        "collector-reader-tokens.toml",
        &[
            "testdata/collector-reader-tokens.toml:10:9: error: reader[0].token: expected a token of its own, found the token of agent \"web-01\"",
            "testdata/collector-reader-tokens.toml:14:9: error: reader[1].token: expected a token of its own, found the token of [server] admin_token",
            "testdata/collector-reader-tokens.toml:17:8: error: reader[2].name: expected a unique name, found \"grafana\" (also used by reader[0])",
            "testdata/collector-reader-tokens.toml:20:1: error: reader[3]: missing key \"name\" in [[reader]] (who holds this read-only token, e.g. \"grafana\")",
            "testdata/collector-reader-tokens.toml:22:1: error: reader[3]: unknown key \"scope\" in [[reader]] (expected one of: name, token, token_file)",
        ],
    ),
    (
        "collector-admin-tokens.toml",
        &[
            "testdata/collector-admin-tokens.toml:10:9: error: admin[0].token: expected a token of its own, found the token of reader[0]",
            "testdata/collector-admin-tokens.toml:13:8: error: admin[1].name: expected a unique name, found \"admin\" (also used by [server] admin_token)",
            "testdata/collector-admin-tokens.toml:18:9: error: admin[2].token: expected a token of its own, found the token of [server] admin_token",
            "testdata/collector-admin-tokens.toml:20:1: error: admin[3]: missing key \"token\" in [[admin]] (or \"token_file\": the admin bearer token)",
            "testdata/collector-admin-tokens.toml:24:19: error: maintenance.max_retroactive: expected a duration like \"0s\", \"24h\" or \"7d\", found \"a day\"",
        ],
    ),
    (
        "collector-status-public-no-services.toml",
        &[
            "testdata/collector-status-public-no-services.toml:6:1: error: status: missing key \"services\" in [status] (public = true needs the services anyone may see, like services = [\"webshop\"])",
        ],
    ),
    (
        "collector-status-services-not-public.toml",
        &[
            "testdata/collector-status-services-not-public.toml:7:12: error: status.services: \"services\" is only used with public = true (the page with a read credential shows every service); set public = true or remove it",
        ],
    ),
    (
        "collector-status-bad-services.toml",
        &[
            "testdata/collector-status-bad-services.toml:8:20: error: status.services[1]: expected the name of a [[service]] of this file, found \"shop\"",
            "testdata/collector-status-bad-services.toml:8:28: error: status.services[2]: \"web\" is listed twice",
            "testdata/collector-status-bad-services.toml:8:35: error: status.services[3]: expected a string, found integer 7",
            "testdata/collector-status-bad-services.toml:9:1: error: status: unknown key \"title\" in [status] (expected one of: public, services)",
        ],
    ),
    (
        "collector-status-empty-services.toml",
        &[
            "testdata/collector-status-empty-services.toml:8:12: error: status.services: expected at least one service name, found an empty array",
        ],
    ),
];

fn load(name: &str) -> Result<(), ConfigErrors> {
    let path = Path::new("testdata").join(name);
    if name.starts_with("agent") {
        load_agent(&path).map(|_| ())
    } else {
        load_collector(&path).map(|_| ())
    }
}

#[test]
fn every_invalid_file_reports_exactly_its_errors() {
    let dir = std::path::absolute("testdata").expect("cwd is known");
    let dir = dir.display().to_string();
    let mut failures = Vec::new();
    for (name, expected) in CASES {
        let expected: Vec<String> = expected.iter().map(|e| e.replace("{dir}", &dir)).collect();
        match load(name) {
            Ok(()) => failures.push(format!("{name}: loaded without error")),
            Err(e) if e.messages() != expected => {
                failures.push(format!(
                    "{name}:\n  got:      {:?}\n  expected: {expected:?}",
                    e.messages()
                ));
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_testdata_file_has_a_case() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir("testdata")
        .expect("testdata exists")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".toml") && !CASES.iter().any(|(n, _)| *n == name) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "testdata files without a case: {missing:?}"
    );
}

#[test]
fn several_errors_are_all_reported_in_file_order() {
    let err = load("agent-many-errors.toml").expect_err("the file is invalid");
    let lines: Vec<usize> = err
        .errors()
        .iter()
        .map(|e| e.location.map_or(0, |l| l.line))
        .collect();
    assert_eq!(lines, [3, 4, 7, 13, 19, 22]);
    // Display renders one error per line, in the same order.
    assert_eq!(err.to_string().lines().count(), 6);
}

#[test]
fn unreadable_file_is_one_error_without_position() {
    let err = load_agent(Path::new("testdata/does-not-exist.toml")).expect_err("missing file");
    assert_eq!(err.errors().len(), 1);
    assert_eq!(err.errors()[0].location, None);
    assert!(
        err.to_string().starts_with(
            "testdata/does-not-exist.toml: error: cannot read the configuration file: "
        ),
        "{err}"
    );
}

#[test]
fn exit_code_is_ex_config() {
    assert_eq!(EXIT_CONFIG_INVALID, 78);
}

#[test]
fn column_counts_characters_not_bytes() {
    let src = "[agent]\nid = \"web-01\"\ncollector_url = \"https://c:9850\"\ntoken = \"t\"\n\n[[check]]\nid = \"c1\"\nkind = \"http\"\nurl = \"https://example.com/\"\nheaders = { \"é\" = 5 }\n";
    let err = parse_agent("agent.toml", src).expect_err("bad header value");
    // "é" is two bytes: a byte column would say 20.
    assert_eq!(
        err.to_string(),
        "agent.toml:10:19: error: check[0].headers.é: expected a string, found integer 5"
    );
}
