//! Ingest load: `ingest-config` writes a collector configuration with `agents` agents and
//! real tokens; `ingest-load` plays those agents against a running collector (zstd JSON
//! batches, bearer tokens, strictly increasing seqs, resent on 5xx/429 like the real
//! transport) and prints acked measurements per second and batch latency p50/p99 of each
//! load: **live** (agent-shaped measurements, see `shape`, the newest probe now),
//! **backlog** (agent-shaped, as many measurements from more agents at once, the newest
//! hours old: a fleet draining its spools after a collector outage) and, when asked, the
//! old **light** generator (two phases per probe, nothing else) as a second line. Before
//! each load the same number of rows is appended plainly, one transaction per batch (the
//! anchor, in the same minute as the load it judges): to SQLite (`sqlite_append`: WAL,
//! `synchronous=FULL`) when the collector stores in SQLite, to PostgreSQL
//! (`postgres_append`: binary COPY into an unindexed table, the server's default durable
//! commit) when it stores in PostgreSQL.
//!
//! Invariants: every measurement key `(agent, check, ts)` is unique within a run (each load
//! has its own agents), so the collector stores each one (nothing is a duplicate); bodies
//! are built and compressed before the clock starts, so the figures are the collector's,
//! not the generator's (the generator's CPU share is printed too). Loopback only.

use std::path::Path;
use std::time::{Duration, Instant};

use attest_config::wire::{
    Batch, FailureReason, Measurement, PROTOCOL_VERSION_UNSIGNED, Phase, SpoolStatus,
};
use jiff::{SignedDuration, Timestamp};

use crate::BoxError;
use crate::shape::{self, Fixture};

/// The generator's one wall-clock read: the collector checks measurement times against its
/// own clock, so the load must be near it.
#[allow(clippy::disallowed_methods)]
fn wall_now() -> Timestamp {
    Timestamp::now()
}

/// The token of load agent `i` (the same in the config and the generator).
fn token(i: usize) -> String {
    format!("load-token-{i:04}-0123456789abcdef")
}

fn agent(i: usize) -> String {
    format!("load-{i:04}")
}

/// A collector configuration for `agents` load agents; the store is SQLite in `data_dir`,
/// or the PostgreSQL database at `postgres_url`.
pub fn config(agents: usize, listen: &str, data_dir: &Path, postgres_url: Option<&str>) -> String {
    let backend = match postgres_url {
        Some(url) => format!("backend = \"postgres\"\npostgres_url = {url:?}\n"),
        None => "backend = \"sqlite\"\n".to_string(),
    };
    let mut toml = format!(
        "[server]\nlisten = \"{listen}\"\n[storage]\n{backend}data_dir = {:?}\n\
         [ingest]\nmax_batches_per_second = 100000\n",
        data_dir.display().to_string()
    );
    for i in 0..agents {
        toml += &format!(
            "[[agent]]\nid = \"{}\"\ntoken = \"{}\"\n",
            agent(i),
            token(i)
        );
    }
    toml
}

/// One prepared batch: its seq and zstd body.
struct Body {
    seq: u64,
    measurements: usize,
    json: usize,
    zstd: Vec<u8>,
}

/// What the generator sends.
#[derive(Clone, Copy)]
pub enum Shape<'a> {
    /// Recorded agent measurements, varied (see `shape`).
    Agent(&'a Fixture),
    /// The old light generator: two phases, a duration, 1 in 1,000 a timeout; nothing else.
    Light,
}

/// One load: which agents send, how old their measurements are, what they send.
#[derive(Clone, Copy)]
pub struct Mode<'a> {
    /// Printed before every key of this load (`live`, `backlog`, `light`).
    pub name: &'a str,
    /// Agents `first..first + agents` of the configuration.
    pub first: usize,
    pub agents: usize,
    pub batches: usize,
    /// How far behind the collector's clock the newest measurement is (0: live).
    pub age: SignedDuration,
    pub shape: Shape<'a>,
}

/// Probe interval of every generated check.
const INTERVAL: SignedDuration = SignedDuration::from_secs(10);

