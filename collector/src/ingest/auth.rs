//! Bearer-token authentication bound to agent ids, and the per-agent rate limit.

use std::collections::HashMap;
use std::sync::Mutex;

use attest_config::AgentAuth;
use jiff::Timestamp;

use super::Rejection;

/// Token → agent id. Tokens are compared in constant time so timing does not reveal prefixes.
pub(crate) struct Tokens {
    by_agent: Vec<(String, Vec<u8>)>,
}

impl Tokens {
    pub(crate) fn new(agents: &[AgentAuth]) -> Tokens {
        Tokens {
            by_agent: agents
                .iter()
                .map(|a| (a.id.clone(), a.token.as_bytes().to_vec()))
                .collect(),
        }
    }

    pub(crate) fn authenticate(&self, header: Option<&str>) -> Result<&str, Rejection> {
        let token = header
            .and_then(attest_config::http::bearer_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Rejection::new(401, "missing bearer token: send 'Authorization: Bearer <token>' as configured for this agent"))?;
        let mut found = None;
        for (agent, t) in &self.by_agent {
            if constant_time_eq(t, token.as_bytes()) {
                found = Some(agent.as_str());
            }
        }
        found.ok_or_else(|| {
            Rejection::new(
                401,
                "unknown token: check the agent's token against the collector's [[agent]] entries",
            )
        })
    }
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A token bucket per agent: `rate` batches per second, bursts up to `max(1, 2·rate)`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Timestamp)>>,
}

impl RateLimiter {
    pub fn new(rate: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst: (rate * 2.0).max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, agent: &str, now: Timestamp) -> Result<(), Rejection> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = buckets
            .entry(agent.to_string())
            .or_insert((self.burst, now));
        let elapsed = now.duration_since(*last).as_secs_f64().max(0.0);
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Rejection::new(
                429,
                format!(
                    "agent {agent:?} exceeds {} batches per second; slow down",
                    self.rate
                ),
            )
            .retry_after(super::retry_after_secs(self.rate)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[
            AgentAuth {
                id: "a1".into(),
                token: "secret-one".into(),
                labels: Default::default(),
                public_key: None,
            },
            AgentAuth {
                id: "a2".into(),
                token: "secret-two".into(),
                labels: Default::default(),
                public_key: None,
            },
        ])
    }

    #[test]
    fn token_maps_to_its_agent() {
        let t = tokens();
        assert_eq!(t.authenticate(Some("Bearer secret-two")).unwrap(), "a2");
        // RFC 9110: the scheme is case-insensitive.
        assert_eq!(t.authenticate(Some("bearer secret-two")).unwrap(), "a2");
        assert_eq!(t.authenticate(Some("BEARER secret-two")).unwrap(), "a2");
        assert_eq!(t.authenticate(None).unwrap_err().status, 401);
        assert_eq!(t.authenticate(Some("Bearer nope")).unwrap_err().status, 401);
        assert_eq!(
            t.authenticate(Some("Basic secret-one")).unwrap_err().status,
            401
        );
    }

    #[test]
    fn rate_limit_refills() {
        let r = RateLimiter::new(1.0);
        let t0: Timestamp = "2026-10-01T00:00:00Z".parse().unwrap();
        assert!(r.check("a", t0).is_ok());
        assert!(r.check("a", t0).is_ok()); // burst of 2
        let e = r.check("a", t0).unwrap_err();
        assert_eq!((e.status, e.retry_after), (429, Some(1)));
        assert!(r.check("b", t0).is_ok(), "buckets are per agent");
        let t1 = t0.checked_add(jiff::SignedDuration::from_secs(1)).unwrap();
        assert!(r.check("a", t1).is_ok());
    }
}
