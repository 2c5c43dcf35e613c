//! The change journal on PostgreSQL (the in-memory [`ChangeJournal`] SQLite keeps of its own
//! commits, `Store::change_mark`/`changed_since`), fed from the database, because with
//! several collectors on one database another one's commits change minutes too: every
//! commit that wrote rollups or gaps logs one row in `recent_changes` (its agent and the
//! minutes it wrote: a few dozen bytes per batch, not one entry per measurement), and
//! retention one row for every agent. [`catch_up`], run at every `change_mark`, reads the
//! rows logged since the last one and records them, per check of the row's agent, into
//! the process's journal (at most every [`CATCH_UP_EVERY`]); the store's own commits are
//! recorded at once, as in SQLite.
//!
//! Invariants:
//! - Rows are ordered like the late-write log (`late.rs`): a logging commit takes the shared
//!   advisory lock as its last step and draws its seq after; [`catch_up`] takes it
//!   exclusively, so it never skips a seq that commits later.
//! - A row answers for every check its agent has (conservative, never a missed change).
//! - Rows logged [`KEEP_MINUTES`] before the newest are pruned by [`catch_up`] with the floor
//!   (`recent_changes_floor` in `meta`) raised past them; a process that read only rows
//!   below the floor records a change of everything (it recomputes once).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, Transaction};

use super::TxError;
use super::late::LOCK;
use crate::store::journal::ChangeJournal;

/// Rows logged this many minutes before the newest row are pruned: every collector's
/// refresh loop takes a mark far more often.
const KEEP_MINUTES: i64 = 10;

/// How often at most [`catch_up`] reads the log: `change_mark` is taken for every service
/// a refresh evaluates, and reading the log each time would cost a locked transaction per
/// service. Skipping a read never hides a change (a commit recorded later gets a mark
/// above every mark handed out before); it only delays noticing another collector's
/// commits by this much.
const CATCH_UP_EVERY: Duration = Duration::from_secs(1);

/// One process's view of the database's change log.
#[derive(Debug)]
pub(super) struct Feed {
    pub(super) journal: ChangeJournal,
    /// The last `recent_changes.seq` recorded into `journal`.
    applied: i64,
    /// When the log was last read.
    read_at: Option<Instant>,
    /// [`CATCH_UP_EVERY`]; tests read at every mark.
    pub(super) every: Duration,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            journal: ChangeJournal::default(),
            applied: 0,
            read_at: None,
            every: CATCH_UP_EVERY,
        }
    }
}

impl Feed {
    /// Whether the log is due to be read again.
    pub(super) fn due(&self) -> bool {
        self.read_at.is_none_or(|at| at.elapsed() >= self.every)
    }
}

/// Logs a commit's writes of the minutes `[from, to)` for `agent`, the last statements
/// before its commit (after the late-write log's, under the same lock).
pub(super) async fn log(
    tx: &Transaction<'_>,
    agent: i64,
    (from, to): (i64, i64),
    now_minute: i64,
) -> Result<(), TxError> {
    tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&LOCK])
        .await?;
    tx.execute(
        "INSERT INTO recent_changes (agent_id, from_minute, to_minute, logged_minute)
         VALUES ($1, $2, $3, $4)",
        &[&agent, &from, &to, &now_minute],
    )
    .await?;
    Ok(())
}

/// Logs a change of every agent's minutes `[from, to)` (retention), in its own
/// transaction, as logged at the newest minute logged so far (`now_minute` when none).
pub(super) async fn log_all(
    client: &mut Client,
    (from, to): (i64, i64),
    now_minute: i64,
) -> Result<(), TxError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&LOCK])
        .await?;
    tx.execute(
        "INSERT INTO recent_changes (agent_id, from_minute, to_minute, logged_minute)
         VALUES (NULL, $1, $2,
                 coalesce((SELECT max(logged_minute) FROM recent_changes), $3))",
        &[&from, &to, &now_minute],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A logged change: its agent (`None`: every agent) and minutes.
type Change = (Option<i64>, i64, i64);

/// Reads the rows logged since `applied` (waiting for the logging commits in flight) and
/// prunes old ones; answers the new rows (or `None`: rows this process had not read were
/// pruned) and the last seq read.
async fn read_since(
    client: &mut Client,
    applied: i64,
) -> Result<(Option<BTreeSet<Change>>, i64), TxError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    let floor: i64 = tx
        .query_one(
            "SELECT value FROM meta WHERE key = 'recent_changes_floor'",
            &[],
        )
        .await?
        .try_get(0)?;
    let rows = tx
        .query(
            "SELECT seq, agent_id, from_minute, to_minute FROM recent_changes
             WHERE seq > $1 ORDER BY seq",
            &[&applied],
        )
        .await?;
    let mut last = applied.max(floor);
    let mut changes = BTreeSet::new();
    for r in &rows {
        last = last.max(r.try_get(0)?);
        changes.insert((r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
    }
    let pruned: Option<i64> = tx
        .query_one(
            "SELECT max(seq) FROM recent_changes
             WHERE logged_minute < (SELECT max(logged_minute) FROM recent_changes) - $1",
            &[&KEEP_MINUTES],
        )
        .await?
        .try_get(0)?;
    if let Some(pruned) = pruned {
        tx.execute("DELETE FROM recent_changes WHERE seq <= $1", &[&pruned])
            .await?;
        tx.execute(
            "UPDATE meta SET value = greatest(value, $1) WHERE key = 'recent_changes_floor'",
            &[&pruned],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(((applied >= floor).then_some(changes), last))
}

/// Records into `feed` every change logged since it last caught up.
pub(super) async fn catch_up(
    client: &mut Client,
    feed: &std::sync::Mutex<Feed>,
) -> Result<(), TxError> {
    let applied = {
        let mut f = lock(feed);
        f.read_at = Some(Instant::now());
        f.applied
    };
    let (changes, last) = read_since(client, applied).await?;
    let Some(changes) = changes else {
        let mut f = lock(feed);
        f.journal.record_all(i64::MIN, i64::MAX);
        f.applied = f.applied.max(last);
        return Ok(());
    };
    let agents: Vec<i64> = changes.iter().filter_map(|c| c.0).collect();
    let mut checks: HashMap<i64, Vec<String>> = HashMap::new();
    if !agents.is_empty() {
        for r in client
            .query(
                "SELECT agent_id, check_id FROM series WHERE agent_id = ANY($1)",
                &[&agents],
            )
            .await?
        {
            checks.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
        }
    }
    let mut f = lock(feed);
    for (agent, from, to) in changes {
        match agent {
            None => f.journal.record_all(from, to),
            Some(a) => {
                for check in checks.get(&a).into_iter().flatten() {
                    f.journal.record(check, from, to);
                }
            }
        }
    }
    f.applied = f.applied.max(last);
    Ok(())
}

fn lock(feed: &std::sync::Mutex<Feed>) -> std::sync::MutexGuard<'_, Feed> {
    feed.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
