//! Scheduler: runs every check on its own interval and owns the measurement envelope.
//!
//! One task, the *timer queue*, drives every idle check: a binary heap of (due instant,
//! check), ordered by the instant. When a check is due the queue spawns an *attempt* task
//! for it, which lives only while the probe runs. An idle check therefore costs its
//! [`Slot`] and one heap entry, not a task, a timer and a cancellation token of its own.
//!
//! Invariants:
//! - One attempt per tick; a check never overlaps itself. A tick that comes while the
//!   check's attempt still runs is run once, right after it (as tokio's `interval` with
//!   `MissedTickBehavior::Skip` did); any further tick in that time is *missed* (counted),
//!   never queued: catch-up bursts would distort availability. Ticks the queue itself could
//!   not serve in time (a stalled process) are skipped and counted the same way.
//! - Each check starts at a stable per-check offset (a hash of agent and check id) within its
//!   interval, so checks are spread over the interval instead of bunched at start-up; later
//!   ticks are at that offset plus whole intervals.
//! - The timestamp is the UTC instant the probe started (from [`Clock`]); the duration is
//!   measured on tokio's monotonic clock, so tests can pause time.
//! - A global semaphore bounds probes in flight; waiting for a permit delays a probe, it
//!   never drops it.
//! - A stopped check (removed or changed by [`Scheduler::apply`]) never starts another
//!   attempt; an attempt already probing finishes and its measurement is kept.

use std::collections::{BTreeSet, BinaryHeap};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attest_config::Check;
use attest_config::wire::{FailureReason, Measurement};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::probe::{Probe, ProbeReport};

/// Extra time after a probe's own deadline before the scheduler stops waiting for it. A probe
/// is expected to return by its deadline; this only guards against one that does not.
const GRACE: Duration = Duration::from_millis(250);

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

/// `Slot::state` bits: an attempt runs; a tick came while it ran; the check was stopped.
const RUNNING: u8 = 1;
const PENDING: u8 = 2;
const STOPPED: u8 = 4;

/// One running check as the timer queue and its attempts see it. Kept small: at 1,000
/// checks every byte here is a kilobyte of the agent's memory.
struct Slot {
    /// The definition (id, interval, timeout), shared with the control loop. Replaced by an
    /// equal one when the control loop re-read it (a reload, a new assignment revision), so
    /// that only one copy stays.
    def: Mutex<Arc<Check>>,
    probe: Box<dyn Probe>,
    state: AtomicU8,
}

impl Slot {
    fn def(&self) -> Arc<Check> {
        self.def
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Holds `def` from now on if it equals the running definition; false if it differs.
    fn adopt(&self, def: &Arc<Check>) -> bool {
        let mut held = self
            .def
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if Arc::ptr_eq(&held, def) {
            return true;
        }
        if **held != **def {
            return false;
        }
        *held = def.clone();
        true
    }

    fn stop(&self) {
        self.state.fetch_or(STOPPED, Ordering::AcqRel);
    }

    fn stopped(&self) -> bool {
        self.state.load(Ordering::Acquire) & STOPPED != 0
    }
}

/// A check's next tick in the timer queue. Ordered so that the heap's top is the earliest.
struct Due {
    at: Instant,
    slot: Arc<Slot>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.at.cmp(&self.at)
    }
}

/// What the scheduler tells its timer queue.
enum Command {
    /// Start driving a new check, first at `Due::at`.
    Start(Due),
    /// Checks were stopped: drop their entries now rather than at their next tick, so their
    /// probes are freed at once.
    Purge,
}

/// What the timer queue and every attempt share.
struct Shared {
    clock: Arc<dyn Clock>,
    permits: Semaphore,
    sink: Sink,
    /// Shutdown: the queue ends, attempts waiting for a permit give up.
    cancel: CancellationToken,
    /// Attempts in flight, awaited at shutdown.
    attempts: TaskTracker,
}

