//! Both binaries follow one rule for their logs: colours only when stderr is a terminal. Under
//! systemd (journald) or redirected to a file, a line is plain text without escape codes.
//! Real processes whose stderr is a file.

use std::time::Duration;

use attest_tests::fixtures::{AgentCred, AgentSetup, Collector};
use attest_tests::{free_port, wait_for};

const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_collector_write_no_escape_codes_to_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cred = AgentCred::new("a1");
    let mut collector = Collector::new(dir.path(), None, std::slice::from_ref(&cred), &[]);
    collector.start().await;
    let setup = AgentSetup {
        cred,
        collector_port: collector.port,
        listen_port: free_port(),
        spool_dir: dir.path().join("spool"),
        max_bytes: "1MiB".into(),
        checks_toml: String::new(),
    };
    let agent = setup.spawn(dir.path());
    // INFO and WARN lines are where the formatter would colour the level.
    let log = wait_for("the agent's assignment in its log", BOUND, || async {
        let log = agent.log_text();
        log.contains("new check assignment from the collector")
            .then_some(log)
    })
    .await;
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in the agent's log:\n{log:?}"
    );
    let log = collector.log_text();
    assert!(log.contains("collector listening"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in the collector's log:\n{log:?}"
    );
}
