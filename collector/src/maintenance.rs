//! The maintenance API: list, register and cancel maintenance windows of a service (the
//! admin routes under `/api/v1/maintenance`). A registered window makes the minutes it
//! covers ineligible; `figures` reads the windows from the store when it feeds the engine.
//!
//! Invariants:
//! - A window is validated before it is stored: a configured service, `end` after `start`,
//!   a reason of 1..500 characters, a reference of at most 200; a refusal names the field.
//! - A window may start before it is registered by at most `[maintenance] max_retroactive`
//!   (refused with 422 beyond it): later, it would turn minutes already reported as bad
//!   into excluded ones. One registered after its start says so (`registered_after_start_seconds`)
//!   and reports mark it.
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
/// Longest accepted reference (a change ticket id or URL), in characters.
const MAX_REFERENCE_CHARS: usize = 200;

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
    /// A change ticket or other reference, e.g. `"CHG-4711"`.
    #[serde(default)]
    reference: Option<String>,
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
    /// The change ticket or other reference given at registration, if any.
    pub reference: Option<String>,
    /// How long after its start the window was registered; null when registered before
    /// its start. Reports mark such windows "registered after the fact".
    pub registered_after_start_seconds: Option<i64>,
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
            reference: r.reference,
            registered_after_start_seconds: after_start(r.start, r.created_at),
        }
    }
}

/// Seconds from `start` to `registered`, when the window was registered after its start.
pub fn after_start(start: Timestamp, registered: Timestamp) -> Option<i64> {
    let late = registered.as_second() - start.as_second();
    (registered > start).then_some(late)
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

    /// Registers a window from a JSON body `{service, start, end, reason, reference?}`, on
    /// behalf of the credential named `registered_by`.
    pub fn add(
        &self,
        body: &[u8],
        registered_by: &str,
        now: Timestamp,
    ) -> Result<MaintenanceView, Rejection> {
        let req = self.parse(body)?;
        self.not_too_late(&req, now)?;
        let window = StoreWindow {
            service: &req.service,
            start: req.start,
            end: req.end,
            reason: &req.reason,
            registered_by,
            reference: req.reference.as_deref(),
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
            reference: req.reference,
            registered_after_start_seconds: after_start(req.start, now),
        })
    }

    /// Refuses a window that started longer ago than `[maintenance] max_retroactive`.
    fn not_too_late(&self, req: &NewMaintenance, now: Timestamp) -> Result<(), Rejection> {
        let limit = self.cfg.maintenance.max_retroactive;
        let Some(late) = after_start(req.start, now) else {
            return Ok(());
        };
        if u64::try_from(late).unwrap_or(0) <= limit.as_secs() {
            return Ok(());
        }
        let late = attest_config::load::format_duration(std::time::Duration::from_secs(
            late.unsigned_abs(),
        ));
        let limit = attest_config::load::format_duration(limit);
        Err(Rejection::new(
            422,
            format!(
                "start is {late} before this registration, more than [maintenance] max_retroactive ({limit}) allows: a window registered this late would turn minutes already reported as bad into maintenance; register it sooner, or record the change as a report note"
            ),
        )
        .field("start"))
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
                "reason must be 1..500 characters (what is done; the ticket goes in reference)",
            )
            .field("reason"));
        }
        if let Some(reference) = &req.reference {
            let n = reference.chars().count();
            if reference.trim().is_empty()
                || n > MAX_REFERENCE_CHARS
                || reference.chars().any(char::is_control)
            {
                return Err(Rejection::new(
                    400,
                    "reference must be 1..200 printable characters, e.g. \"CHG-4711\", or left out",
                )
                .field("reference"));
            }
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
