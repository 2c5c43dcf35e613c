//! The lossless columnar block that holds the raw measurements of one series (agent ×
//! check) and one hour once they are compacted, shared by both backends: the way a
//! time-series head block is compacted, so that the evidence kept for `raw_retention`
//! costs bytes per measurement, not a B-tree row each.
//!
//! Layout (`FORMAT` byte, varint length of the body, then the body compressed by zstd);
//! the body is column after column, so that similar bytes sit together:
//! - count `n`; instants as the first value then zigzag delta-of-deltas (probes are
//!   periodic, so most are a few bytes of jitter); batch seqs (-1 = unknown) as the first
//!   then zigzag deltas; `ok` bit-packed;
//! - a dictionary of every text of the block (errors, value names and resources, label
//!   keys and values), each text once; reasons and failed phases as one code byte each
//!   (0 = none); errors as dictionary indexes (0 = none);
//! - numbers (durations, phases, values) as [`NumColumn`]s: a kind byte per number, then
//!   whole numbers and whole nanoseconds as zigzag deltas from the previous one of their
//!   column and kind, anything else as its 8 IEEE bytes;
//! - phases as a presence mask per measurement and one column per phase; values as a
//!   layout per measurement (the sequence of (name, resource) slots, stored once per
//!   block) and one column per slot, so a counter's deltas stay small; labels as a key
//!   set per measurement (stored once per block) and the value indexes.
//!
//! Invariants:
//! - `decode(encode(x)) == x` for every measurement the wire can carry: every number bit
//!   for bit (NaN payloads, infinities and -0.0 included), every text byte for byte, the
//!   order of values kept (property test below).
//! - Entries are kept sorted by instant; the check name is not stored (the series says it).
//! - Decoding never panics or allocates without bound on corrupt bytes: it returns an
//!   error naming the block.

use std::collections::{BTreeMap, HashMap};

use attest_config::wire::{Measurement, Phase, Value};
use jiff::Timestamp;

use super::StoreError;
use super::codec::{self, CodecError, Reader};
use super::extra::{phase_code, phase_from};

/// First byte of a block.
const FORMAT: u8 = 1;
/// zstd level: compaction runs off the commit path, once per series and hour.
const ZSTD_LEVEL: i32 = 9;
/// The largest body a block may claim (a corrupt length must not allocate without bound).
const MAX_BODY: usize = 256 << 20;
/// Phase codes run `0..PHASES` (`extra::phase_code`).
const PHASES: u8 = 9;

/// One raw measurement as a block holds it: its instant in stored nanoseconds, the batch
/// it arrived in (`None` for rows stored before batch membership was recorded) and the
/// measurement itself (its `check` and `ts` are not read when encoding).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub ns: i64,
    pub seq: Option<i64>,
    pub m: Measurement,
}

fn invalid(e: CodecError) -> StoreError {
    StoreError::Backend(format!(
        "stored raw block is invalid: {e}; the database may be corrupt"
    ))
}

/// Encodes `entries` (any order; sorted by instant here) into one block.
pub fn encode(mut entries: Vec<Stored>) -> Result<Vec<u8>, StoreError> {
    entries.sort_by_key(|e| e.ns);
    let body = body(&entries);
    let packed = zstd::bulk::compress(&body, ZSTD_LEVEL)
        .map_err(|e| StoreError::Backend(format!("cannot compress a raw block: {e}")))?;
    let mut out = Vec::with_capacity(packed.len() + 6);
    out.push(FORMAT);
    codec::put_varint(&mut out, body.len() as u64);
    out.extend_from_slice(&packed);
    Ok(out)
}

/// Decodes a block of series `check` back into its entries, sorted by instant.
pub fn decode(bytes: &[u8], check: &str) -> Result<Vec<Stored>, StoreError> {
    let body = unpack(bytes)?;
    decode_body(&body, check).map_err(invalid)
}

/// Only the instants of a block (for the dedup check of late data into a compacted hour).
pub fn instants(bytes: &[u8]) -> Result<Vec<i64>, StoreError> {
    let body = unpack(bytes)?;
    let mut r = Reader::new(&body);
    let n = count(&mut r).map_err(invalid)?;
    read_instants(&mut r, n).map_err(invalid)
}

