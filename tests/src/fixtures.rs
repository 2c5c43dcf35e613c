//! Building blocks shared by the fault tests: configuration files, a restartable collector,
//! real agents, a loopback HTTP target, and reading back what the collector stored.
//!
//! Invariants:
//! - Everything listens on 127.0.0.1 only; every wait is bounded (see [`crate::wait_for`]).
//! - Store reads go through the collector's own read path (`SqliteStore`, or `PgStore` for
//!   a collector on PostgreSQL), never raw SQL.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attest_collector::minutes::GapSpan;
use attest_collector::store::postgres::PgStore;
use attest_collector::store::{InspectStore, Store, StoreError, sqlite::SqliteStore};
use http_body_util::Full;
use hyper::body::Bytes;
use jiff::{SignedDuration, Timestamp};

use crate::load::Key;
use crate::spool_oracle::SegmentKeeper;
use crate::{Proc, free_port, get, sample, wait_for};

/// An agent the collector accepts: id and token.
#[derive(Debug, Clone)]
pub struct AgentCred {
    pub id: String,
    pub token: String,
}

impl AgentCred {
    pub fn new(id: &str) -> AgentCred {
        AgentCred {
            id: id.to_string(),
            token: format!("token-of-{id}-0123456789"),
        }
    }
}

/// A service over some checks, as written into the collector config.
#[derive(Debug, Clone)]
pub struct ServiceDef {
    pub name: String,
    pub checks: Vec<String>,
}

/// Writes `collector.toml` in `dir` with its data in `data_dir` (absolute or relative to `dir`).
pub fn write_collector_config(
    dir: &Path,
    port: u16,
    data_dir: &Path,
    agents: &[AgentCred],
    services: &[ServiceDef],
) -> PathBuf {
    write_collector_config_on(dir, port, data_dir, None, agents, services)
}

/// Like [`write_collector_config`]; with `postgres_url` the store is that PostgreSQL
/// database (`data_dir` then holds only the collector's local files).
pub fn write_collector_config_on(
    dir: &Path,
    port: u16,
    data_dir: &Path,
    postgres_url: Option<&str>,
    agents: &[AgentCred],
    services: &[ServiceDef],
) -> PathBuf {
    let backend = match postgres_url {
        Some(url) => format!("backend = \"postgres\"\npostgres_url = {url:?}"),
        None => "backend = \"sqlite\"".to_string(),
    };
    let mut s = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[storage]\n{backend}\ndata_dir = {:?}\n\n\
         [ingest]\nmax_batches_per_second = 200\n\n",
        data_dir.display().to_string()
    );
    for a in agents {
        s.push_str(&format!(
            "[[agent]]\nid = {:?}\ntoken = {:?}\n\n",
            a.id, a.token
        ));
    }
    for svc in services {
        s.push_str(&format!(
            "[[service]]\nname = {:?}\nchecks = {:?}\ntarget = \"99.9%\"\ntime_zone = \"UTC\"\nquorum = \"any\"\n\n",
            svc.name, svc.checks
        ));
    }
    let path = dir.join("collector.toml");
    std::fs::write(&path, s).expect("write collector config");
    path
}

/// A real agent's settings; `checks_toml` holds its `[[check]]` tables (may be empty).
#[derive(Debug, Clone)]
pub struct AgentSetup {
    pub cred: AgentCred,
    pub collector_port: u16,
    pub listen_port: u16,
    pub spool_dir: PathBuf,
    pub max_bytes: String,
    pub checks_toml: String,
}

/// `[[check]]` tables for `n` HTTP and TCP checks against `target_port`, named
/// `<prefix>-http-<i>` / `<prefix>-tcp-<i>`.
pub fn loopback_checks(prefix: &str, target_port: u16, n: usize, interval: &str) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "[[check]]\nid = \"{prefix}-http-{i}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{target_port}/\"\n\
             interval = \"{interval}\"\ntimeout = \"150ms\"\n\n\
             [[check]]\nid = \"{prefix}-tcp-{i}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{target_port}\"\n\
             interval = \"{interval}\"\ntimeout = \"150ms\"\n\n"
        ));
    }
    s
}