/// The running set of checks, reconfigurable while the agent runs: [`Scheduler::apply`]
/// starts new checks, stops removed ones and restarts changed ones; an unchanged check keeps
/// its place in the timer queue and its ticks. The sink (and with it the spool writer) is
/// shared by every generation of checks, so a reconfiguration never touches the spool.
pub struct Scheduler {
    agent: String,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    queue: JoinHandle<()>,
    /// The running checks, sorted by id (a plain sorted list: exact size, where a map's
    /// half-empty nodes would cost more than the entries).
    running: Vec<Arc<Slot>>,
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
    /// Starts the timer queue (on the current tokio runtime); no check runs until
    /// [`Scheduler::apply`]. `cancel` is the agent's shutdown.
    pub fn new(
        agent_id: &str,
        clock: Arc<dyn Clock>,
        concurrency: usize,
        sink: Sink,
        cancel: CancellationToken,
    ) -> Scheduler {
        let shared = Arc::new(Shared {
            clock,
            permits: Semaphore::new(concurrency.max(1)),
            sink,
            cancel,
            attempts: TaskTracker::new(),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let queue = tokio::spawn(run_queue(shared.clone(), rx));
        Scheduler {
            agent: agent_id.to_string(),
            shared,
            commands,
            queue,
            running: Vec::new(),
        }
    }

    /// Makes `wanted` the running set. `build` prepares a check's probe; it is called only
    /// for checks that are new or whose definition changed.
    pub fn apply(
        &mut self,
        wanted: &[Arc<Check>],
        build: impl Fn(&Check) -> Result<Box<dyn Probe>, String>,
    ) -> Applied {
        let mut out = Applied::default();
        let keep: BTreeSet<&str> = wanted.iter().map(|c| c.id.as_str()).collect();
        let gone: Vec<String> = self
            .running
            .iter()
            .map(|s| s.def().id.clone())
            .filter(|id| !keep.contains(id.as_str()))
            .collect();
        for id in gone {
            self.stop_one(&id);
            out.stopped.push(id);
        }
        for def in wanted {
            let existing = self.find(&def.id).ok().map(|i| self.running[i].adopt(def));
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
        if !(out.stopped.is_empty() && out.restarted.is_empty()) {
            // The queue is gone only at shutdown, when nothing is left to purge.
            let _ = self.commands.send(Command::Purge);
        }
        self.running.shrink_to_fit();
        out
    }

    /// Ids of the running checks, in order.
    pub fn running(&self) -> Vec<String> {
        self.running.iter().map(|s| s.def().id.clone()).collect()
    }

    /// The running checks' definitions, in id order (shared: cloning one costs a count).
    pub fn checks(&self) -> Vec<Arc<Check>> {
        self.running.iter().map(|s| s.def()).collect()
    }

    /// Where check `id` is (or would be) in the sorted running list.
    fn find(&self, id: &str) -> Result<usize, usize> {
        self.running
            .binary_search_by(|s| s.def().id.as_str().cmp(id))
    }

    fn start_one(&mut self, def: Arc<Check>, probe: Box<dyn Probe>) {
        let at = Instant::now() + jitter_offset(&self.agent, &def.id, def.interval);
        let id = def.id.clone();
        let slot = Arc::new(Slot {
            def: Mutex::new(def),
            probe,
            state: AtomicU8::new(0),
        });
        // The queue is gone only at shutdown; then nothing should start.
        let _ = self.commands.send(Command::Start(Due {
            at,
            slot: slot.clone(),
        }));
        match self.find(&id) {
            Ok(i) => self.running[i] = slot,
            Err(i) => self.running.insert(i, slot),
        }
    }

    /// Stops a check; an attempt in flight finishes and its measurement is kept.
    fn stop_one(&mut self, id: &str) {
        if let Ok(i) = self.find(id) {
            self.running.remove(i).stop();
        }
    }

    /// Stops every check and waits for the attempts in flight; afterwards the sink is
    /// dropped, so the spool writer drains and ends.
    pub async fn stop(self) {
        let Scheduler { shared, queue, .. } = self;
        shared.cancel.cancel();
        let _ = queue.await;
        shared.attempts.close();
        shared.attempts.wait().await;
    }
}

/// The timer queue: sleeps until the earliest due check, ticks every check that is due,
/// and puts each back at its next tick. Ends at shutdown.
async fn run_queue(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut heap: BinaryHeap<Due> = BinaryHeap::new();
    // One timer for the whole queue, moved to the earliest due instant.
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        let next = heap.peek().map(|d| d.at);
        if next != armed {
            if let Some(at) = next {
                sleep.as_mut().reset(at);
            }
            armed = next;
        }
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            cmd = commands.recv() => match cmd {
                Some(Command::Start(due)) => heap.push(due),
                Some(Command::Purge) => heap.retain(|d| !d.slot.stopped()),
                None => return,
            },
            () = &mut sleep, if armed.is_some() => {
                // Fired: re-arm on the next turn even if the earliest instant is unchanged.
                armed = None;
                fire_due(&shared, &mut heap, Instant::now());
            }
        }
    }
}

/// Ticks every check due by `now` and schedules its next tick.
fn fire_due(shared: &Arc<Shared>, heap: &mut BinaryHeap<Due>, now: Instant) {
    while heap.peek().is_some_and(|d| d.at <= now) {
        let Some(Due { at, slot }) = heap.pop() else {
            break;
        };
        if slot.stopped() {
            continue;
        }
        let (next, skipped) = next_tick(at, slot.def().interval, now);
        shared.missed(skipped);
        tick(shared, &slot);
        heap.push(Due { at: next, slot });
    }
}

/// The first tick after `now` on the grid `at + k·interval`, and how many ticks of the grid
/// lie between `at` and it (the queue could not serve them in time: skipped, never replayed).
fn next_tick(at: Instant, interval: Duration, now: Instant) -> (Instant, u64) {
    let interval = interval.max(Duration::from_millis(1));
    let next = at + interval;
    if next > now {
        return (next, 0);
    }
    let behind = now.saturating_duration_since(at).as_nanos() / interval.as_nanos();
    let ahead = u64::try_from(interval.as_nanos() * (behind + 1)).unwrap_or(u64::MAX);
    (at + Duration::from_nanos(ahead), behind as u64)
}

/// One tick of a check: start an attempt if none runs; otherwise remember the tick (run
/// right after the attempt), or count it missed if one is already remembered.
fn tick(shared: &Arc<Shared>, slot: &Arc<Slot>) {
    let prev = slot
        .state
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
            if s & STOPPED != 0 {
                None
            } else if s & RUNNING == 0 {
                Some(RUNNING)
            } else {
                Some(s | PENDING)
            }
        });
    match prev {
        Ok(s) if s & RUNNING == 0 => {
            shared
                .attempts
                .spawn(attempts(shared.clone(), slot.clone()));
        }
        Ok(s) if s & PENDING != 0 => shared.missed(1),
        _ => {}
    }
}

