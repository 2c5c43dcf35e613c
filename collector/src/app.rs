//! The wiring of one collector: `build` makes every part (ingest, figures, maintenance,
//! metrics, routes) from a configuration and a store, and connects them. `main.rs` and the
//! HTTP test harnesses both call it, so tests exercise the real wiring.
//!
//! Invariants:
//! - One `DataChanged` signal connects the writers (ingest, maintenance) to the one
//!   listener (figures' refresh loop); data flows one way and no writer imports figures.
//! - One clock (`clock::SystemClock` unless a test pins time) gives every "now".
//! - Building records the configuration in the store (`store::note_config`: services'
//!   first-configured instants, latency thresholds to count exactly) before any ingest.
//! - Background work (the figures refresh, the status page's day history) runs only once
//!   `spawn_background` is called;
//!   the retention loop belongs to the store and is started by `main.rs`.

use std::sync::Arc;

use attest_config::CollectorConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::changed::DataChanged;
use crate::clock::{self, SharedClock};
use crate::definitions::DefinitionLog;
use crate::figures::Figures;
use crate::fleet::Fleet;
use crate::http::auth::Access;
use crate::http::{self, AppState, HttpGuard};
use crate::ingest::Ingest;
use crate::maintenance::Maintenance;
use crate::metrics::Exporter;
use crate::report::monthly::archive::ArchiveDifferences;
use crate::report::monthly::service::Reports;
use crate::server::ListenerStats;
use crate::status::StatusBoard;
use crate::status::history::History;
use crate::store::Store;

/// A wired collector, not yet serving.
pub struct App {
    pub cfg: Arc<CollectorConfig>,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub changed: DataChanged,
    pub ingest: Arc<Ingest>,
    pub figures: Arc<Figures>,
    pub maintenance: Arc<Maintenance>,
    pub exporter: Arc<Exporter>,
    pub reports: Arc<Reports>,
    pub fleet: Arc<Fleet>,
    /// Read credentials and response headers of the routes.
    pub access: Arc<Access>,
    /// Connection counts of the listener `server::serve` runs, exported by `exporter`.
    pub listener: Arc<ListenerStats>,
    /// The live status page and its day history.
    pub status: Arc<StatusBoard>,
    /// Report notes; follows a reload (a service added by it takes notes at once).
    pub notes: Arc<crate::notes::Notes>,
    /// The service definitions waiting to be recorded in the definition history.
    pub definitions: Arc<DefinitionLog>,
    router: axum::Router,
}

/// Wires a collector on the system clock.
pub fn build(cfg: CollectorConfig, store: Arc<dyn Store>) -> App {
    build_with_clock(cfg, store, clock::system())
}

/// Wires a collector whose every "now" comes from `clock`.
pub fn build_with_clock(cfg: CollectorConfig, store: Arc<dyn Store>, clock: SharedClock) -> App {
    // The store remembers when it first saw each service configured and counts the
    // configured latency thresholds exactly from now on; figures still work without
    // (histogram resolution, eligibility from the first measurement), so only warn.
    if let Err(e) = crate::store::note_config(store.as_ref(), &cfg, clock.now_utc()) {
        tracing::warn!("cannot record the configured services and thresholds: {e}");
    }
    let cfg = Arc::new(cfg);
    let changed = DataChanged::new();
    let ingest = Arc::new(Ingest::new(
        store.clone(),
        &cfg.agents,
        cfg.ingest.clone(),
        changed.clone(),
    ));
    let figures = Arc::new(
        Figures::new(cfg.clone(), store.clone())
            .with_state_file(cfg.storage.data_dir.join(crate::figures::state::FILE_NAME)),
    );
    let maintenance = Arc::new(Maintenance::new(
        cfg.clone(),
        store.clone(),
        changed.clone(),
    ));
    let differences = Arc::new(ArchiveDifferences::default());
    let reports = Arc::new(Reports::new(
        cfg.clone(),
        figures.clone(),
        differences.clone(),
    ));
    let listener = Arc::new(ListenerStats::default());
    let exporter = Arc::new(
        Exporter::new(
            cfg.clone(),
            figures.clone(),
            ingest.stats.clone(),
            ingest.latest.clone(),
            clock.clone(),
        )
        .with_listener(listener.clone())
        .with_archive(differences),
    );
    let fleet = Arc::new(Fleet::new(cfg.clone()));
    let access = Arc::new(Access::new(&cfg.readers, &cfg.admins));
    let status = Arc::new(StatusBoard::new(
        figures.clone(),
        Arc::new(History::default()),
        clock.clone(),
    ));
    let notes = Arc::new(crate::notes::Notes::new(cfg.clone(), store.clone()));
    let definitions = Arc::new(DefinitionLog::new(cfg.clone(), clock.now_utc()));
    let state = AppState {
        ingest: ingest.clone(),
        store: store.clone(),
        figures: figures.clone(),
        maintenance: maintenance.clone(),
        notes: notes.clone(),
        exporter: exporter.clone(),
        fleet: fleet.clone(),
        clock: clock.clone(),
        reports: reports.clone(),
        access: access.clone(),
        guard: Arc::new(HttpGuard::new(
            cfg.ingest.max_body_bytes,
            cfg.server.body_read_timeout,
            cfg.ingest.max_inflight_body_bytes,
        )),
        status: status.clone(),
    };
    let router = http::router(state);
    App {
        cfg,
        store,
        clock,
        changed,
        ingest,
        figures,
        maintenance,
        exporter,
        reports,
        fleet,
        access,
        listener,
        status,
        notes,
        definitions,
        router,
    }
}