/// Check ids produced by [`loopback_checks`].
pub fn loopback_check_ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .flat_map(|i| [format!("{prefix}-http-{i}"), format!("{prefix}-tcp-{i}")])
        .collect()
}

impl AgentSetup {
    /// Writes the agent config as `<dir>/<file>`; `drain` leaves the checks out so the agent
    /// only delivers what its spool holds.
    pub fn write(&self, dir: &Path, file: &str, drain: bool) -> PathBuf {
        let s = format!(
            "[agent]\nid = {:?}\ncollector_url = \"http://127.0.0.1:{}\"\ntoken = {:?}\nlisten = \"127.0.0.1:{}\"\n\n\
             [spool]\ndir = {:?}\nmax_bytes = {:?}\nwhen_full = \"drop_oldest\"\n\n\
             [transport]\nbatch_max_age = \"200ms\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"500ms\"\nrequest_timeout = \"3s\"\n\n{}",
            self.cred.id,
            self.collector_port,
            self.cred.token,
            self.listen_port,
            self.spool_dir.display().to_string(),
            self.max_bytes,
            if drain { "" } else { &self.checks_toml },
        );
        let path = dir.join(file);
        std::fs::write(&path, s).expect("write agent config");
        path
    }

    /// Starts the agent with its checks.
    pub fn spawn(&self, dir: &Path) -> Proc {
        let cfg = self.write(dir, &format!("{}.toml", self.cred.id), false);
        let name = format!("agent-{}", self.cred.id);
        Proc::spawn(
            &name,
            "attest-agent",
            &["run", "--config", &path_str(&cfg)],
            dir,
        )
    }

    /// Stops `agent` cleanly, starts the same agent without checks, waits until its spool is
    /// empty (everything acked), and stops it. After this the spool holds nothing.
    pub async fn drain(&self, agent: &mut Proc, dir: &Path, bound: Duration) {
        let exit = agent.signal_and_wait("TERM", Duration::from_secs(20));
        assert!(exit.success(), "agent exit {exit:?}:\n{}", agent.log_text());
        let cfg = self.write(dir, &format!("{}-drain.toml", self.cred.id), true);
        let name = format!("agent-{}-drain", self.cred.id);
        let mut drainer = Proc::spawn(
            &name,
            "attest-agent",
            &["run", "--config", &path_str(&cfg)],
            dir,
        );
        let port = self.listen_port;
        wait_for(
            "the draining agent's spool to empty",
            bound,
            || async move {
                let m = metrics(port).await?;
                (sample(&m, "attest_agent_spool_depth_measurements", &[]) == Some(0.0))
                    .then_some(())
            },
        )
        .await;
        let exit = drainer.signal_and_wait("TERM", Duration::from_secs(20));
        assert!(
            exit.success(),
            "drain agent exit {exit:?}:\n{}",
            drainer.log_text()
        );
    }
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// `/metrics` of a process listening on loopback `port`.
pub async fn metrics(port: u16) -> Option<String> {
    get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
}

/// A collector that can be killed and restarted with the same config and data.
pub struct Collector {
    pub port: u16,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    log_dir: PathBuf,
    proc: Option<Proc>,
    pub starts: u32,
    /// The PostgreSQL database the collector stores in; `None`: SQLite in `data_dir`.
    postgres_url: Option<String>,
    /// The test's own connection to that database, made on first use.
    pg: Mutex<Option<Arc<PgStore>>>,
}

impl Collector {
    /// Writes the config (data in `<dir>/data` unless `data_dir` is given) without starting.
    pub fn new(
        dir: &Path,
        data_dir: Option<&Path>,
        agents: &[AgentCred],
        services: &[ServiceDef],
    ) -> Collector {
        let port = free_port();
        let data_dir = data_dir.map_or_else(|| dir.join("data"), Path::to_path_buf);
        let config = write_collector_config(dir, port, &data_dir, agents, services);
        Collector::with_config(dir, port, config, data_dir)
    }

