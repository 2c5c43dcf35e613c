//! attest-collector: receives batches from agents, stores them, computes SLA figures
//! and exports them to Prometheus.
//!
//! Data flows one way: `http` (routes only) → `ingest` (decode, validate, authenticate,
//! commit-then-ack) → `store` → `figures` (loads a service's rows, runs the pure `sla`
//! engine) → `metrics` (renders the engine's results, never recomputes them).

pub mod figures;
pub mod http;
pub mod import;
pub mod ingest;
pub mod metrics;
pub mod reject;
pub mod report;
pub mod server;
pub mod sla;
pub mod store;
