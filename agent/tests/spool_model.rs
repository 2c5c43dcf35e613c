//! Model-based test of the spool (reliability plan R3): random sequences of append,
//! next_batch, ack, clean restart and simulated power loss, checked against a model.
//!
//! Power loss is simulated on the bytes of the last append only: they are what a crash before
//! that append's fsync could tear. The test treats that append as "in doubt" (its caller would
//! not have seen `Ok`): each of its measurements may be delivered intact or lost. Every
//! measurement of a completed append must be delivered exactly once or covered by a gap.
//! Cases: `SPOOL_MODEL_CASES` (default 16: fsyncs dominate the run time), each up to 60 actions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;

use attest_agent::spool::{PendingBatch, Spool, SpoolOptions, SpoolStats};
use attest_config::WhenFull;
use attest_config::wire::{FailureReason, Gap, Measurement};
use jiff::Timestamp;
use proptest::prelude::*;

const CAP: u64 = 32 * 1024;
const SEG: u64 = 4 * 1024;
const BASE: i64 = 1_700_000_000;

#[derive(Debug, Clone)]
enum Damage {
    /// Keep this fraction (per mille) of the last append's bytes.
    Truncate(u32),
    /// Flip bit `bit` of the byte at this fraction (per mille) of the last append's bytes.
    Flip(u32, u8),
}

#[derive(Debug, Clone)]
enum Action {
    Append(usize),
    NextBatch(usize),
    AckCurrent,
    AckStale,
    Reopen,
    PowerLoss(usize, Damage),
}

fn action() -> impl Strategy<Value = Action> {
    let damage = prop_oneof![
        (0u32..1000).prop_map(Damage::Truncate),
        (0u32..1000, 0u8..8).prop_map(|(at, bit)| Damage::Flip(at, bit)),
    ];
    prop_oneof![
        5 => (1usize..40).prop_map(Action::Append),
        4 => (1usize..60).prop_map(Action::NextBatch),
        3 => Just(Action::AckCurrent),
        1 => Just(Action::AckStale),
        1 => Just(Action::Reopen),
        2 => ((1usize..20), damage).prop_map(|(n, d)| Action::PowerLoss(n, d)),
    ]
}

fn measurement(n: i64) -> Measurement {
    let ok = n % 5 != 0;
    let mut m = Measurement::new(
        format!("c{}", n % 3),
        Timestamp::from_second(BASE + n).expect("test timestamps are in range"),
        ok,
    );
    m.duration_seconds = Some(0.001 * (n % 97) as f64);
    if !ok {
        m.reason = Some(FailureReason::Timeout);
        m.error = Some("connect timeout".into());
    }
    m
}

fn key(m: &Measurement) -> i64 {
    m.ts.as_second() - BASE
}

/// What the test knows, and the checks it makes on every answer of the spool.
struct Model {
    dir: tempfile::TempDir,
    opts: SpoolOptions,
    next_n: i64,
    sent: HashMap<i64, Measurement>,
    certain: HashSet<i64>,
    doubt: HashSet<i64>,
    delivered: HashMap<i64, u64>,
    last_delivered: i64,
    pending: Option<PendingBatch>,
    acked_seqs: Vec<u64>,
    max_seq: u64,
    gaps: Vec<Gap>,
    power_losses: u32,
    /// Counters summed over closed epochs (one epoch per open).
    dropped_closed: u64,
    corrupt_closed: u64,
    /// Depth and corrupt count right after the current open.
    epoch_base: (u64, u64),
}