    /// A collector whose store is the PostgreSQL database at `postgres_url` (several may
    /// share it); config, log and local files in `dir`.
    pub fn on_postgres(
        dir: &Path,
        postgres_url: &str,
        agents: &[AgentCred],
        services: &[ServiceDef],
    ) -> Collector {
        let port = free_port();
        let data_dir = dir.join("data");
        let config =
            write_collector_config_on(dir, port, &data_dir, Some(postgres_url), agents, services);
        let mut c = Collector::with_config(dir, port, config, data_dir);
        c.postgres_url = Some(postgres_url.to_string());
        c
    }

    /// [`Collector::on_postgres`] with `Some(url)`, else SQLite in `<dir>/data`: for tests
    /// that run the same scenario on either backend.
    pub fn on_backend(
        dir: &Path,
        postgres_url: Option<&str>,
        agents: &[AgentCred],
        services: &[ServiceDef],
    ) -> Collector {
        match postgres_url {
            Some(url) => Collector::on_postgres(dir, url, agents, services),
            None => Collector::new(dir, None, agents, services),
        }
    }

    fn with_config(dir: &Path, port: u16, config: PathBuf, data_dir: PathBuf) -> Collector {
        Collector {
            port,
            config,
            data_dir,
            log_dir: dir.to_path_buf(),
            proc: None,
            starts: 0,
            postgres_url: None,
            pg: Mutex::new(None),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the collector and waits until `/-/ready` answers 200.
    pub async fn start(&mut self) {
        assert!(self.proc.is_none(), "collector already running");
        let cfg = path_str(&self.config);
        self.proc = Some(Proc::spawn(
            "collector",
            "attest-collector",
            &["run", "--config", &cfg],
            &self.log_dir,
        ));
        self.starts += 1;
        let port = self.port;
        let ready = wait_for("collector ready", Duration::from_secs(30), || async move {
            get(&format!("http://127.0.0.1:{port}/-/ready"))
                .await
                .filter(|(s, _)| *s == 200)
        });
        ready.await;
    }

    /// SIGTERM and wait for the exit (bounded): a graceful stop, shutdown code runs.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let status = p.signal_and_wait("TERM", Duration::from_secs(30));
            assert!(status.success(), "the collector stopped with {status}");
        }
    }

    /// SIGKILL: no shutdown code runs, whatever was in flight is cut off.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal_and_wait("KILL", Duration::from_secs(10));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_dir.join("collector.log")).unwrap_or_default()
    }

    /// Sends a signal (e.g. `HUP` to reload) to the running collector without waiting.
    pub fn signal(&self, sig: &str) {
        let p = self.proc.as_ref().expect("collector running");
        let status = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &p.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// `/metrics` of the running collector.
    pub async fn metrics(&self) -> Option<String> {
        metrics(self.port).await
    }

    /// Opens the store's read side (works while the collector runs: SQLite WAL).
    pub fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.data_dir).expect("open the collector's store")
    }

    /// Where the test reads what this collector stored, whatever its backend. On PostgreSQL
    /// one connection pool is made on first use and shared by later calls (blocking: call
    /// it before the load starts or from a blocking thread).
    pub fn reader(&self) -> StoreReader {
        let Some(url) = &self.postgres_url else {
            return StoreReader::Sqlite(self.data_dir.clone());
        };
        let mut pg = self
            .pg
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let store = pg.get_or_insert_with(|| {
            Arc::new(PgStore::connect(url).expect("connect to the collector's database"))
        });
        StoreReader::Postgres(store.clone())
    }
}

/// The read side of a collector's store for a test: SQLite opened anew per read (the
/// collector may be restarting), or the test's own PostgreSQL connection pool.
#[derive(Clone)]
pub enum StoreReader {
    Sqlite(PathBuf),
    Postgres(Arc<PgStore>),
}

