//! Ingest load: `ingest-config` writes a collector configuration with `agents` agents and
//! real tokens; `ingest-load` plays those agents against a running collector (zstd JSON
//! batches of stored-form measurements, bearer tokens, strictly increasing seqs, resent
//! on 5xx/429 like the real transport) and prints acked measurements per second and batch
//! latency p50/p99. The anchor is the same number of rows appended plainly, one transaction
//! per batch: to SQLite (`sqlite_append`: WAL, `synchronous=FULL`) when the collector stores
//! in SQLite, to PostgreSQL (`postgres_append`: binary COPY into an unindexed table, the
//! server's default durable commit) when it stores in PostgreSQL.
//!
//! Invariants: every measurement key `(agent, check, ts)` is unique within a run, so the
//! collector stores each one (nothing is a duplicate); bodies are built and compressed
//! before the clock starts, so the figures are the collector's, not the generator's
//! (the generator's CPU share is printed too). Loopback only.

use std::path::Path;
use std::time::{Duration, Instant};

use attest_config::wire::{Batch, FailureReason, Measurement, PROTOCOL_VERSION, Phase};
use jiff::Timestamp;

use crate::BoxError;

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
    zstd: Vec<u8>,
}

/// The batches of agent `a`: `batches` of `size` measurements over `checks` checks at a
/// 10 s interval, in time order from `base` (so every key is unique).
fn bodies(a: usize, checks: usize, size: usize, batches: usize, base: Timestamp) -> Vec<Body> {
    let name = agent(a);
    let mut n: u64 = 0;
    (0..batches)
        .map(|b| {
            let measurements: Vec<Measurement> = (0..size)
                .map(|_| {
                    let (tick, check) = (n / checks as u64, n % checks as u64);
                    n += 1;
                    let ts = base
                        .checked_add(jiff::SignedDuration::from_millis(
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
                })
                .collect();
            let batch = Batch {
                version: PROTOCOL_VERSION,
                agent: name.clone(),
                seq: b as u64 + 1,
                sent_at: base,
                measurements,
                gaps: Vec::new(),
                spool: None,
            };
            let json = serde_json::to_vec(&batch).expect("a batch serializes");
            Body {
                seq: batch.seq,
                measurements: size,
                zstd: zstd::bulk::compress(&json, 3).expect("zstd"),
            }
        })
        .collect()
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
                Ok(r) => return Err(format!("seq {}: HTTP {}", body.seq, r.status())),
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

/// What one load run asks for.
pub struct LoadPlan<'a> {
    pub url: &'a str,
    pub agents: usize,
    pub checks: usize,
    pub size: usize,
    pub batches: usize,
    /// The collector's pid, for its CPU per measurement.
    pub collector_pid: Option<u32>,
    /// The plain append run first with the same row count, if any.
    pub anchor: Option<Anchor<'a>>,
}

/// Where the anchor appends.
pub enum Anchor<'a> {
    /// A SQLite database in this directory.
    Sqlite(&'a Path),
    /// A table in the PostgreSQL database at this URL (not the collector's database).
    Postgres(&'a str),
}

/// The anchor (when asked), then the load; one report with the ratio.
pub async fn run(plan: LoadPlan<'_>) -> Result<String, BoxError> {
    let rows = plan.agents * plan.size * plan.batches;
    let mut out = String::new();
    let anchor = match plan.anchor {
        Some(Anchor::Sqlite(dir)) => Some(sqlite_append(dir, rows, plan.size)?),
        Some(Anchor::Postgres(url)) => Some(postgres_append(url, rows, plan.size).await?),
        None => None,
    };
    let anchor = anchor.map(|(text, rate)| {
        out += &text;
        rate
    });
    let cpu0 = cpu_seconds_of(plan.collector_pid);
    let (text, rate, acked) =
        load(plan.url, plan.agents, plan.checks, plan.size, plan.batches).await?;
    out += &text;
    if plan.collector_pid.is_some() {
        let cpu = cpu_seconds_of(plan.collector_pid) - cpu0;
        out += &format!(
            "ingest.collector_cpu_s={cpu:.2}\ningest.collector_cpu_us_per_measurement={:.2}\n",
            cpu * 1e6 / acked.max(1) as f64
        );
    }
    if let Some(a) = anchor {
        out += &format!("ingest.ratio_to_anchor={:.3}\n", rate / a);
    }
    Ok(out)
}

/// Plays `agents` agents, each sending `batches` batches of `size` measurements over
/// `checks` checks, concurrently, against `url` (the collector's `/api/v1/ingest`).
async fn load(
    url: &str,
    agents: usize,
    checks: usize,
    size: usize,
    batches: usize,
) -> Result<(String, f64, u64), BoxError> {
    let base = wall_now()
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .map_err(|e| e.to_string())?;
    let prepared: Vec<Vec<Body>> = (0..agents)
        .map(|a| bodies(a, checks, size, batches, base))
        .collect();
    let bytes: usize = prepared.iter().flatten().map(|b| b.zstd.len()).sum();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(agents)
        .build()?;
    let cpu0 = cpu_seconds_self();
    let started = Instant::now();
    let tasks: Vec<_> = prepared
        .into_iter()
        .enumerate()
        .map(|(a, b)| tokio::spawn(send_all(client.clone(), url.to_owned(), token(a), b)))
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
        "ingest.acked_per_s={:.0}\ningest.acked={acked}\ningest.wall_s={wall:.2}\n\
         ingest.batch_p50_ms={:.1}\ningest.batch_p99_ms={:.1}\n\
         ingest.bytes_per_measurement_on_wire={:.1}\ningest.generator_cpu_s={cpu:.2}\n",
        rate,
        pct(0.5) * 1e3,
        pct(0.99) * 1e3,
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
