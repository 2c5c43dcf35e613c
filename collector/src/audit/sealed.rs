//! The audit's comparison with the month's archived seal (docs/reports.md, "The sealed
//! month"): the leaves of `seal/leaves.txt` of `[report] archive_dir/YYYY-MM/` against the
//! same leaves recomputed from the live store over the seal's own span (`from`/`to` of
//! `seal/SEAL`). Only batch and maintenance leaves are compared: a service definition may
//! change after a month closed without anything being wrong.
//!
//! Invariants: reads only (the archive and the store); the seal is first checked against its
//! own leaves and root (`crate::seal::check_seal`), so an edited leaf file is a finding, not a
//! trusted reference.

use std::collections::BTreeSet;
use std::path::Path;

use jiff::Timestamp;

use super::{AuditError, AuditReport, Finding};
use crate::report::monthly::month_seal::{LEAVES, SEAL};
use crate::seal::Leaf;
use crate::store::Store;

/// Compares the archived seal of `month` under `archive_dir` with `store`, when there is one.
pub fn check(
    store: &dyn Store,
    archive_dir: &Path,
    month: &str,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let dir = archive_dir.join(month);
    let (seal_path, leaves_path) = (dir.join(SEAL), dir.join(LEAVES));
    if !seal_path.exists() {
        return Ok(());
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| AuditError::Archive {
            path: p.display().to_string(),
            source,
        })
    };
    let (seal, leaves) = (read(&seal_path)?, read(&leaves_path)?);
    if let Err(why) = crate::seal::check_seal(&seal, &leaves, None) {
        report.findings.push(Finding::BadSeal { why });
        return Ok(());
    }
    let Some(span) = span(&seal) else {
        report.findings.push(Finding::BadSeal {
            why: "no readable from/to lines".into(),
        });
        return Ok(());
    };
    let compared = |l: &&str| l.starts_with("batch ") || l.starts_with("maintenance ");
    let sealed: BTreeSet<&str> = leaves.lines().filter(compared).collect();
    let live = live_leaves(store, span)?;
    report.sealed_leaves = Some(sealed.len());
    for gone in sealed.iter().filter(|l| !live.contains(**l)) {
        report.findings.push(Finding::SealedButGone {
            leaf: (*gone).to_string(),
        });
    }
    for added in live.iter().filter(|l| !sealed.contains(l.as_str())) {
        report.findings.push(Finding::NotSealed {
            leaf: added.clone(),
        });
    }
    Ok(())
}

/// `from` and `to` of a seal file.
fn span(seal: &str) -> Option<(Timestamp, Timestamp)> {
    let field = |name: &str| {
        seal.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?
            .parse::<Timestamp>()
            .ok()
    };
    Some((field("from")?, field("to")?))
}

/// The batch and maintenance leaves the store gives for `span`, as the archive loop
/// computes them (`figures::Figures::seal_inputs`, `month_seal::files`).
fn live_leaves(
    store: &dyn Store,
    (from, to): (Timestamp, Timestamp),
) -> Result<BTreeSet<String>, AuditError> {
    let mut out = BTreeSet::new();
    for b in store.batch_seals(from, to)? {
        let leaf = Leaf::Batch {
            agent: &b.agent,
            seq: b.seq,
            digest: &b.seal.digest,
        };
        out.insert(String::from_utf8_lossy(&leaf.encode()).into_owned());
    }
    for w in store.list_maintenance(None)? {
        if w.start < to && w.end > from {
            let leaf = Leaf::Maintenance {
                id: w.id,
                service: &w.service,
                start: w.start,
                end: w.end,
                registered_at: w.created_at,
                cancelled_at: w.cancelled_at,
                registered_by: w.registered_by.as_deref(),
                reason: &w.reason,
            };
            out.insert(String::from_utf8_lossy(&leaf.encode()).into_owned());
        }
    }
    Ok(out)
}
