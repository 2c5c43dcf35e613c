//! The control loop: owns the running set of checks and changes it while the agent runs —
//! when the collector sends a new assignment, and on SIGHUP (`systemctl reload`), which
//! re-reads the agent's own file.
//!
//! Invariants:
//! - The running set is always "own checks + central checks", an own check winning over a
//!   central one with the same id (logged as an error on every change, and reported to the
//!   collector with the next assignment request).
//! - A reload applies only a valid file; an invalid one is logged error by error and the
//!   running checks stay. `[agent]`, `[spool]` and `[transport]` changes need a restart
//!   (logged); the spool is never reopened.
//! - Stopping returns only after every probe task ended, so the spool writer can drain.

use std::path::PathBuf;
use std::sync::Arc;

use attest_config::{AgentConfig, Check};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::assignment::{self, Central};
use crate::probe;
use crate::schedule::Scheduler;
use crate::telemetry::Telemetry;

pub struct Control {
    pub scheduler: Scheduler,
    /// `[agent] allow_targets`/`deny_targets`: confine assigned checks like own ones.
    pub targets: probe::Targets,
    pub telemetry: Arc<Telemetry>,
    /// The agent's file, re-read on SIGHUP.
    pub config_path: PathBuf,
    /// The configuration the process runs with; its `checks` are empty: they live in `own`.
    pub config: AgentConfig,
    /// The agent's own checks (replaced on reload), shared with the scheduler.
    pub own: Vec<Arc<Check>>,
    pub local_ids: watch::Sender<Vec<String>>,
    pub central: watch::Receiver<Option<Arc<Central>>>,
}

impl Control {
    /// Applies the current own + central checks to the scheduler.
    pub fn apply(&mut self) {
        let central = self.central.borrow_and_update().clone();
        let (wanted, conflicts) = assignment::merge(&self.own, central.as_deref());
        for id in &conflicts {
            tracing::error!(
                check = %id,
                "check id defined both in this agent's file and in the collector's assignment; running the agent's own: rename or remove one"
            );
        }
        let targets = self.targets.clone();
        let applied = self.scheduler.apply(&wanted, |c| {
            probe::build_with(c, &targets).map_err(|e| e.to_string())
        });
        drop(wanted);
        for (id, why) in &applied.failed {
            tracing::error!(check = %id, "cannot run this check: {why}");
        }
        self.telemetry.set_checks(self.scheduler.checks());
        // The old definitions and the build's transients are freed now: give the pages back.
        crate::memory::release_free_heap();
        if !(applied.started.is_empty()
            && applied.stopped.is_empty()
            && applied.restarted.is_empty())
        {
            tracing::info!(
                started = %applied.started.join(","),
                restarted = %applied.restarted.join(","),
                stopped = %applied.stopped.join(","),
                running = self.scheduler.running().len(),
                "checks changed"
            );
        }
    }

    /// Re-reads the agent's file; keeps everything on any error.
    fn reload(&mut self) {
        let cfg = match attest_config::load_agent(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                for line in e.messages() {
                    tracing::error!("reload refused, keeping the running checks: {line}");
                }
                return;
            }
        };
        // `self.config.checks` is empty (see `own`); only the sections are compared.
        let restart: Vec<&str> = [
            ("[agent]", cfg.agent != self.config.agent),
            ("[spool]", cfg.spool != self.config.spool),
            ("[transport]", cfg.transport != self.config.transport),
        ]
        .into_iter()
        .filter_map(|(s, changed)| changed.then_some(s))
        .collect();
        if !restart.is_empty() {
            tracing::warn!(sections = %restart.join(", "), "these sections changed but take effect only after a restart");
        }
        tracing::info!(checks = cfg.checks.len(), "configuration reloaded");
        self.local_ids.send_replace(ids(&cfg.checks));
        self.own = assignment::share_all(cfg.checks);
    }

    /// Runs until `cancel`, then stops every check and waits for them.
    pub async fn run(
        mut self,
        mut hup: Option<tokio::signal::unix::Signal>,
        cancel: CancellationToken,
    ) {
        self.apply();
        let mut poller_alive = true;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                changed = self.central.changed(), if poller_alive => {
                    if changed.is_err() {
                        // The poller ended (shutdown); keep running what we have.
                        poller_alive = false;
                        continue;
                    }
                }
                Some(()) = recv(&mut hup) => {
                    tracing::info!(path = %self.config_path.display(), "SIGHUP: reloading the configuration");
                    crate::notify::reloading();
                    self.reload();
                    self.apply();
                    crate::notify::ready();
                    continue;
                }
            }
            self.apply();
        }
        self.scheduler.stop().await;
    }
}

