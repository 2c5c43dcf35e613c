//! Unit and property tests of the canonical form; the known-answer vector pins the bytes an
//! independent verifier must produce from docs/wire.md's example batch.

use std::collections::BTreeMap;

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::wire::{FailureReason, Phase, Value};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn full() -> Measurement {
    let mut m = Measurement::new("shop-home", ts("2026-03-01T10:00:00Z"), false);
    m.duration_seconds = Some(0.25);
    m.reason = Some(FailureReason::Status);
    m.failed_phase = Some(Phase::Processing);
    m.error = Some("status 503".into());
    m.phases = BTreeMap::from([
        (Phase::Resolve, 0.001),
        (Phase::Connect, 0.002),
        (Phase::Tls, 0.0125),
        (Phase::Processing, 0.2345),
    ]);
    m.values = vec![Value {
        name: "http_status_code".into(),
        resource: None,
        value: 503.0,
    }];
    m.labels = BTreeMap::from([
        ("remote_addr".into(), "192.0.2.10:443".into()),
        ("tls_version".into(), "TLSv1.3".into()),
    ]);
    m
}

fn gap() -> Gap {
    Gap {
        check: "shop-home".into(),
        from: ts("2026-03-01T09:00:00Z"),
        to: ts("2026-03-01T09:04:30Z"),
        count: 10,
    }
}

