//! Transport against a loopback HTTP peer that answers as scripted: acks remove data from the
//! spool only for the seq sent; 503 with Retry-After keeps the batch and retries it; a 400
//! quarantines the batch (kept on disk, not retried forever); 401 never deletes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attest_agent::spool::{SharedSpool, Spool};
use attest_agent::transport::Transport;
use attest_agent::transport::collectors::Collectors;
use attest_config::wire::{Ack, Batch, Measurement};
use attest_config::{TransportConfig, WhenFull};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the peer answers, in order; after the script it acks everything.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    Ack,
}

struct Peer {
    script: Mutex<VecDeque<Answer>>,
    /// (seq, measurements) of every request received.
    seen: Mutex<Vec<(u64, usize)>>,
}

async fn start_peer(script: Vec<Answer>) -> (u16, Arc<Peer>) {
    let peer = Arc::new(Peer {
        script: Mutex::new(script.into()),
        seen: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = peer.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let p = p.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let p = p.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let json = zstd::stream::decode_all(&body[..]).unwrap();
                            let batch: Batch = serde_json::from_slice(&json).unwrap();
                            p.seen
                                .lock()
                                .unwrap()
                                .push((batch.seq, batch.measurements.len()));
                            let answer =
                                p.script.lock().unwrap().pop_front().unwrap_or(Answer::Ack);
                            let resp = match answer {
                                Answer::Ack => {
                                    let ack = Ack {
                                        version: 1,
                                        acked_seq: batch.seq,
                                        duplicate: false,
                                        stored: batch.measurements.len() as u64,
                                    };
                                    hyper::Response::new(Full::new(Bytes::from(
                                        serde_json::to_vec(&ack).unwrap(),
                                    )))
                                }
                                Answer::Status(code) => hyper::Response::builder()
                                    .status(code)
                                    .header("retry-after", "1")
                                    .body(Full::new(Bytes::from_static(
                                        br#"{"error":"scripted","field":"measurements[0].ts"}"#,
                                    )))
                                    .unwrap(),
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
    (port, peer)
}

fn cfg() -> TransportConfig {
    TransportConfig {
        batch_max_measurements: 10,
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
            Measurement::new(
                "web",
                jiff::Timestamp::from_second(1_790_000_000 + i).unwrap(),
                true,
            )
        })
        .collect()
}

/// Runs the transport until the spool is empty (bounded), returns the peer's log.
async fn deliver(
    script: Vec<Answer>,
    n: i64,
) -> (Vec<(u64, usize)>, tempfile::TempDir, SharedSpool) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let spool = SharedSpool::new(
        Spool::open(&dir.path().join("spool"), 1 << 20, WhenFull::DropOldest).unwrap(),
    );
    spool.writer().append(&measurements(n)).unwrap();
    let (port, peer) = start_peer(script).await;
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
        dir.path().join("spool"),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let notify = Arc::new(Notify::new());
    let task = tokio::spawn(t.run(notify, cancel.clone()));
    for _ in 0..500 {
        if spool.stats().depth == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(spool.stats().depth, 0, "spool did not drain");
    let seen = peer.seen.lock().unwrap().clone();
    (seen, dir, spool)
}

#[tokio::test]
async fn retries_the_same_batch_until_acked() {
    let (seen, _dir, _) = deliver(
        vec![
            Answer::Status(503),
            Answer::Status(401),
            Answer::Status(500),
        ],
        25,
    )
    .await;
    // Batch 1 was sent four times (three refusals, then the ack), always whole and with one seq.
    let first = seen[0];
    assert_eq!(&seen[..4], &[first; 4], "{seen:?}");
    let delivered: usize = seen.iter().skip(3).map(|(_, n)| n).sum();
    assert_eq!(delivered, 25, "{seen:?}");
    let seqs: Vec<u64> = seen.iter().skip(3).map(|(s, _)| *s).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs must increase: {seqs:?}"
    );
}

#[tokio::test]
async fn malformed_batch_is_quarantined_not_retried_forever() {
    let (seen, dir, _) = deliver(vec![Answer::Status(400)], 5).await;
    assert_eq!(seen.len(), 1, "a 400 must not be retried: {seen:?}");
    let q = dir
        .path()
        .join("spool/quarantine")
        .join(format!("{}.json", seen[0].0));
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&q).expect("quarantine file")).unwrap();
    assert_eq!(kept["measurements"].as_array().unwrap().len(), 5);
    assert_eq!(kept["status"], 400);
}

#[tokio::test]
async fn any_4xx_about_the_batch_quarantines_it() {
    // 409 stands for any 4xx that is not about the agent's setup or rate.
    let (seen, dir, _) = deliver(vec![Answer::Status(409)], 3).await;
    assert_eq!(seen.len(), 1, "a 409 must not be retried: {seen:?}");
    let q = dir
        .path()
        .join("spool/quarantine")
        .join(format!("{}.json", seen[0].0));
    assert!(q.exists(), "quarantined at {}", q.display());
}

#[tokio::test]
async fn setup_and_rate_4xx_are_retried_not_quarantined() {
    let (seen, dir, _) = deliver(
        vec![
            Answer::Status(408),
            Answer::Status(404),
            Answer::Status(415),
        ],
        3,
    )
    .await;
    let first = seen[0];
    assert_eq!(&seen[..4], &[first; 4], "{seen:?}");
    assert!(!dir.path().join("spool/quarantine").exists());
}
