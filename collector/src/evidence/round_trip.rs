//! Export from a real SQLite store filled through ingest, then check it back offline: the
//! untouched export passes with every batch handed on, and the CLI-facing refusals (a
//! non-empty directory, an unknown service) say what to do.

use std::sync::Arc;

use attest_config::evidence::canonical::Header;
use attest_config::evidence::keys::{self, SecretKey};
use attest_config::wire::{Batch, Gap, Measurement};
use jiff::Timestamp;

use super::check::{self, AgentKeys, Sealed};
use super::export::{self, ExportError, Request};
use crate::ingest::Ingest;
use crate::report::monthly::month_seal;
use crate::store::{SqliteStore, Store};

/// 2026-09-21T13:46:40Z.
pub const NOW: i64 = 1_790_000_000;

pub fn key(seed: u8) -> SecretKey {
    keys::secret_from_seed(&[seed; 32])
}

/// Two agents, two services in UTC; a1's key configured, a2's pinned on first use.
pub fn config_text() -> String {
    format!(
        r#"
[ingest]
trust_new_agent_keys = "first_use"

[[agent]]
id = "a1"
token = "secret-token-1"
public_key = "{}"

[[agent]]
id = "a2"
token = "secret-token-2"

[[service]]
name = "web"
checks = ["c0", "c1"]
target = "99%"
time_zone = "UTC"

[[service]]
name = "mail"
checks = ["c2"]
target = "99%"
time_zone = "UTC"
"#,
        keys::public_of(&key(1))
    )
}

/// Batch `seq` of `agent`: three measurements a minute apart per check it runs (`a2`
/// measures `c2` only), one failed; a gap in batch 2.
pub fn signed(agent: &str, seq: u64, prev: Option<[u8; 32]>, k: &SecretKey) -> (Batch, [u8; 32]) {
    let checks: &[&str] = if agent == "a1" {
        &["c0", "c1"]
    } else {
        &["c2"]
    };
    let mut ms = Vec::new();
    for c in checks {
        for i in 0..3 {
            let ts = Timestamp::from_second(NOW - 7200 + seq as i64 * 180 + i * 60).unwrap();
            ms.push(Measurement::new(*c, ts, !(seq == 2 && i == 1)));
        }
    }
    let gaps = if seq == 2 {
        vec![Gap {
            check: checks[0].into(),
            from: Timestamp::from_second(NOW - 9000).unwrap(),
            to: Timestamp::from_second(NOW - 8990).unwrap(),
            count: 2,
        }]
    } else {
        vec![]
    };
    let header = Header {
        agent,
        seq,
        prev: prev.as_ref(),
    };
    let (d, evidence) = attest_config::evidence::seal(&header, &ms, &gaps, k);
    let b = Batch {
        version: 2,
        agent: agent.into(),
        seq,
        sent_at: Timestamp::from_second(NOW).unwrap(),
        measurements: ms,
        gaps,
        spool: None,
        evidence: Some(evidence),
    };
    (b, d)
}