/// The batches of configured agent `a` in `mode`: `batches` of `size` measurements over
/// `checks` checks at a 10 s interval, in time order (so every key is unique), the newest
/// `mode.age` before `now`.
fn bodies(
    mode: &Mode<'_>,
    a: usize,
    checks: usize,
    size: usize,
    now: Timestamp,
) -> Result<Vec<Body>, BoxError> {
    let name = agent(a);
    let ticks = (mode.batches * size).div_ceil(checks) as i64;
    let base = now
        .checked_sub(mode.age)?
        .checked_sub(INTERVAL * ticks.max(1) as i32)?;
    let mut n: u64 = 0;
    let total = (mode.batches * size) as u64;
    (0..mode.batches)
        .map(|b| {
            let measurements: Vec<Measurement> = (0..size)
                .map(|_| {
                    let (tick, check) = (n / checks as u64, (n % checks as u64) as usize);
                    n += 1;
                    match mode.shape {
                        Shape::Agent(f) => {
                            let ts = shape::probe_ts(base, INTERVAL, check, tick);
                            f.measurement(a, check, tick, ts)
                        }
                        Shape::Light => light(base, n, tick, check),
                    }
                })
                .collect();
            let light = matches!(mode.shape, Shape::Light);
            let batch = Batch {
                version: PROTOCOL_VERSION_UNSIGNED,
                agent: name.clone(),
                seq: b as u64 + 1,
                // The light generator's historical quirk (an agent an hour behind) is kept
                // so its line stays comparable with earlier runs.
                sent_at: if light { base } else { now },
                measurements,
                gaps: Vec::new(),
                spool: (!light).then(|| SpoolStatus {
                    depth_measurements: total - n,
                    bytes: (total - n) * 180,
                    dropped_total: 0,
                    corrupt_records_total: 0,
                }),
                evidence: None,
            };
            let json = serde_json::to_vec(&batch)?;
            Ok(Body {
                seq: batch.seq,
                measurements: size,
                json: json.len(),
                zstd: zstd::bulk::compress(&json, 3)?,
            })
        })
        .collect()
}

/// A measurement of the light generator (n counts from 1).
fn light(base: Timestamp, n: u64, tick: u64, check: usize) -> Measurement {
    let ts = base
        .checked_add(SignedDuration::from_millis(
            tick as i64 * 10_000 + check as i64,
        ))
        .unwrap_or(base);
    let ok = !(n * 2_654_435_761).is_multiple_of(1000);
    let mut m = Measurement::new(format!("chk-{check:04}"), ts, ok);
    m.duration_seconds = Some(0.01 + (n % 50) as f64 * 0.002);
    if !ok {
        m.reason = Some(FailureReason::Timeout);
    }
    m.phases.insert(Phase::Connect, 0.001);
    m.phases.insert(Phase::Processing, 0.005);
    m
}

/// Sends every body of one agent in order, each until acked; returns batch latencies.
async fn send_all(
    client: reqwest::Client,
    url: String,
    token: String,
    bodies: Vec<Body>,
) -> Result<(Vec<Duration>, u64), String> {
    let mut lat = Vec::with_capacity(bodies.len());
    let mut acked = 0u64;
    for body in bodies {
        let started = Instant::now();
        for attempt in 0.. {
            let resp = client
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .header("content-encoding", "zstd")
                .body(body.zstd.clone())
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => break,
                Ok(r) if (r.status().is_server_error() || r.status() == 429) && attempt < 50 => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    return Err(format!("seq {}: HTTP {status}: {text}", body.seq));
                }
                Err(e) if attempt < 50 => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(format!("seq {}: {e}", body.seq)),
            }
        }
        lat.push(started.elapsed());
        acked += body.measurements as u64;
    }
    Ok((lat, acked))
}

fn cpu_seconds_self() -> f64 {
    crate::cpu::self_cpu().map_or(0.0, |d| d.as_secs_f64())
}

