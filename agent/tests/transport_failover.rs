//! The transport's collector selection against loopback HTTP peers that answer as scripted:
//! a connection error, a timeout or a 5xx at the preferred collector moves the batch to the
//! next one; a 4xx never fails over; once the preferred collector is ready again for
//! `failback_after`, new batches go back to it. Every measurement is acked exactly once by
//! some collector and the spool ends empty.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
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

/// What a peer answers to a batch, in order; after the script it acks everything.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    /// Never answer (the agent's request times out).
    Hang,
}

/// A scripted collector: batches in, acks or the scripted answers out; `/-/ready` answers
/// the status in `ready`.
struct Peer {
    script: Mutex<VecDeque<Answer>>,
    /// Seq and size of every batch that reached this peer, acked or not.
    seen: Mutex<Vec<(u64, usize)>>,
    /// Seq and size of every batch this peer acked.
    acked: Mutex<Vec<(u64, usize)>>,
    ready: AtomicU16,
    /// Readiness probes answered.
    probes: AtomicU64,
}

impl Peer {
    fn seen(&self) -> Vec<(u64, usize)> {
        self.seen.lock().unwrap().clone()
    }

    fn acked(&self) -> Vec<(u64, usize)> {
        self.acked.lock().unwrap().clone()
    }

    async fn answer(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        if req.uri().path() == "/-/ready" {
            let code = self.ready.load(Ordering::SeqCst);
            self.probes.fetch_add(1, Ordering::SeqCst);
            return hyper::Response::builder()
                .status(code)
                .body(Full::new(Bytes::from_static(b"ready\n")))
                .unwrap();
        }
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let json = zstd::stream::decode_all(&body[..]).unwrap();
        let batch: Batch = serde_json::from_slice(&json).unwrap();
        let size = (batch.seq, batch.measurements.len());
        self.seen.lock().unwrap().push(size);
        let answer = self.script.lock().unwrap().pop_front();
        match answer {
            None => {
                self.acked.lock().unwrap().push(size);
                let ack = Ack {
                    version: 1,
                    acked_seq: batch.seq,
                    duplicate: false,
                    stored: batch.measurements.len() as u64,
                };
                hyper::Response::new(Full::new(Bytes::from(serde_json::to_vec(&ack).unwrap())))
            }
            Some(Answer::Status(code)) => hyper::Response::builder()
                .status(code)
                .body(Full::new(Bytes::from_static(
                    br#"{"error":"scripted","field":"measurements[0].ts"}"#,
                )))
                .unwrap(),
            Some(Answer::Hang) => std::future::pending().await,
        }
    }
}

