//! `attest-agent`: the binary edge. Parses the command line, loads the configuration, wires
//! probe → schedule → spool → transport, and shuts down cleanly on SIGTERM/SIGINT.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use attest_agent::clock::SystemClock;
use attest_agent::probe;
use attest_agent::schedule::{self, ScheduleStats, ScheduledCheck, Sink};
use attest_agent::spool::{self, SharedSpool, Spool};
use attest_agent::telemetry::{self, Telemetry};
use attest_agent::transport::{self, Transport};
use attest_config::AgentConfig;
use attest_config::wire::Measurement;
use clap::{Parser, Subcommand};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
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
    let Some((checks, kinds)) = build_checks(&cfg) else {
        return Ok(ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8));
    };
    let spool = match Spool::open(&cfg.spool.dir, cfg.spool.max_bytes, cfg.spool.when_full) {
        Ok(s) => SharedSpool::new(s),
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
        spool.reader(),
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
    let writer = tokio::spawn(spool::writer::run(rx, spool.writer(), appended.clone()));
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
    shut_down(cancel, probes, writer, tx_cancel, sender).await;
    tracing::info!(
        pending = spool.stats().depth,
        "agent stopped; pending measurements stay in the spool"
    );
    Ok(ExitCode::SUCCESS)
}

/// Each check's probe (built once, all fallible preparation done) and its kind by check id;
/// `None` after printing why a check cannot run.
fn build_checks(
    cfg: &AgentConfig,
) -> Option<(Vec<ScheduledCheck>, BTreeMap<String, &'static str>)> {
    let mut checks = Vec::new();
    let mut kinds = BTreeMap::new();
    for c in &cfg.checks {
        let p = match probe::build(c) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("check {:?}: {e}", c.id);
                return None;
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
    Some((checks, kinds))
}

/// Stops in data-flow order: probes finish, the writer stores what they produced, then the
/// transport stops (whatever is unsent stays in the spool).
async fn shut_down(
    cancel: CancellationToken,
    probes: Vec<JoinHandle<()>>,
    writer: JoinHandle<()>,
    tx_cancel: CancellationToken,
    sender: JoinHandle<()>,
) {
    tracing::info!("shutting down: finishing probes in flight and syncing the spool");
    cancel.cancel();
    for p in probes {
        let _ = p.await;
    }
    // All senders are gone once the probe tasks ended: the writer drains and returns.
    let _ = writer.await;
    tx_cancel.cancel();
    let _ = sender.await;
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
