//! Central check assignment with real processes: an agent whose file holds only its id, the
//! collector's URL and its token receives its checks from the collector, reports them, picks
//! up a changed assignment after a SIGHUP of the collector within 30 s, ignores an invalid
//! reload, and keeps measuring on its saved assignment through a collector outage — even
//! across its own restart.

use std::path::Path;
use std::time::Duration;

use attest_config::wire::{AgentInfo, Assignment};
use attest_tests::fixtures::{AgentCred, Collector, ok_target, path_str, stored_keys, wait_store};
use attest_tests::{Proc, client, wait_for};

const AGENT: &str = "edge-1";

/// collector.toml with two central checks against `target`; `assigned` go to every agent
/// labelled `role = "edge"`.
fn collector_toml(port: u16, data: &Path, target: u16, token: &str, assigned: &[&str]) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[storage]\ndata_dir = {data:?}\n\n\
         [ingest]\nmax_batches_per_second = 200\n\n\
         [[agent]]\nid = \"{AGENT}\"\ntoken = \"{token}\"\nlabels = {{ role = \"edge\", site = \"lab\" }}\n\n\
         [[check]]\nid = \"c-http\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{target}/\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\n\
         [[check]]\nid = \"c-tcp\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{target}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\n\
         [[assign]]\nmatch = {{ role = \"edge\" }}\nchecks = {assigned:?}\n\n\
         [[service]]\nname = \"edge\"\nchecks = [\"c-http\", \"c-tcp\"]\ntarget = \"99%\"\nquorum = \"any\"\n",
        data = path_str(data),
    )
}

/// The three lines an operator writes.
fn agent_toml(dir: &Path, port: u16, token: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    let s = format!(
        "[agent]\nid = \"{AGENT}\"\ncollector_url = \"http://127.0.0.1:{port}\"\ntoken = \"{token}\"\n"
    );
    std::fs::write(&path, s).expect("write agent.toml");
    path
}

async fn agents(c: &Collector) -> Vec<AgentInfo> {
    let r = client()
        .get(format!("{}/api/v1/agents", c.url()))
        .send()
        .await
        .expect("GET /api/v1/agents");
    assert_eq!(r.status(), 200);
    r.json().await.expect("agent rows")
}

