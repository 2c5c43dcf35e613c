//! `attest-collector`: the binary edge. Subcommands: `run`, `check-config`, `import`, `sla`,
//! `report`, `export`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use attest_collector::clock::{Clock, SystemClock};
use attest_collector::figures::Figures;
use attest_collector::fleet;
use attest_collector::ingest::import;
use attest_collector::report::{self, MonthQuery};
use attest_collector::store::{self, Store};
use attest_collector::{app, notify, reload, server};
use attest_config::CollectorConfig;
use attest_web::WebSecurity;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

/// Exit code when the store cannot be opened (EX_CANTCREAT).
const EXIT_STORE: u8 = 73;
/// Exit code for bad input to a one-shot command (EX_DATAERR).
const EXIT_DATA: u8 = 65;
/// Exit code of `sla --fail-on-breach` when a listed service is not compliant.
const EXIT_BREACH: u8 = 3;

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
    /// Print shell completions to stdout (the packages ship them).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) to stdout (the packages ship it).
    #[command(hide = true)]
    Man,
    /// Run the collector.
    Run {
        #[arg(long, short, env = "ATTEST_COLLECTOR_CONFIG")]
        config: PathBuf,
        /// Web configuration of the listener (TLS, client certificates, basic auth), in the
        /// Prometheus exporter-toolkit format; see docs/web-config.md.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Validate a configuration file (and a web configuration) and exit (0 valid, 78 invalid).
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
        /// Also validate this web configuration, certificates included.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Load measurements from a JSON-lines file (one measurement per line, with `agent`).
    Import {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        input: PathBuf,
    },
    /// List the agents a running collector knows: version, last seen, clock offset, spool,
    /// assigned checks, last error (asks `GET /api/v1/agents`).
    Agents {
        #[arg(long, short)]
        config: PathBuf,
        /// Base URL of the running collector; default from `[server] listen`.
        #[arg(long)]
        url: Option<String>,
        /// CA certificate (PEM) to trust for an HTTPS collector; default `[server] tls_cert`.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
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
        /// Exit 3 (after printing) when any listed service is not compliant: breached, or
        /// not determinable (nothing known, coverage below `min_coverage`).
        #[arg(long)]
        fail_on_breach: bool,
    },
    /// Check a month of the store against the agents' signed batches: recompute every
    /// signed batch's digest from the stored rows, check signatures, keys and chain links,
    /// and find measurements of no signed batch. Exit 4 on any finding.
    Audit {
        #[arg(long, short)]
        config: PathBuf,
        /// UTC calendar month, `YYYY-MM`.
        #[arg(long)]
        month: String,
    },
    /// Export a month's signed batches as evidence that a third party can check without
    /// the collector (`report verify --deep`; docs/reports.md, "Evidence export").
    Evidence {
        #[command(subcommand)]
        action: EvidenceAction,
    },
    /// Write a monthly availability report (html, pdf, csv, json, md, bundle), or verify one.
    Report(attest_collector::report::monthly::cli::ReportArgs),
    /// Write each service's availability objective for another SLO tool: OpenSLO v1, Sloth
    /// or Pyrra, with queries on Attest's own `attest_slo_*` counters (docs/metrics.md).
    Export {
        #[arg(value_enum)]
        format: ExportFormat,
        #[arg(long, short)]
        config: PathBuf,
        /// Directory to write one `<service>.yaml` per service into (created if missing);
        /// default: every document to stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
        /// Kubernetes namespace of the Pyrra objects.
        #[arg(long, default_value = "monitoring")]
        namespace: String,
    },
}

