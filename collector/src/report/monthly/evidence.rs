//! The report's evidence statement per service (docs/reports.md, "Evidence"): how many of
//! the service's measurements of the period are signed and verified, and the state of each
//! reporting agent's hash chain over the period. A reader of the report sees how much of the
//! figures rests on agent-signed evidence before asking for `audit` or the evidence export.
//!
//! Invariants:
//! - Pure: built from the store's seals and counts (read by `figures::evidence`), no store
//!   or clock here.
//! - A measurement counts as signed when the store holds it in a batch with a seal; ingest
//!   stores a seal only after verifying the batch's digest, signature, key and chain link,
//!   so "signed" means "signed and verified at ingest". Recomputing each digest from the
//!   rows is `audit`'s job, not the report's.
//! - An agent's chain is judged from its own stored seals of the period, in seq order:
//!   `broken` when a batch's `prev` is not the digest of the stored batch right before it;
//!   `gaps` when a seq is missing between stored batches, a new chain starts (no `prev`) or
//!   a batch declares measurements the agent's spool dropped — all declared by the agent
//!   (docs/wire.md, "Gaps in the chain"); `intact` otherwise; `unsigned` for an agent
//!   without any seal in the period. Percentages are rounded down.

use std::collections::{BTreeMap, BTreeSet};

use attest_config::evidence::canonical;
use serde::{Deserialize, Serialize};

pub use crate::figures::EvidenceCount as Count;
use crate::store::StoredSeal;

/// Chain states, as every format prints them.
pub const INTACT: &str = "intact";
pub const GAPS: &str = "gaps";
pub const BROKEN: &str = "broken";
pub const UNSIGNED: &str = "unsigned";

/// Decimals of the signed shares.
pub const DECIMALS: u32 = 2;

/// `services[].evidence`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evidence {
    /// The service's measurements stored for the period (every agent, every check).
    pub measurements: u64,
    /// Of them, in a batch whose seal ingest verified.
    pub signed_measurements: u64,
    /// `signed_measurements / measurements`; null without measurements (none stored, or
    /// raw measurements already removed by retention).
    pub signed_ratio: Option<f64>,
    /// The same as a percentage, rounded down to 2 decimals.
    pub signed_percent: Option<String>,
    /// One row per agent that measured the service, by agent id.
    pub agents: Vec<AgentEvidence>,
}

/// One agent's part of a service's evidence, and its chain over the period.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentEvidence {
    pub agent: String,
    pub measurements: u64,
    pub signed_measurements: u64,
    pub signed_percent: Option<String>,
    /// `intact`, `gaps`, `broken` or `unsigned` (module doc).
    pub chain: String,
    /// The agent's signed batches stored for the period.
    pub batches: u64,
    /// Places where seqs are missing between two stored batches of one chain.
    pub seq_gaps: u64,
    /// Batches starting a new chain (the agent lost its spool state).
    pub new_chains: u64,
    /// Batches whose `prev` is not the stored digest of the batch before them.
    pub broken_links: u64,
    /// Measurements the agent declared dropped (spool full) in its signed batches.
    pub dropped_measurements: u64,
}

/// An agent's chain over the period, from its stored seals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chain {
    pub batches: u64,
    pub seq_gaps: u64,
    pub new_chains: u64,
    pub broken_links: u64,
    pub dropped_measurements: u64,
}

impl Chain {
    /// The state every format prints (module doc).
    pub fn state(&self) -> &'static str {
        if self.batches == 0 {
            UNSIGNED
        } else if self.broken_links > 0 {
            BROKEN
        } else if self.seq_gaps + self.new_chains + self.dropped_measurements > 0 {
            GAPS
        } else {
            INTACT
        }
    }
}

/// Every agent's chain from `seals` (sorted by agent, then seq, as `Store::batch_seals`
/// answers).
pub fn chains(seals: &[StoredSeal]) -> BTreeMap<String, Chain> {
    let mut out: BTreeMap<String, Chain> = BTreeMap::new();
    let mut before: Option<&StoredSeal> = None;
    for s in seals {
        let c = out.entry(s.agent.clone()).or_default();
        c.batches += 1;
        c.dropped_measurements += dropped(s);
        let prior = before.filter(|b| b.agent == s.agent);
        match (prior, s.seal.prev) {
            (Some(_), None) => c.new_chains += 1,
            (Some(b), Some(prev)) if s.seq == b.seq + 1 => {
                c.broken_links += u64::from(prev != b.seal.digest);
            }
            (Some(_), Some(_)) => c.seq_gaps += 1,
            (None, _) => {} // the link into the period is checked by `audit`
        }
        before = Some(s);
    }
    out
}

/// Measurements a batch declares dropped (its canonical gaps; 0 without or when unreadable,
/// which `audit` reports as rows that no longer match).
fn dropped(s: &StoredSeal) -> u64 {
    s.seal
        .gaps
        .as_deref()
        .and_then(canonical::decode_gaps)
        .map_or(0, |gaps| gaps.iter().map(|g| g.count).sum())
}

/// The statement of a service measured by `checks`, from the period's `counts` by (agent,
/// check) and every agent's `chains`.
pub fn of(
    checks: &[String],
    counts: &BTreeMap<(String, String), Count>,
    chains: &BTreeMap<String, Chain>,
) -> Evidence {
    let checks: BTreeSet<&str> = checks.iter().map(String::as_str).collect();
    let mut per_agent: BTreeMap<&str, Count> = BTreeMap::new();
    for ((agent, check), c) in counts {
        if checks.contains(check.as_str()) && c.measurements > 0 {
            let a = per_agent.entry(agent.as_str()).or_default();
            a.measurements += c.measurements;
            a.signed += c.signed;
        }
    }
    let agents: Vec<AgentEvidence> = per_agent
        .into_iter()
        .map(|(agent, c)| agent_row(agent, c, chains.get(agent).copied().unwrap_or_default()))
        .collect();
    let measurements = agents.iter().map(|a| a.measurements).sum();
    let signed = agents.iter().map(|a| a.signed_measurements).sum();
    Evidence {
        measurements,
        signed_measurements: signed,
        signed_ratio: (measurements > 0).then(|| signed as f64 / measurements as f64),
        signed_percent: percent(signed, measurements),
        agents,
    }
}

