//! `attest-collector`: the binary edge. Subcommands: `run`, `check-config`, `import`, `sla`, `report`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use attest_collector::clock::SystemClock;
use attest_collector::figures::Figures;
use attest_collector::ingest::import;
use attest_collector::report::{self, MonthQuery};
use attest_collector::store::{self, Store};
use attest_collector::{app, server};
use attest_config::CollectorConfig;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

/// Exit code when the store cannot be opened (EX_CANTCREAT).
const EXIT_STORE: u8 = 73;
/// Exit code for bad input to a one-shot command (EX_DATAERR).
const EXIT_DATA: u8 = 65;

#[derive(Parser)]
#[command(
    name = "attest-collector",
    version,
    about = "Receives measurements from Attest agents, computes SLA figures and exports them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Table,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector.
    Run {
        #[arg(long, short, env = "ATTEST_COLLECTOR_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit (0 valid, 78 invalid).
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Load measurements from a JSON-lines file (one measurement per line, with `agent`).
    Import {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        input: PathBuf,
    },
    /// Print the SLA figures of a month.
    Sla {
        #[arg(long, short)]
        config: PathBuf,
        /// Calendar month in the services' zones, `YYYY-MM`.
        #[arg(long)]
        month: String,
        #[arg(long)]
        service: Option<String>,
        /// Evaluate as of this instant (RFC 3339); default now.
        #[arg(long)]
        at: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Write a monthly availability report (html, pdf, csv, json, md, bundle), or verify one.
    Report(attest_collector::report::monthly::cli::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let command = match cli.command {
        Command::Report(args) => {
            return attest_collector::report::monthly::cli::run(args, |cfg| {
                store::open(&cfg.storage).map_err(|e| anyhow::anyhow!("cannot open the store: {e}"))
            });
        }
        other => other,
    };
    let config_path = match &command {
        Command::Run { config }
        | Command::CheckConfig { config }
        | Command::Import { config, .. }
        | Command::Sla { config, .. } => config.clone(),
        Command::Report(_) => return ExitCode::SUCCESS,
    };
    let cfg = match attest_config::load_collector(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8);
        }
    };
    match command {
        Command::CheckConfig { .. } => {
            println!("{}", attest_config::summary_collector(&cfg));
            ExitCode::SUCCESS
        }
        Command::Run { .. } => with_store(&cfg, |store| run_server(cfg.clone(), store)),
        Command::Import { input, .. } => with_store(&cfg, |store| import_file(&cfg, store, &input)),
        Command::Sla {
            month,
            service,
            at,
            format,
            ..
        } => with_store(&cfg, |store| {
            print_sla(
                &cfg,
                store,
                &month,
                service.as_deref(),
                at.as_deref(),
                format,
            )
        }),
        Command::Report(_) => ExitCode::SUCCESS,
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

fn with_store(
    cfg: &CollectorConfig,
    f: impl FnOnce(Arc<dyn Store>) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    let store = match store::open(&cfg.storage) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open the store: {e}");
            return ExitCode::from(EXIT_STORE);
        }
    };
    match f(store) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("attest-collector: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(cfg: CollectorConfig, store: Arc<dyn Store>) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(async move {
        let app = app::build(cfg, store.clone());
        let cfg = app.cfg.clone();
        let cancel = CancellationToken::new();
        let refresh = app.spawn_background(cancel.clone());
        let retention = tokio::spawn(store::retention::retention_loop(
            cfg.clone(),
            store,
            cancel.clone(),
        ));
        let served = server::serve(&cfg.server, app.router(), shutdown_signal()).await;
        cancel.cancel();
        let _ = retention.await;
        let _ = refresh.await;
        served?;
        tracing::info!("collector stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn import_file(
    cfg: &CollectorConfig,
    store: Arc<dyn Store>,
    input: &Path,
) -> anyhow::Result<ExitCode> {
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    match import::import(
        cfg,
        store.as_ref(),
        &SystemClock,
        std::io::BufReader::new(file),
        &input.display().to_string(),
    ) {
        Ok(summary) => {
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            // Bad input is the file's fault (65); a storage failure is not (1).
            let code = match e {
                import::ImportError::Store { .. } => ExitCode::FAILURE,
                _ => ExitCode::from(EXIT_DATA),
            };
            Ok(code)
        }
    }
}

fn print_sla(
    cfg: &CollectorConfig,
    store: Arc<dyn Store>,
    month: &str,
    service: Option<&str>,
    at: Option<&str>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let figures = Figures::new(Arc::new(cfg.clone()), store);
    let reports = match MonthQuery::parse(month, service, at)
        .and_then(|q| report::month_reports(&figures, &q, &SystemClock))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}", e.reason);
            // A refused argument (4xx) is bad input; a storage failure (5xx) is not.
            let code = if e.status >= 500 {
                ExitCode::FAILURE
            } else {
                ExitCode::from(EXIT_DATA)
            };
            return Ok(code);
        }
    };
    match format {
        Format::Json => println!("{}", report::json::pretty(&reports)?),
        Format::Table => print!("{}", report::table::render(&reports)),
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
    tracing::info!("shutting down: draining requests in flight");
}
