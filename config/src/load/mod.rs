//! Loading and validating the agent and collector files.
//!
//! The TOML text is parsed into a spanned tree (`toml::de::DeTable`) and walked by hand,
//! so that one run reports every problem of a file with its line and column, instead of
//! serde's first error.
//!
//! Invariants:
//! - `Ok` only when no error was recorded; `Err` holds every error, sorted by position.
//! - Relative paths in a file (spool dir, data dir, token files, certificates) are
//!   resolved against the directory of that file, never against the working directory.
//! - Syntax errors stop the walk: a recovered tree would produce misleading follow-ups.

mod agent;
mod capacity;
mod check;
mod collector;
mod error;
mod fleet;
mod service;
mod status;
mod summary;
mod values;
mod walk;

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

pub use agent::{
    DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_BATCH_MAX_AGE,
    DEFAULT_BATCH_MAX_MEASUREMENTS, DEFAULT_MAX_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SPOOL_DIR, DEFAULT_SPOOL_MAX_BYTES,
};
pub use check::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT, default_timeout};
pub use collector::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_CAPACITY_CRITICAL, DEFAULT_CAPACITY_MIN_COVERAGE,
    DEFAULT_CAPACITY_WARNING, DEFAULT_DATA_DIR, DEFAULT_FORECAST_HORIZON,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_BACKFILL_AGE,
    DEFAULT_MAX_BATCHES_PER_SECOND, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CHECKS_PER_AGENT,
    DEFAULT_MAX_CLOCK_SKEW, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_DECOMPRESSED_BYTES,
    DEFAULT_MAX_INFLIGHT_BODY_BYTES, DEFAULT_MAX_MEASUREMENTS_PER_BATCH, DEFAULT_MAX_RETROACTIVE,
    DEFAULT_RAW_RETENTION, DEFAULT_ROLLUP_RETENTION, DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_TREND_LOOKBACK,
};
pub use error::{ConfigError, ConfigErrors, EXIT_CONFIG_INVALID, Location};
pub use service::{DEFAULT_MIN_REPORTERS, DEFAULT_TIME_ZONE};
pub use summary::{summary_agent, summary_collector, warnings_collector};
pub use values::{format_bytes, format_duration};

use crate::model::{AgentConfig, CollectorConfig};
use walk::{Ctx, Section};

/// Reads and validates an agent file.
pub fn load_agent(path: &Path) -> Result<AgentConfig, ConfigErrors> {
    let (name, src) = read(path)?;
    parse_with_base(&name, &src, base_dir(path), agent::agent_file)
}

/// Validates agent-file text; `file_name` names the file in messages and its directory
/// anchors relative paths.
pub fn parse_agent(file_name: &str, src: &str) -> Result<AgentConfig, ConfigErrors> {
    parse_with_base(
        file_name,
        src,
        base_dir(Path::new(file_name)),
        agent::agent_file,
    )
}

/// Validates an assignment document an agent received from its collector: `[[check]]`
/// tables only, with the same rules as the agent's own file. `name` names it in messages;
/// relative paths (there should be none) resolve against `/`.
pub fn parse_checks(name: &str, src: &str) -> Result<Vec<crate::model::Check>, ConfigErrors> {
    parse_with_base(name, src, PathBuf::from("/"), fleet::checks_file)
}

/// Reads and validates a collector file.
pub fn load_collector(path: &Path) -> Result<CollectorConfig, ConfigErrors> {
    let (name, src) = read(path)?;
    parse_with_base(&name, &src, base_dir(path), collector::collector_file)
}

/// Validates collector-file text; see [`parse_agent`] for `file_name`.
pub fn parse_collector(file_name: &str, src: &str) -> Result<CollectorConfig, ConfigErrors> {
    parse_with_base(
        file_name,
        src,
        base_dir(Path::new(file_name)),
        collector::collector_file,
    )
}

fn read(path: &Path) -> Result<(String, String), ConfigErrors> {
    let name = path.display().to_string();
    std::fs::read_to_string(path)
        .map(|src| (name.clone(), src))
        .map_err(|e| {
            ConfigErrors::single(ConfigError::whole_file(
                &name,
                format!("cannot read the configuration file: {e}; check the path and permissions"),
            ))
        })
}

/// The directory relative paths start from: the file's own directory, made absolute so
/// that a later change of working directory cannot move them.
pub(crate) fn base_dir(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new(""));
    if dir.as_os_str().is_empty() {
        return std::path::absolute(".").unwrap_or_default();
    }
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

fn parse_with_base<T>(
    file_name: &str,
    src: &str,
    base: PathBuf,
    build: impl FnOnce(&mut Ctx<'_>, &Section<'_, '_>) -> Option<T>,
) -> Result<T, ConfigErrors> {
    let mut ctx = Ctx::new(file_name, src, base);
    let (doc, syntax) = DeTable::parse_recoverable(src);
    if !syntax.is_empty() {
        for e in syntax {
            let span = e.span().unwrap_or(0..0);
            ctx.error(span, "", format!("invalid TOML: {}", e.message()));
        }
        return Err(finish(ctx));
    }
    let span = doc.span();
    let root_value = toml::Spanned::new(span, DeValue::Table(doc.into_inner()));
    let Some(root) = ctx.as_section(&root_value, String::new(), "the file".to_string()) else {
        return Err(finish(ctx));
    };
    let built = build(&mut ctx, &root);
    match (built, ctx.errors.is_empty()) {
        (Some(cfg), true) => Ok(cfg),
        (None, true) => {
            // A reader returned None without saying why: report it rather than panic.
            ctx.error(
                0..0,
                "",
                "internal error: the file was rejected without a reason; please report this",
            );
            Err(finish(ctx))
        }
        (_, false) => Err(finish(ctx)),
    }
}

fn finish(ctx: Ctx<'_>) -> ConfigErrors {
    ConfigErrors::from_vec(ctx.errors).unwrap_or_else(|| {
        ConfigErrors::single(ConfigError::whole_file(
            "?",
            "internal error: no errors recorded".into(),
        ))
    })
}
