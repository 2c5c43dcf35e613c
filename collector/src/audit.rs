//! `attest-collector audit --month YYYY-MM`: checks the live store against the evidence the
//! agents signed (docs/wire.md, "Signed batches"; docs/cli.md). For every signed batch of
//! the month it recomputes the canonical digest from the stored rows (`batch_measurements`,
//! the stored clock correction and gaps) and checks it, the signature and the key; it walks
//! each agent's chain; and it looks for stored measurements of the month that belong to no
//! signed batch.
//!
//! Invariants:
//! - Reads only; a finding never changes the store.
//! - The trust anchor is the configuration: an agent's `[[agent]] public_key` when set,
//!   otherwise the first key the store recorded for it (pinned on first use).
//! - The month is a UTC calendar month (the store holds UTC).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use attest_config::CollectorConfig;
use attest_config::evidence::canonical::{self, Header};
use attest_config::evidence::keys::{self, PublicKey};
use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::TimeZone;

use crate::store::{Store, StoreError, StoredSeal};

/// One thing the audit found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The stored rows of a signed batch no longer give its digest (a row edited, inserted
    /// into the batch or deleted from it).
    RowsDiffer {
        agent: String,
        seq: u64,
        stored: String,
    },
    /// The stored signature does not verify over the stored digest with the stored key.
    BadSignature { agent: String, seq: u64 },
    /// The batch was stored under another key than the one the agent is held to.
    ForeignKey {
        agent: String,
        seq: u64,
        key: String,
        expected: String,
    },
    /// A stored batch's `prev` is not the stored digest of the batch before it.
    BrokenLink {
        agent: String,
        seq: u64,
        prev_seq: u64,
    },
    /// A batch links to a digest the store does not hold: the batch before it is missing
    /// (deleted, or refused by the collector and quarantined by the agent).
    MissingLink { agent: String, seq: u64 },
    /// Stored measurements of an agent with a key that belong to no signed batch.
    Unsigned {
        agent: String,
        check: String,
        count: u64,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::RowsDiffer { agent, seq, stored } => write!(
                f,
                "agent {agent} batch {seq}: the stored rows no longer match the signed digest {stored} (a measurement was changed, added to or removed from the batch)"
            ),
            Finding::BadSignature { agent, seq } => write!(
                f,
                "agent {agent} batch {seq}: the stored signature does not verify over the stored digest"
            ),
            Finding::ForeignKey {
                agent,
                seq,
                key,
                expected,
            } => write!(
                f,
                "agent {agent} batch {seq}: stored under key {key}, but the agent's key is {expected}"
            ),
            Finding::BrokenLink {
                agent,
                seq,
                prev_seq,
            } => write!(
                f,
                "agent {agent} batch {seq}: its previous digest is not the digest of stored batch {prev_seq} (the chain is broken)"
            ),
            Finding::MissingLink { agent, seq } => write!(
                f,
                "agent {agent} batch {seq}: links to a batch the store does not hold (deleted, or refused at ingest)"
            ),
            Finding::Unsigned {
                agent,
                check,
                count,
            } => write!(
                f,
                "agent {agent} check {check}: {count} stored measurement(s) of the month belong to no signed batch"
            ),
        }
    }
}

/// What the audit looked at, and what it found.
#[derive(Debug, Default)]
pub struct AuditReport {
    pub batches: u64,
    pub measurements: u64,
    /// Agents without any key whose measurements are unsigned (not findings: old agents).
    pub unsigned_agents: BTreeMap<String, u64>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("month {0:?} is not YYYY-MM, e.g. 2026-10")]
    Month(String),
    #[error("cannot read the store: {0}")]
    Store(#[from] StoreError),
}

