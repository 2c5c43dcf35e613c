//! `attest-collector report …`: writes a monthly report in one format, or verifies one.
//!
//! Exit codes: 0 written / verified authentic; 1 verification failed or storage failure;
//! 3 intact but unauthenticated (`verify` without `--public-key`, unless
//! `--allow-unsigned`); 5 `verify --deep`: the bundle is intact but its evidence does not
//! prove it; 65 bad input (month, service, format, output path, key, agent keys file); 78
//! invalid configuration.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use attest_config::CollectorConfig;
use jiff::Timestamp;

use super::assemble::{self, Settings};
use super::{Format, RenderOptions, Templates, integrity, render, verify};
use crate::figures::Figures;
use crate::report::parse_month;
use crate::store::Store;

const EXIT_DATA: u8 = 65;
/// `report verify`: every digest matches, but no public key was given to prove who wrote it.
pub const EXIT_UNAUTHENTICATED: u8 = 3;
/// `report verify --deep`: the bundle is intact, but its evidence does not prove it (a batch,
/// an agent's chain or a recomputed figure disagrees).
pub const EXIT_DEEP_FAILED: u8 = 5;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub action: Option<ReportAction>,
    #[arg(long, short, env = "ATTEST_COLLECTOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Calendar month in the services' zones, `YYYY-MM`.
    #[arg(long)]
    pub month: Option<String>,
    /// Only this service (default: every service).
    #[arg(long)]
    pub service: Option<String>,
    /// html, pdf, csv, json, md or bundle.
    #[arg(long, default_value = "html")]
    pub format: String,
    /// File (html, pdf, json, md) or directory (csv, bundle); default: stdout for single
    /// files, `attest-report-YYYY-MM[-SERVICE]-FORMAT/` for directories.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Evaluate and date the report as of this instant (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Directory with `report.html` / `report.md` templates replacing the built-in ones.
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Ed25519 signing key (PKCS#8 PEM or 64 hex digits); overrides `[report] signing_key_file`.
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ReportAction {
    /// Add a dated note (cause, action, owner, due date) to a service's month; written to
    /// the store directly, as `cli`, and shown under "Comments and actions" of the report.
    Note(Box<NoteArgs>),
    /// Check a report file or directory offline; says what changed when it fails.
    Verify {
        path: PathBuf,
        /// The signer's Ed25519 public key (SPKI PEM or 64 hex digits): the trust anchor.
        /// Without it an intact report is only "intact but unauthenticated" (exit 3).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Exit 0 for an intact report checked without --public-key (still printed as
        /// unauthenticated).
        #[arg(long)]
        allow_unsigned: bool,
        /// Also prove the archived month from the agents' evidence: check every batch's
        /// signature and chain link against --agent-keys and the month's seal, and recompute
        /// every figure (exit 5 when anything disagrees).
        #[arg(long, requires = "agent_keys")]
        deep: bool,
        /// The agents' public keys, one `AGENT ed25519:KEY` per line (the trust anchor of
        /// --deep; `#` comments).
        #[arg(long, value_name = "FILE")]
        agent_keys: Option<PathBuf>,
        /// The month's evidence export (`evidence export`); default: `PATH.evidence` beside
        /// the bundle.
        #[arg(long, value_name = "DIR")]
        evidence: Option<PathBuf>,
    },
}

/// `report note`: its own flags, because flags after a subcommand belong to it.
#[derive(Debug, clap::Args)]
pub struct NoteArgs {
    #[arg(long, short, env = "ATTEST_COLLECTOR_CONFIG")]
    pub config: PathBuf,
    /// The report month, `YYYY-MM`.
    #[arg(long)]
    pub month: String,
    /// A configured service.
    #[arg(long)]
    pub service: String,
    /// What caused it (1..2000 characters).
    #[arg(long)]
    pub cause: String,
    /// What was or will be done (1..2000 characters).
    #[arg(long)]
    pub action: String,
    /// Who is responsible for the action (at most 200 characters).
    #[arg(long)]
    pub owner: Option<String>,
    /// When the action is due, `YYYY-MM-DD`.
    #[arg(long)]
    pub due: Option<String>,
}

/// The name notes written by `report note` are recorded under: the command line has no
/// admin credential, and whoever runs it could read the store directly anyway.
pub const CLI_WRITER: &str = "cli";

/// Runs the subcommand; `open_store` opens the configured store.
pub fn run(
    args: ReportArgs,
    open_store: impl FnOnce(&CollectorConfig) -> anyhow::Result<Arc<dyn Store>>,
) -> ExitCode {
    if let Some(ReportAction::Verify {
        path,
        public_key,
        allow_unsigned,
        deep,
        agent_keys,
        evidence,
    }) = &args.action
    {
        let deep = deep.then(|| DeepArgs {
            agent_keys: agent_keys.clone().unwrap_or_default(),
            evidence: evidence
                .clone()
                .unwrap_or_else(|| super::deep::default_evidence_dir(path)),
        });
        return run_verify(path, public_key.as_deref(), *allow_unsigned, deep.as_ref());
    }
    if let Some(ReportAction::Note(note)) = &args.action {
        return match write_note(note, open_store) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match write_report(&args, open_store) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn data_error(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("{msg}");
    Ok(ExitCode::from(EXIT_DATA))
}

/// Validates and stores one note; a refusal exits 65 naming the flag to fix.
fn write_note(
    args: &NoteArgs,
    open_store: impl FnOnce(&CollectorConfig) -> anyhow::Result<Arc<dyn Store>>,
) -> anyhow::Result<ExitCode> {
    let cfg = match attest_config::load_collector(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8));
        }
    };
    let body = crate::notes::NoteBody {
        cause: args.cause.clone(),
        action: args.action.clone(),
        owner: args.owner.clone(),
        due: args.due.clone(),
    };
    let cfg = Arc::new(cfg);
    let store = open_store(&cfg)?;
    let notes = crate::notes::Notes::new(cfg, store);
    let now = crate::clock::system().now_utc();
    match notes.add(&args.month, &args.service, &body, CLI_WRITER, now) {
        Ok(n) => {
            println!(
                "note {} stored for {} in {} (written {} by {})",
                n.id, n.service, n.month, n.written_at, n.written_by
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(r) if r.status == 400 => match &r.field {
            Some(f) => data_error(format!("--{f}: {}", r.reason)),
            None => data_error(r.reason),
        },
        Err(r) => anyhow::bail!("cannot store the note: {}", r.reason),
    }
}

fn write_report(
    args: &ReportArgs,
    open_store: impl FnOnce(&CollectorConfig) -> anyhow::Result<Arc<dyn Store>>,
) -> anyhow::Result<ExitCode> {
    let Some(config) = &args.config else {
        return data_error("report needs --config FILE (or ATTEST_COLLECTOR_CONFIG)");
    };
    let Some(month) = &args.month else {
        return data_error("report needs --month YYYY-MM");
    };
    let Some(format) = Format::parse(&args.format) else {
        return data_error(format!(
            "--format {:?} is not one of html, pdf, csv, json, md, bundle",
            args.format
        ));
    };
    let cfg = match attest_config::load_collector(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(attest_config::EXIT_CONFIG_INVALID as u8));
        }
    };
    let month = match parse_month(month) {
        Ok(m) => m,
        Err(e) => return data_error(e.reason),
    };
    let at = match &args.at {
        Some(s) => match s.parse::<Timestamp>() {
            Ok(t) => t,
            Err(e) => {
                return data_error(format!(
                    "--at {s:?} is not an RFC 3339 instant like 2026-11-01T06:00:00Z: {e}"
                ));
            }
        },
        // Whole seconds: the report prints its generation instant.
        None => {
            let now = crate::clock::system().now_utc();
            Timestamp::from_second(now.as_second()).unwrap_or(now)
        }
    };
    let templates = match args
        .templates
        .as_ref()
        .or(cfg.report.templates_dir.as_ref())
    {
        Some(dir) => match Templates::from_dir(dir) {
            Ok(t) => t,
            Err(e) => return data_error(format!("--templates {}: {e}", dir.display())),
        },
        None => Templates::default(),
    };
    let key_path = args
        .signing_key
        .clone()
        .or_else(|| cfg.report.signing_key_file.clone());
    let key = match &key_path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read signing key {}: {e}", p.display()));
            match text.and_then(|t| Ok(integrity::load_signing_key(&p.display().to_string(), &t)?))
            {
                Ok(k) => Some(k),
                Err(e) => return data_error(e),
            }
        }
        None => None,
    };
    let store = open_store(&cfg)?;
    let figures = Figures::new(Arc::new(cfg.clone()), store);
    let settings = Settings::from_config(&cfg.report);
    let archive = cfg
        .report
        .archive_dir
        .clone()
        .map(|dir| super::archive::Archive {
            dir,
            grace: cfg.report.grace,
        });
    let (report, minutes) = match assemble::assemble(
        &figures,
        &cfg,
        &settings,
        (month, args.service.as_deref()),
        at,
        archive.as_ref(),
    ) {
        Ok(r) => r,
        Err(e) if e.status < 500 => return data_error(e.reason),
        Err(e) => anyhow::bail!("{}", e.reason),
    };
    let opts = RenderOptions {
        key: key.as_ref(),
        templates,
        minutes: &minutes,
    };
    if format == Format::Bundle {
        let dir = output_dir(args, format, &month.to_string());
        if let Some(code) = refuse_non_empty(&dir) {
            return Ok(code);
        }
        // The month's seal as of now: what `report verify --deep` checks the evidence with.
        let seal = match super::month_seal::build(&figures, month, key.as_ref()) {
            Ok(files) => files,
            Err(e) => anyhow::bail!("{}", e.reason),
        };
        let bytes = super::write_bundle_with(&dir, &report, &opts, &seal)?;
        eprintln!("wrote the bundle ({bytes} bytes) to {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let files = match render(&report, format, &opts) {
        Ok(f) => f,
        Err(e) => return data_error(e),
    };
    write_files(args, format, &month.to_string(), files)
}