impl StoreReader {
    /// The store's read path (blocking: call from a blocking thread in async tests).
    pub fn open(&self) -> Result<Arc<dyn InspectStore>, StoreError> {
        match self {
            StoreReader::Sqlite(dir) => Ok(Arc::new(SqliteStore::open(dir)?)),
            StoreReader::Postgres(pg) => Ok(pg.clone()),
        }
    }

    /// Measurements committed so far (0 while the store cannot be read). Blocking.
    pub fn committed(&self) -> u64 {
        self.open()
            .and_then(|s| s.counts())
            .map_or(0, |c| c.measurements)
    }

    /// [`StoreReader::committed`] on a blocking thread.
    pub async fn committed_async(&self) -> u64 {
        let r = self.clone();
        tokio::task::spawn_blocking(move || r.committed())
            .await
            .expect("count task")
    }

    /// Waits until at least `more` measurements beyond `since` are committed; returns the
    /// count.
    pub async fn wait_committed(&self, since: u64, more: u64, bound: Duration) -> u64 {
        wait_for(
            &format!("{more} more measurements committed (from {since})"),
            bound,
            || async move {
                let n = self.committed_async().await;
                (n >= since + more).then_some(n)
            },
        )
        .await
    }
}

/// A wide window around now: every test measurement lies inside.
pub fn window() -> (Timestamp, Timestamp) {
    let now = crate::wall_now();
    (
        now.checked_sub(SignedDuration::from_hours(3))
            .expect("now - 3h"),
        now.checked_add(SignedDuration::from_hours(1))
            .expect("now + 1h"),
    )
}

/// Every stored measurement key of `checks`, one entry per stored row.
pub fn stored_keys(store: &dyn InspectStore, checks: &[String]) -> Vec<Key> {
    let (from, to) = window();
    checks
        .iter()
        .flat_map(|c| {
            store
                .raw_measurements(c, from, to)
                .expect("read raw measurements")
                .into_iter()
                .map(|(agent, m)| (agent, m.check, m.ts.as_nanosecond()))
        })
        .collect()
}

/// Stored gaps of `checks` around now.
pub fn stored_gaps(store: &SqliteStore, checks: &[String]) -> Vec<GapSpan> {
    let (from, to) = window();
    store
        .gaps(checks, from.as_second() / 60, to.as_second() / 60 + 1)
        .expect("read gaps")
}

/// Asserts the minute rollups count every stored measurement exactly once: the sum of
/// `probes` per (agent, check) equals the number of raw rows. A measurement counted twice
/// (a replayed batch leaking into rollups) fails here even though raw rows are unique.
pub fn assert_rollups_match_raw(store: &dyn InspectStore, checks: &[String], stored: &[Key]) {
    let (from, to) = window();
    let rollups = store
        .series_minute_details(checks, from.as_second() / 60, to.as_second() / 60 + 1)
        .expect("read rollups");
    let mut by_series: std::collections::BTreeMap<(String, String), (u64, u64)> =
        Default::default();
    for r in &rollups {
        by_series
            .entry((r.agent.clone(), r.check.clone()))
            .or_default()
            .0 += u64::from(r.probes);
    }
    for (agent, check, _) in stored {
        by_series
            .entry((agent.clone(), check.clone()))
            .or_default()
            .1 += 1;
    }
    for ((agent, check), (probes, raw)) in &by_series {
        assert_eq!(
            probes, raw,
            "rollups of {agent}/{check} count {probes} probes but {raw} raw rows are stored"
        );
    }
}

/// Resident set size of a process in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A loopback HTTP server answering 200 to everything; also the TCP checks' target.
pub async fn ok_target() -> u16 {
    switchable_target(std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200))).await
}

