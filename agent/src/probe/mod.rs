//! Probes: one module per kind behind one trait. A probe turns a configured check into
//! a [`ProbeReport`]; a failed target is a report with a typed reason, never an `Err`.
//! The scheduler owns the envelope (timestamp, timeout, total duration).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use attest_config::wire::{FailureReason, Phase, Value};

/// What a probe found. The scheduler wraps it into a `wire::Measurement`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeReport {
    pub ok: bool,
    pub reason: Option<FailureReason>,
    pub failed_phase: Option<Phase>,
    pub error: Option<String>,
    pub phases: BTreeMap<Phase, f64>,
    pub values: Vec<Value>,
    pub labels: BTreeMap<String, String>,
}

pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ProbeReport> + Send + 'a>>;

pub trait Probe: Send + Sync {
    /// Runs one attempt; must return by `deadline` (report a timeout in the phase it hit).
    fn probe(&self, deadline: tokio::time::Instant) -> ProbeFuture<'_>;
}