fn unpack(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut r = Reader::new(bytes);
    if r.u8().map_err(invalid)? != FORMAT {
        return Err(invalid(CodecError::Malformed("unknown raw block format")));
    }
    let len = usize::try_from(r.varint().map_err(invalid)?).unwrap_or(usize::MAX);
    if len > MAX_BODY {
        return Err(invalid(CodecError::Malformed("raw block body too large")));
    }
    let packed = r.take(r.remaining()).map_err(invalid)?;
    let body = zstd::bulk::decompress(packed, len)
        .map_err(|_| invalid(CodecError::Malformed("raw block does not decompress")))?;
    if body.len() != len {
        return Err(invalid(CodecError::Truncated));
    }
    Ok(body)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Dictionary of the block's texts; index order is first use.
#[derive(Default)]
struct Dict<'a> {
    index: HashMap<&'a str, u64>,
    texts: Vec<&'a str>,
}

impl<'a> Dict<'a> {
    fn id(&mut self, s: &'a str) -> u64 {
        let next = self.texts.len() as u64;
        *self.index.entry(s).or_insert_with(|| {
            self.texts.push(s);
            next
        })
    }
}

/// Sequences (value layouts, label key sets) stored once per block; index order is first use.
#[derive(Default)]
struct Table {
    index: HashMap<Vec<u64>, u64>,
    rows: Vec<Vec<u64>>,
}

impl Table {
    fn id(&mut self, row: Vec<u64>) -> u64 {
        let next = self.rows.len() as u64;
        *self.index.entry(row.clone()).or_insert_with(|| {
            self.rows.push(row);
            next
        })
    }

    fn put(&self, out: &mut Vec<u8>) {
        codec::put_varint(out, self.rows.len() as u64);
        for row in &self.rows {
            codec::put_varint(out, row.len() as u64);
            for &x in row {
                codec::put_varint(out, x);
            }
        }
    }
}

/// Number kinds of a [`NumColumn`].
const ABSENT: u8 = 0;
const INTEGER: u8 = 1;
const NANOS: u8 = 2;
const IEEE: u8 = 3;

/// A column of optional numbers: kinds first, then payloads (see the module comment).
#[derive(Default)]
struct NumColumn {
    kinds: Vec<u8>,
    payload: Vec<u8>,
    last_int: i64,
    last_nanos: i64,
}

/// `v` as a whole number, if it reads back bit for bit.
fn as_integer(v: f64) -> Option<i64> {
    let i = v as i64;
    (v.fract() == 0.0 && (i as f64).to_bits() == v.to_bits()).then_some(i)
}

/// `v` in whole nanoseconds, if it reads back bit for bit.
fn as_nanos(v: f64) -> Option<i64> {
    let n = (v * 1e9).round();
    if !n.is_finite() || n.abs() >= 2f64.powi(62) {
        return None;
    }
    let n = n as i64;
    ((n as f64 / 1e9).to_bits() == v.to_bits()).then_some(n)
}

impl NumColumn {
    fn push(&mut self, v: Option<f64>) {
        let Some(v) = v else {
            self.kinds.push(ABSENT);
            return;
        };
        if let Some(i) = as_integer(v) {
            self.kinds.push(INTEGER);
            codec::put_varint(&mut self.payload, zigzag(i.wrapping_sub(self.last_int)));
            self.last_int = i;
        } else if let Some(n) = as_nanos(v) {
            self.kinds.push(NANOS);
            codec::put_varint(&mut self.payload, zigzag(n.wrapping_sub(self.last_nanos)));
            self.last_nanos = n;
        } else {
            self.kinds.push(IEEE);
            self.payload.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.kinds);
        out.extend_from_slice(&self.payload);
    }
}

/// Reads a column of `n` numbers written by [`NumColumn::put`].
fn read_numbers(r: &mut Reader<'_>, n: usize) -> Result<Vec<Option<f64>>, CodecError> {
    let kinds = r.take(n)?;
    let (mut last_int, mut last_nanos) = (0i64, 0i64);
    let mut out = Vec::with_capacity(n);
    for &k in kinds {
        out.push(match k {
            ABSENT => None,
            INTEGER => {
                last_int = last_int.wrapping_add(unzigzag(r.varint()?));
                Some(last_int as f64)
            }
            NANOS => {
                last_nanos = last_nanos.wrapping_add(unzigzag(r.varint()?));
                Some(last_nanos as f64 / 1e9)
            }
            IEEE => Some(f64::from_bits(r.u64_le()?)),
            _ => return Err(CodecError::Malformed("unknown number kind")),
        });
    }
    Ok(out)
}