/// A loopback HTTP server answering every request with the status currently in `status`.
pub async fn switchable_target(status: std::sync::Arc<std::sync::atomic::AtomicU16>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind target");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let status = status.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let code = status.load(std::sync::atomic::Ordering::SeqCst);
                    async move {
                        let resp = hyper::Response::builder()
                            .status(code)
                            .body(Full::new(Bytes::from_static(b"ok")))
                            .unwrap_or_default();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

/// Keys of an agent's spooled measurements.
pub fn spooled_keys(
    agent: &str,
    spooled: &std::collections::BTreeMap<u64, attest_config::wire::Measurement>,
) -> Vec<Key> {
    spooled
        .values()
        .map(|m| crate::load::key(agent, m))
        .collect()
}

/// Keys of one agent among stored keys.
pub fn of_agent(keys: &[Key], agent: &str) -> Vec<Key> {
    keys.iter().filter(|k| k.0 == agent).cloned().collect()
}

/// Waits until `f` holds on the store, re-reading it each time.
pub async fn wait_store<F>(what: &str, bound: Duration, data_dir: &Path, f: F)
where
    F: Fn(&SqliteStore) -> bool,
{
    let data_dir = data_dir.to_path_buf();
    let f = &f;
    wait_for(what, bound, || {
        let data_dir = data_dir.clone();
        async move {
            let store = SqliteStore::open(&data_dir).ok()?;
            f(&store).then_some(())
        }
    })
    .await;
}

/// Measurements committed to the SQLite store in `data_dir` so far (0 while it cannot be
/// opened).
pub fn stored_count(data_dir: &Path) -> u64 {
    StoreReader::Sqlite(data_dir.to_path_buf()).committed()
}

/// Waits until at least `more` measurements beyond `since` are committed to the SQLite
/// store in `data_dir`; returns the count.
pub async fn wait_progress(data_dir: &Path, since: u64, more: u64, bound: Duration) -> u64 {
    StoreReader::Sqlite(data_dir.to_path_buf())
        .wait_committed(since, more, bound)
        .await
}

/// What a single-agent fault scenario needs: one agent probing `checks` loopback HTTP+TCP
/// pairs every 200 ms against [`ok_target`], one service holding all of them.
#[derive(Debug, Clone, Copy)]
pub struct LoopbackSpec<'a> {
    /// The agent's id (and credential name).
    pub agent: &'a str,
    /// The one service in the collector config.
    pub service: &'a str,
    /// Check id prefix, see [`loopback_checks`].
    pub prefix: &'a str,
    /// Number of HTTP+TCP check pairs.
    pub pairs: usize,
    /// The agent's spool cap, e.g. `"4MiB"`.
    pub max_bytes: &'a str,
}

/// A started collector plus a not yet spawned agent whose spool is already watched by a
/// [`SegmentKeeper`], so no segment the agent writes can escape the oracle.
pub struct LoopbackRig {
    pub cred: AgentCred,
    pub checks: Vec<String>,
    pub collector: Collector,
    pub setup: AgentSetup,
    pub keeper: SegmentKeeper,
}

impl LoopbackRig {
    /// Starts the target and the collector (config and data under `dir`, spool in
    /// `<dir>/spool`, kept segments in `<dir>/kept`).
    pub async fn start(dir: &Path, spec: LoopbackSpec<'_>) -> LoopbackRig {
        let target = ok_target().await;
        let cred = AgentCred::new(spec.agent);
        let checks = loopback_check_ids(spec.prefix, spec.pairs);
        let svc = ServiceDef {
            name: spec.service.into(),
            checks: checks.clone(),
        };
        let mut collector = Collector::new(dir, None, std::slice::from_ref(&cred), &[svc]);
        collector.start().await;
        let setup = AgentSetup {
            cred: cred.clone(),
            collector_port: collector.port,
            listen_port: free_port(),
            spool_dir: dir.join("spool"),
            max_bytes: spec.max_bytes.into(),
            checks_toml: loopback_checks(spec.prefix, target, spec.pairs, "200ms"),
        };
        let keeper = SegmentKeeper::start(&setup.spool_dir, &dir.join("kept"));
        LoopbackRig {
            cred,
            checks,
            collector,
            setup,
            keeper,
        }
    }
}