fn agent_row(agent: &str, c: Count, chain: Chain) -> AgentEvidence {
    AgentEvidence {
        agent: agent.to_string(),
        measurements: c.measurements,
        signed_measurements: c.signed,
        signed_percent: percent(c.signed, c.measurements),
        chain: chain.state().to_string(),
        batches: chain.batches,
        seq_gaps: chain.seq_gaps,
        new_chains: chain.new_chains,
        broken_links: chain.broken_links,
        dropped_measurements: chain.dropped_measurements,
    }
}

fn percent(num: u64, den: u64) -> Option<String> {
    crate::sla::availability::floor_percent(num, den, DECIMALS)
}

/// The statement in sentences, as HTML, Markdown and PDF print it above the agents' table.
pub fn summary_line(e: &Evidence) -> String {
    match &e.signed_percent {
        None => "No measurements of this period are stored (none taken, or removed by retention): the share of signed measurements is not determinable.".into(),
        Some(p) => format!(
            "{p} % of the period's measurements are signed by their agent and were verified at ingest ({} of {}).",
            e.signed_measurements, e.measurements
        ),
    }
}

/// The words a chain state is printed with.
pub fn chain_words(state: &str) -> &'static str {
    match state {
        INTACT => "intact",
        GAPS => "gaps declared by the agent",
        BROKEN => "broken",
        _ => "unsigned (an agent without a key)",
    }
}

#[cfg(test)]
mod tests {
    use attest_config::wire::Gap;
    use jiff::Timestamp;

    use super::*;
    use crate::store::BatchSeal;

    fn seal(agent: &str, seq: u64, prev: Option<[u8; 32]>, digest: u8) -> StoredSeal {
        StoredSeal {
            agent: agent.into(),
            seq,
            seal: BatchSeal {
                digest: [digest; 32],
                prev,
                signature: [0; 64],
                key: [0; 32],
                ts_shift_ms: 0,
                gaps: None,
            },
        }
    }

    #[test]
    fn chain_states_follow_the_stored_links() {
        let t = Timestamp::UNIX_EPOCH;
        let mut dropped = seal("d", 2, Some([1; 32]), 2);
        dropped.seal.gaps = Some(canonical::encode_gaps(&[Gap {
            check: "c".into(),
            from: t,
            to: t,
            count: 7,
        }]));
        let seals = vec![
            seal("a", 1, None, 1),
            seal("a", 2, Some([1; 32]), 2),
            seal("b", 1, Some([9; 32]), 1), // links into the period: not judged here
            seal("b", 2, Some([7; 32]), 2), // not b1's digest
            seal("c", 1, Some([0; 32]), 1),
            seal("c", 5, Some([4; 32]), 5), // seqs 2..4 not stored
            seal("c", 9_000_000, None, 6),  // a new chain
            seal("d", 1, None, 1),
            dropped,
        ];
        let c = chains(&seals);
        assert_eq!(c["a"].state(), INTACT);
        assert_eq!(c["a"].batches, 2);
        assert_eq!((c["b"].state(), c["b"].broken_links), (BROKEN, 1));
        assert_eq!(
            (c["c"].state(), c["c"].seq_gaps, c["c"].new_chains),
            (GAPS, 1, 1)
        );
        assert_eq!((c["d"].state(), c["d"].dropped_measurements), (GAPS, 7));
        assert_eq!(Chain::default().state(), UNSIGNED);
    }

    #[test]
    fn shares_count_the_services_checks_only_and_round_down() {
        let counts: BTreeMap<(String, String), Count> = [
            (("a", "web"), (3, 3)),
            (("a", "other"), (100, 0)),
            (("b", "web"), (3, 2)),
            (("old", "web"), (1, 0)),
        ]
        .into_iter()
        .map(|((a, c), (m, s))| {
            (
                (a.to_string(), c.to_string()),
                Count {
                    measurements: m,
                    signed: s,
                },
            )
        })
        .collect();
        let chains: BTreeMap<String, Chain> = ["a", "b"]
            .into_iter()
            .map(|a| {
                (
                    a.to_string(),
                    Chain {
                        batches: 1,
                        ..Chain::default()
                    },
                )
            })
            .collect();
        let e = of(&["web".to_string()], &counts, &chains);
        assert_eq!((e.measurements, e.signed_measurements), (7, 5));
        assert_eq!(
            e.signed_percent.as_deref(),
            Some("71.42"),
            "5/7 rounded down"
        );
        let states: Vec<(&str, &str, Option<&str>)> = e
            .agents
            .iter()
            .map(|a| {
                (
                    a.agent.as_str(),
                    a.chain.as_str(),
                    a.signed_percent.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            states,
            vec![
                ("a", INTACT, Some("100.00")),
                ("b", INTACT, Some("66.66")),
                ("old", UNSIGNED, Some("0.00")),
            ]
        );
        let none = of(&["gone".to_string()], &counts, &chains);
        assert_eq!((none.signed_ratio, none.agents.len()), (None, 0));
        assert!(summary_line(&none).contains("not determinable"));
    }
}
