//! Reads an evidence export back and checks it offline: its `MANIFEST`, every batch's
//! canonical bytes, digest, signature (against the auditor's agent keys, never the keys the
//! export names) and chain link, and the batches, definitions and maintenance windows
//! against the month's sealed leaves. Each batch that passes and is sealed is handed to the
//! caller (`report verify --deep` loads it into a scratch store and recomputes the figures).
//!
//! Invariants:
//! - The trust anchors are the caller's: the agent keys file and the sealed leaves (whose
//!   root and signature `report verify` checked). Nothing the export states about itself is
//!   believed without a check.
//! - A seq gap is a note (a batch refused and quarantined, or a new chain after the agent
//!   lost its state); a link to another digest than the batch before it is a finding. A
//!   sealed batch missing from the export is a finding, whatever the gap says.
//! - Every finding names the agent and batch (or file, service, window) it is about.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use attest_config::evidence::canonical::{self, Decoded};
use attest_config::evidence::keys::{self, PublicKey};
use sha2::{Digest, Sha256};

use super::{
    CHAIN_V1, ChainLine, DEFINITIONS, MAINTENANCE, MANIFEST, MANIFEST_JSON, Manifest, SCHEMA,
    WindowEntry, batches_path, chain_path, next_record,
};
use crate::report::monthly::model::definitions_sha256;
use crate::seal::Leaf;

/// The agents' public keys an auditor trusts, by agent id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentKeys(pub BTreeMap<String, Vec<PublicKey>>);

impl AgentKeys {
    /// The `--agent-keys` file: one `AGENT ed25519:…` per line (an agent may have several
    /// lines: every key listed is accepted); `#` starts a comment, blank lines are skipped.
    pub fn parse(text: &str) -> Result<AgentKeys, String> {
        let mut out: BTreeMap<String, Vec<PublicKey>> = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(agent), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!(
                    "line {}: expected `AGENT ed25519:KEY` (what `attest-agent key show` prints on its first line), found {line:?}",
                    i + 1
                ));
            };
            let key = PublicKey::parse(key).map_err(|e| format!("line {}: {e}", i + 1))?;
            out.entry(agent.to_string()).or_default().push(key);
        }
        Ok(AgentKeys(out))
    }
}

/// The month's sealed leaves (`seal/leaves.txt`), by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sealed {
    pub batches: BTreeMap<(String, u64), [u8; 32]>,
    pub definitions: BTreeMap<String, String>,
    pub maintenance: BTreeSet<String>,
}

impl Sealed {
    pub fn parse(leaves: &str) -> Sealed {
        let mut s = Sealed::default();
        for line in leaves.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["batch", agent, seq, digest] => {
                    if let (Ok(seq), Some(d)) = (seq.parse(), keys::parse_digest(digest)) {
                        s.batches.insert(((*agent).to_string(), seq), d);
                    }
                }
                ["definition", service, sha] => {
                    s.definitions
                        .insert((*service).to_string(), (*sha).to_string());
                }
                ["maintenance", ..] => {
                    s.maintenance.insert(line.to_string());
                }
                _ => {}
            }
        }
        s
    }
}

