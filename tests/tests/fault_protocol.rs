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
    attest_tests::wall_now()
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

/// What the fake collector saw: (seq, status it answered, measurements in the batch).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(u64, u16, usize)>>>;

/// A loopback stand-in for the collector: refuses the first batch as malformed (400 with a
/// field) and acks every later one, recording each request.
async fn rejecting_collector(seen: Seen) -> u16 {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake collector");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(http_body_util::Collected::to_bytes);
                            let batch = body
                                .ok()
                                .and_then(|b| zstd::stream::decode_all(&b[..]).ok())
                                .and_then(|j| {
                                    serde_json::from_slice::<attest_config::wire::Batch>(&j).ok()
                                });
                            let (status, json) = match batch {
                                None => (400, r#"{"error":"unreadable"}"#.to_string()),
                                Some(b) => {
                                    let mut s = seen
                                        .lock()
                                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                                    let (status, json) = if s.is_empty() {
                                        (400, r#"{"error":"invalid batch: test rejection","field":"measurements[0].ts"}"#.to_string())
                                    } else {
                                        (
                                            200,
                                            format!(
                                                r#"{{"version":1,"acked_seq":{},"duplicate":false,"stored":{}}}"#,
                                                b.seq,
                                                b.measurements.len()
                                            ),
                                        )
                                    };
                                    s.push((b.seq, status, b.measurements.len()));
                                    (status, json)
                                }
                            };
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(json)))
                                    .expect("response"),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_quarantines_a_batch_refused_as_malformed_and_moves_on() {
    use attest_tests::fixtures::{AgentSetup, loopback_checks, metrics, ok_target};
    let dir = tempfile::tempdir().expect("tempdir");
    let target = ok_target().await;
    let seen: Seen = Default::default();
    let port = rejecting_collector(seen.clone()).await;
    let setup = AgentSetup {
        cred: AgentCred::new("quarantiner"),
        collector_port: port,
        listen_port: attest_tests::free_port(),
        spool_dir: dir.path().join("spool"),
        max_bytes: "1MiB".into(),
        checks_toml: loopback_checks("q", target, 1, "200ms"),
    };
    let mut agent = setup.spawn(dir.path());
    let log = seen.clone();
    attest_tests::wait_for(
        "three batches acked after the refused one",
        std::time::Duration::from_secs(60),
        || {
            let log = log.clone();
            async move {
                let s = log
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                (s.iter().filter(|e| e.1 == 200).count() >= 3).then_some(())
            }
        },
    )
    .await;
    let listen = setup.listen_port;
    let m = metrics(listen).await.expect("agent metrics");
    let quarantined = attest_tests::sample(&m, "attest_agent_batches_quarantined_total", &[]);
    agent.signal_and_wait("TERM", std::time::Duration::from_secs(20));

    let s = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let (bad_seq, _, bad_len) = s[0];
    assert_eq!(
        s.iter().filter(|e| e.0 == bad_seq).count(),
        1,
        "the refused batch was retried: {s:?}"
    );
    assert!(
        s.windows(2).all(|w| w[0].0 < w[1].0),
        "seqs must strictly increase: {s:?}"
    );
    assert_eq!(quarantined, Some(1.0));
    let file = setup
        .spool_dir
        .join("quarantine")
        .join(format!("{bad_seq}.json"));
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("quarantine file {}: {e}", file.display()));
    let q: serde_json::Value = serde_json::from_str(&text).expect("quarantine JSON");
    assert_eq!(q["status"], 400);
    assert_eq!(q["seq"], bad_seq);
    assert_eq!(
        q["measurements"].as_array().map(Vec::len),
        Some(bad_len),
        "quarantine must keep the refused batch's measurements"
    );
    assert!(
        q["reason"]
            .as_str()
            .unwrap_or("")
            .contains("measurements[0].ts"),
        "the reason names the field: {q}"
    );
}
