//! Verifying a batch's evidence at ingest (docs/wire.md, "Signed batches"), before anything
//! of it is stored: the digest is recomputed from the decoded batch, the signature checked
//! against it, the key against the agent's configured or pinned key, and the chain link
//! against the links stored around its seq.
//!
//! Invariants:
//! - Runs on the batch as decoded, before the skew policy shifts any timestamp: the digest
//!   is over what the agent signed.
//! - Trust: a configured `[[agent]] public_key` wins; otherwise the newest key the store
//!   holds for the agent (pinned on first use); otherwise `trust_new_agent_keys` decides.
//!   An agent with a key may not send unsigned batches.
//! - A link is checked only between stored signed batches (seq − 1 → seq → seq + 1): a seq
//!   never stored is a gap the agent declared, not a broken link.
//! - Every refusal names its reason and is counted by that reason ([`Refusal`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use attest_config::TrustNewKeys;
use attest_config::evidence::canonical::{self, Header};
use attest_config::evidence::keys::{self, PublicKey};
use attest_config::wire::Batch;

use super::Rejection;
use crate::store::{BatchSeal, Store};

/// Why a batch's evidence was refused; the label of `attest_ingest_evidence_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `evidence` malformed: a digest, key or signature that does not parse.
    Malformed,
    /// The digest sent is not the canonical form's of the batch received.
    DigestMismatch,
    BadSignature,
    /// Signed with another key than the configured or pinned one.
    KeyMismatch,
    /// No key configured or pinned, and `trust_new_agent_keys = "never"`.
    UnknownKey,
    /// An agent with a key sent an unsigned batch.
    Unsigned,
    /// `prev` differs from the stored digest of seq − 1, or the stored seq + 1 does not
    /// link to this digest.
    BrokenChain,
    /// The seq is stored with another digest (a different batch under a used seq).
    SeqConflict,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::Malformed,
        Refusal::DigestMismatch,
        Refusal::BadSignature,
        Refusal::KeyMismatch,
        Refusal::UnknownKey,
        Refusal::Unsigned,
        Refusal::BrokenChain,
        Refusal::SeqConflict,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::DigestMismatch => "digest_mismatch",
            Refusal::BadSignature => "bad_signature",
            Refusal::KeyMismatch => "key_mismatch",
            Refusal::UnknownKey => "unknown_key",
            Refusal::Unsigned => "unsigned",
            Refusal::BrokenChain => "broken_chain",
            Refusal::SeqConflict => "seq_conflict",
        }
    }

    /// 403 for what an operator must fix (keys: the agent keeps the batch and retries),
    /// 400/409 for a batch that will never be accepted as is (the agent quarantines it).
    fn status(self) -> u16 {
        match self {
            Refusal::KeyMismatch | Refusal::UnknownKey | Refusal::Unsigned => 403,
            Refusal::BrokenChain | Refusal::SeqConflict => 409,
            Refusal::Malformed | Refusal::DigestMismatch | Refusal::BadSignature => 400,
        }
    }

    fn field(self) -> &'static str {
        match self {
            Refusal::Malformed | Refusal::Unsigned => "evidence",
            Refusal::DigestMismatch | Refusal::SeqConflict => "evidence.digest",
            Refusal::BadSignature => "evidence.signature",
            Refusal::KeyMismatch | Refusal::UnknownKey => "evidence.key",
            Refusal::BrokenChain => "evidence.prev",
        }
    }
}

/// Counts of verified batches and of refusals by reason.
#[derive(Debug, Default)]
pub struct EvidenceStats {
    pub signed: AtomicU64,
    pub unsigned: AtomicU64,
    refused: [AtomicU64; 8],
}

impl EvidenceStats {
    pub fn refused(&self, r: Refusal) -> u64 {
        self.refused[r as usize].load(Ordering::Relaxed)
    }
}

/// The keys ingest trusts: configured ones, and those the store pinned (cached).
pub(crate) struct Trust {
    configured: HashMap<String, PublicKey>,
    policy: TrustNewKeys,
    /// Newest stored key per agent, as far as this process knows.
    pinned: std::sync::Mutex<HashMap<String, [u8; 32]>>,
}

