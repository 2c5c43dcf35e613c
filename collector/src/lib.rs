//! attest-collector: receives batches from agents, stores them, computes SLA figures
//! and exports them to Prometheus.
//!
//! Data flows one way: `http` (routes only) → `ingest` (decode, validate, authenticate,
//! commit-then-ack; `ingest::import` for files) → `store` → `figures` (loads a service's
//! rows, runs the pure `sla` engine) → `metrics` (renders the engine's results, never
//! recomputes them), `report` (the public report model and its formats) and `status` (the
//! live status page, from memory). `app` wires them; `changed` carries "data changed" from
//! the writers to figures; `clock` is the one source of "now".

pub mod app;
pub mod audit;
pub mod changed;
pub mod clock;
pub mod definitions;
pub mod evidence;
pub mod export;
pub mod figures;
pub mod fleet;
pub mod http;
pub mod ingest;
pub mod maintenance;
pub mod metrics;
pub mod minutes;
pub mod notes;
pub mod notify;
pub mod reject;
pub mod reload;
pub mod report;
pub mod seal;
pub mod server;
pub mod sla;
pub mod status;
pub mod store;