fn body(entries: &[Stored]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.len() * 16);
    codec::put_varint(&mut out, entries.len() as u64);
    // Instants: first, then delta-of-deltas.
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    for (i, e) in entries.iter().enumerate() {
        if i == 0 {
            codec::put_varint(&mut out, zigzag(e.ns));
        } else {
            let delta = e.ns.wrapping_sub(prev);
            codec::put_varint(&mut out, zigzag(delta.wrapping_sub(prev_delta)));
            prev_delta = delta;
        }
        prev = e.ns;
    }
    let mut last = 0i64;
    for e in entries {
        let s = e.seq.unwrap_or(-1);
        codec::put_varint(&mut out, zigzag(s.wrapping_sub(last)));
        last = s;
    }
    let mut bits = vec![0u8; entries.len().div_ceil(8)];
    for (i, e) in entries.iter().enumerate() {
        if e.m.ok {
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    out.extend_from_slice(&bits);
    let columns = Columns::of(entries);
    columns.put(&mut out);
    out
}

/// Everything after the instants, seqs and `ok` bits, gathered column by column.
struct Columns<'a> {
    dict: Dict<'a>,
    reasons: Vec<u8>,
    failed: Vec<u8>,
    errors: Vec<u8>,
    duration: NumColumn,
    masks: Vec<u8>,
    phases: Vec<NumColumn>,
    slots: Table,
    layouts: Table,
    layout_of: Vec<u8>,
    slot_values: BTreeMap<u64, NumColumn>,
    keysets: Table,
    keyset_of: Vec<u8>,
    label_values: Vec<u8>,
}

