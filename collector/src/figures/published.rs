//! The last published figures, kept across a restart so that `/metrics` is never without a
//! service's SLA series: each service's last report, SLO totals and computation time are
//! written beside the state file and served at the next start, with their true age
//! (`attest_sla_figures_age_seconds`) and counted as restored
//! (`attest_sla_figures_restored_services`), until the first refresh replaces them.
//!
//! Invariants:
//! - Only a service whose definition is unchanged (same fingerprint of its configuration)
//!   gets its figures back; a changed or removed service starts without, as before.
//! - Restored figures are never recomputed or altered: they are the figures shown before
//!   the restart, with the time they were computed.
//! - The file is the owner's only (0600) and replaced atomically; a missing, torn or
//!   unreadable file (another build's format) is ignored as a whole.

use std::path::Path;

use attest_config::Service;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Snapshot, Totals};
use crate::sla::ServiceReport;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "figures-published.json.zst";
/// The form's version: a file of another version is ignored.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    computed_at: Option<Timestamp>,
    services: Vec<Published>,
}

#[derive(Serialize, Deserialize)]
struct Published {
    /// A hash of the service's definition (without the build's version: figures of an
    /// unchanged service are shown again after an upgrade).
    definition: u64,
    report: ServiceReport,
    totals: Totals,
    computed: Timestamp,
}

fn definition(svc: &Service) -> u64 {
    super::state::fnv(&format!("{svc:?}"))
}

/// Writes the figures of `snap` of the configured `services` to `path` atomically.
pub(crate) fn save(path: &Path, snap: &Snapshot, services: &[Service]) -> std::io::Result<u64> {
    let published = snap
        .services
        .iter()
        .enumerate()
        .filter_map(|(i, report)| {
            let svc = services.iter().find(|s| s.name == report.service)?;
            Some(Published {
                definition: definition(svc),
                report: report.clone(),
                totals: *snap.totals.get(i)?,
                computed: snap.computed_of(i)?,
            })
        })
        .collect();
    let file = File {
        version: VERSION,
        computed_at: snap.computed_at,
        services: published,
    };
    let json = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    super::state::write_private(path, &json, 3)
}

/// The snapshot to serve until the first refresh: the saved figures of every configured
/// service whose definition is unchanged, in configuration order, marked restored. `None`
/// when there is nothing to restore (no file, another format, no service left).
pub(crate) fn load(path: &Path, services: &[Service]) -> Option<Snapshot> {
    let bytes = match std::fs::File::open(path) {
        Ok(f) => zstd::stream::decode_all(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => Err(e),
    };
    let file: File = match bytes
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<File>(&b).map_err(|e| e.to_string()))
    {
        Ok(f) if f.version == VERSION => f,
        Ok(f) => {
            tracing::info!(
                "not restoring the last published figures: version {} of {}",
                f.version,
                path.display()
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(
                "not restoring the last published figures from {}: {e}",
                path.display()
            );
            return None;
        }
    };
    let mut snap = Snapshot {
        computed_at: file.computed_at,
        ..Snapshot::default()
    };
    for svc in services {
        let Some(p) = file
            .services
            .iter()
            .find(|p| p.report.service == svc.name && p.definition == definition(svc))
        else {
            continue;
        };
        snap.services.push(p.report.clone());
        snap.totals.push(p.totals);
        snap.computed.push(p.computed);
        snap.restored.push(true);
    }
    if snap.services.is_empty() {
        return None;
    }
    tracing::info!(
        "serving the last published figures of {} of {} services until they are recomputed",
        snap.services.len(),
        services.len()
    );
    Some(snap)
}
