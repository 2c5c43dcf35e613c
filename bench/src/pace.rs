//! Load generation: a fixed number of jobs started at a fixed rate (open loop, like a
//! scheduler firing checks), and a closed loop of N workers for the highest rate.
//!
//! Invariants: every loop is bounded — by `count` for the paced run and by a deadline
//! for the closed loop; each job must bound itself (probes carry a deadline, requests a
//! timeout). In-flight jobs are capped so a stalled target cannot grow memory unbounded.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// Most jobs a paced run keeps in flight; beyond it the start of the next job waits.
pub const MAX_IN_FLIGHT: usize = 512;

/// Invalid load parameters, rejected before any work starts.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PaceError {
    #[error("rate must be a positive number of jobs per second, got {0}")]
    Rate(f64),
    #[error("count must be at least 1")]
    Count,
    #[error("concurrency must be at least 1")]
    Concurrency,
}

/// Outcome counts of a run and how long it took from first start to last finish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    pub wall: Duration,
}

/// Starts `count` jobs, one every `1/rate` seconds, and waits for all of them.
/// A job returns whether it succeeded.
pub async fn paced<F, Fut>(count: u64, rate: f64, job: F) -> Result<Tally, PaceError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    if !(rate.is_finite() && rate > 0.0) {
        return Err(PaceError::Rate(rate));
    }
    if count == 0 {
        return Err(PaceError::Count);
    }
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut jobs = JoinSet::new();
    let start = Instant::now();
    for _ in 0..count {
        tick.tick().await;
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let fut = job();
        jobs.spawn(async move {
            let ok = fut.await;
            drop(permit);
            ok
        });
    }
    let mut tally = Tally {
        ok: 0,
        failed: 0,
        wall: Duration::ZERO,
    };
    while let Some(done) = jobs.join_next().await {
        match done {
            Ok(true) => tally.ok += 1,
            _ => tally.failed += 1,
        }
    }
    tally.wall = start.elapsed();
    Ok(tally)
}

/// Runs `workers` loops that each start the next job when the previous one finished,
/// until `duration` has passed; jobs running at the deadline are finished and counted.
pub async fn closed_loop<F, Fut>(
    workers: usize,
    duration: Duration,
    job: F,
) -> Result<Tally, PaceError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    if workers == 0 {
        return Err(PaceError::Concurrency);
    }
    let job = Arc::new(job);
    let start = Instant::now();
    let end = start + duration;
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let job = job.clone();
        set.spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            while Instant::now() < end {
                if job().await {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            (ok, failed)
        });
    }
    let mut tally = Tally {
        ok: 0,
        failed: 0,
        wall: Duration::ZERO,
    };
    while let Some(done) = set.join_next().await {
        if let Ok((ok, failed)) = done {
            tally.ok += ok;
            tally.failed += failed;
        }
    }
    tally.wall = start.elapsed();
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test(start_paused = true)]
    async fn paced_runs_every_job_at_the_rate() {
        let n = Arc::new(AtomicU64::new(0));
        let counter = n.clone();
        let tally = paced(10, 100.0, move || {
            let k = counter.fetch_add(1, Ordering::SeqCst);
            async move { !k.is_multiple_of(3) }
        })
        .await
        .expect("valid parameters");
        assert_eq!(tally.ok + tally.failed, 10);
        assert_eq!(tally.failed, 4, "jobs 0, 3, 6, 9 fail");
        // 10 starts at 10 ms spacing: the first is immediate, the last at 90 ms.
        assert_eq!(tally.wall, Duration::from_millis(90));
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_stops_at_the_deadline() {
        let tally = closed_loop(4, Duration::from_millis(100), || async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            true
        })
        .await
        .expect("valid parameters");
        assert_eq!(tally.ok, 40, "4 workers x 10 jobs of 10 ms in 100 ms");
        assert_eq!(tally.failed, 0);
    }

    #[tokio::test]
    async fn bad_parameters_are_refused() {
        let job = || async { true };
        assert_eq!(paced(1, 0.0, job).await, Err(PaceError::Rate(0.0)));
        assert!(matches!(
            paced(1, f64::NAN, job).await,
            Err(PaceError::Rate(_))
        ));
        assert_eq!(paced(0, 1.0, job).await, Err(PaceError::Count));
        assert_eq!(
            closed_loop(0, Duration::from_secs(1), job).await,
            Err(PaceError::Concurrency)
        );
    }
}
