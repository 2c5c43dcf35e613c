//! The evidence chain end to end with real processes on loopback: a real agent signs and
//! chains its batches, a real collector verifies and pins its key on first use; then, over
//! real sockets, a bad signature, a foreign chain link and a replay under another agent's
//! id are refused with 4xx and store nothing, a resent batch is idempotent, and a restarted
//! agent whose key was swapped has every batch refused (and keeps it) until the key is
//! configured. `attest-agent key show` prints the key the collector pinned; `audit` finds
//! nothing in the untouched store.
//!
//! The second test proves a month end to end: two real agents, a collector restart in the
//! middle during which one agent's small spool drops measurements (declared as gaps), then
//! the month's bundle (sealed), `evidence export`, and `report verify --deep` against the
//! agents' keys as `attest-agent key show` prints them: it passes, recomputing the figures
//! that `sla --format json` prints; one byte changed in the export fails it with exit 5.

use std::sync::Arc;
use std::sync::atomic::AtomicU16;
use std::time::Duration;

use attest_collector::store::{Store, sqlite::SqliteStore};
use attest_config::evidence::keys::{self, SecretKey};
use attest_config::evidence::{Header, digest};
use attest_config::wire::{Batch, Evidence, Measurement};
use attest_tests::fixtures::switchable_target;
use attest_tests::load::{Reply, WireAgent};
use attest_tests::{Proc, free_port, get, sample, wait_for};
use jiff::Timestamp;

fn write_configs(dir: &std::path::Path, port: u16, target: u16) -> (String, String) {
    let collector = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[storage]
backend = "sqlite"
data_dir = "data"

[ingest]
trust_new_agent_keys = "first_use"

[[agent]]
id = "signer"
token = "signer-token"

[[agent]]
id = "other"
token = "other-token"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
time_zone = "UTC"
"#
    );
    let agent = format!(
        r#"
[agent]
id = "signer"
collector_url = "http://127.0.0.1:{port}"
token = "signer-token"

[spool]
dir = "spool"

[transport]
batch_max_age = "200ms"
backoff_initial = "100ms"
backoff_max = "500ms"

[[check]]
id = "web"
kind = "http"
url = "http://127.0.0.1:{target}/"
interval = "1s"
timeout = "800ms"
"#
    );
    let (c, a) = (dir.join("collector.toml"), dir.join("agent.toml"));
    std::fs::write(&c, collector).expect("collector config");
    std::fs::write(&a, agent).expect("agent config");
    (c.display().to_string(), a.display().to_string())
}

async fn metric(port: u16, name: &str, result: &str) -> f64 {
    get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .and_then(|(_, body)| sample(&body, name, &[("result", result)]))
        .unwrap_or(0.0)
}

/// A batch of `agent` signed with `key` (the key it claims is `key`'s).
fn signed(agent: &str, seq: u64, prev: Option<[u8; 32]>, key: &SecretKey) -> Batch {
    let now = attest_tests::wall_now();
    let measurements: Vec<Measurement> = (0..3)
        .map(|i| {
            let ts = now
                .checked_sub(jiff::SignedDuration::from_secs(300 - i))
                .expect("ts");
            Measurement::new("web", ts, true)
        })
        .collect();
    let d = digest(
        &Header {
            agent,
            seq,
            prev: prev.as_ref(),
        },
        &measurements,
        &[],
    );
    Batch {
        version: 2,
        agent: agent.into(),
        seq,
        sent_at: now,
        measurements,
        gaps: vec![],
        spool: None,
        evidence: Some(Evidence {
            prev: prev.map(|p| keys::hex(&p)),
            digest: keys::hex(&d),
            key: keys::public_of(key).to_string(),
            signature: keys::signature_text(&keys::sign(key, &d)),
        }),
    }
}

fn digest_of(b: &Batch) -> [u8; 32] {
    keys::parse_digest(&b.evidence.as_ref().expect("signed").digest).expect("hex")
}