fn write_files(
    args: &ReportArgs,
    format: Format,
    month: &str,
    files: Vec<(String, Vec<u8>)>,
) -> anyhow::Result<ExitCode> {
    if !format.is_directory() {
        let bytes = &files[0].1;
        match &args.output {
            Some(p) => std::fs::write(p, bytes)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?,
            None => std::io::stdout().write_all(bytes)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let dir = output_dir(args, format, month);
    if let Some(code) = refuse_non_empty(&dir) {
        return Ok(code);
    }
    write_dir(&dir, &files)?;
    eprintln!("wrote {} files to {}", files.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}

fn output_dir(args: &ReportArgs, format: Format, month: &str) -> PathBuf {
    args.output.clone().unwrap_or_else(|| {
        let svc = args
            .service
            .as_deref()
            .map(|s| format!("-{}", super::file_safe(s)))
            .unwrap_or_default();
        PathBuf::from(format!("attest-report-{month}{svc}-{}", format.name()))
    })
}

/// A directory output must be new or empty, so no stale file mixes into a sealed set.
fn refuse_non_empty(dir: &Path) -> Option<ExitCode> {
    let non_empty = dir.exists() && std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_some());
    non_empty.then(|| {
        eprintln!(
            "{} exists and is not empty; choose a new --output directory",
            dir.display()
        );
        ExitCode::from(EXIT_DATA)
    })
}

/// Writes `files` (relative paths) under `dir`, creating it.
pub fn write_dir(dir: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    for (rel, bytes) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&p, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    Ok(())
}

/// `--deep` and where its inputs are.
pub struct DeepArgs {
    pub agent_keys: PathBuf,
    pub evidence: PathBuf,
}

/// Runs the deep check and prints what it found; `None` when its inputs cannot be read
/// (exit 65, already printed), else whether it passed.
fn run_deep(path: &Path, d: &DeepArgs) -> Option<bool> {
    let keys = match std::fs::read_to_string(&d.agent_keys) {
        Ok(t) => match crate::evidence::check::AgentKeys::parse(&t) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("--agent-keys {}: {e}", d.agent_keys.display());
                return None;
            }
        },
        Err(e) => {
            eprintln!("cannot read --agent-keys {}: {e}", d.agent_keys.display());
            return None;
        }
    };
    if !d.evidence.is_dir() {
        eprintln!(
            "cannot read the evidence {}: not a directory; write it with `attest-collector evidence export` and pass --evidence DIR",
            d.evidence.display()
        );
        return None;
    }
    let deep = match super::deep::verify_deep(path, &d.evidence, &keys) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return Some(false);
        }
    };
    for n in &deep.notes {
        println!("note: {n}");
    }
    for p in &deep.problems {
        println!("FAILED (deep): {p}");
    }
    if deep.ok() {
        println!(
            "DEEP OK: {} batches signed by the given agent keys, chained and sealed; {} figures recomputed from them equal the report's",
            deep.loaded, deep.figures
        );
    }
    Some(deep.ok())
}

