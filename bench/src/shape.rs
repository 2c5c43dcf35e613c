//! Measurements shaped like a real agent's, for the ingest load: every one is a recorded
//! measurement of the real agent (`bench/fixtures/agent-measurements.json`, made by
//! `bench/fixtures/record`) varied per check and probe. HTTP(S) checks carry the probe's
//! phases (resolve, connect, tls, processing, transfer), its values (status code, body
//! length, redirects, certificate expiry) and labels (address, TLS version); a few percent
//! of probes fail with the recorded reasons, failed phases and error texts (status 503,
//! connection refused, timeout, TLS verification, DNS); check 0 of every agent is its host
//! check (CPU, load, memory, filesystems and network values, one per resource).
//!
//! Invariants: deterministic (the same agent, check and tick give the same measurement);
//! every number the agent measures in time is whole nanoseconds, as the agent's own
//! `Duration::as_secs_f64` gives, so the collector's details codec sees what it sees in
//! production; only the fixture's shape is kept, never its instants.

use std::collections::BTreeMap;

use attest_config::wire::{Measurement, Phase};
use jiff::{SignedDuration, Timestamp};

/// The recorded measurements (a JSON array of wire measurements).
const FIXTURE: &str = include_str!("../fixtures/agent-measurements.json");

/// Share of HTTP probes that fail, per mille.
const FAILURES_PER_MILLE: u64 = 30;

/// The recorded measurements, sorted by role.
pub struct Fixture {
    host: Vec<Measurement>,
    ok: Vec<Measurement>,
    failed: Vec<Measurement>,
}

/// SplitMix64: a stable hash of the inputs, for every choice and jitter.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243f_6a88_85a3_08d3, |h, &p| mix(h ^ p))
}

/// `seconds × factor`, rounded to whole nanoseconds (what the agent sends).
fn scaled(seconds: f64, factor: f64) -> f64 {
    ((seconds * factor * 1e9).round().max(1.0)) / 1e9
}

/// A factor in `[lo, hi)` from `h`.
fn factor(h: u64, lo: f64, hi: f64) -> f64 {
    lo + (h % 10_000) as f64 / 10_000.0 * (hi - lo)
}

impl Fixture {
    pub fn load() -> Result<Fixture, String> {
        let all: Vec<Measurement> = serde_json::from_str(FIXTURE)
            .map_err(|e| format!("bench/fixtures/agent-measurements.json: {e}"))?;
        let mut f = Fixture {
            host: Vec::new(),
            ok: Vec::new(),
            failed: Vec::new(),
        };
        for m in all {
            if m.phases.contains_key(&Phase::Collect) {
                f.host.push(m);
            } else if m.ok {
                f.ok.push(m);
            } else {
                f.failed.push(m);
            }
        }
        if f.host.is_empty() || f.ok.is_empty() || f.failed.is_empty() {
            return Err("the fixture needs host, successful and failed measurements".into());
        }
        Ok(f)
    }

    /// The id of check `check` of every agent: `host` for check 0, else the recorded HTTP
    /// check's id it is modelled on plus its number.
    pub fn check_id(&self, check: usize) -> String {
        if check == 0 {
            return "host".to_owned();
        }
        let t = &self.ok[(hash(&[check as u64]) % self.ok.len() as u64) as usize];
        format!("{}-{check:04}", t.check)
    }

    /// The measurement of `check` of agent `agent` at probe `tick`, started at `ts`.
    pub fn measurement(&self, agent: usize, check: usize, tick: u64, ts: Timestamp) -> Measurement {
        let (a, c) = (agent as u64, check as u64);
        let h = hash(&[a, c, tick]);
        if check == 0 {
            return self.host(h, tick, ts);
        }
        let ok = &self.ok[(hash(&[c]) % self.ok.len() as u64) as usize];
        let fails = h % 1000 < FAILURES_PER_MILLE;
        let t = if fails {
            &self.failed[(mix(h) % self.failed.len() as u64) as usize]
        } else {
            ok
        };
        let mut m = t.clone();
        m.check = self.check_id(check);
        m.ts = ts;
        // One factor for the whole probe (a slower network), a little per phase.
        let f = factor(mix(h ^ 1), 0.6, 1.8);
        for (i, v) in m.phases.values_mut().enumerate() {
            *v = scaled(*v, f * factor(mix(h ^ (i as u64 + 2)), 0.9, 1.1));
        }
        if let Some(d) = m.duration_seconds.as_mut() {
            // At least the phases' sum, as the agent's own clock gives (in whole ns).
            let phases: f64 = m.phases.values().map(|v| (v * 1e9).round()).sum();
            *d = (*d * f * 1e9).round().max(phases) / 1e9;
        }
        // This check's own address, certificate and body length.
        let address = format!("10.{}.{}.{}", (a % 250) + 1, (c >> 8) % 256, c % 256);
        // The recording's loopback ports become the usual ones.
        if let Some(old) = m.labels.get("address").cloned() {
            let port = match old.rsplit_once(':').map_or("", |(_, p)| p) {
                "18080" => "80",
                "18999" => "8443",
                _ => "443",
            };
            let new = format!("{address}:{port}");
            if let Some(e) = m.error.as_mut() {
                *e = e.replace(&old, &new);
            }
            m.labels.insert("address".to_owned(), new);
        }
        for v in &mut m.values {
            match v.name.as_str() {
                "http_content_length_bytes" if v.value > 0.0 => {
                    v.value = (v.value + (hash(&[c, 7]) % 20_000) as f64).round();
                }
                "tls_earliest_cert_expiry_seconds" => {
                    v.value += ((hash(&[c, 9]) % 300) * 86_400) as f64;
                }
                _ => {}
            }
        }
        m
    }

