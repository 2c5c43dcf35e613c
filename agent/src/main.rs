//! `attest-agent`: the binary edge. Parses the command line, loads the configuration, wires
//! probe → schedule → spool → transport, and shuts down cleanly on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use attest_agent::assignment::{self, Poller};
use attest_agent::clock::SystemClock;
use attest_agent::control::{self, Control};
use attest_agent::schedule::{ScheduleStats, Scheduler, Sink};
use attest_agent::spool::{self, SharedSpool, Spool};
use attest_agent::telemetry::{self, Telemetry};
use attest_agent::transport::collectors::Collectors;
use attest_agent::transport::{self, Transport};
use attest_agent::{keys, notify, probe};
use attest_config::AgentConfig;
use attest_config::wire::Measurement;
use attest_web::WebSecurity;
use clap::{CommandFactory, Parser, Subcommand};
use tokio::sync::{Notify, mpsc, watch};
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
    /// Print shell completions to stdout (the packages ship them).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) to stdout (the packages ship it).
    #[command(hide = true)]
    Man,
    /// Run the agent.
    Run {
        #[arg(long, short, env = "ATTEST_AGENT_CONFIG")]
        config: PathBuf,
        /// Web configuration of the /metrics listener (TLS, basic auth), in the Prometheus
        /// exporter-toolkit format; see docs/web-config.md.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// The agent's signing key (docs/wire.md, "Agent keys").
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Validate a configuration file (and a web configuration) and exit (0 valid, 78 invalid).
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
        /// Also validate this web configuration, certificates included.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print the public key (for the collector's `[[agent]] public_key`), its SHA256
    /// fingerprint and the key file.
    Show {
        #[arg(long, short, env = "ATTEST_AGENT_CONFIG")]
        config: PathBuf,
        /// Create the agent's own key when it does not exist yet (run as the agent's user).
        #[arg(long)]
        create: bool,
    },
}

fn main() -> ExitCode {
    attest_agent::memory::tune_heap();
    let cli = Cli::parse();
    if let Some(code) = generated(&cli.command) {
        return code;
    }
    init_logging();
    match cli.command {
        Command::Completions { .. } | Command::Man => ExitCode::SUCCESS,
        Command::Key {
            command: KeyCommand::Show { config, create },
        } => key_show(&config, create),
        Command::CheckConfig {
            config,
            web_config_file,
        } => check_config(&config, web_config_file.as_deref()),
        Command::Run {
            config,
            web_config_file,
        } => {
            let cfg = match attest_config::load_agent(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8);
                }
            };
            let web = match load_web(web_config_file.as_deref()) {
                Ok(w) => w,
                Err(code) => return code,
            };
            for w in &web.warnings {
                tracing::warn!("{w}");
            }
            if web_config_file.is_some() && cfg.agent.listen.is_none() {
                tracing::warn!(
                    "--web.config.file is given but [agent] listen is not set: there is no listener to protect"
                );
            }
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
            match rt.block_on(run(cfg, config, web)) {
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
    // Colours only on a terminal, as the collector: a journal or a log file gets plain
    // `key=value` lines, never escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// Reads and builds the web configuration; the error is printed and becomes exit 78.
fn load_web(path: Option<&std::path::Path>) -> Result<WebSecurity, ExitCode> {
    let Some(path) = path else {
        return Ok(WebSecurity::default());
    };
    WebSecurity::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8)
    })
}

