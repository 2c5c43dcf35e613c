//! The maintenance API: list, register and cancel maintenance windows of a service (the
//! admin routes under `/api/v1/maintenance`). A registered window makes the minutes it
//! covers ineligible; `figures` reads the windows from the store when it feeds the engine.
//!
//! Invariants:
//! - A window is validated before it is stored: a configured service, `end` after `start`,
//!   a reason of 1..500 characters; a refusal names the field.
//! - After a window is added or cancelled, figures are told the data changed, so `/metrics`
//!   follows within about a second.
//! - Every window registered here is stored with its registrant: the name of the admin
//!   credential the route authenticated (never the token or a digest of it).

use std::sync::Arc;

use attest_config::CollectorConfig;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::changed::DataChanged;
use crate::reject::Rejection;
use crate::store::{MaintenanceRow, NewMaintenance as StoreWindow, Store, StoreError};

/// Longest accepted reason, in characters.
const MAX_REASON_CHARS: usize = 500;

pub struct Maintenance {
    cfg: Arc<CollectorConfig>,
    store: Arc<dyn Store>,
    changed: DataChanged,
}

/// The body of `POST /api/v1/maintenance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMaintenance {
    service: String,
    start: Timestamp,
    end: Timestamp,
    reason: String,
}

/// A maintenance window as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaintenanceView {
    pub id: i64,
    pub service: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub reason: String,
    pub created_at: Timestamp,
    pub cancelled_at: Option<Timestamp>,
    /// Who registered it (the admin credential's name); null for windows stored before
    /// registrants were recorded.
    pub registered_by: Option<String>,
}

impl From<MaintenanceRow> for MaintenanceView {
    fn from(r: MaintenanceRow) -> Self {
        MaintenanceView {
            id: r.id,
            service: r.service,
            start: r.start,
            end: r.end,
            reason: r.reason,
            created_at: r.created_at,
            cancelled_at: r.cancelled_at,
            registered_by: r.registered_by,
        }
    }
}

impl Maintenance {
    pub fn new(
        cfg: Arc<CollectorConfig>,
        store: Arc<dyn Store>,
        changed: DataChanged,
    ) -> Maintenance {
        Maintenance {
            cfg,
            store,
            changed,
        }
    }

    /// Every window (cancelled ones included), optionally of one service.
    pub fn list(&self, service: Option<&str>) -> Result<Vec<MaintenanceView>, Rejection> {
        let rows = self.store.list_maintenance(service).map_err(store_err)?;
        Ok(rows.into_iter().map(MaintenanceView::from).collect())
    }

    /// Registers a window from a JSON body `{service, start, end, reason}`, on behalf of
    /// the credential named `registered_by`.
    pub fn add(
        &self,
        body: &[u8],
        registered_by: &str,
        now: Timestamp,
    ) -> Result<MaintenanceView, Rejection> {
        let req = self.parse(body)?;
        let window = StoreWindow {
            service: &req.service,
            start: req.start,
            end: req.end,
            reason: &req.reason,
            registered_by,
        };
        let id = self
            .store
            .add_maintenance(&window, now)
            .map_err(store_err)?;
        self.changed.signal();
        Ok(MaintenanceView {
            id,
            service: req.service,
            start: req.start,
            end: req.end,
            reason: req.reason,
            created_at: now,
            cancelled_at: None,
            registered_by: Some(registered_by.to_owned()),
        })
    }

    /// Cancels window `id` as of `now`; answers the window as it is now.
    pub fn cancel(&self, id: i64, now: Timestamp) -> Result<MaintenanceView, Rejection> {
        self.store.cancel_maintenance(id, now).map_err(store_err)?;
        self.changed.signal();
        let row = self
            .store
            .list_maintenance(None)
            .map_err(store_err)?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Rejection::new(404, format!("no maintenance window {id}")))?;
        Ok(row.into())
    }

    /// Decodes and validates a new window; a refusal names the field.
    fn parse(&self, body: &[u8]) -> Result<NewMaintenance, Rejection> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        let req: NewMaintenance = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            Rejection::new(400, format!("invalid maintenance window: {}", e.inner())).field(path)
        })?;
        if !self.cfg.services.iter().any(|s| s.name == req.service) {
            return Err(Rejection::new(
                400,
                format!("no service named {:?} in the collector config", req.service),
            )
            .field("service"));
        }
        for (field, ts) in [("start", req.start), ("end", req.end)] {
            crate::ingest::validate_instant(ts)
                .map_err(|why| Rejection::new(400, why).field(field))?;
        }
        if req.end <= req.start {
            return Err(Rejection::new(400, "end must be after start").field("end"));
        }
        if req.reason.trim().is_empty() || req.reason.chars().count() > MAX_REASON_CHARS {
            return Err(Rejection::new(
                400,
                "reason must be 1..500 characters (change ticket, what is done)",
            )
            .field("reason"));
        }
        Ok(req)
    }
}

fn store_err(e: StoreError) -> Rejection {
    match e {
        StoreError::NotFound(id) => Rejection::new(404, format!("no maintenance window {id}")),
        other => Rejection::new(503, other.to_string()).retry_after(5),
    }
}