fn run_verify(
    path: &Path,
    public_key: Option<&Path>,
    allow_unsigned: bool,
    deep: Option<&DeepArgs>,
) -> ExitCode {
    let key = match public_key {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => match integrity::load_public_key(&p.display().to_string(), &t) {
                Ok(k) => Some(k),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EXIT_DATA);
                }
            },
            Err(e) => {
                eprintln!("cannot read public key {}: {e}", p.display());
                return ExitCode::from(EXIT_DATA);
            }
        },
        None => None,
    };
    let findings = match verify::verify_path(path, key.as_ref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return ExitCode::from(EXIT_DATA);
        }
    };
    for n in &findings.notes {
        println!("note: {n}");
    }
    let deep_ok = match deep.map(|d| run_deep(path, d)) {
        None => true,
        Some(None) => return ExitCode::from(EXIT_DATA),
        Some(Some(ok)) => ok,
    };
    let outcome = verify::outcome(&findings, key.is_some());
    if !deep_ok && outcome != verify::Outcome::Failed {
        println!(
            "DEEP CHECK FAILED: {} is intact, but the agents' evidence does not prove it (see the FAILED (deep) lines)",
            path.display()
        );
        return ExitCode::from(EXIT_DEEP_FAILED);
    }
    match outcome {
        verify::Outcome::Authentic => {
            println!(
                "OK: {} is intact and signed by the given public key",
                path.display()
            );
            ExitCode::SUCCESS
        }
        verify::Outcome::Unauthenticated => {
            println!(
                "INTACT BUT UNAUTHENTICATED: {} matches its own digests, but without --public-key nothing proves who wrote it (anyone can edit a report and re-seal it, or sign it with another key); pass the collector's public key",
                path.display()
            );
            if allow_unsigned {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_UNAUTHENTICATED)
            }
        }
        verify::Outcome::Failed => {
            for p in &findings.problems {
                println!("FAILED: {p}");
            }
            ExitCode::FAILURE
        }
    }
}