/// A store with 3 chained batches of a1 and 2 of a2, written through ingest.
pub fn written() -> (tempfile::TempDir, attest_config::CollectorConfig) {
    let cfg = attest_config::parse_collector("c.toml", &config_text()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    fill(
        Arc::new(SqliteStore::open(&dir.path().join("data")).unwrap()),
        &cfg,
    );
    (dir, cfg)
}

/// Writes the batches of [`written`] into `store` through ingest.
pub fn fill(store: Arc<dyn Store>, cfg: &attest_config::CollectorConfig) {
    let now = Timestamp::from_second(NOW).unwrap();
    crate::store::note_config(
        store.as_ref(),
        cfg,
        now - jiff::SignedDuration::from_hours(24 * 30),
    )
    .unwrap();
    let ingest = Ingest::new(
        store,
        &cfg.agents,
        cfg.ingest.clone(),
        crate::changed::DataChanged::new(),
    );
    for (agent, n, k) in [("a1", 3, key(1)), ("a2", 2, key(2))] {
        let mut prev = None;
        for seq in 1..=n {
            let (b, d) = signed(agent, seq, prev, &k);
            ingest
                .handle_admitted(agent, None, &serde_json::to_vec(&b).unwrap(), now)
                .expect("stored");
            prev = Some(d);
        }
    }
}

/// The month's sealed leaves as the archive would write them from `store`.
pub fn leaves(store: &dyn Store, cfg: &attest_config::CollectorConfig) -> String {
    let month = crate::report::parse_month("2026-09").unwrap();
    let span = month_seal::span(&cfg.services, month).unwrap();
    let batches = store.batch_seals(span.0, span.1).unwrap();
    let windows = store.list_maintenance(None).unwrap();
    let services: Vec<&attest_config::Service> = cfg.services.iter().collect();
    let inputs = month_seal::SealInputs {
        month: "2026-09",
        span,
        services: &services,
        batches: &batches,
        windows: &windows,
    };
    String::from_utf8(month_seal::files(&inputs, None)[0].1.clone()).unwrap()
}

pub fn agent_keys() -> AgentKeys {
    AgentKeys::parse(&format!(
        "# auditor's keys\na1 {}\n\na2 {}  # pinned\n",
        keys::public_of(&key(1)),
        keys::public_of(&key(2))
    ))
    .unwrap()
}

pub fn exported(
    dir: &tempfile::TempDir,
    cfg: &attest_config::CollectorConfig,
    service: Option<&str>,
) -> (std::path::PathBuf, String) {
    let store = SqliteStore::open(&dir.path().join("data")).unwrap();
    let out = dir
        .path()
        .join(format!("evidence-{}", service.unwrap_or("all")));
    let leaves = export_from(&store, cfg, &out, service);
    (out, leaves)
}

/// Exports 2026-09 of `store` into `out`; answers the month's sealed leaves.
pub fn export_from(
    store: &dyn Store,
    cfg: &attest_config::CollectorConfig,
    out: &std::path::Path,
    service: Option<&str>,
) -> String {
    let done = export::export(
        store,
        cfg,
        &Request {
            month: crate::report::parse_month("2026-09").unwrap(),
            service,
            config_text: &config_text(),
            output: out,
        },
    )
    .unwrap();
    assert!(done.differing.is_empty(), "{:?}", done.differing);
    leaves(store, cfg)
}

#[test]
fn an_export_checks_back_with_every_batch_and_no_secret() {
    let (dir, cfg) = written();
    let (out, leaves) = exported(&dir, &cfg, None);
    let mut handed = Vec::new();
    let c = check::check(&out, &agent_keys(), &Sealed::parse(&leaves), &mut |p| {
        handed.push((
            p.batch.agent.clone(),
            p.batch.seq,
            p.batch.measurements.len(),
            p.line.shift_ms,
        ));
        Ok(())
    })
    .unwrap();
    assert_eq!(c.findings, vec![], "{:?}", c.notes);
    assert_eq!((c.batches, c.passed), (5, 5));
    assert_eq!(
        handed,
        vec![
            ("a1".into(), 1, 6, 0),
            ("a1".into(), 2, 6, 0),
            ("a1".into(), 3, 6, 0),
            ("a2".into(), 1, 3, 0),
            ("a2".into(), 2, 3, 0)
        ]
    );
    let m = c.manifest.unwrap();
    assert_eq!((m.batches, m.measurements, m.agents.len()), (5, 24, 2));
    assert_eq!(m.agents[0].key_source, "configured");
    assert_eq!(m.agents[1].key_source, "pinned");
    assert_eq!(
        m.agents[1].public_keys,
        vec![keys::public_of(&key(2)).to_string()]
    );
    assert_eq!(m.services.len(), 2);
    assert!(m.services[0].first_configured.is_some());
    let defs = std::fs::read_to_string(out.join(super::DEFINITIONS)).unwrap();
    assert!(!defs.contains("secret-token"), "{defs}");
    assert!(defs.contains("not-exported:a1"), "{defs}");
    assert_eq!(c.definitions.unwrap().services.len(), 2);
}

/// `--service mail`: only a2 measured it, so only a2's chain is exported and a1's sealed
/// batches are out of scope (a note), not missing.
#[test]
fn a_service_export_holds_the_chains_of_the_agents_that_measured_it() {
    let (dir, cfg) = written();
    let (out, leaves) = exported(&dir, &cfg, Some("mail"));
    let c = check::check(
        &out,
        &agent_keys(),
        &Sealed::parse(&leaves),
        &mut |_| Ok(()),
    )
    .unwrap();
    assert_eq!(c.findings, vec![]);
    assert_eq!(c.passed, 2);
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("only the 1 agent(s) that measured service mail")),
        "{:?}",
        c.notes
    );
}

