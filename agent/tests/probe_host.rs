//! Host probe on the machine running the tests: values present in base units,
//! thresholds and missing processes fail with `threshold`.

mod probe_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant as StdInstant};

use attest_agent::probe::{Probe, ProbeReport, build};
use attest_config::wire::{FailureReason, Phase};
use attest_config::{Check, CheckSpec, HostCheck};
use probe_support::*;

fn host_check() -> HostCheck {
    HostCheck {
        cpu: true,
        memory: true,
        load: true,
        filesystems: true,
        network: true,
        processes: vec![],
        thresholds: BTreeMap::new(),
        network_speeds: BTreeMap::new(),
    }
}

fn probe_of(spec: HostCheck) -> Box<dyn Probe> {
    build(&Check {
        id: "host".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(10),
        spec: CheckSpec::Host(spec),
    })
    .expect("check builds")
}

async fn run(probe: &dyn Probe) -> ProbeReport {
    let start = StdInstant::now();
    let report = probe.probe(deadline_in(10)).await;
    assert_phases_plausible(&report, start.elapsed());
    report
}

#[tokio::test]
async fn collects_every_group_twice() {
    let probe = probe_of(host_check());
    for _ in 0..2 {
        let report = run(probe.as_ref()).await;
        assert!(report.ok, "{report:?}");
        assert!(report.phases.contains_key(&Phase::Collect));
        let cpu = value(&report, "cpu_utilization_ratio").expect("cpu");
        assert!((0.0..=1.0).contains(&cpu));
        let total = value(&report, "memory_total_bytes").expect("memory");
        let used = value(&report, "memory_used_bytes").expect("memory used");
        assert!(total > 0.0 && used <= total);
        assert!(value(&report, "load1").is_some_and(|l| l >= 0.0));
        let lo_rx = report
            .values
            .iter()
            .find(|v| v.name == "network_rx_bytes" && v.resource.as_deref() == Some("lo"));
        assert!(
            lo_rx.is_some(),
            "loopback interface listed: {:?}",
            report.values
        );
    }
}

/// Loopback has no speed in /sys (the read fails): no speed value unless configured, and a
/// configured one is sent as is.
#[tokio::test]
async fn link_speed_of_loopback_only_when_configured() {
    let speed = |r: &ProbeReport| {
        r.values
            .iter()
            .find(|v| {
                v.name == "network_speed_bytes_per_second" && v.resource.as_deref() == Some("lo")
            })
            .map(|v| v.value)
    };
    let report = run(probe_of(host_check()).as_ref()).await;
    assert_eq!(speed(&report), None, "{:?}", report.values);
    let mut spec = host_check();
    spec.network_speeds.insert("lo".into(), 125_000_000);
    let report = run(probe_of(spec).as_ref()).await;
    assert_eq!(speed(&report), Some(125_000_000.0));
}

#[tokio::test]
async fn only_asked_groups_are_collected() {
    let mut spec = host_check();
    spec.cpu = false;
    spec.load = false;
    spec.filesystems = false;
    spec.network = false;
    let report = run(probe_of(spec).as_ref()).await;
    assert!(
        report
            .values
            .iter()
            .all(|v| v.name.starts_with("memory_") || v.name.starts_with("swap_"))
    );
    assert!(!report.values.is_empty());
}

#[tokio::test]
async fn threshold_exceeded_fails() {
    let mut spec = host_check();
    spec.cpu = false;
    spec.load = false;
    spec.filesystems = false;
    spec.network = false;
    spec.thresholds.insert("memory_used_bytes".into(), 1.0);
    let report = run(probe_of(spec).as_ref()).await;
    assert_eq!(report.reason, Some(FailureReason::Threshold));
    assert!(
        report
            .error
            .unwrap_or_default()
            .contains("memory_used_bytes")
    );
}

#[tokio::test]
async fn missing_process_fails_and_running_one_passes() {
    let me = std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_string();
    let mut spec = host_check();
    spec.cpu = false;
    spec.load = false;
    spec.filesystems = false;
    spec.network = false;
    spec.memory = false;
    spec.processes = vec![me.clone()];
    let report = run(probe_of(spec.clone()).as_ref()).await;
    assert!(report.ok, "{report:?}");
    spec.processes = vec!["no-such-process-attest".into()];
    let report = run(probe_of(spec).as_ref()).await;
    assert_eq!(report.reason, Some(FailureReason::Threshold));
}

#[test]
fn unknown_threshold_is_a_build_error() {
    let mut spec = host_check();
    spec.thresholds.insert("cpu_percent".into(), 90.0);
    let check = Check {
        id: "host".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(10),
        spec: CheckSpec::Host(spec),
    };
    let err = build(&check).err().expect("rejected");
    assert!(err.to_string().contains("cpu_percent"));
}