impl Model {
    fn new(when_full: WhenFull) -> (Model, Spool) {
        let opts = SpoolOptions {
            max_bytes: CAP,
            when_full,
            segment_bytes: Some(SEG),
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open_with(dir.path(), opts).expect("open fresh spool");
        let model = Model {
            dir,
            opts,
            next_n: 0,
            sent: HashMap::new(),
            certain: HashSet::new(),
            doubt: HashSet::new(),
            delivered: HashMap::new(),
            last_delivered: -1,
            pending: None,
            acked_seqs: Vec::new(),
            max_seq: 0,
            gaps: Vec::new(),
            power_losses: 0,
            dropped_closed: 0,
            corrupt_closed: 0,
            epoch_base: (0, 0),
        };
        (model, spool)
    }

    fn fresh(&mut self, n: usize) -> Vec<Measurement> {
        let ms: Vec<_> = (0..n)
            .map(|i| measurement(self.next_n + i as i64))
            .collect();
        self.next_n += n as i64;
        for m in &ms {
            self.sent.insert(key(m), m.clone());
        }
        ms
    }

    fn append(&mut self, spool: &mut Spool, n: usize) -> Result<(), TestCaseError> {
        let ms = self.fresh(n);
        spool
            .append(&ms)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        self.certain.extend(ms.iter().map(key));
        Ok(())
    }

    fn next_batch(&mut self, spool: &mut Spool, max: usize) -> Result<(), TestCaseError> {
        let got = spool
            .next_batch(max)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        match (&self.pending, got) {
            (Some(p), Some(b)) => prop_assert_eq!(p, &b, "cut batch changed before its ack"),
            (Some(p), None) => prop_assert!(false, "pending batch {} vanished", p.seq),
            (None, None) => {}
            (None, Some(b)) => {
                self.accept_new_batch(&b, max)?;
                self.pending = Some(b);
            }
        }
        Ok(())
    }

    fn accept_new_batch(&mut self, b: &PendingBatch, max: usize) -> Result<(), TestCaseError> {
        prop_assert!(
            b.seq > self.max_seq,
            "seq {} not above {}",
            b.seq,
            self.max_seq
        );
        self.max_seq = b.seq;
        prop_assert!(b.measurements.len() <= max.max(1));
        prop_assert!(
            !b.measurements.is_empty() || !b.gaps.is_empty(),
            "empty batch"
        );
        let measurements = b
            .measurements
            .decode()
            .map_err(|e| TestCaseError::fail(format!("stored measurements do not decode: {e}")))?;
        for m in &measurements {
            let k = key(m);
            prop_assert_eq!(self.sent.get(&k), Some(m), "delivered data never appended");
            prop_assert!(
                self.delivered.insert(k, b.seq).is_none(),
                "measurement {} delivered in two batches",
                k
            );
            prop_assert!(k > self.last_delivered, "order broken at {}", k);
            self.last_delivered = k;
        }
        self.gaps.extend(b.gaps.iter().cloned());
        Ok(())
    }

    fn ack_current(&mut self, spool: &mut Spool) -> Result<(), TestCaseError> {
        if let Some(p) = self.pending.take() {
            spool
                .ack(p.seq)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            self.acked_seqs.push(p.seq);
        }
        Ok(())
    }

    fn ack_stale(&mut self, spool: &mut Spool) -> Result<(), TestCaseError> {
        if let Some(&old) = self.acked_seqs.last() {
            spool
                .ack(old)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        Ok(())
    }

    fn reopen(&mut self, spool: Spool) -> Result<Spool, TestCaseError> {
        let before = spool.stats();
        self.close_epoch(&before);
        drop(spool);
        let spool = self.open()?;
        let after = spool.stats();
        prop_assert_eq!(after.depth, before.depth, "clean restart changed the depth");
        prop_assert_eq!(after.corrupt_records_total, 0);
        Ok(spool)
    }

    fn power_loss(
        &mut self,
        mut spool: Spool,
        n: usize,
        damage: &Damage,
    ) -> Result<Spool, TestCaseError> {
        self.power_losses += 1;
        let ms = self.fresh(n);
        let before_files = segment_sizes(self.dir.path());
        spool
            .append(&ms)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        self.doubt.extend(ms.iter().map(key));
        let before = spool.stats();
        self.close_epoch(&before);
        drop(spool);
        damage_last_append(self.dir.path(), &before_files, damage);
        let spool = self.open()?;
        let after = spool.stats();
        prop_assert!(after.depth <= before.depth);
        prop_assert!(
            after.depth + n as u64 >= before.depth,
            "lost more than the torn append"
        );
        prop_assert!(
            after.corrupt_records_total <= n as u64,
            "more corrupt than torn"
        );
        Ok(spool)
    }

    fn close_epoch(&mut self, s: &SpoolStats) {
        self.dropped_closed += s.dropped_total;
        self.corrupt_closed += s.corrupt_records_total;
    }

    fn open(&mut self) -> Result<Spool, TestCaseError> {
        let spool = Spool::open_with(self.dir.path(), self.opts)
            .map_err(|e| TestCaseError::fail(format!("reopen failed: {e}")))?;
        let st = spool.stats();
        self.epoch_base = (st.depth, st.corrupt_records_total);
        Ok(spool)
    }

    /// Checks that hold after every action.
    fn check_stats(&self, s: &SpoolStats) -> Result<(), TestCaseError> {
        prop_assert!(s.bytes <= CAP, "spool uses {} bytes, cap {}", s.bytes, CAP);
        let (base, corrupt_at_open) = self.epoch_base;
        let expect = (base + s.appended_total).checked_sub(
            s.acked_total + s.dropped_total + (s.corrupt_records_total - corrupt_at_open),
        );
        prop_assert_eq!(
            Some(s.depth),
            expect,
            "depth disagrees with the counters: {:?}",
            s
        );
        Ok(())
    }

    /// Drains the spool and checks the end-to-end accounting.
    fn finish(&mut self, mut spool: Spool) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            self.next_batch(&mut spool, 50)?;
            if self.pending.is_none() {
                break;
            }
            self.ack_current(&mut spool)?;
        }
        prop_assert!(self.pending.is_none(), "spool did not drain");
        let st = spool.stats();
        prop_assert_eq!(st.depth, 0);
        let dropped = self.dropped_closed + st.dropped_total;
        let corrupt = self.corrupt_closed + st.corrupt_records_total;
        let gap_total: u64 = self.gaps.iter().map(|g| g.count).sum();
        prop_assert_eq!(
            gap_total,
            dropped,
            "every drop is in exactly one delivered gap"
        );

        let lost_certain: Vec<i64> = self
            .certain
            .iter()
            .copied()
            .filter(|k| !self.delivered.contains_key(k))
            .collect();
        let lost_doubt = self
            .doubt
            .iter()
            .filter(|k| !self.delivered.contains_key(k))
            .count();
        for k in &lost_certain {
            let m = &self.sent[k];
            prop_assert!(
                self.gaps
                    .iter()
                    .any(|g| g.check == m.check && g.from <= m.ts && m.ts <= g.to),
                "measurement {} lost without a gap",
                k
            );
        }
        prop_assert!(gap_total >= lost_certain.len() as u64);
        prop_assert!(gap_total <= (lost_certain.len() + lost_doubt) as u64);
        for k in self.delivered.keys() {
            let m = &self.sent[k];
            prop_assert!(
                !self
                    .gaps
                    .iter()
                    .any(|g| g.check == m.check && g.from <= m.ts && m.ts <= g.to),
                "delivered measurement {} lies inside a gap",
                k
            );
        }
        if self.power_losses == 0 {
            prop_assert_eq!(corrupt, 0);
            prop_assert_eq!(lost_certain.len() as u64, dropped);
        }
        Ok(())
    }
}

