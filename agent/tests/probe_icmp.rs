//! ICMP echo to loopback. Skipped, with the reason printed, where the kernel allows
//! neither ping sockets nor raw sockets to this process.

mod probe_support;

use std::time::{Duration, Instant as StdInstant};

use attest_agent::probe::{BuildError, build};
use attest_config::wire::Phase;
use attest_config::{Check, CheckSpec, IcmpCheck, IpFamily};
use probe_support::*;

#[tokio::test]
async fn echo_to_loopback() {
    let check = Check {
        id: "ping".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        spec: CheckSpec::Icmp(IcmpCheck {
            host: "127.0.0.1".into(),
            count: 3,
            ip_family: IpFamily::Ipv4,
        }),
    };
    let probe = match build(&check) {
        Ok(p) => p,
        Err(BuildError::IcmpNotPermitted(why)) => {
            eprintln!("skipped: ICMP not permitted here: {why}");
            return;
        }
        Err(e) => panic!("unexpected build error: {e}"),
    };
    let start = StdInstant::now();
    let report = probe.probe(deadline_in(5)).await;
    assert_phases_plausible(&report, start.elapsed());
    assert!(report.ok, "{report:?}");
    assert_eq!(value(&report, "icmp_packets_sent"), Some(3.0));
    assert_eq!(value(&report, "icmp_packets_received"), Some(3.0));
    assert_eq!(value(&report, "icmp_packet_loss_ratio"), Some(0.0));
    let rtt = value(&report, "icmp_rtt_seconds").expect("rtt");
    assert!(rtt > 0.0);
    assert!(report.phases.contains_key(&Phase::Rtt));
}

#[test]
fn zero_count_is_rejected() {
    let check = Check {
        id: "ping".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        spec: CheckSpec::Icmp(IcmpCheck {
            host: "127.0.0.1".into(),
            count: 0,
            ip_family: IpFamily::Any,
        }),
    };
    assert!(build(&check).is_err());
}