async fn start_peer(script: Vec<Answer>) -> (String, Arc<Peer>) {
    let peer = Arc::new(Peer {
        script: Mutex::new(script.into()),
        seen: Mutex::new(Vec::new()),
        acked: Mutex::new(Vec::new()),
        ready: AtomicU16::new(200),
        probes: AtomicU64::new(0),
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
                let svc = hyper::service::service_fn(move |req| {
                    let p = p.clone();
                    async move { Ok::<_, Infallible>(p.answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), peer)
}

/// A loopback URL where nothing listens (the port was free a moment ago).
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn cfg(failback_after: Duration) -> TransportConfig {
    TransportConfig {
        batch_max_measurements: 10,
        batch_max_age: Duration::from_millis(10),
        request_timeout: Duration::from_millis(500),
        ca_file: None,
        client_cert: None,
        client_key: None,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        failback_after,
    }
}

fn measurements(from: i64, n: i64) -> Vec<Measurement> {
    (from..from + n)
        .map(|i| {
            Measurement::new(
                "web",
                jiff::Timestamp::from_second(1_790_000_000 + i).unwrap(),
                true,
            )
        })
        .collect()
}

/// A running transport over its own spool.
struct Rig {
    _dir: tempfile::TempDir,
    spool: SharedSpool,
    collectors: Arc<Collectors>,
    appended: Arc<Notify>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Rig {
    fn start(urls: &[String], failback_after: Duration) -> Rig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let spool =
            SharedSpool::new(Spool::open(&spool_dir, 1 << 20, WhenFull::DropOldest).unwrap());
        let cfg = cfg(failback_after);
        let collectors = Arc::new(Collectors::new(urls, failback_after).unwrap());
        let t = Transport::new(
            "a1",
            collectors.clone(),
            "tok",
            cfg.clone(),
            spool.reader(),
            spool_dir,
        )
        .unwrap();
        let cancel = CancellationToken::new();
        let client = attest_agent::transport::build_client(&cfg).unwrap();
        tokio::spawn(
            collectors
                .clone()
                .watch(client, cfg.request_timeout, cancel.clone()),
        );
        let appended = Arc::new(Notify::new());
        let task = tokio::spawn(t.run(appended.clone(), cancel.clone()));
        Rig {
            _dir: dir,
            spool,
            collectors,
            appended,
            cancel,
            task,
        }
    }

    fn append(&self, ms: &[Measurement]) {
        self.spool.writer().append(ms).unwrap();
        self.appended.notify_one();
    }

    /// Waits (bounded) until every spooled measurement is acked.
    async fn drained(&self) {
        wait_until("the spool to drain", || self.spool.stats().depth == 0).await;
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap();
    }
}

/// Polls `f` every 20 ms for at most 10 s.
async fn wait_until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn total(batches: &[(u64, usize)]) -> usize {
    batches.iter().map(|(_, n)| n).sum()
}

/// Every batch acked by exactly one peer, and all `n` measurements among them.
fn assert_each_acked_once(peers: &[&Peer], n: usize) {
    let mut seqs: Vec<u64> = peers
        .iter()
        .flat_map(|p| p.acked().into_iter().map(|(s, _)| s))
        .collect();
    let all = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), all, "a batch was acked twice: {seqs:?}");
    let acked: usize = peers.iter().map(|p| total(&p.acked())).sum();
    assert_eq!(acked, n);
}

#[tokio::test]
async fn connection_refused_moves_to_the_next_collector() {
    let (b_url, b) = start_peer(vec![]).await;
    let rig = Rig::start(&[closed_url(), b_url], Duration::from_secs(60));
    rig.append(&measurements(0, 25));
    rig.drained().await;
    assert_eq!(total(&b.acked()), 25);
    assert_eq!(rig.collectors.active().index, 1);
    assert_eq!(rig.collectors.failovers(), 1, "one outage, one failover");
    rig.stop().await;
}

#[tokio::test]
async fn a_5xx_moves_the_same_batch_to_the_next_collector_and_stays_there() {
    let (a_url, a) = start_peer(vec![Answer::Status(503)]).await;
    let (b_url, b) = start_peer(vec![]).await;
    // A answers /-/ready with 503, so the agent has no reason to go back.
    a.ready.store(503, Ordering::SeqCst);
    let rig = Rig::start(&[a_url, b_url], Duration::from_millis(200));
    rig.append(&measurements(0, 25));
    rig.drained().await;
    let (first, _) = a.seen()[0];
    assert_eq!(a.seen().len(), 1, "A got one attempt: {:?}", a.seen());
    assert_eq!(b.seen()[0].0, first, "B got the very batch A refused");
    assert_each_acked_once(&[&a, &b], 25);
    assert_eq!(rig.collectors.active().index, 1, "sticky on B");
    rig.stop().await;
}

#[tokio::test]
async fn a_timeout_moves_the_batch_and_the_resend_is_the_same_seq() {
    let (a_url, a) = start_peer(vec![Answer::Hang]).await;
    let (b_url, b) = start_peer(vec![]).await;
    a.ready.store(503, Ordering::SeqCst);
    let rig = Rig::start(&[a_url, b_url], Duration::from_secs(60));
    rig.append(&measurements(0, 5));
    rig.drained().await;
    assert_eq!(a.seen().len(), 1);
    assert!(a.acked().is_empty());
    assert_eq!(b.acked(), a.seen(), "same seq and size resent to B");
    assert_eq!(rig.collectors.failovers(), 1);
    rig.stop().await;
}

#[tokio::test]
async fn a_4xx_never_fails_over() {
    // 401 (setup: retried at A), then 409 (the batch's fault: quarantined at A).
    let (a_url, a) = start_peer(vec![Answer::Status(401), Answer::Status(409)]).await;
    let (b_url, b) = start_peer(vec![]).await;
    let rig = Rig::start(&[a_url, b_url], Duration::from_secs(60));
    rig.append(&measurements(0, 5));
    rig.drained().await;
    assert!(
        b.seen().is_empty(),
        "B must not see a batch: {:?}",
        b.seen()
    );
    assert_eq!(a.seen().len(), 2, "{:?}", a.seen());
    assert!(a.acked().is_empty(), "quarantined, not acked");
    assert_eq!(rig.collectors.failovers(), 0);
    assert_eq!(rig.collectors.active().index, 0);
    rig.stop().await;
}

#[tokio::test]
async fn back_to_the_preferred_collector_once_it_is_ready_again() {
    let (a_url, a) = start_peer(vec![Answer::Status(500)]).await;
    let (b_url, b) = start_peer(vec![]).await;
    a.ready.store(503, Ordering::SeqCst);
    let rig = Rig::start(&[a_url, b_url], Duration::from_millis(300));
    rig.append(&measurements(0, 10));
    rig.drained().await;
    assert_eq!(rig.collectors.active().index, 1);
    assert_eq!(total(&b.acked()), 10);
    // While A answers its readiness probes with 503, the agent stays on B.
    let probed = a.probes.load(Ordering::SeqCst);
    wait_until("five more probes of A", || {
        a.probes.load(Ordering::SeqCst) >= probed + 5
    })
    .await;
    assert_eq!(
        rig.collectors.active().index,
        1,
        "A is not ready: stay on B"
    );
    a.ready.store(200, Ordering::SeqCst);
    wait_until("the failback to A", || rig.collectors.active().index == 0).await;
    assert_eq!(rig.collectors.failbacks(), 1);
    let b_before = b.seen().len();
    rig.append(&measurements(10, 20));
    rig.drained().await;
    assert_eq!(b.seen().len(), b_before, "new batches go to A only");
    assert_eq!(total(&a.acked()), 20);
    assert_each_acked_once(&[&a, &b], 30);
    rig.stop().await;
}