impl Trust {
    pub(crate) fn new(
        agents: &[attest_config::AgentAuth],
        policy: TrustNewKeys,
        stored: Vec<crate::store::AgentKeyRow>,
    ) -> Trust {
        // Rows come in the order first seen: the last one per agent is the newest.
        let pinned = stored.into_iter().map(|r| (r.agent, r.key)).collect();
        Trust {
            configured: configured(agents),
            policy,
            pinned: std::sync::Mutex::new(pinned),
        }
    }

    /// The configured keys after a reload.
    pub(crate) fn set_agents(&mut self, agents: &[attest_config::AgentAuth]) {
        self.configured = configured(agents);
    }

    fn pinned(&self) -> std::sync::MutexGuard<'_, HashMap<String, [u8; 32]>> {
        self.pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key `agent` is held to, if any.
    fn expected(&self, agent: &str) -> Option<[u8; 32]> {
        self.configured
            .get(agent)
            .map(|k| *k.as_bytes())
            .or_else(|| self.pinned().get(agent).copied())
    }

    /// After a commit stored a batch of `agent` under `key`: it is the agent's newest key.
    pub(crate) fn note_stored(&self, agent: &str, key: [u8; 32]) {
        self.pinned().insert(agent.to_string(), key);
    }
}

fn configured(agents: &[attest_config::AgentAuth]) -> HashMap<String, PublicKey> {
    agents
        .iter()
        .filter_map(|a| a.public_key.map(|k| (a.id.clone(), k)))
        .collect()
}

fn refuse(stats: &EvidenceStats, r: Refusal, why: String) -> Rejection {
    stats.refused[r as usize].fetch_add(1, Ordering::Relaxed);
    Rejection::new(r.status(), why).field(r.field())
}

/// The verified seal of `batch` (its skew shift and gaps filled in later by the caller for
/// the shift), `None` for an accepted unsigned batch, or the refusal.
pub(crate) fn verify(
    batch: &Batch,
    trust: &Trust,
    store: &dyn Store,
    stats: &EvidenceStats,
) -> Result<Option<BatchSeal>, Rejection> {
    let agent = batch.agent.as_str();
    let expected = trust.expected(agent);
    let Some(ev) = &batch.evidence else {
        if let Some(k) = expected {
            return Err(refuse(
                stats,
                Refusal::Unsigned,
                format!(
                    "agent {agent:?} signs its batches (key {}); an unsigned batch is refused: upgrade the agent or remove its key",
                    fingerprint(&k)
                ),
            ));
        }
        stats.unsigned.fetch_add(1, Ordering::Relaxed);
        return Ok(None);
    };
    let malformed = |what: &str| refuse(stats, Refusal::Malformed, format!("evidence: {what}"));
    let key = PublicKey::parse(&ev.key).map_err(|e| malformed(&e.to_string()))?;
    let sent =
        keys::parse_digest(&ev.digest).ok_or_else(|| malformed("`digest` is not 64 hex digits"))?;
    let prev = match &ev.prev {
        None => None,
        Some(p) => {
            Some(keys::parse_digest(p).ok_or_else(|| malformed("`prev` is not 64 hex digits"))?)
        }
    };
    let signature = keys::parse_signature(&ev.signature)
        .ok_or_else(|| malformed("`signature` is not the base64 of 64 bytes"))?;
    let header = Header {
        agent,
        seq: batch.seq,
        prev: prev.as_ref(),
    };
    let digest = canonical::digest(&header, &batch.measurements, &batch.gaps);
    if digest != sent {
        return Err(refuse(
            stats,
            Refusal::DigestMismatch,
            format!(
                "the batch's digest is {} but evidence.digest says {}: the content differs from what was signed (or the agent encodes another canonical form version)",
                keys::hex(&digest),
                ev.digest
            ),
        ));
    }
    if !key.verifies(&digest, &signature) {
        return Err(refuse(
            stats,
            Refusal::BadSignature,
            format!(
                "the signature does not verify with key {} over digest {}",
                key.fingerprint(),
                ev.digest
            ),
        ));
    }
    check_key(agent, &key, expected, trust.policy, stats)?;
    check_links(agent, batch.seq, &digest, prev.as_ref(), store, stats)?;
    stats.signed.fetch_add(1, Ordering::Relaxed);
    Ok(Some(BatchSeal {
        digest,
        prev,
        signature,
        key: *key.as_bytes(),
        ts_shift_ms: 0,
        gaps: (!batch.gaps.is_empty()).then(|| canonical::encode_gaps(&batch.gaps)),
    }))
}