impl<'a> Columns<'a> {
    fn of(entries: &'a [Stored]) -> Columns<'a> {
        let mut c = Columns {
            dict: Dict::default(),
            reasons: Vec::with_capacity(entries.len()),
            failed: Vec::with_capacity(entries.len()),
            errors: Vec::with_capacity(entries.len()),
            duration: NumColumn::default(),
            masks: Vec::with_capacity(entries.len()),
            phases: (0..PHASES).map(|_| NumColumn::default()).collect(),
            slots: Table::default(),
            layouts: Table::default(),
            layout_of: Vec::new(),
            slot_values: BTreeMap::new(),
            keysets: Table::default(),
            keyset_of: Vec::new(),
            label_values: Vec::new(),
        };
        for e in entries {
            c.add(&e.m);
        }
        c
    }

    fn add(&mut self, m: &'a Measurement) {
        self.reasons
            .push(m.reason.map_or(0, |r| codec::reason_code(r) + 1));
        self.failed
            .push(m.failed_phase.map_or(0, |p| phase_code(p) + 1));
        let error = m.error.as_deref().map_or(0, |e| self.dict.id(e) + 1);
        codec::put_varint(&mut self.errors, error);
        self.duration.push(m.duration_seconds);
        let mut mask = 0u64;
        for (&p, &v) in &m.phases {
            let code = phase_code(p);
            mask |= 1 << code;
            self.phases[usize::from(code)].push(Some(v));
        }
        codec::put_varint(&mut self.masks, mask);
        let mut layout = Vec::with_capacity(m.values.len());
        for v in &m.values {
            let name = self.dict.id(&v.name);
            let resource = v.resource.as_deref().map_or(0, |r| self.dict.id(r) + 1);
            let slot = self.slots.id(vec![name, resource]);
            layout.push(slot);
            self.slot_values
                .entry(slot)
                .or_default()
                .push(Some(v.value));
        }
        codec::put_varint(&mut self.layout_of, self.layouts.id(layout));
        let mut keys = Vec::with_capacity(m.labels.len());
        for (k, v) in &m.labels {
            keys.push(self.dict.id(k));
            codec::put_varint(&mut self.label_values, self.dict.id(v));
        }
        codec::put_varint(&mut self.keyset_of, self.keysets.id(keys));
    }

    fn put(&self, out: &mut Vec<u8>) {
        codec::put_varint(out, self.dict.texts.len() as u64);
        for t in &self.dict.texts {
            codec::put_varint(out, t.len() as u64);
            out.extend_from_slice(t.as_bytes());
        }
        out.extend_from_slice(&self.reasons);
        out.extend_from_slice(&self.failed);
        out.extend_from_slice(&self.errors);
        self.duration.put(out);
        out.extend_from_slice(&self.masks);
        for p in &self.phases {
            p.put(out);
        }
        self.slots.put(out);
        self.layouts.put(out);
        out.extend_from_slice(&self.layout_of);
        // Slots are numbered 0.. in first use, and every slot has at least one value.
        for col in self.slot_values.values() {
            col.put(out);
        }
        self.keysets.put(out);
        out.extend_from_slice(&self.keyset_of);
        out.extend_from_slice(&self.label_values);
    }
}

/// A count read from the block, bounded by the bytes left (every counted item takes at
/// least one byte), so that a corrupt count cannot allocate without end.
fn count(r: &mut Reader<'_>) -> Result<usize, CodecError> {
    let n = r.varint()?;
    if n > r.remaining() as u64 {
        return Err(CodecError::Truncated);
    }
    Ok(n as usize)
}

fn index(r: &mut Reader<'_>, len: usize) -> Result<usize, CodecError> {
    let i = r.varint()?;
    usize::try_from(i)
        .ok()
        .filter(|&i| i < len)
        .ok_or(CodecError::Malformed("index outside its table"))
}

fn read_instants(r: &mut Reader<'_>, n: usize) -> Result<Vec<i64>, CodecError> {
    let mut out = Vec::with_capacity(n);
    let (mut prev, mut delta) = (0i64, 0i64);
    for i in 0..n {
        let v = unzigzag(r.varint()?);
        let ns = if i == 0 {
            v
        } else {
            delta = delta.wrapping_add(v);
            prev.wrapping_add(delta)
        };
        out.push(ns);
        prev = ns;
    }
    Ok(out)
}

fn read_table(r: &mut Reader<'_>) -> Result<Vec<Vec<u64>>, CodecError> {
    let rows = count(r)?;
    let mut out = Vec::with_capacity(rows);
    for _ in 0..rows {
        let len = count(r)?;
        out.push((0..len).map(|_| r.varint()).collect::<Result<_, _>>()?);
    }
    Ok(out)
}

fn decode_body(body: &[u8], check: &str) -> Result<Vec<Stored>, CodecError> {
    let mut r = Reader::new(body);
    let n = count(&mut r)?;
    let instants = read_instants(&mut r, n)?;
    let mut seqs = Vec::with_capacity(n);
    let mut last = 0i64;
    for _ in 0..n {
        last = last.wrapping_add(unzigzag(r.varint()?));
        seqs.push((last >= 0).then_some(last));
    }
    let bits = r.take(n.div_ceil(8))?;
    let mut out: Vec<Stored> = Vec::with_capacity(n);
    for (i, (&ns, seq)) in instants.iter().zip(seqs).enumerate() {
        let ok = bits[i / 8] & (1 << (i % 8)) != 0;
        let ts = Timestamp::from_nanosecond(i128::from(ns))
            .map_err(|_| CodecError::Malformed("instant outside the timestamp range"))?;
        out.push(Stored {
            ns,
            seq,
            m: Measurement::new(check, ts, ok),
        });
    }
    let dict_len = count(&mut r)?;
    let mut dict = Vec::with_capacity(dict_len);
    for _ in 0..dict_len {
        let len = count(&mut r)?;
        let text = std::str::from_utf8(r.take(len)?)
            .map_err(|_| CodecError::Malformed("text is not UTF-8"))?;
        dict.push(text.to_owned());
    }
    let text = |r: &mut Reader<'_>| index(r, dict.len()).map(|i| dict[i].clone());
    for e in &mut out {
        e.m.reason = match r.u8()? {
            0 => None,
            c => Some(codec::reason_from_code(u64::from(c) - 1)?),
        };
    }
    for e in &mut out {
        e.m.failed_phase = match r.u8()? {
            0 => None,
            c => Some(phase_from(c - 1)?),
        };
    }
    for e in &mut out {
        e.m.error = match r.varint()? {
            0 => None,
            i => Some(
                dict.get(i as usize - 1)
                    .cloned()
                    .ok_or(CodecError::Malformed("index outside its table"))?,
            ),
        };
    }
    for (e, d) in out.iter_mut().zip(read_numbers(&mut r, n)?) {
        e.m.duration_seconds = d;
    }
    read_phases(&mut r, &mut out)?;
    read_values(&mut r, &mut out, &dict)?;
    let keysets = read_table(&mut r)?;
    let mut sets = Vec::with_capacity(n);
    for _ in 0..n {
        sets.push(index(&mut r, keysets.len())?);
    }
    for (e, set) in out.iter_mut().zip(sets) {
        for &k in &keysets[set] {
            let key = dict
                .get(usize::try_from(k).unwrap_or(usize::MAX))
                .cloned()
                .ok_or(CodecError::Malformed("index outside its table"))?;
            e.m.labels.insert(key, text(&mut r)?);
        }
    }
    if !r.is_empty() {
        return Err(CodecError::Malformed("trailing bytes after a raw block"));
    }
    Ok(out)
}

fn read_phases(r: &mut Reader<'_>, out: &mut [Stored]) -> Result<(), CodecError> {
    let mut masks = Vec::with_capacity(out.len());
    for _ in 0..out.len() {
        let mask = r.varint()?;
        if mask >> PHASES != 0 {
            return Err(CodecError::Malformed("unknown phase in a mask"));
        }
        masks.push(mask);
    }
    for code in 0..PHASES {
        let phase: Phase = phase_from(code)?;
        let having: Vec<usize> = (0..out.len())
            .filter(|&i| masks[i] & (1 << code) != 0)
            .collect();
        let values = read_numbers(r, having.len())?;
        for (i, v) in having.into_iter().zip(values) {
            let v = v.ok_or(CodecError::Malformed("a phase without its number"))?;
            out[i].m.phases.insert(phase, v);
        }
    }
    Ok(())
}

fn read_values(r: &mut Reader<'_>, out: &mut [Stored], dict: &[String]) -> Result<(), CodecError> {
    let slots = read_table(r)?;
    let layouts = read_table(r)?;
    let mut layout_of = Vec::with_capacity(out.len());
    for _ in 0..out.len() {
        layout_of.push(index(r, layouts.len())?);
    }
    // How many values each slot has, in entry order.
    let mut per_slot = vec![0usize; slots.len()];
    for &l in &layout_of {
        for &s in &layouts[l] {
            let s = usize::try_from(s)
                .ok()
                .filter(|&s| s < slots.len())
                .ok_or(CodecError::Malformed("index outside its table"))?;
            per_slot[s] += 1;
        }
    }
    let mut columns = Vec::with_capacity(slots.len());
    for &k in &per_slot {
        columns.push(read_numbers(r, k)?.into_iter());
    }
    let name = |i: u64| {
        dict.get(usize::try_from(i).unwrap_or(usize::MAX))
            .cloned()
            .ok_or(CodecError::Malformed("index outside its table"))
    };
    for (e, l) in out.iter_mut().zip(layout_of) {
        for &s in &layouts[l] {
            let slot = &slots[s as usize];
            let [n, res] = slot.as_slice() else {
                return Err(CodecError::Malformed(
                    "a value slot is not (name, resource)",
                ));
            };
            let value = columns[s as usize]
                .next()
                .flatten()
                .ok_or(CodecError::Malformed("a value without its number"))?;
            e.m.values.push(Value {
                name: name(*n)?,
                resource: match res {
                    0 => None,
                    i => Some(name(i - 1)?),
                },
                value,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use attest_config::wire::FailureReason;
    use proptest::prelude::*;

    fn at(ns: i64) -> Stored {
        Stored {
            ns,
            seq: Some(7),
            m: Measurement::new(
                "web",
                Timestamp::from_nanosecond(i128::from(ns)).expect("ts"),
                true,
            ),
        }
    }

    /// The same entries, numbers compared by their bits (NaN != NaN otherwise).
    fn bits(entries: &[Stored]) -> Vec<String> {
        entries
            .iter()
            .map(|e| {
                let mut m = e.m.clone();
                let d = m.duration_seconds.take().map(f64::to_bits);
                let p: Vec<_> = m.phases.iter().map(|(k, v)| (*k, v.to_bits())).collect();
                m.phases.clear();
                let v: Vec<_> = m.values.iter().map(|v| v.value.to_bits()).collect();
                for x in &mut m.values {
                    x.value = 0.0;
                }
                format!("{} {:?} {d:?} {p:?} {v:?} {m:?}", e.ns, e.seq)
            })
            .collect()
    }

    #[test]
    fn an_empty_block_round_trips() {
        let b = encode(Vec::new()).expect("encode");
        assert!(decode(&b, "web").expect("decode").is_empty());
    }

    #[test]
    fn entries_come_back_sorted_by_instant_with_their_check() {
        let b = encode(vec![at(30), at(-5), at(10)]).expect("encode");
        let got = decode(&b, "api").expect("decode");
        assert_eq!(got.iter().map(|e| e.ns).collect::<Vec<_>>(), [-5, 10, 30]);
        assert!(got.iter().all(|e| e.m.check == "api"));
        assert_eq!(instants(&b).expect("instants"), [-5, 10, 30]);
    }

    #[test]
    fn special_numbers_read_back_bit_for_bit() {
        let specials = [
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0abc),
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            -1.5e-9,
            9.007_199_254_740_993e15,
        ];
        let entries: Vec<Stored> = specials
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let mut e = at(i as i64 * 1000);
                e.m.duration_seconds = Some(v);
                e.m.phases.insert(Phase::Connect, v);
                e.m.values.push(Value {
                    name: "x".into(),
                    resource: None,
                    value: v,
                });
                e
            })
            .collect();
        let b = encode(entries.clone()).expect("encode");
        assert_eq!(bits(&decode(&b, "web").expect("decode")), bits(&entries));
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let mut e = at(1_000);
        e.m.error = Some("refused".into());
        e.m.reason = Some(FailureReason::ConnectRefused);
        e.m.labels.insert("address".into(), "10.0.0.1:443".into());
        let good = encode(vec![e, at(2_000)]).expect("encode");
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], "web").is_err(), "cut at {cut}");
        }
        let mut bad = good.clone();
        bad[0] = 9;
        assert!(decode(&bad, "web").is_err(), "unknown format");
        let mut huge = vec![FORMAT];
        codec::put_varint(&mut huge, u64::MAX);
        assert!(
            decode(&huge, "web").is_err(),
            "a body length beyond the bound"
        );
        // A body that decompresses but does not parse.
        for junk in [vec![200u8], vec![2, 0, 0], vec![1, 0, 0, 0, 5]] {
            let mut b = vec![FORMAT];
            codec::put_varint(&mut b, junk.len() as u64);
            b.extend(zstd::bulk::compress(&junk, 1).expect("compress"));
            assert!(decode(&b, "web").is_err(), "{junk:?}");
        }
    }

    fn phase() -> impl Strategy<Value = Phase> {
        (0..PHASES).prop_map(|c| phase_from(c).expect("code"))
    }

    fn number() -> impl Strategy<Value = f64> {
        prop_oneof![
            (0u64..10_000_000_000).prop_map(|ns| ns as f64 / 1e9),
            (-100_000i64..100_000).prop_map(|n| n as f64),
            any::<u64>().prop_map(f64::from_bits),
            Just(-0.0),
            Just(f64::INFINITY),
        ]
    }

    fn reason() -> impl Strategy<Value = FailureReason> {
        (0..codec::REASON_COUNT as u64).prop_map(|c| codec::reason_from_code(c).expect("code"))
    }

    prop_compose! {
        fn entry()(
            ns in any::<i64>().prop_map(|v| v / 4),
            seq in proptest::option::of(0i64..i64::MAX),
            ok in any::<bool>(),
            duration in proptest::option::of(number()),
            reason in proptest::option::of(reason()),
            failed_phase in proptest::option::of(phase()),
            error in proptest::option::of("\\PC{0,30}"),
            phases in proptest::collection::btree_map(phase(), number(), 0..9),
            values in proptest::collection::vec(
                (prop_oneof!["[a-c]{1,2}", "\\PC{0,8}"],
                 proptest::option::of("[xyé]{0,2}"), number()), 0..6),
            labels in proptest::collection::btree_map("\\PC{0,6}", "\\PC{0,12}", 0..4),
        ) -> Stored {
            let ts = Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(Timestamp::UNIX_EPOCH);
            let mut m = Measurement::new("c", ts, ok);
            m.duration_seconds = duration;
            m.reason = reason;
            m.failed_phase = failed_phase;
            m.error = error;
            m.phases = phases;
            m.values = values
                .into_iter()
                .map(|(name, resource, value)| Value { name, resource, value })
                .collect();
            m.labels = labels;
            Stored { ns: ts.as_nanosecond() as i64, seq, m }
        }
    }

    proptest! {
        /// encode → decode is the identity on arbitrary measurements (numbers bit for bit).
        #[test]
        fn blocks_round_trip_exactly(
            entries in proptest::collection::vec(entry(), 0..40)
        ) {
            let mut want = entries.clone();
            want.sort_by_key(|e| e.ns);
            let b = encode(entries).expect("encode");
            let got = decode(&b, "c").expect("decode");
            prop_assert_eq!(bits(&got), bits(&want));
        }
    }
}