/// `[from, to)` of UTC month `YYYY-MM`.
pub fn month_bounds(month: &str) -> Result<(Timestamp, Timestamp), AuditError> {
    let bad = || AuditError::Month(month.to_string());
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&m) || !(2000..=2100).contains(&y) {
        return Err(bad());
    }
    let start = date(y, m, 1);
    let end = start
        .checked_add(jiff::Span::new().months(1))
        .map_err(|_| bad())?;
    let at = |d: jiff::civil::Date| {
        TimeZone::UTC
            .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .map_err(|_| bad())
    };
    Ok((at(start)?, at(end)?))
}

/// Audits `[from, to)` of `store` against the keys of `cfg`.
pub fn audit(
    store: &dyn Store,
    cfg: &CollectorConfig,
    from: Timestamp,
    to: Timestamp,
) -> Result<AuditReport, AuditError> {
    let mut report = AuditReport::default();
    let anchors = anchors(store, cfg)?;
    let seals = store.batch_seals(from, to)?;
    let mut signed_rows: BTreeSet<(String, String, Timestamp)> = BTreeSet::new();
    for s in &seals {
        report.batches += 1;
        check_batch(
            store,
            s,
            anchors.get(&s.agent),
            &mut report,
            &mut signed_rows,
        )?;
    }
    check_chains(&seals, &mut report.findings);
    check_unsigned(store, &anchors, from, to, &signed_rows, &mut report)?;
    Ok(report)
}

/// The key each agent is held to: configured, else the first stored for it.
fn anchors(
    store: &dyn Store,
    cfg: &CollectorConfig,
) -> Result<HashMap<String, [u8; 32]>, StoreError> {
    let mut out: HashMap<String, [u8; 32]> = HashMap::new();
    for row in store.agent_keys()? {
        out.entry(row.agent).or_insert(row.key);
    }
    for a in &cfg.agents {
        if let Some(k) = a.public_key {
            out.insert(a.id.clone(), *k.as_bytes());
        }
    }
    Ok(out)
}

fn fingerprint(raw: &[u8; 32]) -> String {
    PublicKey::from_bytes(raw).map_or_else(|_| keys::hex(raw), |k| k.fingerprint())
}

fn check_batch(
    store: &dyn Store,
    s: &StoredSeal,
    anchor: Option<&[u8; 32]>,
    report: &mut AuditReport,
    signed_rows: &mut BTreeSet<(String, String, Timestamp)>,
) -> Result<(), AuditError> {
    let (agent, seq, seal) = (&s.agent, s.seq, &s.seal);
    let mut rows = store.batch_measurements(agent, seq)?;
    report.measurements += rows.len() as u64;
    for m in &rows {
        signed_rows.insert((agent.clone(), m.check.clone(), m.ts));
    }
    // Undo the clock correction ingest applied: the digest is over what the agent sent.
    let shift = jiff::SignedDuration::from_millis(-seal.ts_shift_ms);
    for m in &mut rows {
        m.ts = m.ts.checked_add(shift).unwrap_or(m.ts);
    }
    let gaps = seal
        .gaps
        .as_deref()
        .map_or(Some(Vec::new()), canonical::decode_gaps)
        .unwrap_or_default();
    let header = Header {
        agent,
        seq,
        prev: seal.prev.as_ref(),
    };
    if canonical::digest(&header, &rows, &gaps) != seal.digest {
        report.findings.push(Finding::RowsDiffer {
            agent: agent.clone(),
            seq,
            stored: keys::hex(&seal.digest),
        });
    }
    let verifies =
        PublicKey::from_bytes(&seal.key).is_ok_and(|k| k.verifies(&seal.digest, &seal.signature));
    if !verifies {
        report.findings.push(Finding::BadSignature {
            agent: agent.clone(),
            seq,
        });
    }
    if let Some(expected) = anchor.filter(|k| **k != seal.key) {
        report.findings.push(Finding::ForeignKey {
            agent: agent.clone(),
            seq,
            key: fingerprint(&seal.key),
            expected: fingerprint(expected),
        });
    }
    Ok(())
}