fn fingerprint(raw: &[u8; 32]) -> String {
    PublicKey::from_bytes(raw).map_or_else(|_| keys::hex(raw), |k| k.fingerprint())
}

fn check_key(
    agent: &str,
    key: &PublicKey,
    expected: Option<[u8; 32]>,
    policy: TrustNewKeys,
    stats: &EvidenceStats,
) -> Result<(), Rejection> {
    match expected {
        Some(k) if &k == key.as_bytes() => Ok(()),
        Some(k) => Err(refuse(
            stats,
            Refusal::KeyMismatch,
            format!(
                "agent {agent:?} signed with key {} but the collector holds it to key {}: if the agent's key was replaced on purpose, set its [[agent]] public_key to `{key}`",
                key.fingerprint(),
                fingerprint(&k)
            ),
        )),
        None if policy == TrustNewKeys::Never => Err(refuse(
            stats,
            Refusal::UnknownKey,
            format!(
                "agent {agent:?} has no public_key configured and [ingest] trust_new_agent_keys = \"never\": add public_key = \"{key}\" to its [[agent]] entry ({})",
                key.fingerprint()
            ),
        )),
        // First use: the commit stores the key with the batch; from then on it is pinned.
        None => Ok(()),
    }
}

fn check_links(
    agent: &str,
    seq: u64,
    digest: &[u8; 32],
    prev: Option<&[u8; 32]>,
    store: &dyn Store,
    stats: &EvidenceStats,
) -> Result<(), Rejection> {
    let links = store.seal_links(agent, seq).map_err(|e| {
        Rejection::new(503, format!("collector storage failed, retry later: {e}")).retry_after(5)
    })?;
    for (s, d, p) in links {
        if s == seq && &d != digest {
            return Err(refuse(
                stats,
                Refusal::SeqConflict,
                format!(
                    "batch {seq} of agent {agent:?} is stored with digest {}, this one has {}: a different batch under a used seq",
                    keys::hex(&d),
                    keys::hex(digest)
                ),
            ));
        }
        if s + 1 == seq && prev != Some(&d) {
            return Err(refuse(
                stats,
                Refusal::BrokenChain,
                format!(
                    "evidence.prev is {} but the stored batch {s} of agent {agent:?} has digest {}: the chain is broken",
                    prev.map_or_else(|| "absent".to_string(), |p| keys::hex(p)),
                    keys::hex(&d)
                ),
            ));
        }
        if s == seq + 1 && p.as_ref() != Some(digest) {
            return Err(refuse(
                stats,
                Refusal::BrokenChain,
                format!(
                    "the stored batch {s} of agent {agent:?} links to another digest than this batch's {}: the chain is broken",
                    keys::hex(digest)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Ingest's verification against a real SQLite store: each refusal is a 4xx with its
    //! reason, counted, and stores nothing; accepted batches store their seal.

    use std::sync::Arc;

    use attest_config::evidence::keys::SecretKey;
    use attest_config::wire::Measurement;
    use jiff::Timestamp;

    use super::*;
    use crate::ingest::Ingest;
    use crate::store::{SqliteStore, Store};

    const NOW: i64 = 1_790_000_000;

    fn key(seed: u8) -> SecretKey {
        keys::secret_from_seed(&[seed; 32])
    }

    fn agent(id: &str, public_key: Option<PublicKey>) -> attest_config::AgentAuth {
        attest_config::AgentAuth {
            id: id.into(),
            token: format!("token-{id}"),
            labels: Default::default(),
            public_key,
        }
    }

    struct Rig {
        _dir: Option<tempfile::TempDir>,
        _db: Option<crate::store::postgres::test_db::TestDb>,
        store: Arc<dyn Store>,
        ingest: Ingest,
    }

    fn rig(agents: &[attest_config::AgentAuth], policy: TrustNewKeys) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        rig_on(store, Some(dir), None, agents, policy)
    }

    /// The same on a fresh PostgreSQL database; `None` when none is available.
    fn pg_rig(agents: &[attest_config::AgentAuth], policy: TrustNewKeys) -> Option<Rig> {
        let db = crate::store::postgres::test_db::TestDb::create()?;
        let store: Arc<dyn Store> = Arc::new(db.store());
        Some(rig_on(store, None, Some(db), agents, policy))
    }

    fn rig_on(
        store: Arc<dyn Store>,
        dir: Option<tempfile::TempDir>,
        db: Option<crate::store::postgres::test_db::TestDb>,
        agents: &[attest_config::AgentAuth],
        policy: TrustNewKeys,
    ) -> Rig {
        let mut limits = attest_config::parse_collector("c.toml", "").unwrap().ingest;
        limits.trust_new_agent_keys = policy;
        let ingest = Ingest::new(
            store.clone(),
            agents,
            limits,
            crate::changed::DataChanged::new(),
        );
        Rig {
            _dir: dir,
            _db: db,
            store,
            ingest,
        }
    }

    fn measurements(seq: u64) -> Vec<Measurement> {
        (0..3)
            .map(|i| {
                let ts = Timestamp::from_second(NOW - 600 + seq as i64 * 10 + i).unwrap();
                Measurement::new(format!("c{i}"), ts, i != 1)
            })
            .collect()
    }

    /// A batch of `agent` signed with `k`, chained to `prev`; returns it and its digest.
    fn signed(agent: &str, seq: u64, prev: Option<[u8; 32]>, k: &SecretKey) -> (Batch, [u8; 32]) {
        let ms = measurements(seq);
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
        let batch = Batch {
            version: 2,
            agent: agent.into(),
            seq,
            sent_at: Timestamp::from_second(NOW).unwrap(),
            measurements: ms,
            gaps: vec![],
            spool: None,
            evidence: Some(evidence),
        };
        (batch, d)
    }

    fn send(r: &Rig, b: &Batch) -> Result<attest_config::wire::Ack, Rejection> {
        r.ingest.handle_admitted(
            &b.agent,
            None,
            &serde_json::to_vec(b).unwrap(),
            Timestamp::from_second(NOW).unwrap(),
        )
    }

    fn stored(r: &Rig) -> u64 {
        r.store.counts().unwrap().measurements
    }

    fn refused(r: &Rig, b: &Batch, status: u16, reason: Refusal) -> Rejection {
        let before = (stored(r), r.ingest.stats.evidence.refused(reason));
        let e = send(r, b).expect_err("refused");
        assert_eq!(e.status, status, "{}", e.reason);
        assert_eq!(stored(r), before.0, "nothing of a refused batch is stored");
        assert_eq!(
            r.ingest.stats.evidence.refused(reason),
            before.1 + 1,
            "counted as {reason:?}"
        );
        e
    }

    #[test]
    fn a_chain_is_accepted_and_every_bad_link_or_signature_refused() {
        chain_case(&rig(
            &[agent("a1", None), agent("a2", None)],
            TrustNewKeys::FirstUse,
        ));
    }

    #[test]
    fn a_chain_is_accepted_and_every_bad_link_or_signature_refused_on_postgres() {
        let Some(r) = pg_rig(
            &[agent("a1", None), agent("a2", None)],
            TrustNewKeys::FirstUse,
        ) else {
            return;
        };
        chain_case(&r);
    }

    /// Every refusal of a chain, on the store `r` holds.
    fn chain_case(r: &Rig) {
        let k = key(1);
        let (b1, d1) = signed("a1", 1, None, &k);
        assert_eq!(send(r, &b1).unwrap().stored, 3);
        let (b2, d2) = signed("a1", 2, Some(d1), &k);
        assert_eq!(send(r, &b2).unwrap().version, 2);
        // A resend is idempotent.
        assert!(send(r, &b2).unwrap().duplicate);

        // Bad signature: another key's signature over the right digest.
        let (mut bad, _) = signed("a1", 3, Some(d2), &k);
        bad.evidence.as_mut().unwrap().signature = keys::signature_text(&keys::sign(
            &key(9),
            &keys::parse_digest(&bad.evidence.as_ref().unwrap().digest).unwrap(),
        ));
        refused(r, &bad, 400, Refusal::BadSignature);
        // A success flag flipped in transit: the digest no longer matches.
        let (mut flipped, _) = signed("a1", 3, Some(d2), &k);
        flipped.measurements[1].ok = true;
        refused(r, &flipped, 400, Refusal::DigestMismatch);
        // A foreign chain link: seq 3 chained to something else than batch 2.
        let (foreign, _) = signed("a1", 3, Some([7; 32]), &k);
        let e = refused(r, &foreign, 409, Refusal::BrokenChain);
        assert_eq!(e.field.as_deref(), Some("evidence.prev"));
        // Replay of a1's batch 2 by agent a2 (its own token): the digest covers the agent.
        let mut replay = b2.clone();
        replay.agent = "a2".into();
        refused(r, &replay, 400, Refusal::DigestMismatch);
        // A swapped key: a1 pinned key 1 on first use.
        let (swapped, _) = signed("a1", 3, Some(d2), &key(2));
        let e = refused(r, &swapped, 403, Refusal::KeyMismatch);
        assert!(e.reason.contains("public_key"), "{}", e.reason);
        // Unsigned from an agent with a key.
        let mut unsigned = b2.clone();
        unsigned.seq = 3;
        unsigned.version = 1;
        unsigned.evidence = None;
        refused(r, &unsigned, 403, Refusal::Unsigned);
        // A different batch under the stored seq 2.
        let (mut other, _) = signed("a1", 2, Some(d1), &k);
        other.measurements.pop();
        let d = canonical::digest(
            &Header {
                agent: "a1",
                seq: 2,
                prev: Some(&d1),
            },
            &other.measurements,
            &[],
        );
        let ev = other.evidence.as_mut().unwrap();
        ev.digest = keys::hex(&d);
        ev.signature = keys::signature_text(&keys::sign(&k, &d));
        refused(r, &other, 409, Refusal::SeqConflict);
        // A seq gap (batches 3..9 never stored) is declared, not broken.
        let (after_gap, _) = signed("a1", 10, Some([3; 32]), &k);
        assert_eq!(send(r, &after_gap).unwrap().stored, 3);
        let links = r.store.seal_links("a1", 2).unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(r.ingest.stats.evidence.signed.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn configured_keys_win_and_never_refuses_unknown_ones() {
        let r = rig(
            &[
                agent("a1", Some(keys::public_of(&key(1)))),
                agent("a2", None),
                agent("old", None),
            ],
            TrustNewKeys::Never,
        );
        let (ok, _) = signed("a1", 1, None, &key(1));
        send(&r, &ok).expect("configured key");
        let (wrong, _) = signed("a1", 2, None, &key(2));
        refused(&r, &wrong, 403, Refusal::KeyMismatch);
        let (unknown, _) = signed("a2", 1, None, &key(3));
        let e = refused(&r, &unknown, 403, Refusal::UnknownKey);
        assert!(
            e.reason.contains("ed25519:"),
            "names the key to configure: {}",
            e.reason
        );
        // An old agent without a key is still accepted, as unsigned.
        let mut old = ok.clone();
        old.agent = "old".into();
        old.version = 1;
        old.evidence = None;
        send(&r, &old).expect("unsigned");
        assert_eq!(r.ingest.stats.evidence.unsigned.load(Ordering::Relaxed), 1);
        assert_eq!(
            r.store.agent_keys().unwrap().len(),
            1,
            "only a1's key is stored"
        );
    }

    #[test]
    fn first_use_pins_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (b1, d1) = signed("a1", 1, None, &key(1));
        {
            let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
            let limits = attest_config::parse_collector("c.toml", "").unwrap().ingest;
            let ingest = Ingest::new(
                store,
                &[agent("a1", None)],
                limits,
                crate::changed::DataChanged::new(),
            );
            ingest
                .handle_admitted(
                    "a1",
                    None,
                    &serde_json::to_vec(&b1).unwrap(),
                    Timestamp::from_second(NOW).unwrap(),
                )
                .expect("pinned");
        }
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let limits = attest_config::parse_collector("c.toml", "").unwrap().ingest;
        let ingest = Ingest::new(
            store,
            &[agent("a1", None)],
            limits,
            crate::changed::DataChanged::new(),
        );
        let (b2, _) = signed("a1", 2, Some(d1), &key(2));
        let e = ingest
            .handle_admitted(
                "a1",
                None,
                &serde_json::to_vec(&b2).unwrap(),
                Timestamp::from_second(NOW).unwrap(),
            )
            .expect_err("the pinned key holds after a restart");
        assert_eq!(e.status, 403);
    }
}

/// The cost of verification, measured (not a test): the same load ingested unsigned
/// (version 1) and signed (version 2), on fresh SQLite stores in the same process, by CPU
/// time of the whole process (`/proc/self/stat`: ingest and the store's writer thread).
/// Run with `cargo test --profile profiling -p attest-collector --lib -- evidence_cost
/// --ignored --nocapture`.
#[cfg(test)]
mod cost {
    use std::sync::Arc;

    use attest_config::wire::{Evidence, Measurement, Phase};
    use jiff::Timestamp;

    use super::*;
    use crate::ingest::Ingest;
    use crate::store::SqliteStore;

    const AGENTS: usize = 4;
    const CHECKS: usize = 1000;
    const BATCHES: u64 = 20;
    const NOW: i64 = 1_790_000_000;

    /// CPU seconds of this process so far (user + system).
    fn cpu() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
        let after = &stat[stat.rfind(')').expect("comm") + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        let ticks: f64 =
            f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
        ticks / 100.0
    }

    /// Bodies of every batch, in the order sent: (agent, json).
    fn bodies(signed: bool) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for a in 0..AGENTS {
            let agent = format!("agent-{a}");
            let key = keys::secret_from_seed(&[a as u8 + 1; 32]);
            let mut prev: Option<[u8; 32]> = None;
            for seq in 1..=BATCHES {
                let ms: Vec<Measurement> = (0..CHECKS)
                    .map(|c| {
                        let ts = Timestamp::from_second(NOW - 3000 + seq as i64 * 10).expect("ts");
                        let mut m = Measurement::new(format!("check-{c}"), ts, c % 37 != 0);
                        m.duration_seconds = Some(0.01 + c as f64 * 1e-5);
                        m.phases.insert(Phase::Connect, 0.002);
                        m.phases.insert(Phase::Processing, 0.007);
                        m
                    })
                    .collect();
                let mut b = Batch {
                    version: 1,
                    agent: agent.clone(),
                    seq,
                    sent_at: Timestamp::from_second(NOW).expect("ts"),
                    measurements: ms,
                    gaps: vec![],
                    spool: None,
                    evidence: None,
                };
                if signed {
                    let d = canonical::digest(
                        &Header {
                            agent: &agent,
                            seq,
                            prev: prev.as_ref(),
                        },
                        &b.measurements,
                        &[],
                    );
                    b.version = 2;
                    b.evidence = Some(Evidence {
                        prev: prev.map(|p| keys::hex(&p)),
                        digest: keys::hex(&d),
                        key: keys::public_of(&key).to_string(),
                        signature: keys::signature_text(&keys::sign(&key, &d)),
                    });
                    prev = Some(d);
                }
                out.push((agent.clone(), serde_json::to_vec(&b).expect("json")));
            }
        }
        out
    }

    /// CPU seconds to ingest `bodies` into a fresh store.
    fn run(bodies: &[(String, Vec<u8>)]) -> f64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
        let limits = attest_config::parse_collector("c.toml", "")
            .expect("defaults")
            .ingest;
        let ingest = Ingest::new(store, &[], limits, crate::changed::DataChanged::new());
        let start = cpu();
        for (agent, body) in bodies {
            ingest
                .handle_admitted(agent, None, body, Timestamp::from_second(NOW).expect("ts"))
                .expect("accepted");
        }
        cpu() - start
    }

    #[test]
    #[ignore = "measurement"]
    fn evidence_cost() {
        let (plain, signed) = (bodies(false), bodies(true));
        let n = (AGENTS * CHECKS) as f64 * BATCHES as f64;
        // Interleaved, best of three each: the machine is shared.
        let (mut best_plain, mut best_signed) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            best_plain = best_plain.min(run(&plain));
            best_signed = best_signed.min(run(&signed));
        }
        // The agent's side: digest and signature of every batch, from decoded measurements.
        let batches: Vec<Batch> = signed
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).expect("batch"))
            .collect();
        let key = keys::secret_from_seed(&[1; 32]);
        let start = cpu();
        for _ in 0..5 {
            for b in &batches {
                let d = canonical::digest(
                    &Header {
                        agent: &b.agent,
                        seq: b.seq,
                        prev: None,
                    },
                    &b.measurements,
                    &[],
                );
                std::hint::black_box(keys::sign(&key, &d));
            }
        }
        let seal_us = (cpu() - start) / (5.0 * n) * 1e6;
        eprintln!(
            "ingest CPU per measurement: unsigned {:.2} µs, signed {:.2} µs: {:.3}× (target ≤ 1.10×); \
             agent-side seal (digest + signature) {seal_us:.3} µs per measurement; {n} measurements per run",
            best_plain / n * 1e6,
            best_signed / n * 1e6,
            best_signed / best_plain
        );
    }
}
