//! `attest-probe-bench`: one measurement per subcommand, printed as `label.key=value`
//! lines for `bench/run` to collect, plus `table` to print the comparison.
//!
//! Invariants: the runtime matches the agent's (current-thread) so CPU figures
//! are those the agent would pay; nothing here starts or stops other processes — the
//! scripts own nginx, the exporters, the collector, the agent and the `serve-target`
//! process, and pass their pids and ports.

mod cpu;
mod drive;
mod engine;
mod ingest;
mod pace;
mod shape;
mod table;
mod target;
mod watch;
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::engine::{CpuRun, Kind};

#[derive(Parser)]
#[command(
    name = "attest-probe-bench",
    about = "Measures the attest probe engine beside blackbox_exporter, node_exporter and wrk"
)]
struct Cli {
    /// Run on a multi-thread runtime with 2 workers instead of the agent's current-thread
    /// runtime, to see what cross-thread wake-ups cost.
    #[arg(long, global = true)]
    multi_thread: bool,
    /// Configure HTTP checks with `headers = { Connection = "close" }` explicitly (the HTTP
    /// probe already sends it unless a check sets its own `Connection` header).
    #[arg(long, global = true)]
    connection_close: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// CPU of `count` attest probes started at `rate` per second (this process's CPU).
    EngineCpu {
        #[arg(long, value_enum)]
        kind: Kind,
        /// URL (http) or host:port (tcp).
        #[arg(long)]
        target: String,
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        #[arg(long)]
        label: String,
    },
    /// CPU another process spends answering `count` GETs of `url` at `rate` per second.
    ExporterCpu {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        url: String,
        /// Text the body must contain for a request to count as ok.
        #[arg(long)]
        expect: Option<String>,
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        #[arg(long)]
        label: String,
    },
    /// Highest HTTP probe rate (`concurrency` loops of back-to-back probes) against wrk
    /// at the same concurrency, in alternating rounds; prints each side's median round
    /// as `engine_rate.*` and `wrk.*`.
    MaxRate {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Alternating rounds per side; the median round is reported (odd is best).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        #[arg(long, default_value = "wrk")]
        wrk: String,
    },
    /// CPU of `count` host collections (all groups) one after another.
    HostCpu {
        #[arg(long, default_value_t = 200)]
        count: u64,
        #[arg(long)]
        label: String,
    },
    /// Resident and peak resident memory of a process.
    Rss {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        label: String,
    },
    /// Prints a collector configuration with `agents` load agents (real tokens) for
    /// `ingest-load`.
    IngestConfig {
        #[arg(long, default_value_t = 4)]
        agents: usize,
        #[arg(long)]
        listen: String,
        #[arg(long)]
        data_dir: PathBuf,
        /// Store in this PostgreSQL database instead of SQLite in `data_dir`.
        #[arg(long)]
        postgres_url: Option<String>,
    },
    /// Plays agents against a running collector, agent-shaped measurements (a recorded
    /// fixture, varied): first live (`agents` agents x `checks` checks, `batches` zstd
    /// batches of `batch` measurements each, timestamps up to now), then a backlog (the same
    /// number of measurements from `backlog-agents` agents draining spools whose newest
    /// measurement is `backlog-hours` old), then with `--light` the old light generator; prints
    /// acked/s and batch latency p50/p99 of each. With `--anchor-dir` (SQLite) or
    /// `--anchor-postgres` (a database URL), before each load appends the same number of rows
    /// to a plain table there (the anchor) and prints the ratio. The configuration needs
    /// `agents + backlog-agents (+ agents with --light)` agents (`ingest-config`).
    IngestLoad {
        /// The collector's ingest URL, e.g. http://127.0.0.1:9100/api/v1/ingest
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 4)]
        agents: usize,
        #[arg(long, default_value_t = 1000)]
        checks: usize,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[arg(long, default_value_t = 100)]
        batches: usize,
        #[arg(long, default_value_t = 16)]
        backlog_agents: usize,
        #[arg(long, default_value_t = 3)]
        backlog_hours: i64,
        /// Also run the light generator (a second line, never the headline).
        #[arg(long)]
        light: bool,
        /// Run only these loads (comma-separated: live, backlog, light), e.g. to profile one.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        #[arg(long)]
        collector_pid: Option<u32>,
        #[arg(long, conflicts_with = "anchor_postgres")]
        anchor_dir: Option<PathBuf>,
        #[arg(long)]
        anchor_postgres: Option<String>,
    },
    /// Prints a free TCP port on 127.0.0.1.
    FreePort,
    /// Serves a 612-byte page on 127.0.0.1:`port` (every request, then close) until stopped:
    /// the probe target of `bench/agent-rss`.
    ServeTarget {
        #[arg(long)]
        port: u16,
    },
    /// Waits `warmup` seconds, then samples process `pid` once a second for `seconds`:
    /// median and max `VmRSS`, `VmHWM`, threads and the CPU spent in the window.
    Watch {
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 30)]
        warmup: u64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long)]
        label: String,
    },
    /// Prints the comparison table from a results file.
    Table {
        #[arg(long)]
        results: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command, !cli.multi_thread, cli.connection_close) {
        Ok(lines) => {
            print!("{lines}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("attest-probe-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error>;

fn run(command: Command, current_thread: bool, close: bool) -> Result<String, BoxError> {
    match command {
        Command::FreePort => {
            let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            Ok(format!("{}\n", addr.port()))
        }
        Command::Table { results } => {
            let text = std::fs::read_to_string(&results)
                .map_err(|e| format!("cannot read {}: {e}", results.display()))?;
            Ok(table::render(&table::Results::parse(&text)))
        }
        Command::Rss { pid, label } => rss(pid, &label),
        Command::ServeTarget { port } => {
            runtime(true)?.block_on(target::serve(port))?;
            Ok(String::new())
        }
        Command::Watch {
            pid,
            warmup,
            seconds,
            label,
        } => {
            let w = watch::watch(pid, Duration::from_secs(warmup), seconds)?;
            Ok(watch::lines(&label, &w))
        }
        Command::IngestConfig {
            agents,
            listen,
            data_dir,
            postgres_url,
        } => Ok(ingest::config(
            agents,
            &listen,
            &data_dir,
            postgres_url.as_deref(),
        )),
        Command::IngestLoad {
            url,
            agents,
            checks,
            batch,
            batches,
            backlog_agents,
            backlog_hours,
            light,
            only,
            collector_pid,
            anchor_dir,
            anchor_postgres,
        } => {
            let anchor = match (&anchor_dir, &anchor_postgres) {
                (Some(dir), _) => Some(ingest::Anchor::Sqlite(dir)),
                (None, Some(url)) => Some(ingest::Anchor::Postgres(url)),
                (None, None) => None,
            };
            runtime(false)?.block_on(ingest::run(ingest::LoadPlan {
                url: &url,
                agents,
                checks,
                size: batch,
                batches,
                backlog_agents,
                backlog_age: jiff::SignedDuration::from_hours(backlog_hours),
                light,
                only,
                collector_pid,
                anchor,
            }))
        }
        other => runtime(current_thread)?.block_on(measure(other, close)),
    }
}

fn runtime(current_thread: bool) -> Result<tokio::runtime::Runtime, BoxError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    Ok(builder.enable_all().build()?)
}

async fn measure(command: Command, close: bool) -> Result<String, BoxError> {
    let (label, run) = match command {
        Command::EngineCpu {
            kind,
            target,
            count,
            rate,
            label,
        } => {
            let probe = engine::ready_probe(kind, &target, close).await?;
            (label, engine::paced_cpu(probe, count, rate).await?)
        }
        Command::ExporterCpu {
            pid,
            url,
            expect,
            count,
            rate,
            label,
        } => {
            let run = drive::exporter_cpu(pid, &url, expect.as_deref(), count, rate).await?;
            (label, run)
        }
        Command::MaxRate {
            url,
            concurrency,
            seconds,
            rounds,
            wrk,
        } => return max_rate(&url, concurrency, seconds, rounds, &wrk, close).await,
        Command::HostCpu { count, label } => (label, engine::host_cpu(count).await?),
        Command::Rss { .. }
        | Command::ServeTarget { .. }
        | Command::Watch { .. }
        | Command::FreePort
        | Command::Table { .. }
        | Command::IngestConfig { .. }
        | Command::IngestLoad { .. } => {
            return Err("not a measurement".into());
        }
    };
    Ok(lines(&label, &run))
}

fn lines(label: &str, run: &CpuRun) -> String {
    format!(
        "{label}.cpu_seconds={:.6}\n{label}.ok={}\n{label}.failed={}\n{label}.wall_seconds={:.6}\n",
        run.cpu.as_secs_f64(),
        run.tally.ok,
        run.tally.failed,
        run.tally.wall.as_secs_f64()
    )
}

/// Alternates engine and wrk rounds so both sides see the same background load, and
/// reports each side's median round.
async fn max_rate(
    url: &str,
    concurrency: usize,
    seconds: u64,
    rounds: u32,
    wrk_binary: &str,
    close: bool,
) -> Result<String, BoxError> {
    if rounds == 0 || seconds == 0 {
        return Err("--rounds and --seconds must be at least 1".into());
    }
    let probe = engine::ready_probe(Kind::Http, url, close).await?;
    let mut out = format!("engine_rate.concurrency={concurrency}\nengine_rate.rounds={rounds}\n");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let run =
            engine::max_rate(probe.clone(), concurrency, Duration::from_secs(seconds)).await?;
        out += &lines(&format!("engine_rate.round{round}"), &run);
        ours.push(run);
        let (bin, u) = (wrk_binary.to_string(), url.to_string());
        let w =
            tokio::task::spawn_blocking(move || wrk::run(&bin, &u, concurrency, seconds)).await??;
        out += &wrk_lines(&format!("wrk.round{round}"), &w);
        theirs.push(w);
    }
    let rate = |r: &CpuRun| r.tally.ok as f64 / r.tally.wall.as_secs_f64().max(1e-9);
    ours.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    theirs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    let mid = (rounds / 2) as usize;
    out += &lines("engine_rate", &ours[mid]);
    out += &wrk_lines("wrk", &theirs[mid]);
    Ok(out)
}

fn wrk_lines(label: &str, w: &wrk::WrkRun) -> String {
    format!(
        "{label}.per_second={:.2}\n{label}.requests={}\n{label}.errors={}\n{label}.cpu_seconds={:.6}\n",
        w.per_second,
        w.requests,
        w.errors,
        w.cpu.as_secs_f64()
    )
}

fn rss(pid: u32, label: &str) -> Result<String, BoxError> {
    let rss = cpu::process_rss(pid)?;
    let hwm = cpu::process_hwm(pid)?;
    Ok(format!(
        "{label}.rss_bytes={rss}\n{label}.hwm_bytes={hwm}\n"
    ))
}