/// Walks each agent's stored seals in seq order (`batch_seals` sorts them).
fn check_chains(seals: &[StoredSeal], findings: &mut Vec<Finding>) {
    for pair in seals.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.agent != b.agent {
            continue;
        }
        let Some(prev) = b.seal.prev else {
            continue; // a new chain (the agent lost its spool state): declared
        };
        if b.seq == a.seq + 1 && prev != a.seal.digest {
            findings.push(Finding::BrokenLink {
                agent: b.agent.clone(),
                seq: b.seq,
                prev_seq: a.seq,
            });
        } else if b.seq != a.seq + 1 {
            findings.push(Finding::MissingLink {
                agent: b.agent.clone(),
                seq: b.seq,
            });
        }
    }
}

/// Stored measurements of the month outside every signed batch: findings for agents that
/// have a key, a count for agents that never signed.
fn check_unsigned(
    store: &dyn Store,
    anchors: &HashMap<String, [u8; 32]>,
    from: Timestamp,
    to: Timestamp,
    signed_rows: &BTreeSet<(String, String, Timestamp)>,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let checks: BTreeSet<String> = store.agent_checks()?.into_iter().map(|(_, c)| c).collect();
    let mut outside: BTreeMap<(String, String), u64> = BTreeMap::new();
    for check in checks {
        for (agent, m) in store.raw_measurements(&check, from, to)? {
            if !signed_rows.contains(&(agent.clone(), m.check.clone(), m.ts)) {
                *outside.entry((agent, m.check)).or_default() += 1;
            }
        }
    }
    for ((agent, check), count) in outside {
        if anchors.contains_key(&agent) {
            report.findings.push(Finding::Unsigned {
                agent,
                check,
                count,
            });
        } else {
            *report.unsigned_agents.entry(agent).or_default() += count;
        }
    }
    Ok(())
}

