//! Configuration reload on SIGHUP (`systemctl reload`): re-read the file, and apply it only
//! when it is valid as a whole.
//!
//! Invariants:
//! - An invalid file changes nothing: every error is logged and the running configuration
//!   stays, so a typo never takes the collector (or its agents' assignments) down.
//! - What follows a reload: the agents allowed in (tokens, labels), the services and
//!   `[capacity]` (figures recomputed at once, reports and "known" checks follow) and the
//!   fleet (central checks, assignments). Listener, storage and ingest limits keep the values
//!   the process started with; a change there is logged as needing a restart.
//! - No data path is interrupted: ingest keeps committing while the swap happens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use attest_config::CollectorConfig;
use tokio_util::sync::CancellationToken;

use crate::app::App;

/// Loads `path` and applies it to `app`; `Err` holds every error (already logged).
pub fn reload(path: &Path, app: &App, running: &CollectorConfig) -> Result<(), String> {
    let cfg = match attest_config::load_collector(path) {
        Ok(c) => c,
        Err(e) => {
            for line in e.messages() {
                tracing::error!("reload refused, keeping the running configuration: {line}");
            }
            return Err(e.to_string());
        }
    };
    let restart: Vec<&str> = [
        ("[server]", cfg.server != running.server),
        ("[storage]", cfg.storage != running.storage),
        ("[ingest]", ingest_limits_changed(&cfg, running)),
        ("[report]", cfg.report != running.report),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect();
    if !restart.is_empty() {
        tracing::warn!(
            sections = %restart.join(", "),
            "these sections changed but take effect only after a restart"
        );
    }
    let (agents, checks, rules) = (cfg.agents.len(), cfg.checks.len(), cfg.assignments.len());
    let services = cfg.services.len();
    let changed = app.reload(cfg);
    tracing::info!(
        agents,
        services,
        central_checks = checks,
        assignments = rules,
        changed_assignments = %changed.join(","),
        "configuration reloaded"
    );
    Ok(())
}

/// Whether `[ingest]` changed other than in its "known" check list (which follows the
/// services and is applied by a reload).
fn ingest_limits_changed(cfg: &CollectorConfig, running: &CollectorConfig) -> bool {
    let mut a = cfg.ingest.clone();
    let mut b = running.ingest.clone();
    a.checks = attest_config::AcceptChecks::Any;
    b.checks = attest_config::AcceptChecks::Any;
    a != b
}

/// Reloads on every SIGHUP until `cancel` fires.
pub async fn on_sighup(path: PathBuf, app: Arc<App>, cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; configuration reload is unavailable");
        return;
    };
    let running = app.cfg.clone();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        tracing::info!(path = %path.display(), "SIGHUP: reloading the configuration");
        crate::notify::reloading();
        let _ = reload(&path, &app, &running);
        crate::notify::ready();
    }
}