fn cpu_seconds_of(pid: Option<u32>) -> f64 {
    pid.and_then(|p| crate::cpu::process_cpu(p).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What one run asks for.
pub struct LoadPlan<'a> {
    pub url: &'a str,
    /// Agents of the live load; the backlog's and the light load's follow them in the
    /// configuration (`ingest-config --agents` needs them all).
    pub agents: usize,
    pub checks: usize,
    pub size: usize,
    /// Batches per agent of the live load; the backlog sends as many measurements in all.
    pub batches: usize,
    /// Agents draining their spools at once in the backlog load.
    pub backlog_agents: usize,
    /// Age of the backlog's newest measurement.
    pub backlog_age: SignedDuration,
    /// Whether to run the light generator too (a second line).
    pub light: bool,
    /// Only these loads, by name (all when empty).
    pub only: Vec<String>,
    /// The collector's pid, for its CPU per measurement.
    pub collector_pid: Option<u32>,
    /// The plain append run before each load with the same row count, if any.
    pub anchor: Option<Anchor<'a>>,
}

/// Where the anchor appends.
pub enum Anchor<'a> {
    /// A SQLite database in this directory.
    Sqlite(&'a Path),
    /// A table in the PostgreSQL database at this URL (not the collector's database).
    Postgres(&'a str),
}

/// The ratio every agent-shaped load is judged by (issue 20).
const TARGET_RATIO: f64 = 0.35;

/// Each load (live, backlog, then light when asked), each right after its own anchor run
/// so the two see the same background load; one report, every figure beside its anchor.
pub async fn run(plan: LoadPlan<'_>) -> Result<String, BoxError> {
    let fixture = Fixture::load()?;
    let rows = plan.agents * plan.size * plan.batches;
    let backlog_batches = rows.div_ceil(plan.backlog_agents.max(1) * plan.size);
    let mut modes = vec![
        Mode {
            name: "live",
            first: 0,
            agents: plan.agents,
            batches: plan.batches,
            age: SignedDuration::ZERO,
            shape: Shape::Agent(&fixture),
        },
        Mode {
            name: "backlog",
            first: plan.agents,
            agents: plan.backlog_agents,
            batches: backlog_batches,
            age: plan.backlog_age,
            shape: Shape::Agent(&fixture),
        },
    ];
    if plan.light {
        modes.push(Mode {
            name: "light",
            first: plan.agents + plan.backlog_agents,
            agents: plan.agents,
            batches: plan.batches,
            age: SignedDuration::from_hours(1),
            shape: Shape::Light,
        });
    }
    if !plan.only.is_empty() {
        modes.retain(|m| plan.only.iter().any(|o| o == m.name));
    }
    let mut out = format!(
        "fixture.measurements={}\nshape.checks_per_agent={}\nshape.batch={}\n",
        shape::describe(&fixture)
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(","),
        plan.checks,
        plan.size
    );
    let mut acked_total = 0;
    for mode in &modes {
        let rows = mode.agents * plan.size * mode.batches;
        let p = mode.name;
        let anchor = match plan.anchor {
            Some(Anchor::Sqlite(dir)) => Some(sqlite_append(dir, rows, plan.size)?),
            Some(Anchor::Postgres(url)) => Some(postgres_append(url, rows, plan.size).await?),
            None => None,
        };
        if let Some((text, _)) = &anchor {
            out += &prefixed(p, text);
        }
        let cpu0 = cpu_seconds_of(plan.collector_pid);
        let (text, rate, acked) = load(plan.url, mode, plan.checks, plan.size).await?;
        acked_total += acked;
        out += &prefixed(p, &text);
        if plan.collector_pid.is_some() {
            let cpu = cpu_seconds_of(plan.collector_pid) - cpu0;
            out += &format!(
                "{p}.collector_cpu_s={cpu:.2}\n{p}.collector_cpu_us_per_measurement={:.2}\n",
                cpu * 1e6 / acked.max(1) as f64
            );
        }
        if let Some((_, a)) = anchor {
            out += &format!("{p}.ratio_to_anchor={:.3}\n", rate / a);
            if !matches!(mode.shape, Shape::Light) {
                out += &format!("{p}.target.ratio_to_anchor={TARGET_RATIO}\n");
            }
        }
    }
    out += &format!("ingest.acked={acked_total}\n");
    Ok(out)
}

fn prefixed(prefix: &str, text: &str) -> String {
    text.lines().map(|l| format!("{prefix}.{l}\n")).collect()
}

/// Plays `mode.agents` agents, each sending `mode.batches` batches of `size` measurements
/// over `checks` checks, concurrently, against `url` (the collector's `/api/v1/ingest`).
async fn load(
    url: &str,
    mode: &Mode<'_>,
    checks: usize,
    size: usize,
) -> Result<(String, f64, u64), BoxError> {
    let now = wall_now();
    let prepared: Vec<Vec<Body>> = (mode.first..mode.first + mode.agents)
        .map(|a| bodies(mode, a, checks, size, now))
        .collect::<Result<_, _>>()?;
    let bytes: usize = prepared.iter().flatten().map(|b| b.zstd.len()).sum();
    let json: usize = prepared.iter().flatten().map(|b| b.json).sum();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(mode.agents)
        .build()?;
    let cpu0 = cpu_seconds_self();
    let started = Instant::now();
    let tasks: Vec<_> = prepared
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let token = token(mode.first + i);
            tokio::spawn(send_all(client.clone(), url.to_owned(), token, b))
        })
        .collect();
    let mut lat = Vec::new();
    let mut acked = 0;
    for t in tasks {
        let (l, n) = t.await.map_err(|e| e.to_string())??;
        lat.extend(l);
        acked += n;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds_self() - cpu0;
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64();
    let rate = acked as f64 / wall;
    let text = format!(
        "acked_per_s={:.0}\nacked={acked}\nagents={}\nage_s={}\nwall_s={wall:.2}\n\
         batch_p50_ms={:.1}\nbatch_p99_ms={:.1}\n\
         json_bytes_per_measurement={:.1}\nbytes_per_measurement_on_wire={:.1}\n\
         generator_cpu_s={cpu:.2}\n",
        rate,
        mode.agents,
        mode.age.as_secs(),
        pct(0.5) * 1e3,
        pct(0.99) * 1e3,
        json as f64 / acked.max(1) as f64,
        bytes as f64 / acked.max(1) as f64,
    );
    Ok((text, rate, acked))
}

/// The anchor: `rows` rows appended to a plain table in `dir` (WAL, `synchronous=FULL`,
/// `size` rows per transaction); prints rows/s and bytes per row.
pub fn sqlite_append(dir: &Path, rows: usize, size: usize) -> Result<(String, f64), BoxError> {
    let path = dir.join("anchor.sqlite");
    let _ = std::fs::remove_file(&path);
    let conn = rusqlite::Connection::open(&path)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         CREATE TABLE m (ts INTEGER NOT NULL, series INTEGER NOT NULL, ok INTEGER NOT NULL,
                         duration REAL);",
    )?;
    let mut c = conn;
    let started = Instant::now();
    let mut n = 0usize;
    while n < rows {
        let tx = c.transaction()?;
        {
            let mut stmt = tx.prepare_cached("INSERT INTO m VALUES (?1, ?2, ?3, ?4)")?;
            for i in n..(n + size).min(rows) {
                stmt.execute(rusqlite::params![
                    1_790_000_000_000_000_000i64 + i as i64 * 10_000_000,
                    (i % 1000) as i64,
                    i64::from(i % 1000 != 0),
                    0.01 + (i % 50) as f64 * 0.002
                ])?;
            }
        }
        tx.commit()?;
        n += size;
    }
    let wall = started.elapsed().as_secs_f64();
    drop(c);
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len())
        + std::fs::metadata(dir.join("anchor.sqlite-wal")).map_or(0, |m| m.len());
    let rate = rows as f64 / wall;
    let text = format!(
        "anchor.backend=sqlite\nanchor.rows_per_s={rate:.0}\nanchor.bytes_per_row={:.1}\n",
        bytes as f64 / rows as f64
    );
    Ok((text, rate))
}