fn refused_status(r: &Reply) -> (u16, String) {
    match r {
        Reply::Refused { status, error, .. } => (
            *status,
            error
                .as_ref()
                .and_then(|e| e.field.clone())
                .unwrap_or_default(),
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn stored(dir: &std::path::Path) -> u64 {
    SqliteStore::open(&dir.join("data"))
        .expect("store")
        .counts()
        .expect("counts")
        .measurements
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_chain_is_verified_and_every_forgery_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = switchable_target(Arc::new(AtomicU16::new(200))).await;
    let port = free_port();
    let (collector_cfg, agent_cfg) = write_configs(dir.path(), port, target);
    let _collector = Proc::spawn(
        "collector",
        "attest-collector",
        &["run", "--config", &collector_cfg],
        dir.path(),
    );
    wait_for("collector ready", Duration::from_secs(20), || async {
        get(&format!("http://127.0.0.1:{port}/-/ready"))
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    let mut agent = Proc::spawn(
        "agent",
        "attest-agent",
        &["run", "--config", &agent_cfg],
        dir.path(),
    );
    wait_for("three signed batches", Duration::from_secs(30), || async {
        (metric(port, "attest_ingest_evidence_batches_total", "signed").await >= 3.0).then_some(())
    })
    .await;
    let exit = agent.signal_and_wait("TERM", Duration::from_secs(15));
    assert!(
        exit.success(),
        "agent exit {exit:?}; log:\n{}",
        agent.log_text()
    );

    // The key the agent shows is the one the collector pinned on first use.
    let shown = std::process::Command::new(attest_tests::bin("attest-agent"))
        .args(["key", "show", "--config", &agent_cfg])
        .current_dir(dir.path())
        .output()
        .expect("key show");
    assert!(shown.status.success(), "{shown:?}");
    let shown = String::from_utf8(shown.stdout).expect("utf-8");
    let public = shown.lines().next().expect("first line").to_string();
    let store = SqliteStore::open(&dir.path().join("data")).expect("store");
    let pinned = store.agent_keys().expect("keys");
    assert_eq!(pinned.len(), 1);
    assert_eq!(
        keys::PublicKey::from_bytes(&pinned[0].key)
            .expect("key")
            .to_string(),
        public
    );
    assert!(
        shown.contains(
            &keys::PublicKey::parse(&public)
                .expect("parses")
                .fingerprint()
        )
    );
    drop(store);
    // `agents` shows it as pinned, to be confirmed.
    let agents = std::process::Command::new(attest_tests::bin("attest-collector"))
        .args(["agents", "--config", &collector_cfg])
        .current_dir(dir.path())
        .output()
        .expect("agents");
    let table = String::from_utf8_lossy(&agents.stdout);
    let fp = keys::PublicKey::parse(&public)
        .expect("parses")
        .fingerprint();
    let signer_line = table
        .lines()
        .find(|l| l.starts_with("signer"))
        .expect("signer row");
    assert!(
        signer_line.contains(&format!("{}… pinned", &fp[..7 + 16])),
        "{table}"
    );

    // The agent's own secret (its state directory), to forge with and without it.
    let secret = keys::parse_secret(
        &std::fs::read_to_string(dir.path().join("spool/agent.key")).expect("agent.key"),
    )
    .expect("agent key");
    let base = format!("http://127.0.0.1:{port}");
    let signer = WireAgent::new(&base, "signer", "signer-token");
    let other = WireAgent::new(&base, "other", "other-token");
    let before = stored(dir.path());

    // A new chain under a far seq (what an agent that lost its spool state sends) is a
    // declared gap, accepted; resending it is idempotent.
    let first = signed("signer", 1_000_000, None, &secret);
    assert!(matches!(signer.post(&first).await, Reply::Acked(a) if !a.duplicate && a.stored == 3));
    assert!(matches!(signer.post(&first).await, Reply::Acked(a) if a.duplicate && a.stored == 0));
    let after_first = stored(dir.path());
    assert_eq!(after_first, before + 3);

    // A bad signature: signed by another key while claiming the agent's.
    let mut bad = signed("signer", 1_000_001, Some(digest_of(&first)), &secret);
    bad.evidence.as_mut().expect("evidence").signature = keys::signature_text(&keys::sign(
        &keys::secret_from_seed(&[3; 32]),
        &digest_of(&bad),
    ));
    assert_eq!(
        refused_status(&signer.post(&bad).await),
        (400, "evidence.signature".into())
    );
    // A foreign chain link: seq 1_000_001 chained to something else than 1_000_000.
    let foreign = signed("signer", 1_000_001, Some([7; 32]), &secret);
    assert_eq!(
        refused_status(&signer.post(&foreign).await),
        (409, "evidence.prev".into())
    );
    // A replay of the signer's batch by another agent (its own token, its own id).
    let mut replay = signed("signer", 1_000_002, Some([8; 32]), &secret);
    replay.agent = "other".into();
    assert_eq!(
        refused_status(&other.post(&replay).await),
        (400, "evidence.digest".into())
    );
    // Signed by another key, properly: the pinned key holds.
    let swapped = signed(
        "signer",
        1_000_001,
        Some(digest_of(&first)),
        &keys::secret_from_seed(&[4; 32]),
    );
    assert_eq!(
        refused_status(&signer.post(&swapped).await),
        (403, "evidence.key".into())
    );
    assert_eq!(
        stored(dir.path()),
        after_first,
        "nothing of a refused batch is stored"
    );
    for (reason, n) in [
        ("bad_signature", 1.0),
        ("broken_chain", 1.0),
        ("digest_mismatch", 1.0),
        ("key_mismatch", 1.0),
    ] {
        assert_eq!(
            metric(port, "attest_ingest_evidence_refused_batches_total", reason).await,
            n,
            "{reason}"
        );
    }

    // The untouched store audits clean.
    let month = attest_tests::wall_now().strftime("%Y-%m").to_string();
    let audit = std::process::Command::new(attest_tests::bin("attest-collector"))
        .args(["audit", "--config", &collector_cfg, "--month", &month])
        .current_dir(dir.path())
        .output()
        .expect("audit");
    assert!(
        audit.status.success(),
        "audit: {}\n{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );

    // The agent's key swapped (its key file replaced): every batch is refused with 403 and
    // stays in its spool; nothing is stored.
    std::fs::remove_file(dir.path().join("spool/agent.key")).expect("remove key");
    let before_swap = stored(dir.path());
    let mut agent = Proc::spawn(
        "agent-swapped",
        "attest-agent",
        &["run", "--config", &agent_cfg],
        dir.path(),
    );
    wait_for(
        "a key_mismatch refusal",
        Duration::from_secs(30),
        || async {
            (metric(
                port,
                "attest_ingest_evidence_refused_batches_total",
                "key_mismatch",
            )
            .await
                >= 2.0)
                .then_some(())
        },
    )
    .await;
    let exit = agent.signal_and_wait("TERM", Duration::from_secs(15));
    assert!(exit.success(), "agent exit {exit:?}");
    assert_eq!(
        stored(dir.path()),
        before_swap,
        "nothing under the swapped key is stored"
    );
    assert!(
        !dir.path().join("spool/quarantine").exists(),
        "a key mismatch is retried, never quarantined"
    );
}

fn collector_cli(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(attest_tests::bin("attest-collector"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("attest-collector")
}

fn out_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn agent_metric(port: u16, name: &str) -> Option<f64> {
    let m = attest_tests::fixtures::metrics(port).await?;
    sample(&m, name, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_with_a_restart_and_a_spool_drop_proves_itself() {
    use attest_tests::fixtures::{
        AgentCred, AgentSetup, Collector, ServiceDef, loopback_check_ids, loopback_checks,
        ok_target, path_str, wait_progress,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let target = ok_target().await;
    let creds = [AgentCred::new("ev-a1"), AgentCred::new("ev-a2")];
    let svc = ServiceDef {
        name: "web".into(),
        checks: loopback_check_ids("ev", 2),
    };
    let mut collector = Collector::new(dir.path(), None, &creds, &[svc]);
    collector.start().await;
    let setups: Vec<AgentSetup> = creds
        .iter()
        .zip(["4MiB", "32KiB"])
        .map(|(cred, max_bytes)| AgentSetup {
            cred: cred.clone(),
            collector_port: collector.port,
            listen_port: free_port(),
            spool_dir: dir.path().join(format!("spool-{}", cred.id)),
            max_bytes: max_bytes.into(),
            checks_toml: loopback_checks("ev", target, 2, "200ms"),
        })
        .collect();
    let mut agents: Vec<Proc> = setups.iter().map(|s| s.spawn(dir.path())).collect();
    wait_progress(&collector.data_dir, 0, 40, Duration::from_secs(60)).await;

    // The collector restarts; meanwhile the second agent's 32 KiB spool overflows.
    collector.stop();
    let small = setups[1].listen_port;
    wait_for(
        "the small spool to drop 30 measurements",
        Duration::from_secs(90),
        || async move {
            let d = agent_metric(small, "attest_agent_spool_dropped_measurements_total").await?;
            (d >= 30.0).then_some(())
        },
    )
    .await;
    collector.start().await;
    for s in &setups {
        let port = s.listen_port;
        wait_for(
            "the spool to drain",
            Duration::from_secs(90),
            || async move {
                let d = agent_metric(port, "attest_agent_spool_depth_measurements").await?;
                (d < 5.0).then_some(())
            },
        )
        .await;
    }
    for a in &mut agents {
        let exit = a.signal_and_wait("TERM", Duration::from_secs(20));
        assert!(exit.success(), "agent exit {exit:?}:\n{}", a.log_text());
    }
    collector.stop();

    let cfg = path_str(&collector.config);
    let at = Timestamp::from_second(attest_tests::wall_now().as_second() + 1).expect("at");
    let at_text = at.to_string();
    let month = at.strftime("%Y-%m").to_string();
    let bundle = dir.path().join("bundle");
    let out = collector_cli(
        dir.path(),
        &[
            "report",
            "--config",
            &cfg,
            "--month",
            &month,
            "--at",
            &at_text,
            "--format",
            "bundle",
            "--output",
            &path_str(&bundle),
        ],
    );
    assert!(out.status.success(), "report: {}", out_text(&out));
    let leaves = std::fs::read_to_string(bundle.join("seal/leaves.txt")).expect("sealed");
    assert!(
        leaves
            .lines()
            .filter(|l| l.starts_with("batch ev-a2 "))
            .count()
            >= 2,
        "{leaves}"
    );

    let evidence = dir.path().join("bundle.evidence");
    let out = collector_cli(
        dir.path(),
        &[
            "evidence",
            "export",
            "--config",
            &cfg,
            "--month",
            &month,
            "--output",
            &path_str(&evidence),
        ],
    );
    assert!(out.status.success(), "export: {}", out_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("of 2 agent(s)"),
        "{}",
        out_text(&out)
    );

    // The auditor's keys, as each agent shows its own.
    let mut keys_file = String::new();
    for (s, cred) in setups.iter().zip(&creds) {
        let agent_cfg = s.write(dir.path(), &format!("{}.toml", cred.id), false);
        let shown = std::process::Command::new(attest_tests::bin("attest-agent"))
            .args(["key", "show", "--config", &path_str(&agent_cfg)])
            .output()
            .expect("key show");
        let first = String::from_utf8_lossy(&shown.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        keys_file.push_str(&format!("{} {first}\n", cred.id));
    }
    let keys_path = dir.path().join("agent-keys.txt");
    std::fs::write(&keys_path, keys_file).expect("keys");

    // --evidence defaults to BUNDLE.evidence beside the bundle.
    let deep = |extra: &[&str]| {
        let mut args = vec!["report", "verify", "--deep", "--agent-keys"];
        let keys = path_str(&keys_path);
        let b = path_str(&bundle);
        args.extend([keys.as_str(), "--allow-unsigned"]);
        args.extend(extra);
        args.push(b.as_str());
        collector_cli(dir.path(), &args)
    };
    let out = deep(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify --deep: {}",
        out_text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("DEEP OK:"),
        "{}",
        out_text(&out)
    );

    // The drops are in the evidence: gaps declared in the small-spool agent's signed batches.
    let stream = zstd::stream::decode_all(
        &std::fs::read(evidence.join("agents/ev-a2.batches.zst")).expect("stream")[..],
    )
    .expect("zstd");
    let (mut rest, mut declared) = (&stream[..], 0u64);
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().expect("len")) as usize;
        let batch =
            attest_config::evidence::canonical::decode(&rest[4..4 + len]).expect("canonical");
        declared += batch.gaps.iter().map(|g| g.count).sum::<u64>();
        rest = &rest[4 + len..];
    }
    assert!(declared >= 30, "{declared} dropped measurements declared");

    // The report the evidence proves carries `sla`'s figures.
    let out = collector_cli(
        dir.path(),
        &[
            "sla", "--config", &cfg, "--month", &month, "--at", &at_text, "--format", "json",
        ],
    );
    assert!(out.status.success(), "sla: {}", out_text(&out));
    let sla: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sla json");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("report.json")).expect("report"))
            .expect("report json");
    for key in [
        "eligible_minutes",
        "good_minutes",
        "bad_minutes",
        "unknown_minutes",
        "availability",
    ] {
        assert_eq!(report["summary"][0][key], sla[0][key], "{key}");
    }

    // One byte of the export changed: the bundle is intact, the deep check fails (exit 5).
    let chain = evidence.join("agents/ev-a2.chain");
    let mut bytes = std::fs::read(&chain).expect("chain");
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&chain, &bytes).expect("tamper");
    let out = deep(&[]);
    assert_eq!(out.status.code(), Some(5), "{}", out_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("FAILED (deep): evidence agents/ev-a2.chain: changed"),
        "{}",
        out_text(&out)
    );
}

/// The CLI's refusals: `evidence export` exits 65 naming what to fix; `report verify
/// --deep` needs `--agent-keys` (2), refuses an unreadable keys file or evidence (65), and
/// an intact month proven without the report key stays "unauthenticated" (3).
#[test]
fn evidence_cli_refusals_say_what_to_fix() {
    use attest_tests::fixtures::{AgentCred, ServiceDef, path_str, write_collector_config};
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_collector_config(
        dir.path(),
        free_port(),
        &dir.path().join("data"),
        &[AgentCred::new("a")],
        &[ServiceDef {
            name: "web".into(),
            checks: vec!["web".into()],
        }],
    );
    let cfg = path_str(&cfg);
    let export = |month: &str, service: Option<&str>, out: &str| {
        let mut args = vec![
            "evidence", "export", "--config", &cfg, "--month", month, "--output", out,
        ];
        if let Some(s) = service {
            args.extend(["--service", s]);
        }
        collector_cli(dir.path(), &args)
    };
    let used = path_str(dir.path());
    for (out, needle) in [
        (export("2026-13", None, "e1"), "YYYY-MM"),
        (
            export("2026-09", None, &used),
            "choose a new --output directory",
        ),
        (
            export("2026-09", Some("nope"), "e2"),
            "name one of the configured",
        ),
    ] {
        assert_eq!(out.status.code(), Some(65), "{}", out_text(&out));
        assert!(out_text(&out).contains(needle), "{}", out_text(&out));
    }
    let out = export("2026-09", None, "bundle.evidence");
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    assert!(
        out_text(&out).contains("exported 0 batches"),
        "{}",
        out_text(&out)
    );

    let out = collector_cli(
        dir.path(),
        &[
            "report",
            "--config",
            &cfg,
            "--month",
            "2026-09",
            "--at",
            "2026-10-05T00:00:00Z",
            "--format",
            "bundle",
            "--output",
            "bundle",
        ],
    );
    assert!(out.status.success(), "{}", out_text(&out));
    let out = collector_cli(dir.path(), &["report", "verify", "--deep", "bundle"]);
    assert_eq!(out.status.code(), Some(2), "{}", out_text(&out));
    std::fs::write(dir.path().join("bad-keys.txt"), "a not-a-key\n").expect("keys");
    std::fs::write(dir.path().join("keys.txt"), "# nobody signed\n").expect("keys");
    let deep = |keys: &str, extra: &[&str]| {
        let mut args = vec!["report", "verify", "--deep", "--agent-keys", keys];
        args.extend(extra);
        args.push("bundle");
        collector_cli(dir.path(), &args)
    };
    let out = deep("bad-keys.txt", &[]);
    assert_eq!(out.status.code(), Some(65), "{}", out_text(&out));
    assert!(out_text(&out).contains("line 1"), "{}", out_text(&out));
    let out = deep("keys.txt", &["--evidence", "nowhere"]);
    assert_eq!(out.status.code(), Some(65), "{}", out_text(&out));
    assert!(
        out_text(&out).contains("evidence export"),
        "{}",
        out_text(&out)
    );
    let out = deep("keys.txt", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", out_text(&out));
    assert!(
        out_text(&out).contains("DEEP OK: 0 batches"),
        "{}",
        out_text(&out)
    );
}