/// The task of one attempt (and of the one tick that came while it ran). Ends when the
/// check is idle again, stopped, or at shutdown.
async fn attempts(shared: Arc<Shared>, slot: Arc<Slot>) {
    let again = |s: u8| s & PENDING != 0 && s & STOPPED == 0;
    loop {
        if !shared.attempt_and_send(&slot).await {
            return;
        }
        let prev = slot
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(if again(s) {
                    s & !PENDING
                } else {
                    s & !(RUNNING | PENDING)
                })
            })
            .unwrap_or_else(|s| s);
        if !again(prev) || shared.cancel.is_cancelled() {
            return;
        }
    }
}

impl Shared {
    fn missed(&self, ticks: u64) {
        if ticks > 0 {
            self.sink
                .stats
                .missed_ticks_total
                .fetch_add(ticks, Ordering::Relaxed);
        }
    }

    /// One attempt handed to the sink; false when it ended without a measurement (shutdown
    /// or the check stopped before it got a permit) or the spool writer is gone.
    async fn attempt_and_send(&self, slot: &Slot) -> bool {
        let Some(measurement) = self.attempt(slot).await else {
            return false;
        };
        (self.sink.observe)(&measurement);
        self.sink.stats.probes_total.fetch_add(1, Ordering::Relaxed);
        // The spool writer only stops after the scheduler; a closed channel means shutdown.
        self.sink.tx.send(measurement).await.is_ok()
    }

