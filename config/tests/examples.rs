//! The shipped example files must load, with paths resolved next to the files.

use std::path::Path;

use attest_config::{CheckSpec, load_agent, summary_agent};

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn example_agent_loads_with_paths_next_to_the_file() {
    let cfg = match load_agent(&example("agent.toml")) {
        Ok(cfg) => cfg,
        Err(e) => panic!("example agent.toml is invalid:\n{e}"),
    };
    assert_eq!(cfg.agent.id, "local");
    assert_eq!(cfg.spool.dir, example("data/agent-spool"));
    let kinds: Vec<&str> = cfg.checks.iter().map(|c| c.spec.kind()).collect();
    assert_eq!(kinds, ["http", "tcp", "host"]);
    let CheckSpec::Http(http) = &cfg.checks[0].spec else {
        panic!("first check is not http");
    };
    assert_eq!(http.url, "http://127.0.0.1:9850/-/healthy");
    assert_eq!(cfg.checks[0].interval.as_secs(), 10);
    // tcp check: default timeout is 80% of a 10s interval
    assert_eq!(cfg.checks[1].timeout.as_secs(), 8);
    let summary = summary_agent(&cfg);
    assert!(
        summary.starts_with(
            "agent \"local\": 3 checks (http 1, tcp 1, host 1) → http://127.0.0.1:9850, spool "
        ),
        "{summary}"
    );
    assert!(summary.ends_with("data/agent-spool (64 MiB)"), "{summary}");
}

#[test]
fn example_collector_loads_with_paths_next_to_the_file() {
    use attest_config::{
        MaintenanceWindow, Quorum, StorageBackend, load_collector, summary_collector,
    };
    let cfg = match load_collector(&example("collector.toml")) {
        Ok(cfg) => cfg,
        Err(e) => panic!("example collector.toml is invalid:\n{e}"),
    };
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:9850");
    assert_eq!(cfg.storage.backend, StorageBackend::Sqlite);
    assert_eq!(cfg.storage.data_dir, example("data/collector"));
    assert_eq!(cfg.agents.len(), 1);
    assert_eq!(cfg.agents[0].id, "local");
    assert_eq!(cfg.services.len(), 2);
    let http = &cfg.services[0];
    assert_eq!(http.hosts, ["local"]);
    let objectives: Vec<&str> = http.capacity.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(objectives, ["cpu:p95", "memory:max", "disk runway"]);
    let office = &cfg.services[1];
    assert_eq!(office.quorum, Quorum::AtLeast(1));
    assert_eq!(office.service_hours.len(), 2);
    assert_eq!(office.service_hours[0].days.len(), 5);
    assert_eq!(office.holidays.len(), 3);
    assert!(matches!(
        office.maintenance[0],
        MaintenanceWindow::Weekly { .. }
    ));
    let MaintenanceWindow::Once { start, end, .. } = &office.maintenance[1] else {
        panic!("second window is not one-off");
    };
    assert_eq!(start.to_string(), "2026-03-01T01:00:00Z");
    assert_eq!(end.as_second() - start.as_second(), 7200);
    let summary = summary_collector(&cfg);
    assert!(
        summary.starts_with("collector on 127.0.0.1:9850 (sqlite in "),
        "{summary}"
    );
    assert!(
        summary.ends_with(", raw 35d, rollups 400d): 1 agent, 2 services (collector-http 99.9%, collector-office-hours 99.5%)"),
        "{summary}"
    );
}
