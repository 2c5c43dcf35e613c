//! attest-collector: receives batches from agents, stores them, computes SLA figures
//! and exports them to Prometheus.
//!
//! Data flows one way: `http` (routes only) → `ingest` (decode, validate, authenticate,
//! commit-then-ack) → `store` → `sla` (pure) → `metrics` (render only).

pub mod http;
pub mod ingest;
pub mod metrics;
pub mod sla;
pub mod store;
