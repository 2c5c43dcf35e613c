//! `rate_limit`: exporter-toolkit's request limiter (`golang.org/x/time/rate` with
//! `Allow()`), a token bucket of `burst` requests refilled by one every `interval`, over all
//! requests of a listener. A request that finds the bucket empty is answered 429 before any
//! other work (in particular before bcrypt), with `Retry-After`.
//!
//! Invariants:
//! - The bucket starts full and never holds more than `burst`; tokens accrue continuously.
//! - `burst` 0 refuses every request (as exporter-toolkit does; the loader warns).
//! - Time comes from the caller, so the arithmetic is tested without sleeping.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use attest_config::web::RateLimit;

/// One listener's bucket.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit,
            state: Mutex::new(Bucket {
                tokens: f64::from(limit.burst),
                at: None,
            }),
        }
    }

    /// Takes a token for a request arriving now; `Err` is the `Retry-After` in whole seconds
    /// (`None` when no token will ever come: `burst` 0).
    pub fn admit(&self) -> Result<(), Option<u64>> {
        self.admit_at(Instant::now())
    }

    pub fn admit_at(&self, now: Instant) -> Result<(), Option<u64>> {
        let burst = f64::from(self.limit.burst);
        if self.limit.burst == 0 {
            return Err(None);
        }
        let interval = self.limit.interval.as_secs_f64();
        let mut b = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = b.at {
            let earned = now.saturating_duration_since(at).as_secs_f64() / interval;
            b.tokens = (b.tokens + earned).min(burst);
        }
        b.at = Some(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - b.tokens) * interval);
        Err(Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)))
    }

    /// What the 429 says.
    pub fn refusal(&self) -> String {
        format!(
            "too many requests: this listener allows {} requests at once and one more every {:?} (rate_limit of the web configuration)\n",
            self.limit.burst, self.limit.interval
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(interval_ms: u64, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimit {
            interval: Duration::from_millis(interval_ms),
            burst,
        })
    }

    #[test]
    fn a_full_bucket_serves_burst_requests_then_one_per_interval() {
        let l = limiter(1000, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.admit_at(t0), Ok(()));
        }
        assert_eq!(l.admit_at(t0), Err(Some(1)));
        assert_eq!(
            l.admit_at(t0 + Duration::from_millis(500)),
            Err(Some(1)),
            "half a token is not a token"
        );
        assert_eq!(l.admit_at(t0 + Duration::from_millis(1000)), Ok(()));
        assert_eq!(l.admit_at(t0 + Duration::from_millis(1000)), Err(Some(1)));
        // A long pause refills to burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.admit_at(later), Ok(()));
        }
        assert!(l.admit_at(later).is_err());
    }

    #[test]
    fn burst_zero_refuses_everything() {
        let l = limiter(1000, 0);
        assert_eq!(l.admit_at(Instant::now()), Err(None));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let l = limiter(2500, 1);
        let t0 = Instant::now();
        assert_eq!(l.admit_at(t0), Ok(()));
        assert_eq!(l.admit_at(t0), Err(Some(3)));
    }
}