/// One thing the evidence check found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A file differs from `MANIFEST`, is missing, or is not listed.
    File {
        file: String,
        what: String,
    },
    /// A record of an agent's stream is not a batch in canonical form.
    NotCanonical {
        agent: String,
        record: usize,
    },
    /// An agent's file holds a batch of another agent (a replay).
    ForeignAgent {
        agent: String,
        batch_agent: String,
        seq: u64,
    },
    /// A chain line disagrees with its batch's bytes (seq, prev or digest).
    ChainLine {
        agent: String,
        seq: u64,
        what: String,
    },
    /// The batch's bytes do not give the digest its signature is over.
    Digest {
        agent: String,
        seq: u64,
    },
    BadSignature {
        agent: String,
        seq: u64,
    },
    /// No key for the agent in `--agent-keys`.
    NoKey {
        agent: String,
    },
    /// Signed by a key the keys file does not list for the agent.
    ForeignKey {
        agent: String,
        seq: u64,
        fingerprint: String,
    },
    /// Not after the batch before it (reordered or repeated).
    OutOfOrder {
        agent: String,
        seq: u64,
        after: u64,
    },
    /// Links to another digest than that of the batch before it.
    BrokenLink {
        agent: String,
        seq: u64,
    },
    /// The seal holds another digest for this batch.
    SealDiffers {
        agent: String,
        seq: u64,
    },
    /// A sealed batch is not in the export (deleted).
    Missing {
        agent: String,
        seq: u64,
    },
    /// A service definition disagrees with the seal.
    Definition {
        service: String,
        what: String,
    },
    /// A maintenance window disagrees with the seal.
    Maintenance {
        what: String,
    },
    /// The manifest or definitions cannot be read.
    Unreadable {
        file: String,
        what: String,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::File { file, what } => write!(f, "evidence {file}: {what}"),
            Finding::NotCanonical { agent, record } => write!(
                f,
                "agent {agent} record {record}: not a batch in canonical form v1 (damaged or edited)"
            ),
            Finding::ForeignAgent {
                agent,
                batch_agent,
                seq,
            } => write!(
                f,
                "agent {agent}: holds batch {seq} of agent {batch_agent} (a batch replayed from another agent)"
            ),
            Finding::ChainLine { agent, seq, what } => {
                write!(f, "agent {agent} batch {seq}: chain line {what}")
            }
            Finding::Digest { agent, seq } => write!(
                f,
                "agent {agent} batch {seq}: its measurements do not give the digest the agent signed (a measurement changed, added or removed)"
            ),
            Finding::BadSignature { agent, seq } => write!(
                f,
                "agent {agent} batch {seq}: the signature does not verify over the batch's digest"
            ),
            Finding::NoKey { agent } => write!(
                f,
                "agent {agent}: no key in --agent-keys, so none of its batches can be verified; add `{agent} ed25519:…` (from `attest-agent key show`)"
            ),
            Finding::ForeignKey {
                agent,
                seq,
                fingerprint,
            } => write!(
                f,
                "agent {agent} batch {seq}: signed by key {fingerprint}, which --agent-keys does not list for {agent}"
            ),
            Finding::OutOfOrder { agent, seq, after } => write!(
                f,
                "agent {agent} batch {seq}: comes after batch {after} (batches reordered or repeated)"
            ),
            Finding::BrokenLink { agent, seq } => write!(
                f,
                "agent {agent} batch {seq}: its previous digest is not the digest of batch {} (the chain is broken)",
                seq.saturating_sub(1)
            ),
            Finding::SealDiffers { agent, seq } => write!(
                f,
                "agent {agent} batch {seq}: the month's seal holds another digest for it"
            ),
            Finding::Missing { agent, seq } => write!(
                f,
                "agent {agent} batch {seq}: sealed for the month but missing from the evidence (deleted)"
            ),
            Finding::Definition { service, what } => write!(f, "service {service}: {what}"),
            Finding::Maintenance { what } => write!(f, "maintenance: {what}"),
            Finding::Unreadable { file, what } => write!(f, "evidence {file}: {what}"),
        }
    }
}

/// What the check read and found.
#[derive(Debug, Default)]
pub struct Checked {
    pub manifest: Option<Manifest>,
    pub definitions: Option<attest_config::CollectorConfig>,
    pub windows: Vec<WindowEntry>,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    /// Batches checked, and those that passed and were handed on.
    pub batches: u64,
    pub passed: u64,
}

/// A batch that passed every check and is sealed.
pub struct Passed<'a> {
    pub batch: &'a Decoded,
    pub line: &'a ChainLine,
}