async fn assignment(c: &Collector, token: &str) -> (u16, Option<Assignment>) {
    let r = client()
        .get(format!("{}/api/v1/agents/{AGENT}/checks", c.url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET checks");
    let status = r.status().as_u16();
    (status, r.json().await.ok())
}

fn stored(data: &Path, check: &str) -> Vec<(String, String, i128)> {
    let store = attest_collector::store::sqlite::SqliteStore::open(data).expect("store");
    stored_keys(&store, &[check.to_string()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_only_id_url_and_token_runs_what_the_collector_assigns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = ok_target().await;
    let cred = AgentCred::new(AGENT);
    let mut collector = Collector::new(dir.path(), None, &[], &[]);
    let (port, data_dir, config) = (
        collector.port,
        collector.data_dir.clone(),
        collector.config.clone(),
    );
    let write = |assigned: &[&str]| {
        let s = collector_toml(port, &data_dir, target, &cred.token, assigned);
        std::fs::write(&config, s).expect("write collector.toml");
    };
    write(&["c-http"]);
    collector.start().await;
    let agent_cfg = agent_toml(dir.path(), collector.port, &cred.token);
    let mut agent = Proc::spawn(
        "agent",
        "attest-agent",
        &["run", "-c", &path_str(&agent_cfg)],
        dir.path(),
    );

    // 1. The agent receives c-http and reports it; c-tcp is not assigned and never measured.
    let data = collector.data_dir.clone();
    wait_store(
        "c-http measurements from the agent",
        Duration::from_secs(30),
        &data,
        |s| !stored_keys(s, &["c-http".to_string()]).is_empty(),
    )
    .await;
    assert!(stored(&data, "c-tcp").is_empty(), "an unassigned check ran");
    let rows = agents(&collector).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, AGENT);
    assert_eq!(rows[0].assigned_checks, ["c-http"]);
    assert_eq!(rows[0].version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(rows[0].labels.get("site").map(String::as_str), Some("lab"));
    let (_, first) = assignment(&collector, &cred.token).await;
    let first = first.expect("assignment");
    assert_eq!(rows[0].fetched_revision.as_ref(), Some(&first.revision));
    let saved = dir.path().join("spool").join("assignment.json");
    assert!(saved.exists(), "the assignment is saved next to the spool");

    // 2. A changed assignment arrives through a reload of the collector within 30 s.
    write(&["c-http", "c-tcp"]);
    collector.signal("HUP");
    wait_store(
        "c-tcp measurements after the reload",
        Duration::from_secs(30),
        &data,
        |s| !stored_keys(s, &["c-tcp".to_string()]).is_empty(),
    )
    .await;
    let (_, second) = assignment(&collector, &cred.token).await;
    let second = second.expect("assignment");
    assert_eq!(second.check_ids, ["c-http", "c-tcp"]);

    // 3. An invalid reload changes nothing and says why, with line and column.
    let good = std::fs::read_to_string(&collector.config).expect("read");
    std::fs::write(
        &collector.config,
        good.replace("\"c-tcp\"]\n\n[[service]]", "\"c-smtp\"]\n\n[[service]]"),
    )
    .expect("write broken config");
    collector.signal("HUP");
    let log = wait_for(
        "the refused reload in the log",
        Duration::from_secs(10),
        || async {
            let log = collector.log_text();
            log.contains("reload refused").then_some(log)
        },
    )
    .await;
    assert!(
        log.contains("collector.toml:")
            && log.contains(
                "assign[0].checks[1]: expected the id of a [[check]] of this file, found \"c-smtp\""
            ),
        "the refusal names file, position and key:\n{log}"
    );
    let (_, still) = assignment(&collector, &cred.token).await;
    assert_eq!(still.expect("assignment").revision, second.revision);
    std::fs::write(&collector.config, good).expect("restore config");

    // 4. Outage: the collector dies, the agent restarts while it is away and runs its saved
    //    assignment; everything measured meanwhile arrives once the collector is back.
    collector.kill();
    let exit = agent.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(exit.success(), "agent exit {exit:?}:\n{}", agent.log_text());
    let restarted_at = attest_tests::wall_now();
    let mut agent = Proc::spawn(
        "agent-2",
        "attest-agent",
        &["run", "-c", &path_str(&agent_cfg)],
        dir.path(),
    );
    // Measuring without a collector: the spool grows with c-tcp records.
    let spool = dir.path().join("spool");
    wait_for(
        "the agent to spool while the collector is down",
        Duration::from_secs(20),
        || {
            let spool = spool.clone();
            async move { (spool_bytes(&spool) > 0).then_some(()) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    collector.start().await;
    let since = restarted_at.as_nanosecond();
    wait_store(
        "c-tcp measured during the outage, after the agent's restart",
        Duration::from_secs(90),
        &data,
        |s| {
            stored_keys(s, &["c-tcp".to_string()])
                .iter()
                .any(|k| k.2 > since)
        },
    )
    .await;
    assert!(
        agent
            .log_text()
            .contains("cannot fetch the check assignment, running on the last good one"),
        "{}",
        agent.log_text()
    );
    let exit = agent.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(exit.success(), "agent exit {exit:?}:\n{}", agent.log_text());
}

/// Bytes in the spool's segments (the agent's measurements not yet acked).
fn spool_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_id_on_both_sides_is_an_error_on_both_sides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = ok_target().await;
    let cred = AgentCred::new(AGENT);
    let mut collector = Collector::new(dir.path(), None, &[], &[]);
    let s = collector_toml(
        collector.port,
        &collector.data_dir,
        target,
        &cred.token,
        &["c-http"],
    );
    std::fs::write(&collector.config, s).expect("write collector.toml");
    collector.start().await;
    let cfg = agent_toml(dir.path(), collector.port, &cred.token);
    let mut own = std::fs::read_to_string(&cfg).expect("read");
    own.push_str(&format!(
        "\n[[check]]\nid = \"c-http\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{target}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n"
    ));
    std::fs::write(&cfg, own).expect("write agent.toml");
    let agent = Proc::spawn(
        "agent",
        "attest-agent",
        &["run", "-c", &path_str(&cfg)],
        dir.path(),
    );
    let row = wait_for(
        "the conflict in the agent listing",
        Duration::from_secs(30),
        || async {
            agents(&collector)
                .await
                .into_iter()
                .find(|r| r.last_error.is_some())
        },
    )
    .await;
    let err = row.last_error.expect("error");
    assert!(err.contains("c-http defined both"), "{err}");
    wait_for(
        "the conflict in the agent's log",
        Duration::from_secs(10),
        || async {
            agent
                .log_text()
                .contains("defined both in this agent's file and in the collector's assignment")
                .then_some(())
        },
    )
    .await;
    // The agent's own definition (tcp) is the one that runs.
    let data = collector.data_dir.clone();
    wait_store("c-http measurements", Duration::from_secs(30), &data, |s| {
        !stored_keys(s, &["c-http".to_string()]).is_empty()
    })
    .await;
    let store = attest_collector::store::sqlite::SqliteStore::open(&data).expect("store");
    let (from, to) = attest_tests::fixtures::window();
    let raw =
        attest_collector::store::Store::raw_measurements(&store, "c-http", from, to).expect("raw");
    assert!(
        raw.iter().all(|(_, m)| !m
            .phases
            .contains_key(&attest_config::wire::Phase::Processing)),
        "an HTTP measurement (central definition) was stored"
    );
}
