//! Scheduler: runs every check on its own interval and owns the measurement envelope.
//!
//! Invariants:
//! - One attempt per tick; a check never overlaps itself. A probe that outlives its tick makes
//!   the following ticks *missed* (counted), never queued: catch-up bursts would distort
//!   availability.
//! - Each check starts at a stable per-check offset (a hash of agent and check id) within its
//!   interval, so checks are spread over the interval instead of bunched at start-up.
//! - The timestamp is the UTC instant the probe started (from [`Clock`]); the duration is
//!   measured on tokio's monotonic clock, so tests can pause time.
//! - A global semaphore bounds probes in flight; waiting for a permit delays a probe, it
//!   never drops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use attest_config::wire::{FailureReason, Measurement};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::probe::{Probe, ProbeReport};

/// Extra time after a probe's own deadline before the scheduler stops waiting for it. A probe
/// is expected to return by its deadline; this only guards against one that does not.
const GRACE: Duration = Duration::from_millis(250);

/// A check ready to run: its id, schedule and the probe that measures it.
pub struct ScheduledCheck {
    pub id: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub probe: Arc<dyn Probe>,
}

/// Counters the scheduler keeps, exported by the agent's telemetry.
#[derive(Debug, Default)]
pub struct ScheduleStats {
    pub probes_total: AtomicU64,
    pub missed_ticks_total: AtomicU64,
}

/// Where the scheduler sends finished measurements and whom it reports to.
pub struct Sink {
    pub tx: mpsc::Sender<Measurement>,
    pub stats: Arc<ScheduleStats>,
    /// Called with each finished measurement (telemetry), before it is sent on.
    pub observe: Arc<dyn Fn(&Measurement) + Send + Sync>,
}

/// Stable offset of a check within its interval: FNV-1a of `agent/check`, modulo the interval.
pub fn jitter_offset(agent: &str, check: &str, interval: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in agent.bytes().chain([b'/']).chain(check.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h % ms)
}

/// Spawns one task per check; they stop when `cancel` fires. Returns the join handles.
pub fn spawn_all(
    agent_id: &str,
    checks: Vec<ScheduledCheck>,
    clock: Arc<dyn Clock>,
    concurrency: usize,
    sink: Sink,
    cancel: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let sink = Arc::new(sink);
    checks
        .into_iter()
        .map(|check| {
            let offset = jitter_offset(agent_id, &check.id, check.interval);
            let runner = Runner {
                check,
                clock: clock.clone(),
                permits: permits.clone(),
                sink: sink.clone(),
            };
            tokio::spawn(runner.run(offset, cancel.clone()))
        })
        .collect()
}

/// The running set of checks, reconfigurable while the agent runs: [`Scheduler::apply`]
/// starts new checks, stops removed ones and restarts changed ones; an unchanged check keeps
/// its task and its ticks. The sink (and with it the spool writer) is shared by every
/// generation of tasks, so a reconfiguration never touches the spool.
pub struct Scheduler {
    agent: String,
    clock: Arc<dyn Clock>,
    permits: Arc<Semaphore>,
    sink: Arc<Sink>,
    /// Parent of every check's own token: shutdown stops all.
    cancel: CancellationToken,
    /// Boxed: a map node holds eleven entries inline and is often half empty, so inline
    /// definitions would cost about twice their size per check.
    running: std::collections::BTreeMap<String, Box<Running>>,
    /// Tasks of stopped checks still finishing an attempt; awaited at shutdown.
    retired: Vec<tokio::task::JoinHandle<()>>,
}

struct Running {
    def: attest_config::Check,
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

/// What one [`Scheduler::apply`] did, by check id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    /// Checks that could not be built, with the reason; they do not run.
    pub failed: Vec<(String, String)>,
}

impl Scheduler {
    pub fn new(
        agent_id: &str,
        clock: Arc<dyn Clock>,
        concurrency: usize,
        sink: Sink,
        cancel: CancellationToken,
    ) -> Scheduler {
        Scheduler {
            agent: agent_id.to_string(),
            clock,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            sink: Arc::new(sink),
            cancel,
            running: std::collections::BTreeMap::new(),
            retired: Vec::new(),
        }
    }

