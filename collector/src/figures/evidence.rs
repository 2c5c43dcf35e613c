//! The reads behind a report's evidence statement (`report::monthly::evidence`): the seals
//! of the batches stored for a span, and per (agent, check) how many measurements of the
//! span are stored and how many of them belong to a sealed batch.
//!
//! Invariants: reads only, through the `Store` trait (both backends alike: rows and raw
//! blocks); a measurement is counted once, in the batch that stored it
//! (`Store::batch_measurements`). Cost: the span's raw measurements are read twice (once
//! by check, once by sealed batch) — the same order of work as `audit`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::{Figures, store_err};
use crate::reject::Rejection;
use crate::store::StoredSeal;

/// Measurements of one (agent, check) in the span, and how many are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count {
    pub measurements: u64,
    pub signed: u64,
}

/// What the statement of every service of one period is built from.
pub struct EvidenceRows {
    /// The seals of batches overlapping the span, by agent and seq.
    pub seals: Vec<StoredSeal>,
    /// By (agent, check): measurements in the span, and of them signed.
    pub counts: BTreeMap<(String, String), Count>,
}

impl Figures {
    /// The seals and counts of `checks` in `[from, to)`.
    pub fn evidence(
        &self,
        checks: &BTreeSet<String>,
        (from, to): (Timestamp, Timestamp),
    ) -> Result<EvidenceRows, Rejection> {
        let seals = self.store.batch_seals(from, to).map_err(store_err)?;
        let mut counts: BTreeMap<(String, String), Count> = BTreeMap::new();
        for check in checks {
            let rows = self
                .store
                .raw_measurements(check, from, to)
                .map_err(store_err)?;
            for (agent, _) in rows {
                counts
                    .entry((agent, check.clone()))
                    .or_default()
                    .measurements += 1;
            }
        }
        for s in &seals {
            let rows = self
                .store
                .batch_measurements(&s.agent, s.seq)
                .map_err(store_err)?;
            for m in rows {
                if m.ts >= from && m.ts < to && checks.contains(&m.check) {
                    counts.entry((s.agent.clone(), m.check)).or_default().signed += 1;
                }
            }
        }
        Ok(EvidenceRows { seals, counts })
    }
}

#[cfg(test)]
mod tests {
    //! The statement's reads against a real SQLite store written through ingest: a signing
    //! agent's chain with a declared seq gap, and an old agent's unsigned batch.

    use std::sync::Arc;

    use attest_config::evidence::canonical::Header;
    use attest_config::evidence::keys;
    use attest_config::wire::{Batch, Measurement};

    use super::*;
    use crate::ingest::Ingest;
    use crate::report::monthly::evidence::{self, BROKEN, GAPS, UNSIGNED};
    use crate::store::{SqliteStore, Store};

    /// 2026-09-21T13:46:40Z.
    const NOW: i64 = 1_790_000_000;

    fn batch(agent: &str, seq: u64, prev: Option<[u8; 32]>) -> (Batch, [u8; 32]) {
        let ms: Vec<Measurement> = (0..2)
            .map(|i| {
                let ts = Timestamp::from_second(NOW - 3600 + seq as i64 * 60 + i).unwrap();
                Measurement::new(format!("c{i}"), ts, true)
            })
            .collect();
        let header = Header {
            agent,
            seq,
            prev: prev.as_ref(),
        };
        let key = keys::secret_from_seed(&[7; 32]);
        let (digest, evidence) = attest_config::evidence::seal(&header, &ms, &[], &key);
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
        (b, digest)
    }

    #[test]
    fn counts_and_chains_come_from_the_stored_seals() {
        let cfg = Arc::new(
            attest_config::parse_collector(
                "c.toml",
                "[ingest]\ntrust_new_agent_keys = \"first_use\"\n[[agent]]\nid = \"a1\"\ntoken = \"t1\"\n[[agent]]\nid = \"a2\"\ntoken = \"t2\"\n",
            )
            .unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let ingest = Ingest::new(
            store.clone(),
            &cfg.agents,
            cfg.ingest.clone(),
            crate::changed::DataChanged::new(),
        );
        let now = Timestamp::from_second(NOW).unwrap();
        let send = |b: &Batch| {
            let body = serde_json::to_vec(b).unwrap();
            ingest
                .handle_admitted(&b.agent, None, &body, now)
                .expect("stored");
        };
        let (b1, d1) = batch("a1", 1, None);
        let (b2, d2) = batch("a1", 2, Some(d1));
        // Seq 3 was quarantined by the agent: seq 4 links to its digest.
        let (_, d3) = batch("a1", 3, Some(d2));
        let (b4, _) = batch("a1", 4, Some(d3));
        for b in [&b1, &b2, &b4] {
            send(b);
        }
        let (mut old, _) = batch("a2", 1, None);
        (old.version, old.evidence) = (1, None);
        send(&old);

        let figures = Figures::new(cfg, store);
        let checks: BTreeSet<String> = ["c0".to_string(), "c1".to_string()].into();
        let (from, to) = crate::audit::month_bounds("2026-09").unwrap();
        let rows = figures.evidence(&checks, (from, to)).unwrap();
        let chains = evidence::chains(&rows.seals);
        assert_eq!((chains["a1"].batches, chains["a1"].seq_gaps), (3, 1));
        let e = evidence::of(&["c0".to_string()], &rows.counts, &chains);
        let got: Vec<(&str, u64, u64, &str)> = e
            .agents
            .iter()
            .map(|a| {
                (
                    a.agent.as_str(),
                    a.measurements,
                    a.signed_measurements,
                    a.chain.as_str(),
                )
            })
            .collect();
        assert_eq!(got, vec![("a1", 3, 3, GAPS), ("a2", 1, 0, UNSIGNED)]);
        assert_eq!(e.signed_percent.as_deref(), Some("75.00"));

        // A stored link edited afterwards: the chain reads broken.
        drop(figures);
        let conn =
            rusqlite::Connection::open(dir.path().join(crate::store::sqlite::DB_FILE)).unwrap();
        conn.execute_batch("UPDATE batch_seal SET prev = zeroblob(32) WHERE seq = 2")
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let figures = Figures::new(
            Arc::new(attest_config::parse_collector("c.toml", "").unwrap()),
            store,
        );
        let rows = figures.evidence(&checks, (from, to)).unwrap();
        assert_eq!(evidence::chains(&rows.seals)["a1"].state(), BROKEN);
    }
}
