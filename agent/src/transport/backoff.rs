//! Retry delays for the transport: capped exponential backoff with jitter, floored by the
//! collector's `Retry-After`, and no give-up.
//!
//! Invariants:
//! - A schedule never ends: the transport retries until the collector acks or answers with a
//!   non-retryable status (a time-based give-up would turn an outage into silent data loss).
//! - Every delay is at most `max`, except that a server's `Retry-After` is honoured as a floor
//!   (capped at `retry_after_cap`, so a bogus header cannot park the agent for days).
//! - Given the same seed and inputs, the schedule is identical (a tiny splitmix64 generator; no
//!   `rand` dependency), which makes tests exact. Agents seed from their id and start time so a
//!   fleet that lost the collector together does not retry in lockstep.

use std::time::Duration;

/// How a delay is drawn below the exponential ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform in `[0, min(max, initial * factor^attempt)]` (AWS "full jitter").
    Full,
    /// Uniform in `[initial, previous * factor]`, capped at `max` (AWS "decorrelated jitter"):
    /// spreads retries as well as full jitter with fewer very short waits.
    Decorrelated,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
    pub jitter: Jitter,
    /// Largest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackoffError {
    #[error("backoff initial delay must be above zero; set it to e.g. 1s")]
    ZeroInitial,
    #[error(
        "backoff initial delay {initial:?} exceeds the maximum {max:?}; lower initial or raise max"
    )]
    InitialAboveMax { initial: Duration, max: Duration },
    #[error(
        "backoff maximum {max:?} is above one day; a retry that rare looks like giving up, lower it"
    )]
    MaxTooLarge { max: Duration },
    #[error("backoff factor {factor} must be a finite number in (1, 16]; 2 is a good default")]
    Factor { factor: f64 },
    #[error("retry_after_cap {cap:?} must be at least the backoff maximum {max:?}")]
    RetryAfterCap { cap: Duration, max: Duration },
}

const ONE_DAY: Duration = Duration::from_secs(24 * 3600);

impl BackoffConfig {
    /// Transport defaults: 1 s doubling to 30 s, decorrelated jitter, `Retry-After` up to 10 min.
    pub const DEFAULT: BackoffConfig = BackoffConfig {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
        factor: 2.0,
        jitter: Jitter::Decorrelated,
        retry_after_cap: Duration::from_secs(600),
    };

    /// Checks the bounds stated on [`BackoffError`].
    pub fn validate(&self) -> Result<(), BackoffError> {
        if self.initial.is_zero() {
            return Err(BackoffError::ZeroInitial);
        }
        if self.initial > self.max {
            return Err(BackoffError::InitialAboveMax {
                initial: self.initial,
                max: self.max,
            });
        }
        if self.max > ONE_DAY {
            return Err(BackoffError::MaxTooLarge { max: self.max });
        }
        if !(self.factor.is_finite() && self.factor > 1.0 && self.factor <= 16.0) {
            return Err(BackoffError::Factor {
                factor: self.factor,
            });
        }
        if self.retry_after_cap < self.max {
            return Err(BackoffError::RetryAfterCap {
                cap: self.retry_after_cap,
                max: self.max,
            });
        }
        Ok(())
    }
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig::DEFAULT
    }
}

/// The retry schedule of one stream of attempts (one batch in flight at a time).
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    rng: SplitMix64,
    attempt: u32,
    prev: Duration,
}

impl Backoff {
    /// A schedule for a validated `cfg`, deterministic for a given `seed`.
    pub fn new(cfg: BackoffConfig, seed: u64) -> Result<Backoff, BackoffError> {
        cfg.validate()?;
        Ok(Backoff {
            cfg,
            rng: SplitMix64(seed),
            attempt: 0,
            prev: cfg.initial,
        })
    }

    /// Failed attempts since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt after a failure; `retry_after` is the server's
    /// `Retry-After`, when it sent one.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let drawn = match self.cfg.jitter {
            Jitter::Full => {
                let ceiling = self.ceiling(self.attempt);
                self.uniform(Duration::ZERO, ceiling)
            }
            Jitter::Decorrelated => {
                let hi = mul_capped(self.prev, self.cfg.factor, self.cfg.max).max(self.cfg.initial);
                self.uniform(self.cfg.initial, hi)
            }
        };
        self.prev = drawn.max(self.cfg.initial);
        self.attempt = self.attempt.saturating_add(1);
        match retry_after {
            Some(ra) => drawn.max(ra.min(self.cfg.retry_after_cap)),
            None => drawn,
        }
    }

    /// The attempt succeeded: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.prev = self.cfg.initial;
    }

    /// `min(max, initial * factor^attempt)` without overflow.
    fn ceiling(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt).unwrap_or(i32::MAX);
        mul_capped(self.cfg.initial, self.cfg.factor.powi(exp), self.cfg.max)
    }

    fn uniform(&mut self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        // Validated durations are at most one day, so nanoseconds fit a u64.
        let lo_n = u64::try_from(lo.as_nanos()).unwrap_or(u64::MAX);
        let hi_n = u64::try_from(hi.as_nanos()).unwrap_or(u64::MAX);
        let span = hi_n - lo_n;
        let r = self.rng.next() % span.saturating_add(1).max(1);
        Duration::from_nanos(lo_n + r)
    }
}