fn header(prev: Option<&BatchDigest>) -> Header<'_> {
    Header {
        agent: "web-01",
        seq: 42,
        prev,
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The smallest batch, byte for byte as docs/wire.md spells it out.
#[test]
fn smallest_batch_encodes_as_documented() {
    let m = Measurement::new("c", ts("2026-03-01T10:00:00Z"), true);
    let h = Header {
        agent: "a",
        seq: 1,
        prev: None,
    };
    let got = encode(&h, std::slice::from_ref(&m), &[]);
    let mut want = b"attest-batch\0\x01".to_vec();
    want.extend_from_slice(&[0, 0, 0, 1, b'a']); // agent
    want.extend_from_slice(&1u64.to_be_bytes()); // seq
    want.push(0); // no previous digest
    want.extend_from_slice(&[0, 0, 0, 1]); // one measurement
    let mut item = vec![0, 0, 0, 1, b'c'];
    item.extend_from_slice(&1_772_359_200i64.to_be_bytes());
    item.extend_from_slice(&0u32.to_be_bytes());
    item.push(1); // ok
    item.extend_from_slice(&[0, 0, 0, 0]); // no duration, reason, failed phase, error
    item.extend_from_slice(&[0; 12]); // no phases, values, labels
    want.extend_from_slice(&(item.len() as u32).to_be_bytes());
    want.extend_from_slice(&item);
    want.extend_from_slice(&[0, 0, 0, 0]); // no gaps
    assert_eq!(got, want);
}

/// Known answer for docs/wire.md's example batch (its two measurements and one gap): an
/// independent verifier checks itself against this digest.
#[test]
fn example_batch_digest_is_pinned() {
    let mut host = Measurement::new("host", ts("2026-03-01T10:00:00.5Z"), true);
    host.duration_seconds = Some(0.003);
    host.values = vec![Value {
        name: "filesystem_utilization_ratio".into(),
        resource: Some("/var".into()),
        value: 0.8125,
    }];
    let prev = [0xab; 32];
    let d = digest(&header(Some(&prev)), &[full(), host], &[gap()]);
    assert_eq!(
        hex(&d),
        "7dea465922c3bc12521f500582ea256b0c53301a098979811d5edc94b185720a",
        "the canonical form changed: that is a new FORM_VERSION, not an edit"
    );
}

#[test]
fn gaps_round_trip_through_their_encoding() {
    let mut late = gap();
    late.check = "api".into();
    late.from = ts("1969-12-31T23:59:59.75Z");
    let gaps = vec![gap(), late];
    let back = decode_gaps(&encode_gaps(&gaps)).expect("decodes");
    let mut want = gaps.clone();
    want.sort_by(|a, b| a.check.cmp(&b.check));
    assert_eq!(back, want);
    let mut bytes = encode_gaps(&gaps);
    bytes.push(0);
    assert_eq!(decode_gaps(&bytes), None, "trailing bytes are refused");
    assert_eq!(decode_gaps(&bytes[..5]), None, "a cut encoding is refused");
}

#[test]
fn header_fields_each_change_the_digest() {
    let ms = [full()];
    let base = digest(&header(None), &ms, &[]);
    let prev = [0u8; 32];
    assert_ne!(base, digest(&header(Some(&prev)), &ms, &[]));
    let other_agent = Header {
        agent: "web-02",
        ..header(None)
    };
    assert_ne!(base, digest(&other_agent, &ms, &[]));
    let other_seq = Header {
        seq: 43,
        ..header(None)
    };
    assert_ne!(base, digest(&other_seq, &ms, &[]));
    assert_ne!(base, digest(&header(None), &ms, &[gap()]));
}

#[test]
fn zero_and_negative_zero_differ() {
    let mut a = full();
    a.duration_seconds = Some(0.0);
    let mut b = full();
    b.duration_seconds = Some(-0.0);
    assert_ne!(
        digest(&header(None), &[a], &[]),
        digest(&header(None), &[b], &[])
    );
}

fn arb_measurement() -> impl Strategy<Value = Measurement> {
    (
        "[a-c]{1,3}",
        0i64..4_000_000_000,
        0u32..1_000_000_000,
        any::<bool>(),
        proptest::option::of(any::<f64>()),
        proptest::option::of("[ -~]{0,8}"),
        proptest::collection::btree_map("[a-d]{1,2}", "[a-z]{0,3}", 0..3),
        proptest::collection::vec(("[a-d]{1,3}", any::<f64>()), 0..3),
    )
        .prop_map(|(check, s, ns, ok, dur, error, labels, values)| {
            let mut m = Measurement::new(check, Timestamp::new(s, ns as i32).expect("ts"), ok);
            m.duration_seconds = dur;
            m.error = error;
            m.labels = labels;
            m.values = values
                .into_iter()
                .map(|(name, value)| Value {
                    name,
                    resource: None,
                    value,
                })
                .collect();
            if !ok {
                m.reason = Some(FailureReason::Timeout);
                m.failed_phase = Some(Phase::Connect);
                m.phases.insert(Phase::Connect, 0.5);
            }
            m
        })
}

/// Applies one of the field changes `which` names to `m`; every one must move the digest.
fn change(m: &mut Measurement, which: u8) {
    match which % 10 {
        0 => m.check.push('x'),
        1 => {
            m.ts =
                m.ts.checked_add(jiff::SignedDuration::from_nanos(1))
                    .expect("ts");
        }
        2 => m.ok = !m.ok,
        3 => {
            m.duration_seconds = Some(
                m.duration_seconds
                    .map_or(1.0, |d| f64::from_bits(d.to_bits() ^ 1)),
            );
        }
        4 => {
            m.reason = if m.reason.is_some() {
                None
            } else {
                Some(FailureReason::Dns)
            }
        }
        5 => {
            m.failed_phase = if m.failed_phase == Some(Phase::Tls) {
                None
            } else {
                Some(Phase::Tls)
            };
        }
        6 => m.error = Some(format!("{}!", m.error.clone().unwrap_or_default())),
        7 => {
            let v = m.phases.entry(Phase::Transfer).or_insert(0.0);
            *v = f64::from_bits(v.to_bits() ^ 1);
        }
        8 => m.values.push(Value {
            name: "n".into(),
            resource: Some("/".into()),
            value: 0.0,
        }),
        _ => {
            m.labels.insert("zz".into(), "changed".into());
        }
    }
}

/// The example batch decodes to its own fields; bytes out of canonical order, a trailing
/// byte and a cut are refused.
#[test]
fn decode_reads_back_what_encode_wrote_and_nothing_else() {
    let prev = [0xab; 32];
    let bytes = encode(&header(Some(&prev)), &[full()], &[gap()]);
    let d = decode(&bytes).expect("decodes");
    assert_eq!(d.header(), header(Some(&prev)));
    assert_eq!((d.measurements, d.gaps), (vec![full()], vec![gap()]));
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(decode(&longer), None, "a trailing byte");
    assert_eq!(decode(&bytes[..bytes.len() - 1]), None, "a cut");
    // Two measurements in the wrong order: well-formed, but not the canonical encoding.
    let (a, b) = (
        Measurement::new("a", ts("2026-03-01T10:00:00Z"), true),
        full(),
    );
    let sorted = encode(&header(None), &[a.clone(), b.clone()], &[]);
    let enc = |m: &Measurement| {
        let mut v = Vec::new();
        put_measurement(&mut v, m);
        v
    };
    let (ea, eb) = (enc(&a), enc(&b));
    let (first, second) = if ea < eb { (&eb, &ea) } else { (&ea, &eb) };
    let mut swapped = encode(&header(None), &[], &[]);
    swapped.truncate(swapped.len() - 8);
    swapped.extend_from_slice(&2u32.to_be_bytes());
    for e in [first, second] {
        swapped.extend_from_slice(&(e.len() as u32).to_be_bytes());
        swapped.extend_from_slice(e);
    }
    swapped.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(swapped.len(), sorted.len());
    assert!(decode(&sorted).is_some());
    assert_eq!(decode(&swapped), None, "out of canonical order");
}

proptest! {
    #[test]
    fn decode_inverts_encode(
        ms in proptest::collection::vec(arb_measurement(), 0..8),
        seq in any::<u64>(),
    ) {
        let prev = [seq as u8; 32];
        let h = Header { agent: "a-1", seq, prev: (seq % 2 == 0).then_some(&prev) };
        let bytes = encode(&h, &ms, &[gap()]);
        let d = decode(&bytes).expect("decodes");
        prop_assert_eq!(d.header(), h);
        prop_assert_eq!(encode(&d.header(), &d.measurements, &d.gaps), bytes);
        prop_assert_eq!(d.measurements.len(), ms.len());
    }

    #[test]
    fn permutations_give_the_same_digest(
        ms in proptest::collection::vec(arb_measurement(), 0..12),
        seed in any::<u64>(),
    ) {
        let mut shuffled = ms.clone();
        // A deterministic shuffle from the seed (Fisher-Yates with an LCG).
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (x >> 33) as usize % (i + 1));
        }
        let mut gaps = vec![gap(), Gap { check: "a".into(), ..gap() }];
        let a = digest(&header(None), &ms, &gaps);
        gaps.reverse();
        prop_assert_eq!(a, digest(&header(None), &shuffled, &gaps));
    }

    #[test]
    fn any_field_change_gives_another_digest(
        ms in proptest::collection::vec(arb_measurement(), 1..8),
        pick in any::<usize>(),
        which in any::<u8>(),
    ) {
        let before = digest(&header(None), &ms, &[]);
        let mut changed = ms.clone();
        let i = pick % changed.len();
        change(&mut changed[i], which);
        prop_assume!(changed[i] != ms[i] || changed[i].duration_seconds.map(f64::to_bits) != ms[i].duration_seconds.map(f64::to_bits));
        prop_assert_ne!(before, digest(&header(None), &changed, &[]));
    }
}