    /// Makes `wanted` the running set. `build` prepares a check's probe; it is called only
    /// for checks that are new or whose definition changed.
    pub fn apply(
        &mut self,
        wanted: &[attest_config::Check],
        build: impl Fn(&attest_config::Check) -> Result<Arc<dyn Probe>, String>,
    ) -> Applied {
        let mut out = Applied::default();
        let keep: std::collections::BTreeSet<&str> = wanted.iter().map(|c| c.id.as_str()).collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|id| !keep.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            self.stop_one(&id);
            out.stopped.push(id);
        }
        for def in wanted {
            let existing = self.running.get(&def.id).map(|r| r.def == *def);
            if existing == Some(true) {
                continue;
            }
            let probe = match build(def) {
                Ok(p) => p,
                Err(e) => {
                    if existing.is_some() {
                        self.stop_one(&def.id);
                        out.stopped.push(def.id.clone());
                    }
                    out.failed.push((def.id.clone(), e));
                    continue;
                }
            };
            if existing.is_some() {
                self.stop_one(&def.id);
                out.restarted.push(def.id.clone());
            } else {
                out.started.push(def.id.clone());
            }
            self.start_one(def.clone(), probe);
        }
        self.retired.retain(|h| !h.is_finished());
        out
    }

    /// Ids of the running checks, in order.
    pub fn running(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }

    fn start_one(&mut self, def: attest_config::Check, probe: Arc<dyn Probe>) {
        let check = ScheduledCheck {
            id: def.id.clone(),
            interval: def.interval,
            timeout: def.timeout,
            probe,
        };
        let offset = jitter_offset(&self.agent, &check.id, check.interval);
        let cancel = self.cancel.child_token();
        let runner = Runner {
            check,
            clock: self.clock.clone(),
            permits: self.permits.clone(),
            sink: self.sink.clone(),
        };
        let handle = tokio::spawn(runner.run(offset, cancel.clone()));
        self.running.insert(
            def.id.clone(),
            Box::new(Running {
                def,
                cancel,
                handle,
            }),
        );
    }

    /// Stops a check; an attempt in flight finishes and its measurement is kept.
    fn stop_one(&mut self, id: &str) {
        if let Some(r) = self.running.remove(id) {
            r.cancel.cancel();
            self.retired.push(r.handle);
        }
    }

    /// Stops every check and waits for them; afterwards the sink is dropped, so the spool
    /// writer drains and ends.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        let handles = std::mem::take(&mut self.running)
            .into_values()
            .map(|r| r.handle)
            .chain(std::mem::take(&mut self.retired));
        for h in handles {
            let _ = h.await;
        }
    }
}

struct Runner {
    check: ScheduledCheck,
    clock: Arc<dyn Clock>,
    permits: Arc<Semaphore>,
    sink: Arc<Sink>,
}

