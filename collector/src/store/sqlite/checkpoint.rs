//! WAL checkpoints off the commit path: a thread of the store, with its own connection,
//! copies committed WAL frames into the database file while ingest goes on appending to the
//! WAL. With SQLite's automatic checkpoint the commit that crossed 1,000 WAL pages did that
//! copy (and its fsync) itself, holding the writer: 4–8 % of the collector's CPU under load,
//! all of it while every other upload waited for the writer.
//!
//! Invariants:
//! - Checkpoints are `PASSIVE`: they never block the writer or a reader, and never change
//!   what a committed transaction holds (durability comes from the WAL's sync at commit).
//! - The writer still checkpoints by itself past [`WRITER_AUTOCHECKPOINT_PAGES`], so the WAL
//!   stays bounded if this thread cannot keep up or could not open its connection.
//! - The thread runs only after commits ([`Checkpointer::committed`]), at most every
//!   [`EVERY`], so an idle collector does nothing; it stops and is joined when the store is
//!   dropped.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::lock;

/// The writer's own automatic checkpoint, a bound the background thread normally keeps the
/// WAL far below (pages of 4 KiB: 40 MiB).
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// The shortest time between two background checkpoints.
const EVERY: Duration = Duration::from_millis(500);

#[derive(Default)]
struct State {
    /// Commits since the last checkpoint started.
    dirty: bool,
    stop: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// The checkpoint thread of one store.
pub(super) struct Checkpointer {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread for the database at `path`. When the thread cannot be started the
    /// writer's own automatic checkpoint does the work.
    pub(super) fn start(path: &Path) -> Checkpointer {
        let shared: Shared = Arc::default();
        let thread = std::thread::Builder::new()
            .name("attest-sqlite-checkpoint".into())
            .spawn({
                let (shared, path) = (shared.clone(), path.to_path_buf());
                move || run(&shared, &path)
            })
            .map_err(|e| tracing::warn!("cannot start the SQLite checkpoint thread: {e}"))
            .ok();
        Checkpointer { shared, thread }
    }

    /// Tells the thread a transaction committed.
    pub(super) fn committed(&self) {
        let (state, wake) = &*self.shared;
        let mut s = lock(state);
        if !s.dirty {
            s.dirty = true;
            wake.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (state, wake) = &*self.shared;
        lock(state).stop = true;
        wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open(path: &Path) -> Option<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| {
            tracing::warn!(
                "the SQLite checkpoint thread cannot open {}: {e}",
                path.display()
            );
        })
        .ok()?;
    conn.busy_timeout(Duration::from_secs(1)).ok()?;
    // The database file is synced after the frames are copied, as the writer's own
    // checkpoint does with synchronous=FULL.
    conn.execute_batch("PRAGMA synchronous = FULL;").ok()?;
    Some(conn)
}

fn run(shared: &Shared, path: &Path) {
    let (state, wake) = &**shared;
    let mut conn: Option<Connection> = None;
    loop {
        {
            let mut s = lock(state);
            while !s.dirty && !s.stop {
                s = wake
                    .wait(s)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if s.stop {
                return;
            }
            s.dirty = false;
        }
        if conn.is_none() {
            conn = open(path);
        }
        if let Some(c) = &conn
            && let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            // A full disk or a lock held elsewhere: the next commit tries again.
            tracing::debug!("background WAL checkpoint: {e}");
        }
        // Coalesce: commits during this pause share the next checkpoint.
        let s = lock(state);
        let _ = wake
            .wait_timeout_while(s, EVERY, |s| !s.stop)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}