impl App {
    /// Applies a reloaded configuration to the parts that follow it without a restart: the
    /// agents allowed in (tokens), the read-only and admin tokens (`[[reader]]`, `[[admin]]`), the checks ingest
    /// accepts, the services and `[capacity]` (figures from the next refresh on, which is
    /// started at once; reports follow) and the fleet (labels, central checks, assignments).
    /// Listener, storage and ingest limits keep the configuration the process started with.
    pub fn reload(&self, cfg: CollectorConfig) -> Vec<String> {
        let cfg = Arc::new(cfg);
        self.ingest.set_agents(&cfg.agents);
        self.ingest.set_accepted_checks(cfg.ingest.checks.clone());
        self.access.set_readers(&cfg.readers);
        self.access.set_admins(&cfg.admins);
        self.figures.replace_config(cfg.clone());
        self.notes.replace_config(cfg.clone());
        self.definitions.reloaded(cfg.clone(), self.clock.now_utc());
        self.changed.signal();
        self.fleet.replace(cfg)
    }

    /// Basic-auth users and response headers of a web configuration (`--web.config.file`,
    /// read at start); its TLS part goes to `server::serve`.
    pub fn set_web(&self, web: &attest_web::WebSecurity) {
        self.access.set_web(web);
    }

    /// The listener's counts, for `server::serve`.
    pub fn listener_stats(&self) -> Arc<ListenerStats> {
        self.listener.clone()
    }

    /// The routes, ready for `server::serve`.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Starts the figures refresh loop (the first refresh at once), the status page's day
    /// history, the definition history's recorder and, with `[report] archive_dir`, the
    /// month-close loop; all end on `cancel`.
    pub fn spawn_background(&self, cancel: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(
            self.definitions
                .clone()
                .run(self.store.clone(), cancel.clone()),
        );
        tokio::spawn(self.status.history().refresh_loop(
            self.figures.clone(),
            self.store.clone(),
            self.clock.clone(),
            cancel.clone(),
        ));
        if self.reports.archive.is_some() {
            tokio::spawn(close_months_loop(
                self.reports.clone(),
                self.clock.clone(),
                cancel.clone(),
            ));
        }
        tokio::spawn(self.figures.clone().refresh_loop(
            self.changed.clone(),
            self.clock.clone(),
            cancel,
        ))
    }
}

/// How often closed months are archived and archived months rechecked for late data.
const CLOSE_MONTHS_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Archives due months and records late differences, at once and then every
/// [`CLOSE_MONTHS_EVERY`], until `cancel`.
async fn close_months_loop(reports: Arc<Reports>, clock: SharedClock, cancel: CancellationToken) {
    loop {
        let (r, now) = (reports.clone(), clock.now_utc());
        match tokio::task::spawn_blocking(move || r.close_months(now)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e.reason, "month close failed; retrying later"),
            Err(e) => tracing::error!(error = %e, "month close task failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(CLOSE_MONTHS_EVERY) => {}
        }
    }
}
