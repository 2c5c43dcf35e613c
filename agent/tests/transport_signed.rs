//! Signed, chained batches against a loopback peer: every batch is version 2, its digest is
//! the canonical form's of what the peer decoded, its signature verifies with the agent's
//! key and each `prev` is the previous batch's digest; a peer that refuses version 2 the way
//! an older collector does (`400`, field `version`) gets the same batch unsigned at once,
//! nothing is quarantined and nothing is lost.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attest_agent::spool::{SharedSpool, Spool};
use attest_agent::transport::Transport;
use attest_agent::transport::collectors::Collectors;
use attest_config::evidence::keys::{self, PublicKey};
use attest_config::evidence::{Header, digest};
use attest_config::wire::{Ack, Batch, Measurement, PROTOCOL_VERSION};
use attest_config::{TransportConfig, WhenFull};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Every batch the peer received, decoded.
type Seen = Arc<Mutex<Vec<Batch>>>;

/// A peer that acks everything, or (`old`) refuses version 2 as a version 1 collector does.
async fn start_peer(old: bool) -> (u16, Seen) {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let json = zstd::stream::decode_all(&body[..]).unwrap();
                            let batch: Batch = serde_json::from_slice(&json).unwrap();
                            log.lock().unwrap().push(batch.clone());
                            let resp = if old && batch.version == PROTOCOL_VERSION {
                                hyper::Response::builder()
                                .status(400)
                                .body(Full::new(Bytes::from_static(
                                    br#"{"error":"unsupported protocol version 2; this collector speaks version 1","field":"version"}"#,
                                )))
                                .unwrap()
                            } else {
                                let ack = Ack {
                                    version: batch.version,
                                    acked_seq: batch.seq,
                                    duplicate: false,
                                    stored: batch.measurements.len() as u64,
                                };
                                hyper::Response::new(Full::new(Bytes::from(
                                    serde_json::to_vec(&ack).unwrap(),
                                )))
                            };
                            Ok::<_, Infallible>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (port, seen)
}

fn cfg() -> TransportConfig {
    TransportConfig {
        batch_max_measurements: 4,
        batch_max_age: Duration::from_millis(10),
        request_timeout: Duration::from_secs(5),
        ca_file: None,
        client_cert: None,
        client_key: None,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        failback_after: Duration::from_secs(60),
    }
}

fn measurements(n: i64) -> Vec<Measurement> {
    (0..n)
        .map(|i| {
            let mut m = Measurement::new(
                format!("check-{}", i % 3),
                jiff::Timestamp::from_second(1_790_000_000 + i).unwrap(),
                i % 5 != 0,
            );
            m.duration_seconds = Some(0.1 * i as f64);
            m
        })
        .collect()
}

/// Delivers `n` measurements signed with a fixed key until the spool is empty (bounded).
async fn deliver(old: bool, n: i64) -> (Vec<Batch>, tempfile::TempDir, u64) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let spool = SharedSpool::new(Spool::open(&spool_dir, 1 << 20, WhenFull::DropOldest).unwrap());
    spool.writer().append(&measurements(n)).unwrap();
    let (port, seen) = start_peer(old).await;
    let collectors = Collectors::new(
        &[format!("http://127.0.0.1:{port}")],
        Duration::from_secs(60),
    )
    .unwrap();
    let t = Transport::new(
        "a1",
        Arc::new(collectors),
        "tok",
        cfg(),
        spool.reader(),
        spool_dir,
    )
    .unwrap()
    .with_signing_key(keys::secret_from_seed(&[5; 32]));
    let stats = t.stats.clone();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(t.run(Arc::new(Notify::new()), cancel.clone()));
    for _ in 0..500 {
        if spool.stats().depth == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(spool.stats().depth, 0, "spool did not drain");
    let unsigned = stats
        .batches_sent_unsigned_total
        .load(std::sync::atomic::Ordering::Relaxed);
    let seen = seen.lock().unwrap().clone();
    (seen, dir, unsigned)
}

#[tokio::test]
async fn every_batch_is_signed_and_chained_to_the_one_before() {
    let (seen, _dir, unsigned) = deliver(false, 10).await;
    assert_eq!(seen.len(), 3, "10 measurements in batches of 4: {seen:?}");
    assert_eq!(unsigned, 0);
    let public = keys::public_of(&keys::secret_from_seed(&[5; 32]));
    let mut prev: Option<[u8; 32]> = None;
    for b in &seen {
        assert_eq!(b.version, PROTOCOL_VERSION);
        let ev = b.evidence.as_ref().expect("evidence");
        assert_eq!(PublicKey::parse(&ev.key), Ok(public));
        assert_eq!(
            ev.prev.as_deref().and_then(keys::parse_digest),
            prev,
            "seq {}",
            b.seq
        );
        let header = Header {
            agent: &b.agent,
            seq: b.seq,
            prev: prev.as_ref(),
        };
        let d = digest(&header, &b.measurements, &b.gaps);
        assert_eq!(
            ev.digest,
            keys::hex(&d),
            "the digest is the canonical form's"
        );
        let sig = keys::parse_signature(&ev.signature).expect("base64 signature");
        assert!(public.verifies(&d, &sig), "signature of seq {}", b.seq);
        prev = Some(d);
    }
}

#[tokio::test]
async fn an_older_collector_gets_the_same_batches_unsigned() {
    let (seen, dir, unsigned) = deliver(true, 10).await;
    // The first attempt is signed and refused; then every batch goes out as version 1.
    assert_eq!(seen[0].version, PROTOCOL_VERSION);
    let delivered: Vec<&Batch> = seen.iter().filter(|b| b.version == 1).collect();
    assert!(delivered.iter().all(|b| b.evidence.is_none()));
    assert_eq!(
        seen[1].seq, seen[0].seq,
        "the refused batch is resent at once"
    );
    let total: usize = delivered.iter().map(|b| b.measurements.len()).sum();
    assert_eq!(total, 10, "nothing lost: {seen:?}");
    assert_eq!(
        seen.len(),
        delivered.len() + 1,
        "version 2 was tried once: {seen:?}"
    );
    assert_eq!(unsigned, delivered.len() as u64);
    assert!(
        !dir.path().join("spool/quarantine").exists(),
        "nothing quarantined"
    );
}