    /// The host check: every value of the recorded host measurement, moved a little.
    fn host(&self, h: u64, tick: u64, ts: Timestamp) -> Measurement {
        let t = &self.host[(tick % self.host.len() as u64) as usize];
        let mut m = t.clone();
        m.ts = ts;
        for v in m.phases.values_mut() {
            *v = scaled(*v, factor(mix(h ^ 3), 0.7, 1.5));
        }
        if let Some(d) = m.duration_seconds.as_mut() {
            *d = scaled(*d, factor(mix(h ^ 3), 0.7, 1.5));
        }
        for (i, v) in m.values.iter_mut().enumerate() {
            let j = mix(h ^ (i as u64 + 100));
            let n = v.name.as_str();
            v.value = if n.ends_with("_ratio") {
                (v.value * factor(j, 0.8, 1.2)).clamp(0.0, 1.0)
            } else if n.starts_with("network_") && !n.contains("speed") {
                // Counters only grow.
                (v.value + (tick * (j % 100_000)) as f64).round()
            } else if n.starts_with("load") {
                (v.value * factor(j, 0.8, 1.2) * 100.0).round() / 100.0
            } else if n == "memory_used_bytes" || n == "filesystem_used_bytes" {
                (v.value * factor(j, 0.98, 1.02)).round()
            } else {
                v.value
            };
        }
        m
    }
}

/// Probe instants: check `c` of every agent probes every `interval` at its own offset
/// within the interval (the agent spreads checks), with microsecond jitter.
pub fn probe_ts(base: Timestamp, interval: SignedDuration, check: usize, tick: u64) -> Timestamp {
    let every = interval.as_nanos() as i64;
    let offset = (hash(&[check as u64, 11]) % every as u64) as i64;
    let jitter = (hash(&[check as u64, tick, 13]) % 2_000_000) as i64;
    base.checked_add(SignedDuration::from_nanos(
        tick as i64 * every + offset + jitter,
    ))
    .unwrap_or(base)
}

/// Sizes of the fixture's parts, for the run's header.
pub fn describe(f: &Fixture) -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("host", f.host.len()),
        ("ok", f.ok.len()),
        ("failed", f.failed.len()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("ts")
    }

    /// The generator keeps the agent's shape: HTTP probes with phases, status and address,
    /// a few percent failures with reason and error, a host check with many values; every
    /// time in whole nanoseconds; the same inputs give the same measurement.
    #[test]
    fn measurements_have_the_agents_shape() {
        let f = Fixture::load().expect("fixture");
        let (mut failed, mut n) = (0, 0);
        for check in 1..200 {
            for tick in 0..50 {
                let m = f.measurement(3, check, tick, at(tick as i64 * 10));
                assert_eq!(m, f.measurement(3, check, tick, at(tick as i64 * 10)));
                n += 1;
                assert!(
                    m.labels.contains_key("address") || m.reason.is_some(),
                    "{m:?}"
                );
                assert!(m.check.ends_with(&format!("-{check:04}")));
                if m.ok {
                    assert!(m.phases.len() >= 4, "{m:?}");
                    assert!(m.values.iter().any(|v| v.name == "http_status_code"));
                } else {
                    failed += 1;
                    assert!(m.reason.is_some() && m.error.is_some(), "{m:?}");
                    assert!(!m.error.as_deref().unwrap_or("").contains("127.0.0.1"));
                }
                for v in m.phases.values().chain(m.duration_seconds.iter()) {
                    assert_eq!(((v * 1e9).round() / 1e9).to_bits(), v.to_bits());
                }
            }
        }
        let share = f64::from(failed) / f64::from(n);
        assert!((0.015..0.05).contains(&share), "failure share {share}");
        let host = f.measurement(3, 0, 7, at(70));
        assert_eq!(host.check, "host");
        assert!(host.values.len() >= 10, "{host:?}");
    }

    /// Probe instants of one check are one interval apart (give or take the jitter), so
    /// every (check, ts) of a run is unique.
    #[test]
    fn probe_instants_follow_the_interval() {
        let i = SignedDuration::from_secs(10);
        let a = probe_ts(at(0), i, 5, 0);
        let b = probe_ts(at(0), i, 5, 1);
        let gap = b.duration_since(a).as_millis();
        assert!((9_998..=10_002).contains(&gap), "{gap}");
    }
}