async fn recv(hup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hup {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Check ids, for the collector's conflict report.
pub fn ids(checks: &[Check]) -> Vec<String> {
    checks.iter().map(|c| c.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::schedule::{ScheduleStats, Sink};
    use crate::spool::{SharedSpool, Spool};
    use crate::transport::TransportStats;
    use crate::transport::collectors::Collectors;
    use std::time::Duration;

    /// An agent file with `checks` (TCP checks to a closed loopback port: nothing here
    /// needs them to succeed).
    fn write_config(path: &std::path::Path, checks: &[(&str, &str)]) {
        let mut text = String::from(
            "[agent]\nid = \"a\"\ncollector_url = \"http://127.0.0.1:9\"\ntoken = \"t\"\n\n[spool]\ndir = \"spool\"\n",
        );
        for (id, interval) in checks {
            text.push_str(&format!(
                "\n[[check]]\nid = \"{id}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"{interval}\"\ntimeout = \"50ms\"\n"
            ));
        }
        std::fs::write(path, text).expect("write config");
    }

    /// A control loop on the file at `path`, and the receiving end of its measurements.
    fn control(
        dir: &std::path::Path,
        path: PathBuf,
    ) -> (
        Control,
        tokio::sync::mpsc::Receiver<attest_config::wire::Measurement>,
    ) {
        let mut config = attest_config::load_agent(&path).expect("valid");
        let own = assignment::share_all(std::mem::take(&mut config.checks));
        let spool = Spool::open(
            &dir.join("spool"),
            1 << 20,
            attest_config::WhenFull::DropOldest,
        )
        .expect("spool");
        let stats = Arc::new(ScheduleStats::default());
        let telemetry = Arc::new(Telemetry::new(
            stats.clone(),
            Arc::new(TransportStats::default()),
            Arc::new(
                Collectors::new(&config.agent.collector_urls, Duration::from_secs(60))
                    .expect("collectors"),
            ),
            SharedSpool::new(spool),
        ));
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let sink = Sink {
            tx,
            stats,
            observe: Arc::new(|_| {}),
        };
        let control = Control {
            scheduler: Scheduler::new(
                "a",
                Arc::new(SystemClock),
                4,
                sink,
                CancellationToken::new(),
            ),
            targets: probe::Targets::any(),
            telemetry,
            config_path: path,
            local_ids: watch::channel(ids_of(&own)).0,
            config,
            own,
            central: watch::channel(None).1,
        };
        (control, rx)
    }

    fn ids_of(checks: &[Arc<Check>]) -> Vec<String> {
        checks.iter().map(|c| c.id.clone()).collect()
    }

    fn running_def(c: &Control, id: &str) -> Arc<Check> {
        c.scheduler
            .checks()
            .into_iter()
            .find(|d| d.id == id)
            .expect("running")
    }

    #[tokio::test]
    async fn reload_starts_stops_and_restarts_own_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.toml");
        write_config(&path, &[("a", "1s"), ("b", "1s")]);
        // Measurements are not looked at here; `_rx` only keeps the channel open.
        let (mut c, _rx) = control(dir.path(), path.clone());
        c.apply();
        assert_eq!(c.scheduler.running(), ["a", "b"]);

        // Re-read unchanged: nothing restarts, and the running definition is the control
        // loop's new copy (one copy, not two).
        c.reload();
        c.apply();
        assert!(Arc::ptr_eq(&running_def(&c, "a"), &c.own[0]));

        write_config(&path, &[("a", "2s"), ("c", "1s")]);
        c.reload();
        c.apply();
        assert_eq!(c.scheduler.running(), ["a", "c"]);
        assert_eq!(running_def(&c, "a").interval, Duration::from_secs(2));
        assert_eq!(*c.local_ids.borrow(), ["a", "c"]);

        std::fs::write(&path, "[agent]\nid = ").expect("write");
        c.reload();
        c.apply();
        assert_eq!(
            c.scheduler.running(),
            ["a", "c"],
            "an invalid file changes nothing"
        );
        c.scheduler.stop().await;
    }
}