/// Checks the export in `dir` against `keys` and `sealed`; `on_batch` gets each batch that
/// passed and is sealed, in chain order per agent. Err only when `on_batch` fails.
pub fn check(
    dir: &Path,
    keys: &AgentKeys,
    sealed: &Sealed,
    on_batch: &mut dyn FnMut(Passed<'_>) -> Result<(), String>,
) -> Result<Checked, String> {
    let mut c = Checked::default();
    check_manifest_file(dir, &mut c.findings);
    let Some(manifest) = read_manifest(dir, &mut c.findings) else {
        return Ok(c);
    };
    c.definitions = read_definitions(dir, &manifest, sealed, &mut c.findings);
    c.windows = read_windows(dir, sealed, &mut c.findings);
    let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut walked = BTreeSet::new();
    for a in &manifest.agents {
        if a.file != crate::report::monthly::file_safe(&a.file) || !walked.insert(&a.agent) {
            c.findings.push(Finding::Unreadable {
                file: MANIFEST_JSON.into(),
                what: format!(
                    "agent {:?} is listed twice or names the file {:?} (a name without `/`)",
                    a.agent, a.file
                ),
            });
            continue;
        }
        let mut walk = Walk {
            agent: &a.agent,
            keys: keys.0.get(&a.agent).map(Vec::as_slice),
            sealed,
            checked: &mut c,
            seen: &mut seen,
            last: None,
        };
        walk.agent_files(dir, &a.file, on_batch)?;
    }
    let in_scope: BTreeSet<&str> = manifest.agents.iter().map(|a| a.agent.as_str()).collect();
    for (agent, seq) in sealed.batches.keys() {
        let scoped = manifest.service.is_none() || in_scope.contains(agent.as_str());
        if scoped && !seen.contains(&(agent.clone(), *seq)) {
            c.findings.push(Finding::Missing {
                agent: agent.clone(),
                seq: *seq,
            });
        }
    }
    for (agent, n) in &manifest.unsigned_measurements {
        c.notes.push(format!(
            "agent {agent}: the collector stored {n} measurement(s) of the span in no signed batch (an unsigned agent or an import); they are no evidence, and the recomputation leaves them out"
        ));
    }
    if let Some(s) = &manifest.service {
        c.notes.push(format!(
            "the evidence holds only the {} agent(s) that measured service {s}; sealed batches of other agents are not checked",
            in_scope.len()
        ));
    }
    c.manifest = Some(manifest);
    Ok(c)
}

/// `MANIFEST` lists every file with its SHA-256, and nothing else is present.
fn check_manifest_file(dir: &Path, findings: &mut Vec<Finding>) {
    let text = match std::fs::read_to_string(dir.join(MANIFEST)) {
        Ok(t) => t,
        Err(e) => {
            findings.push(Finding::File {
                file: MANIFEST.into(),
                what: format!("cannot be read: {e}"),
            });
            return;
        }
    };
    let listed = crate::report::monthly::integrity::parse_manifest(&text);
    let mut names = BTreeSet::new();
    for (digest, rel) in &listed {
        names.insert(rel.clone());
        if rel.contains("..") || rel.starts_with('/') {
            findings.push(Finding::File {
                file: rel.clone(),
                what: "MANIFEST names a path outside the export".into(),
            });
            continue;
        }
        match std::fs::read(dir.join(rel)) {
            Ok(b) if keys::hex(&Sha256::digest(&b)) == *digest => {}
            Ok(b) => findings.push(Finding::File {
                file: rel.clone(),
                what: format!(
                    "changed: SHA-256 is {}, MANIFEST says {digest}",
                    keys::hex(&Sha256::digest(&b))
                ),
            }),
            Err(e) => findings.push(Finding::File {
                file: rel.clone(),
                what: format!("listed in MANIFEST but cannot be read: {e}"),
            }),
        }
    }
    let listed_text: String = listed.iter().map(|(d, p)| format!("{d}  {p}\n")).collect();
    if listed_text != text {
        findings.push(Finding::File {
            file: MANIFEST.into(),
            what: "has lines that are not `SHA256  PATH`".into(),
        });
    }
    for rel in files_under(dir) {
        if rel != MANIFEST && !names.contains(&rel) {
            findings.push(Finding::File {
                file: rel,
                what: "present but not listed in MANIFEST (added)".into(),
            });
        }
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), format!("{name}/")));
            } else {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

fn read_manifest(dir: &Path, findings: &mut Vec<Finding>) -> Option<Manifest> {
    let bad = |what: String| Finding::Unreadable {
        file: MANIFEST_JSON.into(),
        what,
    };
    let bytes = match std::fs::read(dir.join(MANIFEST_JSON)) {
        Ok(b) => b,
        Err(e) => {
            findings.push(bad(format!("cannot be read: {e}")));
            return None;
        }
    };
    match serde_json::from_slice::<Manifest>(&bytes) {
        Ok(m) if m.schema == SCHEMA => Some(m),
        Ok(m) => {
            findings.push(bad(format!("schema {:?}, expected {SCHEMA:?}", m.schema)));
            None
        }
        Err(e) => {
            findings.push(bad(format!("not an evidence manifest: {e}")));
            None
        }
    }
}

/// The exported definitions load, and each service's definition is the sealed one.
fn read_definitions(
    dir: &Path,
    manifest: &Manifest,
    sealed: &Sealed,
    findings: &mut Vec<Finding>,
) -> Option<attest_config::CollectorConfig> {
    let text = std::fs::read_to_string(dir.join(DEFINITIONS)).unwrap_or_default();
    let cfg = match attest_config::parse_collector(DEFINITIONS, &text) {
        Ok(c) => c,
        Err(e) => {
            findings.push(Finding::Unreadable {
                file: DEFINITIONS.into(),
                what: format!("does not load: {e}"),
            });
            return None;
        }
    };
    for s in &cfg.services {
        let sha = definitions_sha256(&[s]);
        match sealed.definitions.get(&s.name) {
            Some(x) if *x == sha => {}
            Some(x) => findings.push(Finding::Definition {
                service: s.name.clone(),
                what: format!("exported definition has SHA-256 {sha}, the seal holds {x}"),
            }),
            None => findings.push(Finding::Definition {
                service: s.name.clone(),
                what: "defined in the evidence but not sealed for the month".into(),
            }),
        }
    }
    for name in sealed.definitions.keys() {
        if !cfg.services.iter().any(|s| &s.name == name) {
            findings.push(Finding::Definition {
                service: name.clone(),
                what: "sealed for the month but missing from the evidence's definitions".into(),
            });
        }
    }
    for s in &manifest.services {
        if sealed.definitions.get(&s.name) != Some(&s.definition_sha256) {
            findings.push(Finding::Definition {
                service: s.name.clone(),
                what: format!(
                    "{MANIFEST_JSON} states SHA-256 {}, which the seal does not hold",
                    s.definition_sha256
                ),
            });
        }
    }
    Some(cfg)
}

/// The exported windows are exactly the sealed ones.
fn read_windows(dir: &Path, sealed: &Sealed, findings: &mut Vec<Finding>) -> Vec<WindowEntry> {
    let text = std::fs::read_to_string(dir.join(MAINTENANCE)).unwrap_or_default();
    let mut out = Vec::new();
    let mut leaves = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let Ok(w) = serde_json::from_str::<WindowEntry>(line) else {
            findings.push(Finding::Maintenance {
                what: format!("{MAINTENANCE} line {}: not a window", i + 1),
            });
            continue;
        };
        let leaf = String::from_utf8_lossy(&window_leaf(&w).encode()).into_owned();
        if !sealed.maintenance.contains(&leaf) {
            findings.push(Finding::Maintenance {
                what: format!(
                    "window {} of service {} ({} – {}) is not the sealed one (added or edited after the seal)",
                    w.id, w.service, w.start, w.end
                ),
            });
        }
        leaves.insert(leaf);
        out.push(w);
    }
    for l in sealed.maintenance.difference(&leaves) {
        findings.push(Finding::Maintenance {
            what: format!("sealed window missing from the evidence: {l}"),
        });
    }
    out
}

