//! Protocol-level faults against a real collector, driven at the wire: duplicate and replayed
//! batches, batches out of order, a lost ack, a batch overlapping stored measurements, a
//! token used for another agent, and malformed batches. Each step compares the store's
//! counts and keys before and after, so "nothing stored twice" is checked, not assumed.

use attest_collector::store::Store;
use attest_tests::fixtures::{AgentCred, Collector, ServiceDef, stored_keys};
use attest_tests::load::{Key, Reply, WireAgent, key, measurements, tally};
use jiff::{SignedDuration, Timestamp};

fn ack_of(reply: &Reply) -> attest_config::wire::Ack {
    match reply {
        Reply::Acked(a) => a.clone(),
        other => panic!("expected an ack, got {other:?}"),
    }
}

fn counts(c: &Collector) -> (u64, u64) {
    let n = c.store().counts().expect("counts");
    (n.batches, n.measurements)
}

struct Fixture {
    _dir: tempfile::TempDir,
    collector: Collector,
    a: WireAgent,
    b: WireAgent,
    checks: Vec<String>,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cb) = (AgentCred::new("proto-a"), AgentCred::new("proto-b"));
    let checks = vec!["p1".to_string(), "p2".to_string()];
    let svc = ServiceDef {
        name: "proto".into(),
        checks: checks.clone(),
    };
    let mut collector = Collector::new(dir.path(), None, &[ca.clone(), cb.clone()], &[svc]);
    collector.start().await;
    let a = WireAgent::new(&collector.url(), &ca.id, &ca.token);
    let b = WireAgent::new(&collector.url(), &cb.id, &cb.token);
    Fixture {
        _dir: dir,
        collector,
        a,
        b,
        checks,
    }
}