/// `d * k`, capped at `cap`; infinite or overflowing products give `cap`.
fn mul_capped(d: Duration, k: f64, cap: Duration) -> Duration {
    let secs = d.as_secs_f64() * k;
    if !secs.is_finite() || secs >= cap.as_secs_f64() {
        return cap;
    }
    Duration::from_secs_f64(secs.max(0.0)).min(cap)
}

/// Parses a `Retry-After` header given in delta-seconds (what our collector sends). HTTP-date
/// values and garbage yield `None`: the jittered schedule then applies on its own.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u64>().ok().map(Duration::from_secs)
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to spread retries.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(jitter: Jitter) -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter,
            retry_after_cap: Duration::from_secs(300),
        }
    }

    #[test]
    fn full_jitter_stays_under_the_exponential_ceiling() {
        let mut b = Backoff::new(cfg(Jitter::Full), 7).unwrap();
        for attempt in 0..40u32 {
            let ceiling = Duration::from_millis(500)
                .mul_f64(2f64.powi(attempt as i32))
                .min(Duration::from_secs(30));
            let d = b.next_delay(None);
            assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
        }
        assert_eq!(b.attempt(), 40);
    }

    #[test]
    fn full_jitter_reaches_the_cap_region_and_spreads() {
        let mut b = Backoff::new(cfg(Jitter::Full), 1).unwrap();
        let late: Vec<_> = (0..200).map(|_| b.next_delay(None)).skip(10).collect();
        assert!(
            late.iter().any(|d| *d > Duration::from_secs(25)),
            "cap region never reached"
        );
        assert!(
            late.iter().any(|d| *d < Duration::from_secs(15)),
            "no spread below the cap"
        );
        assert!(late.iter().all(|d| *d <= Duration::from_secs(30)));
    }

    #[test]
    fn decorrelated_jitter_is_within_initial_and_max_and_grows() {
        let mut b = Backoff::new(cfg(Jitter::Decorrelated), 99).unwrap();
        let mut prev = Duration::from_millis(500);
        let mut hit_cap = false;
        for _ in 0..200 {
            let d = b.next_delay(None);
            let hi = prev.mul_f64(2.0).min(Duration::from_secs(30));
            assert!(
                d >= Duration::from_millis(500) && d <= hi,
                "{d:?} outside [0.5s, {hi:?}]"
            );
            hit_cap |= d > Duration::from_secs(20);
            prev = d;
        }
        assert!(hit_cap, "decorrelated schedule never approached the cap");
    }

    #[test]
    fn retry_after_is_a_floor_but_capped() {
        for jitter in [Jitter::Full, Jitter::Decorrelated] {
            let mut b = Backoff::new(cfg(jitter), 3).unwrap();
            assert!(b.next_delay(Some(Duration::from_secs(120))) >= Duration::from_secs(120));
            assert_eq!(
                b.next_delay(Some(Duration::from_secs(1_000_000))),
                Duration::from_secs(300)
            );
            // A short Retry-After never shortens the drawn delay below the draw itself.
            let mut a = Backoff::new(cfg(jitter), 11).unwrap();
            let mut c = Backoff::new(cfg(jitter), 11).unwrap();
            for _ in 0..10 {
                let plain = a.next_delay(None);
                assert_eq!(c.next_delay(Some(Duration::ZERO)), plain);
            }
        }
    }

    #[test]
    fn same_seed_same_schedule_other_seed_differs() {
        let run = |seed| {
            let mut b = Backoff::new(cfg(Jitter::Full), seed).unwrap();
            (0..20).map(|_| b.next_delay(None)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn reset_starts_over_and_the_schedule_never_ends() {
        let mut b = Backoff::new(cfg(Jitter::Full), 5).unwrap();
        for _ in 0..100_000 {
            assert!(b.next_delay(None) <= Duration::from_secs(30));
        }
        assert_eq!(b.attempt(), 100_000);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert!(b.next_delay(None) <= Duration::from_millis(500));
    }

    #[test]
    fn invalid_configs_are_refused() {
        let bad = |f: fn(&mut BackoffConfig)| {
            let mut c = cfg(Jitter::Full);
            f(&mut c);
            Backoff::new(c, 0).unwrap_err()
        };
        assert_eq!(
            bad(|c| c.initial = Duration::ZERO),
            BackoffError::ZeroInitial
        );
        assert!(matches!(
            bad(|c| c.initial = Duration::from_secs(60)),
            BackoffError::InitialAboveMax { .. }
        ));
        assert!(matches!(
            bad(|c| c.factor = 1.0),
            BackoffError::Factor { .. }
        ));
        assert!(matches!(
            bad(|c| c.factor = f64::NAN),
            BackoffError::Factor { .. }
        ));
        assert!(matches!(
            bad(|c| c.max = Duration::from_secs(90_000)),
            BackoffError::MaxTooLarge { .. }
        ));
        assert!(matches!(
            bad(|c| c.retry_after_cap = Duration::from_secs(1)),
            BackoffError::RetryAfterCap { .. }
        ));
        assert!(BackoffConfig::DEFAULT.validate().is_ok());
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-5"), None);
        assert_eq!(parse_retry_after("99999999999999999999"), None);
        assert_eq!(parse_retry_after(""), None);
    }
}