fn window_leaf(w: &WindowEntry) -> Leaf<'_> {
    Leaf::Maintenance {
        id: w.id,
        service: &w.service,
        start: w.start,
        end: w.end,
        registered_at: w.registered_at,
        cancelled_at: w.cancelled_at,
        registered_by: w.registered_by.as_deref(),
        reason: &w.reason,
    }
}

/// One agent's chain and batches, walked in lockstep.
struct Walk<'a> {
    agent: &'a str,
    keys: Option<&'a [PublicKey]>,
    sealed: &'a Sealed,
    checked: &'a mut Checked,
    seen: &'a mut BTreeSet<(String, u64)>,
    /// The previous batch: (seq, digest).
    last: Option<(u64, [u8; 32])>,
}

impl Walk<'_> {
    fn find(&mut self, f: Finding) {
        self.checked.findings.push(f);
    }

    fn agent_files(
        &mut self,
        dir: &Path,
        file: &str,
        on_batch: &mut dyn FnMut(Passed<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        let agent = self.agent.to_string();
        if self.keys.is_none() {
            self.find(Finding::NoKey {
                agent: agent.clone(),
            });
        }
        let chain = std::fs::read_to_string(dir.join(chain_path(file))).unwrap_or_default();
        let mut lines = chain.lines();
        if lines.next() != Some(&format!("{CHAIN_V1} {agent}")) {
            self.find(Finding::File {
                file: chain_path(file),
                what: format!("does not start with `{CHAIN_V1} {agent}`"),
            });
        }
        let mut stream: Box<dyn Read> = match std::fs::File::open(dir.join(batches_path(file)))
            .and_then(zstd::stream::Decoder::new)
        {
            Ok(d) => Box::new(d),
            Err(e) => {
                self.find(Finding::File {
                    file: batches_path(file),
                    what: format!("cannot be read: {e}"),
                });
                return Ok(());
            }
        };
        let mut record = 0usize;
        loop {
            let bytes = match next_record(&mut stream) {
                Ok(b) => b,
                Err(e) => {
                    self.find(Finding::File {
                        file: batches_path(file),
                        what: format!("damaged after record {record}: {e}"),
                    });
                    break;
                }
            };
            let (bytes, line) = match (bytes, lines.next()) {
                (Some(b), Some(l)) => (b, l),
                (None, None) => break,
                _ => {
                    self.find(Finding::File {
                        file: chain_path(file),
                        what: format!(
                            "the chain file and the batch stream hold different numbers of batches (they part after {record})"
                        ),
                    });
                    break;
                }
            };
            record += 1;
            self.checked.batches += 1;
            self.batch(record, &bytes, line, on_batch)?;
        }
        Ok(())
    }

    /// Checks one batch; hands it on when it passed and is sealed.
    fn batch(
        &mut self,
        record: usize,
        bytes: &[u8],
        line: &str,
        on_batch: &mut dyn FnMut(Passed<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        let before = self.checked.findings.len();
        let agent = self.agent.to_string();
        let Some(d) = canonical::decode(bytes) else {
            self.find(Finding::NotCanonical { agent, record });
            return Ok(());
        };
        let seq = d.seq;
        if d.agent != agent {
            self.find(Finding::ForeignAgent {
                agent,
                batch_agent: d.agent.clone(),
                seq,
            });
            return Ok(());
        }
        let line = match ChainLine::parse(line) {
            Ok(l) => l,
            Err(why) => {
                self.find(Finding::ChainLine {
                    agent,
                    seq,
                    what: format!("cannot be read: {why}"),
                });
                return Ok(());
            }
        };
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        self.line_agrees(&d, &line, &digest);
        self.signature(seq, &line, &digest);
        self.link(&d, &digest);
        let sealed = self.seal(seq, &digest);
        if sealed && self.checked.findings.len() == before {
            self.checked.passed += 1;
            on_batch(Passed {
                batch: &d,
                line: &line,
            })?;
        }
        Ok(())
    }

    fn line_agrees(&mut self, d: &Decoded, line: &ChainLine, digest: &[u8; 32]) {
        let agent = self.agent.to_string();
        if line.seq != d.seq || line.prev != d.prev {
            self.find(Finding::ChainLine {
                agent,
                seq: d.seq,
                what: format!(
                    "states seq {} and another previous digest than the batch's own",
                    line.seq
                ),
            });
        } else if line.digest != *digest {
            self.find(Finding::Digest { agent, seq: d.seq });
        }
    }

    /// The key must be one the auditor lists for the agent, and sign the recomputed digest.
    fn signature(&mut self, seq: u64, line: &ChainLine, digest: &[u8; 32]) {
        let agent = self.agent.to_string();
        let Ok(key) = PublicKey::from_bytes(&line.key) else {
            self.find(Finding::BadSignature { agent, seq });
            return;
        };
        if let Some(trusted) = self.keys
            && !trusted.contains(&key)
        {
            self.find(Finding::ForeignKey {
                agent: agent.clone(),
                seq,
                fingerprint: key.fingerprint(),
            });
        }
        if line.digest == *digest && !key.verifies(digest, &line.signature) {
            self.find(Finding::BadSignature { agent, seq });
        }
    }

    fn link(&mut self, d: &Decoded, digest: &[u8; 32]) {
        let agent = self.agent.to_string();
        if let Some((last_seq, last_digest)) = self.last {
            if d.seq <= last_seq {
                self.find(Finding::OutOfOrder {
                    agent,
                    seq: d.seq,
                    after: last_seq,
                });
                return;
            }
            match d.prev {
                None => self.checked.notes.push(format!(
                    "agent {agent} batch {}: starts a new chain (the agent lost its spool state)",
                    d.seq
                )),
                Some(p) if d.seq == last_seq + 1 && p != last_digest => {
                    self.find(Finding::BrokenLink { agent, seq: d.seq });
                }
                Some(_) if d.seq > last_seq + 1 => self.checked.notes.push(format!(
                    "agent {agent}: seqs {}..{} are not in the evidence (a declared gap: refused and quarantined by the agent, or never stored)",
                    last_seq + 1,
                    d.seq - 1
                )),
                Some(_) => {}
            }
        }
        self.last = Some((d.seq, *digest));
    }

    /// Whether the batch is sealed with this digest; an unsealed one is a note.
    fn seal(&mut self, seq: u64, digest: &[u8; 32]) -> bool {
        let agent = self.agent.to_string();
        self.seen.insert((agent.clone(), seq));
        match self.sealed.batches.get(&(agent.clone(), seq)) {
            Some(d) if d == digest => true,
            Some(_) => {
                self.find(Finding::SealDiffers { agent, seq });
                false
            }
            None => {
                self.checked.notes.push(format!(
                    "agent {agent} batch {seq}: not in the month's seal (stored after the month was sealed); left out of the recomputation"
                ));
                false
            }
        }
    }
}