impl Runner {
    async fn run(self, offset: Duration, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval_at(Instant::now() + offset, self.check.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut last_tick: Option<Instant> = None;
        loop {
            let tick = tokio::select! {
                _ = cancel.cancelled() => return,
                t = ticker.tick() => t,
            };
            self.count_missed(last_tick, tick);
            last_tick = Some(tick);
            // Boxed: the state of an attempt (probe, timeout, measurement, channel send) is
            // large and lives only for the attempt, while this task idles between ticks for
            // the whole interval. Inline, every idle check would carry it.
            if !Box::pin(self.attempt_and_send(&cancel)).await {
                return;
            }
        }
    }

    /// One attempt handed to the sink; false when shutdown ended it (no permit before the
    /// cancel, or the spool writer gone).
    async fn attempt_and_send(&self, cancel: &CancellationToken) -> bool {
        let Some(measurement) = self.attempt(cancel).await else {
            return false;
        };
        (self.sink.observe)(&measurement);
        self.sink.stats.probes_total.fetch_add(1, Ordering::Relaxed);
        // The spool writer only stops after the scheduler; a closed channel means shutdown.
        self.sink.tx.send(measurement).await.is_ok()
    }

    /// Ticks skipped because the previous attempt ran long are counted, not replayed.
    fn count_missed(&self, last: Option<Instant>, now: Instant) {
        if let Some(last) = last {
            let elapsed = now.saturating_duration_since(last).as_nanos();
            let interval = self.check.interval.as_nanos().max(1);
            let skipped = (elapsed / interval).saturating_sub(1) as u64;
            if skipped > 0 {
                self.sink
                    .stats
                    .missed_ticks_total
                    .fetch_add(skipped, Ordering::Relaxed);
            }
        }
    }

    /// One probe attempt inside the envelope. `None` only when shutdown interrupts the wait
    /// for a permit (nothing was measured, so nothing is lost).
    async fn attempt(&self, cancel: &CancellationToken) -> Option<Measurement> {
        let _permit = tokio::select! {
            _ = cancel.cancelled() => return None,
            p = self.permits.acquire() => p.ok()?,
        };
        let ts = self.clock.now_utc();
        let started = Instant::now();
        let deadline = started + self.check.timeout;
        let report =
            match tokio::time::timeout_at(deadline + GRACE, self.check.probe.probe(deadline)).await
            {
                Ok(report) => report,
                Err(_) => ProbeReport {
                    reason: Some(FailureReason::Timeout),
                    error: Some(format!(
                        "no result within the timeout of {:?}",
                        self.check.timeout
                    )),
                    ..ProbeReport::default()
                },
            };
        let elapsed = started.elapsed().as_secs_f64();
        Some(envelope(&self.check.id, ts, elapsed, report))
    }
}

/// Wraps a probe's report into the wire measurement.
pub fn envelope(
    check: &str,
    ts: jiff::Timestamp,
    duration_seconds: f64,
    r: ProbeReport,
) -> Measurement {
    let mut m = Measurement::new(check, ts, r.ok);
    m.duration_seconds = Some(duration_seconds);
    m.reason = if r.ok {
        None
    } else {
        Some(r.reason.unwrap_or(FailureReason::Other))
    };
    m.failed_phase = r.failed_phase;
    m.error = r.error;
    m.phases = r.phases;
    m.values = r.values;
    m.labels = r.labels;
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ProbeFuture;
    use std::sync::Mutex;

    struct FakeClock;
    impl Clock for FakeClock {
        fn now_utc(&self) -> jiff::Timestamp {
            jiff::Timestamp::UNIX_EPOCH
        }
    }

    /// A probe that takes a fixed time (on tokio's clock) and counts concurrent runs.
    struct SlowProbe {
        takes: Duration,
        running: Arc<AtomicU64>,
        max_running: Arc<AtomicU64>,
    }
    impl Probe for SlowProbe {
        fn probe(&self, _deadline: Instant) -> ProbeFuture<'_> {
            Box::pin(async move {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(self.takes).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                ProbeReport {
                    ok: true,
                    ..ProbeReport::default()
                }
            })
        }
    }

    fn sink(cap: usize) -> (Sink, mpsc::Receiver<Measurement>, Arc<ScheduleStats>) {
        let (tx, rx) = mpsc::channel(cap);
        let stats = Arc::new(ScheduleStats::default());
        let s = Sink {
            tx,
            stats: stats.clone(),
            observe: Arc::new(|_| {}),
        };
        (s, rx, stats)
    }