/// Sizes of the segment files, by name.
fn segment_sizes(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).expect("read spool dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("seg-") {
            out.insert(name, e.metadata().map(|m| m.len()).unwrap_or(0));
        }
    }
    out
}

/// Tears or corrupts the bytes the last append added (new segment files and grown tails, in
/// log order), as a power loss before its fsync could.
fn damage_last_append(dir: &Path, before: &BTreeMap<String, u64>, damage: &Damage) {
    let after = segment_sizes(dir);
    let regions: Vec<(String, u64, u64, bool)> = after
        .iter()
        .filter_map(|(name, &len)| {
            let old = before.get(name).copied();
            let start = old.unwrap_or(0);
            (len > start).then(|| (name.clone(), start, len, old.is_none()))
        })
        .collect();
    let total: u64 = regions.iter().map(|(_, s, e, _)| e - s).sum();
    if total == 0 {
        return;
    }
    let point = |per_mille: u32| total * u64::from(per_mille) / 1000;
    let mut offset = 0;
    for (name, start, end, is_new) in regions {
        let path = dir.join(&name);
        let len = end - start;
        match damage {
            Damage::Truncate(pm) => {
                let keep = point(*pm).saturating_sub(offset).min(len);
                if keep == 0 && is_new {
                    fs::remove_file(&path).expect("remove torn segment");
                } else if keep < len {
                    let f = fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .expect("open");
                    f.set_len(start + keep).expect("truncate");
                }
            }
            Damage::Flip(pm, bit) => {
                let at = point(*pm).min(total - 1);
                if at >= offset && at < offset + len {
                    let mut bytes = fs::read(&path).expect("read segment");
                    bytes[(start + at - offset) as usize] ^= 1 << bit;
                    fs::write(&path, &bytes).expect("write segment");
                }
            }
        }
        offset += len;
    }
}

fn run(when_full: WhenFull, actions: Vec<Action>) -> Result<(), TestCaseError> {
    let (mut model, mut spool) = Model::new(when_full);
    for a in &actions {
        spool = match a {
            Action::Append(n) => {
                model.append(&mut spool, *n)?;
                spool
            }
            Action::NextBatch(max) => {
                model.next_batch(&mut spool, *max)?;
                spool
            }
            Action::AckCurrent => {
                model.ack_current(&mut spool)?;
                spool
            }
            Action::AckStale => {
                model.ack_stale(&mut spool)?;
                spool
            }
            Action::Reopen => model.reopen(spool)?,
            Action::PowerLoss(n, d) => model.power_loss(spool, *n, d)?,
        };
        model.check_stats(&spool.stats())?;
    }
    model.finish(spool)
}

fn cases() -> u32 {
    std::env::var("SPOOL_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn spool_agrees_with_model(
        drop_oldest in any::<bool>(),
        actions in proptest::collection::vec(action(), 1..60),
    ) {
        let when_full = if drop_oldest { WhenFull::DropOldest } else { WhenFull::DropNewest };
        run(when_full, actions)?;
    }
}
