//! A gap reported before any measurement of its check arrived still marks when the check
//! existed: otherwise an agent whose first measurements were all dropped (collector down at
//! its start) would have those minutes left out of the period instead of counted unknown,
//! and coverage would look better than it was.

use attest_collector::store::{IngestBatch, Store, sqlite::SqliteStore};
use attest_config::wire::{Gap, Measurement};
use jiff::Timestamp;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn gap_before_first_measurement_moves_first_seen() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let batch = IngestBatch {
        agent: "a1".into(),
        seq: 1,
        received_at: ts("2026-11-02T00:00:00Z"),
        clock_offset_ms: 0,
        measurements: vec![Measurement::new("web", ts("2026-11-01T10:00:00Z"), true)],
        gaps: vec![Gap {
            check: "web".into(),
            from: ts("2026-11-01T09:00:00Z"),
            to: ts("2026-11-01T09:59:50Z"),
            count: 360,
        }],
        spool: None,
        seal: None,
    };
    store.commit_batch(&batch).unwrap();
    let first = store.first_seen(&["web".to_string()]).unwrap();
    assert_eq!(first, Some(ts("2026-11-01T09:00:00Z").as_second() / 60));
}