#[derive(Subcommand)]
enum EvidenceAction {
    /// Write the month's batches in the canonical form with their signatures and chain
    /// links (zstd), the definitions and maintenance windows the seal covers, a manifest.
    Export {
        #[arg(long, short)]
        config: PathBuf,
        /// Calendar month in the services' zones, `YYYY-MM` (the sealed month's span).
        #[arg(long)]
        month: String,
        /// Only the batches of the agents that measured this service.
        #[arg(long)]
        service: Option<String>,
        /// A new or empty directory.
        #[arg(long, short)]
        output: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Openslo,
    Sloth,
    Pyrra,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = generated(&cli.command) {
        return code;
    }
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
        Command::Run { config, .. }
        | Command::CheckConfig { config, .. }
        | Command::Import { config, .. }
        | Command::Agents { config, .. }
        | Command::Sla { config, .. }
        | Command::Audit { config, .. }
        | Command::Evidence {
            action: EvidenceAction::Export { config, .. },
        }
        | Command::Export { config, .. } => config.clone(),
        Command::Report(_) | Command::Completions { .. } | Command::Man => {
            return ExitCode::SUCCESS;
        }
    };
    let cfg = match attest_config::load_collector(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8);
        }
    };
    match command {
        Command::Completions { .. } | Command::Man => ExitCode::SUCCESS,
        Command::CheckConfig {
            web_config_file, ..
        } => {
            let web = match load_web(&cfg, web_config_file.as_deref()) {
                Ok(web) => web,
                Err(code) => return code,
            };
            println!("{}", attest_config::summary_collector(&cfg));
            for w in &web.warnings {
                eprintln!("warning: {w}");
            }
            for w in attest_config::warnings_collector(&cfg) {
                eprintln!("{}: {w}", config_path.display());
            }
            for w in attest_config::fleet::warnings(&cfg) {
                eprintln!("{}: warning: {w}", config_path.display());
            }
            ExitCode::SUCCESS
        }
        Command::Agents {
            url,
            ca_file,
            format,
            ..
        } => exit_of(print_agents(&cfg, url, ca_file, format)),
        Command::Run {
            web_config_file, ..
        } => {
            let web = match load_web(&cfg, web_config_file.as_deref()) {
                Ok(w) => w,
                Err(code) => return code,
            };
            for w in &web.warnings {
                tracing::warn!("{w}");
            }
            with_store(&cfg, |store| {
                run_server(cfg.clone(), store, config_path.clone(), web)
            })
        }
        Command::Import { input, .. } => with_store(&cfg, |store| import_file(&cfg, store, &input)),
        Command::Sla {
            month,
            service,
            at,
            format,
            fail_on_breach,
            ..
        } => with_store(&cfg, |store| {
            let q = SlaArgs {
                month: &month,
                service: service.as_deref(),
                at: at.as_deref(),
                format,
                fail_on_breach,
            };
            print_sla(&cfg, store, &q)
        }),
        Command::Report(_) => ExitCode::SUCCESS,
        Command::Audit { month, .. } => {
            with_store(&cfg, |store| run_audit(&cfg, store.as_ref(), &month))
        }
        Command::Evidence {
            action:
                EvidenceAction::Export {
                    month,
                    service,
                    output,
                    ..
                },
        } => {
            let Ok(month) = report::parse_month(&month) else {
                eprintln!("--month {month:?} is not YYYY-MM, e.g. 2026-10");
                return ExitCode::from(EXIT_DATA);
            };
            with_store(&cfg, |store| {
                export_evidence(
                    &cfg,
                    store.as_ref(),
                    &config_path,
                    (month, service.as_deref()),
                    &output,
                )
            })
        }
        Command::Export {
            format,
            output,
            service,
            namespace,
            ..
        } => exit_of(write_export(
            &cfg,
            format,
            output.as_deref(),
            service.as_deref(),
            namespace,
        )),
    }
}