/// `key show`: exit 0 with the key printed, 78 for an invalid configuration, 1 when the key
/// cannot be read (or does not exist yet without `--create`).
fn key_show(path: &std::path::Path, create: bool) -> ExitCode {
    let cfg = match attest_config::load_agent(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8);
        }
    };
    match keys::load(&cfg, create) {
        Ok(k) => {
            print!("{}", keys::show(&k));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "attest-agent: {e}{}",
                if create || cfg.agent.signing_key_file.is_some() {
                    ""
                } else {
                    " (the agent creates its key at first start; or pass --create)"
                }
            );
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &std::path::Path, web: Option<&std::path::Path>) -> ExitCode {
    match load_web(web) {
        Ok(web) => {
            for w in &web.warnings {
                eprintln!("warning: {w}");
            }
        }
        Err(code) => return code,
    }
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

async fn run(mut cfg: AgentConfig, path: PathBuf, web: WebSecurity) -> anyhow::Result<ExitCode> {
    // One rustls provider for the whole process: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Before anything slow: SIGHUP's default action would end the process.
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    // Likewise SIGTERM/SIGINT: once /metrics answers, a supervisor may stop the agent at any
    // moment, and an unregistered SIGTERM would kill it without draining.
    let stop = StopSignals::register();
    // Every probe, own or assigned by the collector, is confined to [agent] allow/deny_targets.
    let targets = probe::Targets::new(&cfg.agent.allow_targets, &cfg.agent.deny_targets);
    if let Err(e) = build_checks(&cfg.checks, &targets) {
        eprintln!("{e}");
        return Ok(ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8));
    }
    let spool = match Spool::open(&cfg.spool.dir, cfg.spool.max_bytes, cfg.spool.when_full) {
        Ok(s) => SharedSpool::new(s),
        Err(e) => {
            eprintln!("cannot open the spool at {}: {e}", cfg.spool.dir.display());
            return Ok(ExitCode::from(EXIT_SPOOL));
        }
    };
    // After the spool (its directory exists and is locked): the key that signs every batch.
    let key = keys::load(&cfg, true).context("cannot load the batch signing key")?;
    tracing::info!(
        public_key = %key.public(),
        fingerprint = %key.public().fingerprint(),
        file = %key.path.display(),
        created = key.created,
        "batches are signed"
    );
    // Bound before anything runs, so a taken port stops the agent before it measures.
    let metrics_listener = match cfg.agent.listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on [agent] listen = {addr}; is another process using the port?")
        })?),
        None => None,
    };
    let collectors = Arc::new(
        Collectors::new(&cfg.agent.collector_urls, cfg.transport.failback_after)
            .context("cannot set up delivery to the collector")?,
    );
    let transport = Transport::new(
        &cfg.agent.id,
        collectors.clone(),
        &cfg.agent.token,
        cfg.transport.clone(),
        spool.reader(),
        cfg.spool.dir.clone(),
    )
    .context("cannot set up delivery to the collector")?;
    // Feature `bench-unsigned` (bench/agent-signing only, never shipped): the same agent
    // without signing, the baseline its cost is measured against.
    #[cfg(not(feature = "bench-unsigned"))]
    let transport = transport.with_signing_key(key.secret);
    #[cfg(feature = "bench-unsigned")]
    let _ = key.secret;
    let schedule_stats = Arc::new(ScheduleStats::default());
    let telemetry = Arc::new(Telemetry::new(
        schedule_stats.clone(),
        transport.stats.clone(),
        collectors.clone(),
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
    let scheduler = Scheduler::new(
        &cfg.agent.id,
        Arc::new(SystemClock),
        cfg.agent.max_concurrency,
        sink,
        cancel.clone(),
    );
    let saved = match assignment::load_saved(&cfg.spool.dir, &cfg.agent.id) {
        Ok(s) => s.map(Arc::new),
        Err(e) => {
            tracing::error!("ignoring the saved check assignment: {e}");
            None
        }
    };
    let (central_tx, central_rx) = watch::channel(saved);
    let (ids_tx, ids_rx) = watch::channel(control::ids(&cfg.checks));
    // The transport's own client (same settings): one more would hold its own trust store.
    let client = transport.client();
    // While failed over, the more preferred collectors' readiness decides the way back.
    tokio::spawn(collectors.clone().watch(
        client.clone(),
        cfg.transport.request_timeout,
        cancel.clone(),
    ));
    let poller = Poller::new(
        client,
        collectors.clone(),
        &cfg.agent.id,
        &cfg.agent.token,
        cfg.spool.dir.clone(),
        cfg.transport.request_timeout,
        ids_rx,
    );
    tokio::spawn(poller.run(central_tx, cancel.clone()));
    let n_checks = cfg.checks.len();
    let own = assignment::share_all(std::mem::take(&mut cfg.checks));
    let agent_id = cfg.agent.id.clone();
    let collector_urls = cfg.agent.collector_urls.clone();
    let control = Control {
        scheduler,
        targets,
        telemetry: telemetry.clone(),
        config_path: path,
        // Moved, not cloned: the control loop is the one owner of the running configuration
        // (a second copy would double the memory every check's definition takes).
        config: cfg,
        own,
        local_ids: ids_tx,
        central: central_rx,
    };
    let probes = tokio::spawn(control.run(hup, cancel.clone()));
    let tx_cancel = CancellationToken::new();
    let sender = tokio::spawn(transport.run(appended, tx_cancel.clone()));
    if let Some(listener) = metrics_listener {
        tokio::spawn(telemetry::serve_secured(
            listener,
            telemetry.clone(),
            web,
            cancel.clone(),
        ));
    }
    tokio::spawn(notify::watchdog(cancel.clone()));
    notify::ready();
    tracing::info!(agent = %agent_id, own_checks = n_checks, collectors = ?collector_urls, "agent started");

    stop.wait().await;
    notify::stopping();
    shut_down(cancel, probes, writer, tx_cancel, sender).await;
    tracing::info!(
        pending = spool.stats().depth,
        "agent stopped; pending measurements stay in the spool"
    );
    Ok(ExitCode::SUCCESS)
}

/// Builds every own check once, so a check that cannot run stops startup with its reason
/// (central checks that cannot be built are logged and skipped instead: they are not the
/// operator's file).
fn build_checks(checks: &[attest_config::Check], targets: &probe::Targets) -> Result<(), String> {
    for c in checks {
        probe::build_with(c, targets).map_err(|e| format!("check {:?}: {e}", c.id))?;
    }
    Ok(())
}

/// Stops in data-flow order: probes finish, the writer stores what they produced, then the
/// transport stops (whatever is unsent stays in the spool).
async fn shut_down(
    cancel: CancellationToken,
    probes: JoinHandle<()>,
    writer: JoinHandle<()>,
    tx_cancel: CancellationToken,
    sender: JoinHandle<()>,
) {
    tracing::info!("shutting down: finishing probes in flight and syncing the spool");
    cancel.cancel();
    let _ = probes.await;
    // All senders are gone once the probe tasks ended: the writer drains and returns.
    let _ = writer.await;
    tx_cancel.cancel();
    let _ = sender.await;
}

/// SIGTERM and SIGINT, registered when created (not when first awaited).
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn register() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn wait(mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(&mut self.term) => {}
            () = recv(&mut self.int) => {}
        }
    }
}

/// The hidden `completions` and `man` subcommands: text generated from the clap definitions,
/// so completions and man page never drift from the real flags.
fn generated(command: &Command) -> Option<ExitCode> {
    let mut out = std::io::stdout();
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "attest-agent", &mut out);
        }
        Command::Man => {
            if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut out) {
                eprintln!("cannot write the man page: {e}");
                return Some(ExitCode::FAILURE);
            }
        }
        _ => return None,
    }
    Some(ExitCode::SUCCESS)
}