    /// One probe attempt inside the envelope. `None` when shutdown interrupts the wait for a
    /// permit, or the check was stopped meanwhile (nothing was measured, so nothing is lost).
    async fn attempt(&self, slot: &Slot) -> Option<Measurement> {
        let _permit = tokio::select! {
            _ = self.cancel.cancelled() => return None,
            p = self.permits.acquire() => p.ok()?,
        };
        if slot.stopped() {
            return None;
        }
        let ts = self.clock.now_utc();
        let started = Instant::now();
        let def = slot.def();
        let timeout = def.timeout;
        let deadline = started + timeout;
        let report =
            match tokio::time::timeout_at(deadline + GRACE, slot.probe.probe(deadline)).await {
                Ok(report) => report,
                Err(_) => ProbeReport {
                    reason: Some(FailureReason::Timeout),
                    error: Some(format!("no result within the timeout of {timeout:?}")),
                    ..ProbeReport::default()
                },
            };
        let elapsed = started.elapsed().as_secs_f64();
        Some(envelope(&def.id, ts, elapsed, report))
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
    // The collector refuses longer texts (docs/wire.md); a long error must not cost a batch.
    attest_config::wire::clip_texts(&mut m);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ProbeFuture;
    use std::collections::BTreeMap;

    struct FakeClock;
    impl Clock for FakeClock {
        fn now_utc(&self) -> jiff::Timestamp {
            jiff::Timestamp::UNIX_EPOCH
        }
    }

    /// Probe starts, by check and the tag of the definition the probe was built from.
    type Starts = Arc<Mutex<Vec<(String, String, Instant)>>>;

    /// A probe that takes a fixed time (on tokio's clock), counts concurrent runs, and
    /// records when it started and which definition it was built from.
    struct SlowProbe {
        id: String,
        tag: String,
        takes: Duration,
        running: Arc<AtomicU64>,
        max_running: Arc<AtomicU64>,
        starts: Starts,
    }
    impl Probe for SlowProbe {
        fn probe(&self, _deadline: Instant) -> ProbeFuture<'_> {
            Box::pin(async move {
                self.starts.lock().unwrap().push((
                    self.id.clone(),
                    self.tag.clone(),
                    Instant::now(),
                ));
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(self.takes).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                let mut labels = BTreeMap::new();
                labels.insert("def".to_string(), self.tag.clone());
                ProbeReport {
                    ok: true,
                    labels,
                    ..ProbeReport::default()
                }
            })
        }
    }

    /// Builds [`SlowProbe`]s taking `takes`, tagged with the definition's interval.
    struct Builder {
        takes: Duration,
        running: Arc<AtomicU64>,
        max_running: Arc<AtomicU64>,
        starts: Starts,
        built: AtomicU64,
    }
    impl Builder {
        fn new(takes: Duration) -> Builder {
            Builder {
                takes,
                running: Arc::new(AtomicU64::new(0)),
                max_running: Arc::new(AtomicU64::new(0)),
                starts: Arc::new(Mutex::new(Vec::new())),
                built: AtomicU64::new(0),
            }
        }

        fn build(&self, c: &Check) -> Result<Box<dyn Probe>, String> {
            self.built.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(SlowProbe {
                id: c.id.clone(),
                tag: format!("{:?}", c.interval),
                takes: self.takes,
                running: self.running.clone(),
                max_running: self.max_running.clone(),
                starts: self.starts.clone(),
            }))
        }