fn write_export(
    cfg: &CollectorConfig,
    format: ExportFormat,
    output: Option<&Path>,
    service: Option<&str>,
    namespace: String,
) -> anyhow::Result<ExitCode> {
    use attest_collector::export::{self, Format as F, Options};
    let format = match format {
        ExportFormat::Openslo => F::OpenSlo,
        ExportFormat::Sloth => F::Sloth,
        ExportFormat::Pyrra => F::Pyrra,
    };
    let files = match export::export(cfg, format, service, &Options { namespace }) {
        Ok(f) => f,
        Err(why) => {
            eprintln!("{why}");
            return Ok(ExitCode::from(EXIT_DATA));
        }
    };
    let Some(dir) = output else {
        for f in &files {
            print!("{}", f.yaml);
        }
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for f in &files {
        let path = dir.join(&f.name);
        std::fs::write(&path, &f.yaml)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    eprintln!(
        "wrote {} {} file(s) to {}",
        files.len(),
        format.name(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn export_evidence(
    cfg: &CollectorConfig,
    store: &dyn Store,
    config_path: &Path,
    (month, service): (attest_collector::sla::Month, Option<&str>),
    output: &Path,
) -> anyhow::Result<ExitCode> {
    use attest_collector::evidence::export::{self, ExportError, Request};
    let config_text = std::fs::read_to_string(config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let req = Request {
        month,
        service,
        config_text: &config_text,
        output,
    };
    match export::export(store, cfg, &req) {
        Ok(done) => {
            for (agent, seq) in &done.differing {
                eprintln!(
                    "warning: agent {agent} batch {seq}: the stored rows no longer give its signed digest; exported as stored (run `audit --month`)"
                );
            }
            println!(
                "exported {} batches ({} measurements) of {} agent(s) for {month} to {}",
                done.batches,
                done.measurements,
                done.agents,
                output.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(
            e @ (ExportError::NotEmpty(_) | ExportError::UnknownService(_) | ExportError::Month(_)),
        ) => {
            eprintln!("attest-collector evidence export: {e}");
            Ok(ExitCode::from(EXIT_DATA))
        }
        Err(e) => Err(e.into()),
    }
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("ATTEST_LOG").unwrap_or_else(|_| "info".into());
    // Colours only on a terminal: a journal or a log file gets plain `key=value` lines.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// Exit code of `audit` when it found something.
const EXIT_AUDIT_FINDINGS: u8 = 4;

fn run_audit(cfg: &CollectorConfig, store: &dyn Store, month: &str) -> anyhow::Result<ExitCode> {
    let (from, to) = match attest_collector::audit::month_bounds(month) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("attest-collector audit: {e}");
            return Ok(ExitCode::from(65));
        }
    };
    let report = attest_collector::audit::audit(store, cfg, from, to)?;
    print!("{}", attest_collector::audit::render(month, &report));
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_AUDIT_FINDINGS)
    })
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

/// Reads and builds the web configuration (before the store opens); a problem is printed and
/// becomes exit 78. TLS in both `[server]` and the web configuration is refused: one place
/// says how the listener is secured.
fn load_web(cfg: &CollectorConfig, path: Option<&Path>) -> Result<WebSecurity, ExitCode> {
    let Some(path) = path else {
        return Ok(WebSecurity::default());
    };
    let invalid = ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8);
    let web = WebSecurity::load(path).map_err(|e| {
        eprintln!("{e}");
        invalid
    })?;
    let server_tls = cfg.server.tls_cert.is_some() || cfg.server.client_ca.is_some();
    if web.tls.is_some() && server_tls {
        eprintln!(
            "{}: tls_server_config: TLS is configured twice, here and in [server] tls_cert/tls_key/client_ca of the collector configuration; keep one of them",
            path.display()
        );
        return Err(invalid);
    }
    Ok(web)
}

fn exit_of(r: anyhow::Result<ExitCode>) -> ExitCode {
    r.unwrap_or_else(|e| {
        eprintln!("attest-collector: {e:#}");
        ExitCode::FAILURE
    })
}

fn run_server(
    cfg: CollectorConfig,
    store: Arc<dyn Store>,
    path: PathBuf,
    web: WebSecurity,
) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let result = rt.block_on(async move {
        let tls = match web.tls.clone() {
            Some(tls) => Some(tls),
            None => server::tls_config(&cfg.server)?,
        };
        let app = Arc::new(app::build(cfg, store.clone()));
        app.set_web(&web);
        let cfg = app.cfg.clone();
        let cancel = CancellationToken::new();
        let refresh = app.spawn_background(cancel.clone());
        tokio::spawn(reload::on_sighup(path, app.clone(), cancel.clone()));
        tokio::spawn(notify::watchdog(cancel.clone()));
        let clock = app.clock.clone();
        let retention = tokio::spawn(store::retention::retention_loop(
            cfg.clone(),
            store,
            move || clock.now_utc(),
            cancel.clone(),
        ));
        let fleet = app.fleet.clone();
        let stopping = Arc::new(std::sync::OnceLock::new());
        let stop_at = stopping.clone();
        let shutdown = async move {
            shutdown_signal().await;
            let _ = stop_at.set(tokio::time::Instant::now());
            // Long polls answer 304 now instead of holding the drain for their `?wait=`.
            fleet.stop();
        };
        let served = server::serve(
            &cfg.server,
            tls,
            app.router(),
            app.listener_stats(),
            shutdown,
        )
        .await;
        cancel.cancel();
        // The background loops end at their next await; a figures refresh or a retention
        // pass still on its blocking thread is not waited for beyond the drain's bound.
        let deadline = stopping
            .get()
            .map_or_else(tokio::time::Instant::now, |t| *t)
            + cfg.server.shutdown_timeout;
        let background = async {
            let _ = retention.await;
            let _ = refresh.await;
        };
        if tokio::time::timeout_at(deadline, background).await.is_err() {
            tracing::warn!(
                "shutdown_timeout reached with background work still running; it is cut off"
            );
        }
        served?;
        tracing::info!("collector stopped");
        Ok(ExitCode::SUCCESS)
    });
    // Blocking tasks still running (a cut-off commit or refresh) are not waited for: the
    // store's transactions make a cut-off write all or nothing.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

fn print_agents(
    cfg: &CollectorConfig,
    url: Option<String>,
    ca_file: Option<PathBuf>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let rows = rt.block_on(fleet::client::fetch(
        cfg,
        url.as_deref(),
        ca_file.as_deref(),
    ))?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Table => print!("{}", fleet::table::render(&rows, SystemClock.now_utc())),
    }
    Ok(ExitCode::SUCCESS)
}

fn import_file(
    cfg: &CollectorConfig,
    store: Arc<dyn Store>,
    input: &Path,
) -> anyhow::Result<ExitCode> {
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let mut progress = ImportDisplay::new();
    let result = import::import_with_progress(
        cfg,
        store.as_ref(),
        &SystemClock,
        std::io::BufReader::new(file),
        &input.display().to_string(),
        &mut |p| progress.show(p),
    );
    progress.finish();
    match result {
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

/// Import progress: a bar on a terminal, otherwise a log line at validation, every
/// [`ImportDisplay::LOG_EVERY`] and at the end (structured: `done`, `total`).
struct ImportDisplay {
    bar: Option<indicatif::ProgressBar>,
    logged: std::time::Instant,
}

impl ImportDisplay {
    const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    fn new() -> ImportDisplay {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} measurements ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_message("storing");
            bar
        });
        ImportDisplay {
            bar,
            logged: std::time::Instant::now(),
        }
    }

    fn show(&mut self, p: import::ImportProgress) {
        match (p, &self.bar) {
            (import::ImportProgress::Validated { measurements }, Some(bar)) => {
                bar.set_length(measurements);
            }
            (import::ImportProgress::Stored { done, .. }, Some(bar)) => bar.set_position(done),
            (import::ImportProgress::Validated { measurements }, None) => {
                tracing::info!(measurements, "import: every line is valid; storing");
            }
            (import::ImportProgress::Stored { done, total }, None) => {
                if done == total || self.logged.elapsed() >= Self::LOG_EVERY {
                    self.logged = std::time::Instant::now();
                    tracing::info!(done, total, "import progress");
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The arguments of `attest-collector sla`.
struct SlaArgs<'a> {
    month: &'a str,
    service: Option<&'a str>,
    at: Option<&'a str>,
    format: Format,
    fail_on_breach: bool,
}

fn print_sla(
    cfg: &CollectorConfig,
    store: Arc<dyn Store>,
    a: &SlaArgs<'_>,
) -> anyhow::Result<ExitCode> {
    let figures = Figures::new(Arc::new(cfg.clone()), store);
    let reports = match MonthQuery::parse(a.month, a.service, a.at)
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
    match a.format {
        Format::Json => println!("{}", report::json::pretty(&reports)?),
        Format::Table => print!("{}", report::table::render(&reports)),
    }
    // Not compliant = breached or not determinable: a script asking "did we meet the SLA?"
    // must not read "cannot tell" as "yes".
    if a.fail_on_breach && reports.iter().any(|r| r.compliant != Some(true)) {
        return Ok(ExitCode::from(EXIT_BREACH));
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = ctrl_c.await;
        return;
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    notify::stopping();
    tracing::info!("shutting down: draining requests in flight");
}

/// The hidden `completions` and `man` subcommands: text generated from the clap definitions,
/// so completions and man page never drift from the real flags.
fn generated(command: &Command) -> Option<ExitCode> {
    let mut out = std::io::stdout();
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "attest-collector", &mut out);
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
