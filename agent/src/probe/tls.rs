//! TLS certificate probe: handshake with the target and judge the presented chain —
//! validity (unless `verify` is off) and the days left before its earliest expiry.
//!
//! Invariants: the chain's expiry is reported even when verification fails, so an
//! expired certificate shows as `cert_expiry` with a negative `tls_cert_days_left`
//! rather than a bare handshake error.
//!
//! Values: `tls_cert_days_left` (days, fractional, negative once expired),
//! `tls_earliest_cert_expiry_seconds` (unix seconds); label `tls_version`.

use std::sync::Arc;

use attest_config::TlsCheck;
use attest_config::wire::{FailureReason, Phase};
use jiff::Timestamp;
use tokio::time::Instant;

use super::net::{self, Failure, Outcome};
use super::tls_client::{TlsFacts, TlsSetup};
use super::{BuildError, Probe, ProbeFuture};
use crate::clock::{Clock, SystemClock};

const SECONDS_PER_DAY: f64 = 86_400.0;

pub struct TlsProbe {
    host: String,
    port: u16,
    spec: TlsCheck,
    tls: Arc<TlsSetup>,
    targets: net::Targets,
    /// Reads "now" for the days left before expiry.
    clock: Arc<dyn Clock>,
}

impl TlsProbe {
    /// Confines the probe to `targets` (see [`net::Targets`]).
    pub fn confined(mut self, targets: net::Targets) -> Self {
        self.targets = targets;
        self
    }

    pub fn new(id: &str, spec: &TlsCheck) -> Result<Self, BuildError> {
        let (host, port) = net::split_host_port(&spec.address).ok_or_else(|| {
            BuildError::invalid(id, format!("address {:?} is not host:port", spec.address))
        })?;
        Ok(TlsProbe {
            targets: net::Targets::any(),
            host,
            port,
            spec: spec.clone(),
            tls: TlsSetup::shared(&spec.tls, &[])?,
            clock: Arc::new(SystemClock),
        })
    }

    async fn run(&self, deadline: Instant, out: &mut Outcome) -> Result<(), Failure> {
        let family = attest_config::IpFamily::Any;
        let addr = out
            .timed(
                Phase::Resolve,
                deadline,
                net::resolve(&self.host, self.port, family, &self.targets),
            )
            .await?;
        out.labels.insert("address".to_string(), addr.to_string());
        let tcp = out
            .timed(Phase::Connect, deadline, net::connect(addr))
            .await?;
        let mut facts = TlsFacts::default();
        let handshake = async {
            let (result, f) = self.tls.handshake(tcp, &self.host).await;
            facts = f;
            result
        };
        let result = out.timed(Phase::Tls, deadline, handshake).await;
        facts.record(out);
        let now = self.clock.now_utc();
        let days_left = facts.earliest_expiry.map(|e| days_until(e, now));
        if let Some(days) = days_left {
            out.value("tls_cert_days_left", days);
        }
        self.judge(result.map(drop), days_left)
    }

    /// Expiry outranks a handshake failure: an expired chain also fails verification,
    /// and "expired" is the actionable diagnosis.
    fn judge(&self, handshake: Result<(), Failure>, days_left: Option<f64>) -> Result<(), Failure> {
        let min = f64::from(self.spec.min_days_left);
        match (handshake, days_left) {
            (Err(f), _) if f.reason == FailureReason::Timeout => Err(f),
            (_, Some(days)) if days < min => Err(Failure::new(
                FailureReason::CertExpiry,
                Phase::Tls,
                format!("certificate chain expires in {days:.1} days (minimum {min})"),
            )),
            (Err(f), _) => Err(f),
            (Ok(()), None) => Err(Failure::new(
                FailureReason::Tls,
                Phase::Tls,
                "no parsable certificate in the presented chain",
            )),
            (Ok(()), Some(_)) => Ok(()),
        }
    }
}

/// Days from `now` until `expiry` (unix seconds); negative when already past.
fn days_until(expiry: i64, now: Timestamp) -> f64 {
    (expiry as f64 - now.as_duration().as_secs_f64()) / SECONDS_PER_DAY
}

impl Probe for TlsProbe {
    fn probe(&self, deadline: Instant) -> ProbeFuture<'_> {
        Box::pin(async move {
            let mut out = Outcome::default();
            let result = self.run(deadline, &mut out).await;
            out.into_report(result)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_until_counts_from_the_given_now() {
        let now = Timestamp::from_second(1_790_000_000).unwrap();
        assert_eq!(days_until(1_790_000_000 + 86_400 * 3, now), 3.0);
        assert_eq!(days_until(1_790_000_000 - 43_200, now), -0.5);
    }
}