    #[test]
    fn jitter_is_stable_and_spread() {
        let i = Duration::from_secs(10);
        assert_eq!(jitter_offset("a", "web", i), jitter_offset("a", "web", i));
        let offsets: std::collections::BTreeSet<_> = (0..50)
            .map(|n| jitter_offset("a", &format!("c{n}"), i).as_millis() / 1000)
            .collect();
        // 50 checks land in most of the ten one-second buckets, not all in the first.
        assert!(offsets.len() >= 8, "offsets bunched: {offsets:?}");
        assert!(offsets.iter().all(|&s| s < 10));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_probe_skips_ticks_and_never_overlaps() {
        let running = Arc::new(AtomicU64::new(0));
        let max_running = Arc::new(AtomicU64::new(0));
        let probe = Arc::new(SlowProbe {
            takes: Duration::from_millis(2500),
            running: running.clone(),
            max_running: max_running.clone(),
        });
        let check = ScheduledCheck {
            id: "slow".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            probe,
        };
        let (s, mut rx, stats) = sink(100);
        let cancel = CancellationToken::new();
        let handles = spawn_all("a", vec![check], Arc::new(FakeClock), 4, s, cancel.clone());
        let mut got = 0;
        while got < 4 {
            rx.recv().await.expect("scheduler alive");
            got += 1;
        }
        cancel.cancel();
        for h in handles {
            h.await.expect("task");
        }
        assert_eq!(
            max_running.load(Ordering::SeqCst),
            1,
            "a check overlapped itself"
        );
        assert!(
            stats.missed_ticks_total.load(Ordering::SeqCst) >= 4,
            "missed ticks not counted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_becomes_a_failed_measurement() {
        let probe = Arc::new(SlowProbe {
            takes: Duration::from_secs(30),
            running: Arc::new(AtomicU64::new(0)),
            max_running: Arc::new(AtomicU64::new(0)),
        });
        let check = ScheduledCheck {
            id: "hang".into(),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            probe,
        };
        let (s, mut rx, _) = sink(10);
        let cancel = CancellationToken::new();
        spawn_all("a", vec![check], Arc::new(FakeClock), 1, s, cancel.clone());
        let m = rx.recv().await.expect("measurement");
        cancel.cancel();
        assert!(!m.ok);
        assert_eq!(m.reason, Some(FailureReason::Timeout));
        let d = m.duration_seconds.expect("duration");
        assert!((2.0..3.0).contains(&d), "duration {d}");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_limit_is_global() {
        let running = Arc::new(AtomicU64::new(0));
        let max_running = Arc::new(AtomicU64::new(0));
        let checks = (0..6)
            .map(|n| ScheduledCheck {
                id: format!("c{n}"),
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(4),
                probe: Arc::new(SlowProbe {
                    takes: Duration::from_secs(3),
                    running: running.clone(),
                    max_running: max_running.clone(),
                }) as Arc<dyn Probe>,
            })
            .collect();
        let (s, mut rx, _) = sink(100);
        let seen = Arc::new(Mutex::new(0));
        let cancel = CancellationToken::new();
        spawn_all("a", checks, Arc::new(FakeClock), 2, s, cancel.clone());
        while *seen.lock().unwrap() < 12 {
            rx.recv().await.expect("measurement");
            *seen.lock().unwrap() += 1;
        }
        cancel.cancel();
        assert!(max_running.load(Ordering::SeqCst) <= 2);
    }

    fn def(id: &str, interval_ms: u64) -> attest_config::Check {
        let src = format!(
            "[[check]]\nid = \"{id}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"{interval_ms}ms\"\ntimeout = \"50ms\"\n"
        );
        attest_config::parse_checks("test", &src)
            .expect("valid")
            .remove(0)
    }

    #[tokio::test(start_paused = true)]
    async fn apply_starts_stops_and_restarts_only_what_changed() {
        let (s, mut rx, _) = sink(100);
        let cancel = CancellationToken::new();
        let mut sched = Scheduler::new("a", Arc::new(FakeClock), 4, s, cancel.clone());
        let built = Arc::new(AtomicU64::new(0));
        let b = built.clone();
        let build = move |_: &attest_config::Check| -> Result<Arc<dyn Probe>, String> {
            b.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(SlowProbe {
                takes: Duration::from_millis(1),
                running: Arc::new(AtomicU64::new(0)),
                max_running: Arc::new(AtomicU64::new(0)),
            }))
        };
        let first = sched.apply(&[def("c1", 100), def("c2", 100)], &build);
        assert_eq!(first.started, ["c1", "c2"]);
        let same = sched.apply(&[def("c1", 100), def("c2", 100)], &build);
        assert_eq!(same, Applied::default(), "an unchanged set is left alone");
        assert_eq!(
            built.load(Ordering::SeqCst),
            2,
            "unchanged checks are not rebuilt"
        );
        let next = sched.apply(&[def("c1", 200), def("c3", 100)], &build);
        assert_eq!(next.started, ["c3"]);
        assert_eq!(next.restarted, ["c1"]);
        assert_eq!(next.stopped, ["c2"]);
        assert_eq!(sched.running(), ["c1", "c3"]);
        // c3 measures; after c2's last attempt, c2 never shows up again.
        let mut seen_c3 = false;
        for _ in 0..20 {
            let m = rx.recv().await.expect("measurement");
            seen_c3 |= m.check == "c3";
        }
        assert!(seen_c3);
        while let Ok(m) = rx.try_recv() {
            assert_ne!(m.check, "c2");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        while let Ok(m) = rx.try_recv() {
            assert_ne!(m.check, "c2", "a stopped check kept measuring");
        }
        let failed = sched.apply(
            &[def("c1", 200)],
            |_: &attest_config::Check| -> Result<Arc<dyn Probe>, String> { Err("no".into()) },
        );
        assert!(
            failed.failed.is_empty(),
            "an unchanged check is not rebuilt, so it cannot fail"
        );
        sched.stop().await;
        // Every task ended and the sink is gone: the channel closes.
        while rx.recv().await.is_some() {}
    }
}
