//! `attest-agent`: the binary edge. Parses the command line, loads the configuration, wires
//! probe → schedule → spool → transport, and shuts down cleanly on SIGTERM/SIGINT.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use attest_agent::clock::SystemClock;
use attest_agent::probe;
use attest_agent::schedule::{self, ScheduleStats, ScheduledCheck, Sink};
use attest_agent::spool::Spool;
use attest_agent::telemetry::{self, Telemetry};
use attest_agent::transport::{self, Transport};
use attest_config::AgentConfig;
use attest_config::wire::Measurement;
use clap::{Parser, Subcommand};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// Exit code when the spool cannot be opened (EX_CANTCREAT).
const EXIT_SPOOL: u8 = 73;

#[derive(Parser)]
#[command(
    name = "attest-agent",
    version,
    about = "Probes services and this host, and ships every measurement to the Attest collector"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        #[arg(long, short, env = "ATTEST_AGENT_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit (0 valid, 78 invalid).
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Run { config } => {
            let cfg = match attest_config::load_agent(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8);
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(cfg)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("attest-agent: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("ATTEST_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match attest_config::load_agent(path) {
        Ok(cfg) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            if let Err(e) = transport::validate(&cfg.transport) {
                eprintln!("{}: [transport]: {e}", path.display());
                return ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8);
            }
            for check in &cfg.checks {
                if let Err(e) = probe::build(check) {
                    eprintln!("{}: check {:?}: {e}", path.display(), check.id);
                    return ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8);
                }
            }
            println!("{}", attest_config::summary_agent(&cfg));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8)
        }
    }
}

async fn run(cfg: AgentConfig) -> anyhow::Result<ExitCode> {
    // One rustls provider for the whole process: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut checks = Vec::new();
    let mut kinds = BTreeMap::new();
    let targets = probe::Targets::new(&cfg.agent.allow_targets, &cfg.agent.deny_targets);
    for c in &cfg.checks {
        let p = match probe::build_with(c, &targets) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("check {:?}: {e}", c.id);
                return Ok(ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8));
            }
        };
        kinds.insert(c.id.clone(), c.spec.kind());
        checks.push(ScheduledCheck {
            id: c.id.clone(),
            interval: c.interval,
            timeout: c.timeout,
            probe: Arc::from(p),
        });
    }
    let spool = match Spool::open(&cfg.spool.dir, cfg.spool.max_bytes, cfg.spool.when_full) {
        Ok(s) => Arc::new(Mutex::new(s)),
        Err(e) => {
            eprintln!("cannot open the spool at {}: {e}", cfg.spool.dir.display());
            return Ok(ExitCode::from(EXIT_SPOOL));
        }
    };
    let transport = Transport::new(
        &cfg.agent.id,
        &cfg.agent.collector_url,
        &cfg.agent.token,
        cfg.transport.clone(),
        spool.clone(),
        cfg.spool.dir.clone(),
    )
    .context("cannot set up delivery to the collector")?;
    let schedule_stats = Arc::new(ScheduleStats::default());
    let telemetry = Arc::new(Telemetry::new(
        kinds,
        schedule_stats.clone(),
        transport.stats.clone(),
        spool.clone(),
    ));
    let cancel = CancellationToken::new();
    let appended = Arc::new(Notify::new());

    let (tx, rx) = mpsc::channel::<Measurement>(1024);
    let writer = tokio::spawn(spool_writer(rx, spool.clone(), appended.clone()));
    let t = telemetry.clone();
    let sink = Sink {
        tx,
        stats: schedule_stats,
        observe: Arc::new(move |m| t.observe(m)),
    };
    let n_checks = checks.len();
    let probes = schedule::spawn_all(
        &cfg.agent.id,
        checks,
        Arc::new(SystemClock),
        cfg.agent.max_concurrency,
        sink,
        cancel.clone(),
    );
    let tx_cancel = CancellationToken::new();
    let sender = tokio::spawn(transport.run(appended, tx_cancel.clone()));
    if let Some(addr) = cfg.agent.listen {
        tokio::spawn(telemetry::serve(addr, telemetry.clone(), cancel.clone()));
    }
    tracing::info!(agent = %cfg.agent.id, checks = n_checks, collector = %cfg.agent.collector_url, "agent started");

    shutdown_signal().await;
    tracing::info!("shutting down: finishing probes in flight and syncing the spool");
    cancel.cancel();
    for p in probes {
        let _ = p.await;
    }
    // All senders are gone once the probe tasks ended: the writer drains and returns.
    let _ = writer.await;
    tx_cancel.cancel();
    let _ = sender.await;
    let stats = transport::lock(&spool).stats();
    tracing::info!(
        pending = stats.depth,
        "agent stopped; pending measurements stay in the spool"
    );
    Ok(ExitCode::SUCCESS)
}

/// Measurements held in memory while the spool's disk refuses writes; beyond this the oldest
/// become gaps (unknown minutes at the collector), so memory stays bounded.
const WRITE_BACKLOG_MAX: usize = 10_000;

/// Appends measurements to the spool in small groups; each append is durable before the
/// transport is told about it. When the disk refuses an append (full, read-only), the group
/// is kept in a bounded backlog and retried every second; overflow is recorded as gaps.
async fn spool_writer(
    mut rx: mpsc::Receiver<Measurement>,
    spool: Arc<Mutex<Spool>>,
    appended: Arc<Notify>,
) {
    let mut backlog: Vec<Measurement> = Vec::new();
    let mut buf = Vec::with_capacity(256);
    loop {
        let received = if backlog.is_empty() {
            rx.recv_many(&mut buf, 256).await
        } else {
            // Retry the backlog at least every second, taking new measurements meanwhile.
            tokio::select! {
                n = rx.recv_many(&mut buf, 256) => n,
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => usize::MAX,
            }
        };
        if received == 0 && backlog.is_empty() {
            return;
        }
        let closed = received == 0;
        backlog.append(&mut buf);
        let group = std::mem::take(&mut backlog);
        let sp = spool.clone();
        let res = tokio::task::spawn_blocking(move || {
            let r = transport::lock(&sp).append(&group);
            (r, group)
        })
        .await;
        match res {
            Ok((Ok(()), _)) => appended.notify_one(),
            Ok((Err(e), group)) => {
                tracing::error!(
                    held = group.len(),
                    "cannot append to the spool, holding measurements in memory and retrying: {e}"
                );
                backlog = group;
                shed_overflow(&spool, &mut backlog);
            }
            Err(e) => tracing::error!("spool task failed: {e}"),
        }
        if closed {
            // Shutdown with the disk still refusing: what is held becomes gaps, never silence.
            if !backlog.is_empty() {
                transport::lock(&spool).record_lost(&backlog);
            }
            return;
        }
    }
}

/// Keeps the backlog within [`WRITE_BACKLOG_MAX`], recording the oldest overflow as gaps.
fn shed_overflow(spool: &Mutex<Spool>, backlog: &mut Vec<Measurement>) {
    if backlog.len() > WRITE_BACKLOG_MAX {
        let excess: Vec<Measurement> = backlog.drain(..backlog.len() - WRITE_BACKLOG_MAX).collect();
        tracing::error!(
            dropped = excess.len(),
            "spool write backlog full: the oldest measurements become gaps"
        );
        transport::lock(spool).record_lost(&excess);
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
