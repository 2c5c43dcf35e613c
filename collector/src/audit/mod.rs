//! `attest-collector audit --month YYYY-MM`: checks the live store against the evidence the
//! agents signed (docs/wire.md, "Signed batches"; docs/cli.md). For every signed batch of
//! the month it recomputes the canonical digest from the stored rows (`batch_measurements`,
//! the stored clock correction and gaps) and checks it, the signature and the key; it walks
//! each agent's chain; and it looks for stored measurements of the month that belong to no
//! signed batch; when the month is archived with a seal (`[report] archive_dir`), it
//! compares the seal's batch and maintenance leaves with the store (`sealed.rs`).
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

mod sealed;

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
    /// The newest batch the collector acknowledged to an agent (its `last_seq`) has no
    /// stored seal although the agent signs: the head of its chain was deleted.
    MissingHead {
        agent: String,
        seq: u64,
        last_stored: u64,
    },
    /// A leaf of the month's archived seal (a signed batch or an API maintenance window)
    /// that the store no longer gives: deleted or edited since the month was sealed (also a
    /// deleted chain head, which leaves no link to miss).
    SealedButGone { leaf: String },
    /// A signed batch or API maintenance window of the sealed span that the archived seal
    /// does not hold: added (or edited) after the month was sealed.
    NotSealed { leaf: String },
    /// The archived seal itself does not check (its leaves do not give its root, or its
    /// signature fails).
    BadSeal { why: String },
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
            Finding::MissingHead {
                agent,
                seq,
                last_stored,
            } => write!(
                f,
                "agent {agent}: the newest batch acknowledged to it (seq {seq}) is not stored; its newest stored signed batch is {last_stored} (the head of the chain was deleted)"
            ),
            Finding::SealedButGone { leaf } => write!(
                f,
                "sealed month: {leaf:?} is in the archived seal but no longer in the store (deleted or changed after the month was sealed)"
            ),
            Finding::NotSealed { leaf } => write!(
                f,
                "sealed month: {leaf:?} is in the store but not in the archived seal (added or changed after the month was sealed)"
            ),
            Finding::BadSeal { why } => {
                write!(f, "sealed month: the archived seal does not check: {why}")
            }
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
    /// Leaves of the archived seal compared with the store (`None`: the month is not sealed
    /// in `[report] archive_dir`, or no archive is configured).
    pub sealed_leaves: Option<usize>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("month {0:?} is not YYYY-MM, e.g. 2026-10")]
    Month(String),
    #[error("cannot read the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the archived seal {path}: {source}")]
    Archive {
        path: String,
        source: std::io::Error,
    },
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
    let mut signed = SignedCounts::new();
    for s in &seals {
        report.batches += 1;
        check_batch(
            store,
            s,
            anchors.get(&s.agent),
            &mut report,
            (&mut signed, from, to),
        )?;
    }
    check_chains(&seals, &mut report.findings);
    check_heads(store, &seals, &mut report.findings)?;
    check_unsigned(store, &anchors, from, to, &signed, &mut report)?;
    if let Some(dir) = &cfg.report.archive_dir {
        sealed::check(store, dir, &month_of(from), &mut report)?;
    }
    Ok(report)
}

/// `YYYY-MM` of the UTC month starting at `from`.
fn month_of(from: Timestamp) -> String {
    let d = TimeZone::UTC.to_datetime(from).date();
    format!("{:04}-{:02}", d.year(), d.month())
}

/// Measurements of the month inside signed batches, by (agent, check): memory grows with
/// the series, not with the month's measurements (a row belongs to the one batch that
/// stored it, so nothing is counted twice).
type SignedCounts = HashMap<(String, String), u64>;

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
    (signed, from, to): (&mut SignedCounts, Timestamp, Timestamp),
) -> Result<(), AuditError> {
    let (agent, seq, seal) = (&s.agent, s.seq, &s.seal);
    let mut rows = store.batch_measurements(agent, seq)?;
    report.measurements += rows.len() as u64;
    for m in rows.iter().filter(|m| m.ts >= from && m.ts < to) {
        *signed.entry((agent.clone(), m.check.clone())).or_default() += 1;
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

/// Compares each signing agent's newest seal of the month with the newest seq the
/// collector acknowledged to it (`agents.last_seq`, which only grows): a later seq without a
/// stored seal is a deleted chain head (a keyed agent's unsigned batch is refused at ingest,
/// so every batch it stored has a seal). Import seqs are not batches of the chain.
fn check_heads(
    store: &dyn Store,
    seals: &[StoredSeal],
    findings: &mut Vec<Finding>,
) -> Result<(), AuditError> {
    let mut newest: BTreeMap<&str, u64> = BTreeMap::new();
    for s in seals {
        let n = newest.entry(s.agent.as_str()).or_default();
        *n = (*n).max(s.seq);
    }
    for status in store.agents()? {
        let Some(&last_stored) = newest.get(status.agent.as_str()) else {
            continue;
        };
        let seq = status.last_seq;
        if seq <= last_stored || seq >= attest_config::wire::IMPORT_SEQ_BIT {
            continue;
        }
        let links = store.seal_links(&status.agent, seq)?;
        if !links.iter().any(|(s, _, _)| *s == seq) {
            findings.push(Finding::MissingHead {
                agent: status.agent,
                seq,
                last_stored,
            });
        }
    }
    Ok(())
}

/// Stored measurements of the month outside every signed batch: findings for agents that
/// have a key, a count for agents that never signed.
fn check_unsigned(
    store: &dyn Store,
    anchors: &HashMap<String, [u8; 32]>,
    from: Timestamp,
    to: Timestamp,
    signed: &SignedCounts,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let checks: BTreeSet<String> = store.agent_checks()?.into_iter().map(|(_, c)| c).collect();
    let mut stored: BTreeMap<(String, String), u64> = BTreeMap::new();
    for check in checks {
        for (agent, _) in store.raw_measurements(&check, from, to)? {
            *stored.entry((agent, check.clone())).or_default() += 1;
        }
    }
    let outside = stored.into_iter().filter_map(|(series, n)| {
        let inside = signed.get(&series).copied().unwrap_or(0);
        (n > inside).then(|| (series, n - inside))
    });
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
    match r.sealed_leaves {
        Some(n) => {
            let _ = writeln!(
                out,
                "sealed month: {n} batch and maintenance leaves of the archived seal compared with the store"
            );
        }
        None => out.push_str("sealed month: not archived with a seal; nothing compared\n"),
    }
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
mod tests;