/// The text `audit` prints.
pub fn render(month: &str, r: &AuditReport) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "audit {month}: {} signed batches, {} measurements in them, {} finding(s)\n",
        r.batches,
        r.measurements,
        r.findings.len()
    );
    for f in &r.findings {
        let _ = writeln!(out, "FINDING {f}");
    }
    for (agent, n) in &r.unsigned_agents {
        let _ = writeln!(
            out,
            "unsigned: agent {agent} has {n} measurement(s) without evidence (it never signed: an agent older than protocol version 2)"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    //! Tamper tests against a real SQLite store written through ingest: each edit of the
    //! database is found with the right finding; the untouched store has none.

    use std::sync::Arc;

    use attest_config::evidence::keys::SecretKey;
    use attest_config::wire::{Batch, Measurement};

    use super::*;
    use crate::ingest::Ingest;
    use crate::store::SqliteStore;

    /// 2026-09-21T13:46:40Z.
    const NOW: i64 = 1_790_000_000;

    fn key(seed: u8) -> SecretKey {
        keys::secret_from_seed(&[seed; 32])
    }

    fn config(a1_key: Option<&SecretKey>) -> CollectorConfig {
        let pk = a1_key.map_or(String::new(), |k| {
            format!("public_key = \"{}\"\n", keys::public_of(k))
        });
        attest_config::parse_collector(
            "c.toml",
            &format!("[[agent]]\nid = \"a1\"\ntoken = \"t1\"\n{pk}[[agent]]\nid = \"a2\"\ntoken = \"t2\"\n"),
        )
        .unwrap()
    }

    fn signed(agent: &str, seq: u64, prev: Option<[u8; 32]>, k: &SecretKey) -> (Batch, [u8; 32]) {
        let ms: Vec<Measurement> = (0..3)
            .map(|i| {
                let ts = Timestamp::from_second(NOW - 3600 + seq as i64 * 60 + i).unwrap();
                Measurement::new(format!("c{i}"), ts, true)
            })
            .collect();
        let (d, evidence) = attest_config::evidence::seal(
            &Header {
                agent,
                seq,
                prev: prev.as_ref(),
            },
            &ms,
            &[],
            k,
        );
        let b = Batch {
            version: 2,
            agent: agent.into(),
            seq,
            sent_at: Timestamp::from_second(NOW).unwrap(),
            measurements: ms,
            gaps: vec![],
            spool: None,
            evidence: Some(evidence),
        };
        (b, d)
    }

    /// A store with 3 chained batches of a1 and 2 of a2, written through ingest.
    fn written(cfg: &CollectorConfig) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
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
                    .handle_admitted(
                        agent,
                        None,
                        &serde_json::to_vec(&b).unwrap(),
                        Timestamp::from_second(NOW).unwrap(),
                    )
                    .expect("stored");
                prev = Some(d);
            }
        }
        dir
    }

    fn tamper(dir: &tempfile::TempDir, sql: &str) {
        let conn =
            rusqlite::Connection::open(dir.path().join(crate::store::sqlite::DB_FILE)).unwrap();
        let changed = conn.execute_batch(sql);
        changed.unwrap();
    }

    fn run(dir: &tempfile::TempDir, cfg: &CollectorConfig) -> AuditReport {
        let store = SqliteStore::open(dir.path()).unwrap();
        let (from, to) = month_bounds("2026-09").unwrap();
        audit(&store, cfg, from, to).unwrap()
    }

    const A1: &str = "(SELECT id FROM agents WHERE name = 'a1')";

    #[test]
    fn an_untouched_store_has_no_findings() {
        let cfg = config(Some(&key(1)));
        let dir = written(&cfg);
        let r = run(&dir, &cfg);
        assert_eq!((r.batches, r.measurements), (5, 15));
        assert_eq!(r.findings, vec![], "{}", render("2026-09", &r));
        let (from, to) = month_bounds("2026-10").unwrap();
        let other = audit(&SqliteStore::open(dir.path()).unwrap(), &cfg, from, to).unwrap();
        assert_eq!(other.batches, 0, "another month holds none of them");
    }

    #[test]
    fn a_flipped_success_flag_is_found() {
        let cfg = config(None);
        let dir = written(&cfg);
        tamper(
            &dir,
            &format!(
                "UPDATE raw SET ok = 0 WHERE seq = 2 AND series IN (SELECT id FROM series WHERE agent_id = {A1} AND check_id = 'c1')"
            ),
        );
        let r = run(&dir, &cfg);
        assert_eq!(
            r.findings,
            vec![Finding::RowsDiffer {
                agent: "a1".into(),
                seq: 2,
                stored: r
                    .findings
                    .first()
                    .map(|f| match f {
                        Finding::RowsDiffer { stored, .. } => stored.clone(),
                        _ => String::new(),
                    })
                    .unwrap_or_default()
            }],
        );
        assert!(
            render("2026-09", &r)
                .contains("FINDING agent a1 batch 2: the stored rows no longer match")
        );
    }

    #[test]
    fn an_inserted_row_is_found() {
        let cfg = config(None);
        let dir = written(&cfg);
        // A good minute added for a1's check c0, in no batch.
        let ts_ns = (NOW - 1800) * 1_000_000_000;
        tamper(
            &dir,
            &format!(
                "INSERT INTO raw (ts_ns, series, ok) SELECT {ts_ns}, id, 1 FROM series WHERE agent_id = {A1} AND check_id = 'c0'"
            ),
        );
        let r = run(&dir, &cfg);
        assert_eq!(
            r.findings,
            vec![Finding::Unsigned {
                agent: "a1".into(),
                check: "c0".into(),
                count: 1
            }]
        );
        // Inserted into a signed batch instead (inside its span, under its seq): that
        // batch's rows no longer match.
        let inside = (NOW - 3600 + 181) * 1_000_000_000 + 500_000_000;
        tamper(
            &dir,
            &format!(
                "DELETE FROM raw WHERE ts_ns = {ts_ns};
                 INSERT INTO raw (ts_ns, series, ok, seq) SELECT {inside}, id, 1, 3 FROM series WHERE agent_id = {A1} AND check_id = 'c0'"
            ),
        );
        let r = run(&dir, &cfg);
        assert!(
            matches!(r.findings.as_slice(), [Finding::RowsDiffer { agent, seq: 3, .. }] if agent == "a1"),
            "{}",
            render("2026-09", &r)
        );
    }

    #[test]
    fn a_deleted_batch_is_found() {
        let cfg = config(None);
        let dir = written(&cfg);
        tamper(&dir, &format!(
            "DELETE FROM raw WHERE seq = 2 AND series IN (SELECT id FROM series WHERE agent_id = {A1});
             DELETE FROM batches WHERE agent_id = {A1} AND seq = 2;
             DELETE FROM batch_seal WHERE agent_id = {A1} AND seq = 2;"
        ));
        let r = run(&dir, &cfg);
        assert_eq!(
            r.findings,
            vec![Finding::MissingLink {
                agent: "a1".into(),
                seq: 3
            }]
        );
    }

    #[test]
    fn a_swapped_agent_key_is_found() {
        let cfg = config(Some(&key(1)));
        let dir = written(&cfg);
        let forged = keys::public_of(&key(66));
        tamper(
            &dir,
            &format!(
                "UPDATE agent_key SET public_key = X'{}' WHERE agent_id = {A1}",
                keys::hex(forged.as_bytes())
            ),
        );
        let r = run(&dir, &cfg);
        let bad: Vec<u64> = r
            .findings
            .iter()
            .filter_map(|f| match f {
                Finding::BadSignature { agent, seq } if agent == "a1" => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(bad, vec![1, 2, 3], "{}", render("2026-09", &r));
        let foreign = r
            .findings
            .iter()
            .filter(|f| matches!(f, Finding::ForeignKey { .. }))
            .count();
        assert_eq!(foreign, 3, "the configured key is the anchor");
        assert_eq!(r.findings.len(), 6);
    }

    /// `clock_skew_policy = "correct"` stores shifted timestamps; the seal's shift lets the
    /// audit recompute the digest the agent signed, and an edit is still found.
    #[test]
    fn corrected_clocks_still_audit_clean() {
        let mut cfg = config(None);
        cfg.ingest.clock_skew_policy = attest_config::SkewPolicy::Correct;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let ingest = Ingest::new(
            store.clone(),
            &cfg.agents,
            cfg.ingest.clone(),
            crate::changed::DataChanged::new(),
        );
        let mut prev = None;
        for seq in 1..=2 {
            let (mut b, d) = signed("a1", seq, prev, &key(1));
            // The agent's clock runs 2 minutes ahead (sent_at is outside the digest).
            b.sent_at = Timestamp::from_second(NOW + 120).unwrap();
            ingest
                .handle_admitted(
                    "a1",
                    None,
                    &serde_json::to_vec(&b).unwrap(),
                    Timestamp::from_second(NOW).unwrap(),
                )
                .expect("stored, shifted");
            prev = Some(d);
        }
        let (first, _) = signed("a1", 1, None, &key(1));
        let kept = store.batch_measurements("a1", 1).unwrap();
        assert_eq!(
            kept[0].ts,
            first.measurements[0].ts - jiff::SignedDuration::from_secs(120),
            "stored shifted"
        );
        drop((ingest, store));
        let r = run(&dir, &cfg);
        assert_eq!(r.findings, vec![], "{}", render("2026-09", &r));
        tamper(
            &dir,
            "UPDATE raw SET ok = 0 WHERE seq = 1 AND ts_ns = (SELECT min(ts_ns) FROM raw WHERE seq = 1)",
        );
        assert_eq!(run(&dir, &cfg).findings.len(), 1);
    }

    #[test]
    fn a_bad_month_is_refused() {
        for bad in ["2026", "2026-13", "26-01", "x-01"] {
            assert!(month_bounds(bad).is_err(), "{bad}");
        }
        let (from, to) = month_bounds("2026-12").unwrap();
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2026-12-01T00:00:00Z".into(), "2027-01-01T00:00:00Z".into())
        );
    }
}