/// The PostgreSQL anchor: `rows` rows copied into a plain, unindexed table `anchor` of the
/// database at `url` (binary COPY, `size` rows per transaction, durable commits); prints
/// rows/s and bytes per row (the table's size on disk).
pub async fn postgres_append(
    url: &str,
    rows: usize,
    size: usize,
) -> Result<(String, f64), BoxError> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};

    let (mut client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    client
        .batch_execute(
            "DROP TABLE IF EXISTS anchor;
             CREATE TABLE anchor (ts BIGINT NOT NULL, series BIGINT NOT NULL,
                                  ok BOOLEAN NOT NULL, duration DOUBLE PRECISION);",
        )
        .await?;
    let types = [Type::INT8, Type::INT8, Type::BOOL, Type::FLOAT8];
    let started = Instant::now();
    let mut n = 0usize;
    while n < rows {
        let tx = client.transaction().await?;
        let sink = tx
            .copy_in("COPY anchor (ts, series, ok, duration) FROM STDIN BINARY")
            .await?;
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
        for i in n..(n + size).min(rows) {
            let row: [&(dyn ToSql + Sync); 4] = [
                &(1_790_000_000_000_000_000i64 + i as i64 * 10_000_000),
                &((i % 1000) as i64),
                &(i % 1000 != 0),
                &(0.01 + (i % 50) as f64 * 0.002),
            ];
            writer.as_mut().write(&row).await?;
        }
        writer.finish().await?;
        tx.commit().await?;
        n += size;
    }
    let wall = started.elapsed().as_secs_f64();
    let bytes: i64 = client
        .query_one("SELECT pg_total_relation_size('anchor')", &[])
        .await?
        .try_get(0)?;
    client.batch_execute("DROP TABLE anchor").await?;
    drop(client);
    let _ = task.await;
    let rate = rows as f64 / wall;
    let text = format!(
        "anchor.backend=postgres\nanchor.rows_per_s={rate:.0}\nanchor.bytes_per_row={:.1}\n",
        bytes as f64 / rows as f64
    );
    Ok((text, rate))
}