#[test]
fn an_export_refuses_a_used_directory_and_an_unknown_service() {
    let (dir, cfg) = written();
    let store = SqliteStore::open(&dir.path().join("data")).unwrap();
    let month = crate::report::parse_month("2026-09").unwrap();
    let text = config_text();
    let req = |output, service| Request {
        month,
        service,
        config_text: &text,
        output,
    };
    let used = dir.path().join("data");
    assert!(matches!(
        export::export(&store, &cfg, &req(&used, None)),
        Err(ExportError::NotEmpty(_))
    ));
    let fresh = dir.path().join("fresh");
    let err = export::export(&store, &cfg, &req(&fresh, Some("nope"))).unwrap_err();
    assert!(
        err.to_string().contains("name one of the configured"),
        "{err}"
    );
}

/// The same batches stored in PostgreSQL export byte for byte what SQLite exports, and
/// check back clean (skipped when the test server is not reachable).
#[test]
fn a_postgres_store_exports_the_same_evidence() {
    let Some(db) = crate::store::postgres::test_db::TestDb::create() else {
        eprintln!("PostgreSQL test server not reachable; skipped");
        return;
    };
    let (dir, cfg) = written();
    let (sqlite_out, _) = exported(&dir, &cfg, None);
    let store: Arc<dyn Store> = Arc::new(db.store());
    fill(store.clone(), &cfg);
    let pg_out = dir.path().join("evidence-pg");
    let leaves = export_from(store.as_ref(), &cfg, &pg_out, None);
    let c = check::check(&pg_out, &agent_keys(), &Sealed::parse(&leaves), &mut |_| {
        Ok(())
    })
    .unwrap();
    assert_eq!(c.findings, vec![]);
    assert_eq!(c.passed, 5);
    for rel in [
        "agents/a1.chain",
        "agents/a1.batches.zst",
        "agents/a2.chain",
        "agents/a2.batches.zst",
        "definitions.toml",
    ] {
        assert_eq!(
            std::fs::read(sqlite_out.join(rel)).unwrap(),
            std::fs::read(pg_out.join(rel)).unwrap(),
            "{rel}"
        );
    }
}

/// A measurement in no signed batch (an old agent's) is counted in the manifest and named
/// as no evidence when the export is checked.
#[test]
fn unsigned_measurements_are_counted_and_named() {
    let (dir, cfg) = written();
    let store = SqliteStore::open(&dir.path().join("data")).unwrap();
    let ts = Timestamp::from_second(NOW - 600).unwrap();
    store
        .commit_batch(&crate::store::IngestBatch {
            agent: "old-agent".into(),
            seq: 1,
            received_at: ts,
            clock_offset_ms: 0,
            measurements: vec![Measurement::new("c0", ts, true)],
            gaps: vec![],
            spool: None,
            seal: None,
        })
        .unwrap();
    drop(store);
    let (out, leaves) = exported(&dir, &cfg, None);
    let c = check::check(
        &out,
        &agent_keys(),
        &Sealed::parse(&leaves),
        &mut |_| Ok(()),
    )
    .unwrap();
    assert_eq!(c.findings, vec![]);
    let m = c.manifest.unwrap();
    assert_eq!(
        m.unsigned_measurements,
        std::collections::BTreeMap::from([("old-agent".to_string(), 1)])
    );
    assert!(
        c.notes.iter().any(|n| n.contains(
            "agent old-agent: the collector stored 1 measurement(s) of the span in no signed batch"
        )),
        "{:?}",
        c.notes
    );
}