        /// Start instants of `check` (of any definition) at or after `from`.
        fn starts_of(&self, check: &str, from: Instant) -> Vec<(String, Instant)> {
            self.starts
                .lock()
                .unwrap()
                .iter()
                .filter(|(id, _, at)| id == check && *at >= from)
                .map(|(_, tag, at)| (tag.clone(), *at))
                .collect()
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

    fn scheduler(
        concurrency: usize,
        cap: usize,
    ) -> (Scheduler, mpsc::Receiver<Measurement>, Arc<ScheduleStats>) {
        let (s, rx, stats) = sink(cap);
        let sched = Scheduler::new(
            "a",
            Arc::new(FakeClock),
            concurrency,
            s,
            CancellationToken::new(),
        );
        (sched, rx, stats)
    }

    fn parsed(id: &str, interval_ms: u64) -> Check {
        let src = format!(
            "[[check]]\nid = \"{id}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"{interval_ms}ms\"\ntimeout = \"50ms\"\n"
        );
        attest_config::parse_checks("test", &src)
            .expect("valid")
            .remove(0)
    }

    fn def(id: &str, interval_ms: u64) -> Arc<Check> {
        Arc::new(parsed(id, interval_ms))
    }

    /// A definition with a timeout the loader would refuse (not below the interval), to
    /// drive probes that outlive their tick.
    fn def_timeout(id: &str, interval: Duration, timeout: Duration) -> Arc<Check> {
        let mut c = parsed(id, 1000);
        c.interval = interval;
        c.timeout = timeout;
        Arc::new(c)
    }

    /// Receives measurements until `n` of `check` arrived (the channel stays open while
    /// the scheduler runs, so this ends).
    async fn recv_of(
        rx: &mut mpsc::Receiver<Measurement>,
        check: &str,
        n: usize,
    ) -> Vec<Measurement> {
        let mut got = Vec::new();
        while got.len() < n {
            let m = rx.recv().await.expect("scheduler alive");
            if m.check == check {
                got.push(m);
            }
        }
        got
    }

    fn gaps(starts: &[(String, Instant)]) -> Vec<Duration> {
        starts.windows(2).map(|w| w[1].1 - w[0].1).collect()
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

    #[test]
    fn next_tick_skips_what_the_queue_could_not_serve() {
        let t = Instant::now();
        let i = Duration::from_secs(10);
        assert_eq!(next_tick(t, i, t), (t + i, 0));
        assert_eq!(next_tick(t, i, t + Duration::from_secs(9)), (t + i, 0));
        // 35 s late: the ticks at +10, +20 and +30 are gone; the grid goes on at +40.
        assert_eq!(next_tick(t, i, t + Duration::from_secs(35)), (t + 4 * i, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn checks_fire_at_their_intervals_from_their_offsets() {
        let b = Builder::new(Duration::from_millis(1));
        let (mut sched, mut rx, stats) = scheduler(4, 100);
        let t0 = Instant::now();
        let applied = sched.apply(&[def("fast", 1000), def("slow", 3000)], |c| b.build(c));
        assert_eq!(applied.started, ["fast", "slow"]);
        recv_of(&mut rx, "slow", 4).await;
        for (id, every) in [("fast", 1000), ("slow", 3000)] {
            let every = Duration::from_millis(every);
            let starts = b.starts_of(id, t0);
            assert!(starts.len() >= 4, "{id}: {starts:?}");
            assert_eq!(
                starts[0].1,
                t0 + jitter_offset("a", id, every),
                "{id}: first tick"
            );
            assert!(
                gaps(&starts).iter().all(|g| *g == every),
                "{id}: ticks not {every:?} apart: {:?}",
                gaps(&starts)
            );
        }
        assert_eq!(stats.missed_ticks_total.load(Ordering::SeqCst), 0);
        sched.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn slow_probe_runs_late_once_and_never_overlaps() {
        let b = Builder::new(Duration::from_millis(2500));
        let (mut sched, mut rx, stats) = scheduler(4, 100);
        let t0 = Instant::now();
        let check = def_timeout("slow", Duration::from_secs(1), Duration::from_secs(10));
        sched.apply(&[check], |c| b.build(c));
        recv_of(&mut rx, "slow", 4).await;
        sched.stop().await;
        assert_eq!(
            b.max_running.load(Ordering::SeqCst),
            1,
            "a check overlapped itself"
        );
        // The tick that came during an attempt runs right after it; the others are missed.
        let starts = b.starts_of("slow", t0);
        assert!(
            gaps(&starts)
                .iter()
                .all(|g| *g == Duration::from_millis(2500)),
            "{:?}",
            gaps(&starts)
        );
        assert!(
            stats.missed_ticks_total.load(Ordering::SeqCst) >= 3,
            "missed ticks not counted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_becomes_a_failed_measurement() {
        let b = Builder::new(Duration::from_secs(30));
        let (mut sched, mut rx, _) = scheduler(1, 10);
        let check = def_timeout("hang", Duration::from_secs(10), Duration::from_secs(2));
        sched.apply(&[check], |c| b.build(c));
        let m = rx.recv().await.expect("measurement");
        sched.stop().await;
        assert!(!m.ok);
        assert_eq!(m.reason, Some(FailureReason::Timeout));
        let d = m.duration_seconds.expect("duration");
        assert!((2.0..3.0).contains(&d), "duration {d}");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_limit_is_global() {
        let b = Builder::new(Duration::from_secs(3));
        let (mut sched, mut rx, _) = scheduler(2, 100);
        let checks: Vec<Arc<Check>> = (0..6)
            .map(|n| {
                def_timeout(
                    &format!("c{n}"),
                    Duration::from_secs(5),
                    Duration::from_secs(4),
                )
            })
            .collect();
        sched.apply(&checks, |c| b.build(c));
        for _ in 0..12 {
            rx.recv().await.expect("measurement");
        }
        sched.stop().await;
        assert_eq!(b.max_running.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn apply_starts_stops_and_restarts_only_what_changed() {
        let b = Builder::new(Duration::from_millis(1));
        let (mut sched, mut rx, _) = scheduler(4, 100);
        let first = sched.apply(&[def("c1", 100), def("c2", 100)], |c| b.build(c));
        assert_eq!(first.started, ["c1", "c2"]);
        let same = sched.apply(&[def("c1", 100), def("c2", 100)], |c| b.build(c));
        assert_eq!(same, Applied::default(), "an unchanged set is left alone");
        assert_eq!(
            b.built.load(Ordering::SeqCst),
            2,
            "unchanged checks are not rebuilt"
        );
        let next = sched.apply(&[def("c1", 200), def("c3", 100)], |c| b.build(c));
        assert_eq!(next.started, ["c3"]);
        assert_eq!(next.restarted, ["c1"]);
        assert_eq!(next.stopped, ["c2"]);
        assert_eq!(sched.running(), ["c1", "c3"]);
        let failed = sched.apply(
            &[def("c1", 200)],
            |_: &Check| -> Result<Box<dyn Probe>, String> { Err("no".into()) },
        );
        assert!(
            failed.failed.is_empty(),
            "an unchanged check is not rebuilt, so it cannot fail"
        );
        assert_eq!(failed.stopped, ["c3"]);
        let broken = sched.apply(
            &[def("c1", 300)],
            |_: &Check| -> Result<Box<dyn Probe>, String> { Err("no".into()) },
        );
        assert_eq!(broken.failed, [("c1".to_string(), "no".to_string())]);
        assert_eq!(
            broken.stopped,
            ["c1"],
            "a changed check that cannot be built stops"
        );
        assert!(sched.running().is_empty());
        sched.stop().await;
        // Every attempt ended and the sink is gone: the channel closes.
        while rx.recv().await.is_some() {}
    }

    #[tokio::test(start_paused = true)]
    async fn a_removed_check_stops_firing() {
        let b = Builder::new(Duration::from_millis(1));
        let (mut sched, mut rx, _) = scheduler(4, 100);
        sched.apply(&[def("keep", 1000), def("gone", 1000)], |c| b.build(c));
        recv_of(&mut rx, "gone", 2).await;
        let removed_at = Instant::now();
        let applied = sched.apply(&[def("keep", 1000)], |c| b.build(c));
        assert_eq!(applied.stopped, ["gone"]);
        // Ten more seconds of "keep": "gone" never starts again.
        let keep_from = Instant::now();
        while b.starts_of("keep", keep_from).len() < 10 {
            rx.recv().await.expect("measurement");
        }
        let late: Vec<_> = b
            .starts_of("gone", removed_at)
            .into_iter()
            .filter(|(_, at)| *at > removed_at)
            .collect();
        assert!(late.is_empty(), "a removed check kept probing: {late:?}");
        sched.stop().await;
        while let Some(m) = rx.recv().await {
            assert_ne!(m.check, "gone", "a removed check kept measuring");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_check_runs_its_new_definition() {
        let b = Builder::new(Duration::from_millis(1));
        let (mut sched, mut rx, _) = scheduler(4, 100);
        sched.apply(&[def("web", 1000)], |c| b.build(c));
        let old = recv_of(&mut rx, "web", 2).await;
        assert!(old.iter().all(|m| m.labels["def"] == "1s"));
        let changed_at = Instant::now();
        let applied = sched.apply(&[def("web", 3000)], |c| b.build(c));
        assert_eq!(applied.restarted, ["web"]);
        while b
            .starts_of("web", changed_at)
            .iter()
            .filter(|(tag, _)| tag == "3s")
            .count()
            < 4
        {
            rx.recv().await.expect("measurement");
        }
        let after: Vec<_> = b
            .starts_of("web", changed_at)
            .into_iter()
            .filter(|(_, at)| *at > changed_at)
            .collect();
        assert!(
            after.iter().all(|(tag, _)| tag == "3s"),
            "the old definition kept running: {after:?}"
        );
        assert!(
            gaps(&after).iter().all(|g| *g == Duration::from_secs(3)),
            "not at the new interval: {:?}",
            gaps(&after)
        );
        assert_eq!(
            after[0].1,
            changed_at + jitter_offset("a", "web", Duration::from_secs(3))
        );
        sched.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_lets_a_probe_in_flight_finish() {
        let b = Builder::new(Duration::from_secs(2));
        let (mut sched, mut rx, _) = scheduler(4, 100);
        let check = def_timeout("web", Duration::from_secs(10), Duration::from_secs(5));
        sched.apply(&[check], |c| b.build(c));
        while b.running.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sched.stop().await;
        let m = rx.recv().await.expect("the attempt in flight is kept");
        assert!(m.ok);
        assert!(rx.recv().await.is_none(), "the sink is dropped after stop");
    }
}
