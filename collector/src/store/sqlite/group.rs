//! Group commit: concurrent `commit_batch` calls share one SQLite transaction, so that N
//! agents uploading at once cost one durable commit (one WAL sync), not N in a row.
//!
//! How: a caller queues its batch, then takes the writer lock. Whoever holds the lock
//! commits every batch queued so far in one transaction and posts each outcome before it
//! lets go; a caller that gets the lock and finds its outcome posted returns it.
//!
//! Invariants:
//! - A caller returns only after the transaction holding its batch committed (or failed):
//!   an acknowledgement still means durable.
//! - Each queued batch is committed by exactly one group and its outcome taken by exactly
//!   its caller (tickets are unique; an outcome is removed when taken).
//! - Outcomes are posted before the writer lock is released, so a caller that acquires
//!   the lock either finds its outcome or finds its batch still queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::lock;
use crate::store::{CommitOutcome, IngestBatch, StoreError};

pub(super) type Outcome = Result<CommitOutcome, StoreError>;

#[derive(Default)]
pub(super) struct Queue {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    waiting: Vec<(u64, Arc<IngestBatch>)>,
    done: HashMap<u64, Outcome>,
}

impl Queue {
    /// Queues `batch`; the ticket names its outcome.
    pub(super) fn enqueue(&self, batch: Arc<IngestBatch>) -> u64 {
        let mut q = lock(&self.inner);
        let ticket = q.next;
        q.next += 1;
        q.waiting.push((ticket, batch));
        ticket
    }

    /// The outcome of `ticket`, once a group committed it.
    pub(super) fn take(&self, ticket: u64) -> Option<Outcome> {
        lock(&self.inner).done.remove(&ticket)
    }

    /// Every batch queued so far, for the caller (holding the writer lock) to commit.
    pub(super) fn drain(&self) -> Vec<(u64, Arc<IngestBatch>)> {
        std::mem::take(&mut lock(&self.inner).waiting)
    }

    /// Posts the outcomes of a committed group.
    pub(super) fn post(&self, outcomes: impl IntoIterator<Item = (u64, Outcome)>) {
        lock(&self.inner).done.extend(outcomes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::batch;

    #[test]
    fn tickets_are_unique_and_outcomes_taken_once() {
        let q = Queue::default();
        let a = q.enqueue(Arc::new(batch("a1", 1, Vec::new())));
        let b = q.enqueue(Arc::new(batch("a1", 2, Vec::new())));
        assert_ne!(a, b);
        let drained = q.drain();
        assert_eq!(
            drained.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            vec![a, b]
        );
        assert!(q.drain().is_empty(), "a batch is drained once");
        assert!(q.take(a).is_none(), "no outcome before the group posts it");
        let ok = CommitOutcome {
            duplicate_batch: false,
            stored: 0,
            duplicate_measurements: 0,
        };
        q.post([(a, Ok(ok)), (b, Err(StoreError::Full("disk".into())))]);
        assert!(matches!(q.take(b), Some(Err(StoreError::Full(_)))));
        assert!(matches!(q.take(a), Some(Ok(o)) if o == ok));
        assert!(q.take(a).is_none(), "an outcome is taken once");
    }
}