fn t0() -> Timestamp {
    Timestamp::now()
        .checked_sub(SignedDuration::from_mins(20))
        .expect("now - 20m")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_replays_reordering_and_lost_acks_store_each_measurement_once() {
    let f = start().await;
    let base = t0();
    let at = |us: i64| {
        base.checked_add(SignedDuration::from_micros(us))
            .expect("ts")
    };
    let mut produced: Vec<Key> = Vec::new();
    let mut batch = |seq: u64, check: &str, start_us: i64, n: usize| {
        let ms = measurements(check, at(start_us), n, 1000);
        produced.extend(ms.iter().map(|m| key(&f.a.id, m)));
        f.a.batch(seq, ms, Vec::new())
    };
    let b1 = batch(1, "p1", 0, 5);
    let b2 = batch(2, "p2", 0, 4);
    let b3 = batch(3, "p1", 10_000, 3);
    let b4 = batch(4, "p1", 20_000, 3);
    let b5 = batch(5, "p2", 10_000, 2);

    // First delivery, then the same seq again (a resend after a timeout): duplicate, no write.
    let ack = ack_of(&f.a.post(&b1).await);
    assert_eq!((ack.acked_seq, ack.duplicate, ack.stored), (1, false, 5));
    assert_eq!(counts(&f.collector), (1, 5));
    let again = ack_of(&f.a.post(&b1).await);
    assert_eq!(
        (again.acked_seq, again.duplicate, again.stored),
        (1, true, 0)
    );
    assert_eq!(
        counts(&f.collector),
        (1, 5),
        "a duplicate batch changed the store"
    );

    // Lost ack: the collector commits seq 2 but the driver never reads the answer and resends.
    let lost = f.a.post(&b2).await;
    drop(lost);
    let resent = ack_of(&f.a.post(&b2).await);
    assert_eq!(
        (resent.acked_seq, resent.duplicate, resent.stored),
        (2, true, 0)
    );
    assert_eq!(counts(&f.collector), (2, 9));

    // Out of order: 5 before 3 and 4, then a replay of 3 after 4.
    for (b, stored) in [(&b5, 2), (&b3, 3), (&b4, 3)] {
        let ack = ack_of(&f.a.post(b).await);
        assert_eq!(
            (ack.acked_seq, ack.duplicate, ack.stored),
            (b.seq, false, stored)
        );
    }
    let replay = ack_of(&f.a.post(&b3).await);
    assert!(replay.duplicate && replay.stored == 0, "{replay:?}");
    assert_eq!(counts(&f.collector), (5, 17));

    // A new seq carrying already-stored measurements (a spool rebuilt after losing its meta)
    // plus two new ones: only the new ones are stored.
    let mut overlap = b1.measurements.clone();
    overlap.extend(b4.measurements.iter().cloned());
    let fresh = measurements("p2", at(50_000), 2, 1000);
    produced.extend(fresh.iter().map(|m| key(&f.a.id, m)));
    overlap.extend(fresh);
    let ack = ack_of(&f.a.post(&f.a.batch(6, overlap, Vec::new())).await);
    assert_eq!((ack.duplicate, ack.stored), (false, 2));
    assert_eq!(counts(&f.collector), (6, 19));

    let store = f.collector.store();
    let stored = stored_keys(&store, &f.checks);
    let t = tally(&produced, &stored);
    assert!(t.exact(), "{t}");
    assert_eq!(t.stored, 19);
    attest_tests::fixtures::assert_rollups_match_raw(&store, &f.checks, &stored);

    let m = f.collector.metrics().await.expect("collector metrics");
    eprintln!(
        "collector ingest metrics:\n{}",
        m.lines()
            .filter(|l| l.starts_with("attest_collector_") && !l.starts_with('#'))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_of_one_agent_cannot_submit_for_another() {
    let f = start().await;
    let before = counts(&f.collector);
    // Agent A's token, batch claiming agent B.
    let ms = measurements("p1", t0(), 3, 1000);
    let forged = f.b.batch(1, ms, Vec::new());
    let json = serde_json::to_vec(&forged).expect("json");
    let reply = f.a.post_raw(json, None, &f.a.token).await;
    match &reply {
        Reply::Refused {
            status: 403, error, ..
        } => {
            let e = error.as_ref().expect("403 carries an error body");
            assert_eq!(e.field.as_deref(), Some("agent"), "{e:?}");
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // No token, and an unknown token: 401.
    let body = serde_json::to_vec(&forged).expect("json");
    assert_eq!(
        f.b.post_raw(body.clone(), None, "").await.status(),
        Some(401)
    );
    assert_eq!(
        f.b.post_raw(body, None, "not-a-known-token").await.status(),
        Some(401)
    );
    assert_eq!(
        counts(&f.collector),
        before,
        "a refused batch stored something"
    );
    assert!(stored_keys(&f.collector.store(), &f.checks).is_empty());
    // The real owner of the token still gets in afterwards.
    let ack = ack_of(&f.b.post(&forged).await);
    assert_eq!(ack.stored, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_batches_are_refused_with_the_field_and_store_nothing() {
    let f = start().await;
    let ts = t0().to_string();
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        (
            "bad timestamp",
            format!(
                r#"{{"version":1,"agent":"proto-a","seq":1,"sent_at":"{ts}","measurements":[{{"check":"p1","ts":"{ts}","ok":true}},{{"check":"p1","ts":"yesterday","ok":true}}]}}"#
            ),
            Some("measurements[1].ts"),
        ),
        (
            "unknown field",
            format!(
                r#"{{"version":1,"agent":"proto-a","seq":1,"sent_at":"{ts}","measurements":[{{"check":"p1","ts":"{ts}","ok":true,"colour":"red"}}]}}"#
            ),
            Some("measurements[0]"),
        ),
        (
            "unknown version",
            format!(r#"{{"version":9,"agent":"proto-a","seq":1,"sent_at":"{ts}"}}"#),
            Some("version"),
        ),
        (
            "ok with a failure reason",
            format!(
                r#"{{"version":1,"agent":"proto-a","seq":1,"sent_at":"{ts}","measurements":[{{"check":"p1","ts":"{ts}","ok":true,"reason":"dns"}}]}}"#
            ),
            Some("measurements[0].reason"),
        ),
        (
            "seq zero",
            format!(r#"{{"version":1,"agent":"proto-a","seq":0,"sent_at":"{ts}"}}"#),
            Some("seq"),
        ),
        ("not json", "{\"version\":1,".to_string(), None),
    ];
    for (what, body, field) in cases {
        let compressed = zstd::bulk::compress(body.as_bytes(), 3).expect("zstd");
        let reply = f.a.post_raw(compressed, Some("zstd"), &f.a.token).await;
        match &reply {
            Reply::Refused {
                status: 400, error, ..
            } => {
                let e = error.as_ref().expect("400 carries an error body");
                if let Some(want) = field {
                    let got = e.field.as_deref().unwrap_or("");
                    assert!(
                        got.starts_with(want),
                        "{what}: field {got:?}, want {want:?} ({e:?})"
                    );
                }
                assert!(!e.error.is_empty(), "{what}: empty error message");
            }
            other => panic!("{what}: expected 400, got {other:?}"),
        }
        assert!(!reply.retryable(), "{what}: a 400 must not be retried");
    }
    assert_eq!(
        counts(&f.collector),
        (0, 0),
        "a malformed batch stored something"
    );
    // A malformed seq is not burnt: the same seq with a valid body is accepted.
    let good = f.a.batch(1, measurements("p1", t0(), 2, 1000), Vec::new());
    assert_eq!(ack_of(&f.a.post(&good).await).stored, 2);
}
