//! Native declarative partitioning of the large time-keyed tables (`raw`, `raw_block`,
//! `minute_rollup`) by day, so that retention drops whole days (`DROP TABLE` of a partition)
//! instead of deleting rows one chunk at a time.
//!
//! Each table is `PARTITION BY RANGE` on its time key (ns, hour, minute) with a `DEFAULT`
//! partition. The hourly compaction pass creates the partitions of the days around its
//! clock ([`ensure_around`]); rows that arrived in the default partition for such a day are
//! moved into the new partition in the same transaction. Rows of days without a partition
//! (old history, far late data) stay in the default partition and are deleted by the
//! chunked retention as before.
//!
//! Invariants:
//! - A partition named `{table}_d{day}` (`_dm{day}` for days before 1970) holds exactly the
//!   day's key range; partitions are created and dropped under one advisory lock, so two
//!   collectors never race on one.
//! - Retention drops a partition only when its whole range is behind the cut-off it applies
//!   (what the row deletes would have removed); the boundary day and the default partition
//!   keep the chunked deletes.

use tokio_postgres::Client;

use super::TxError;

const NS_PER_DAY: i64 = 86_400_000_000_000;

/// Advisory lock of partition maintenance ("attestpa" in ASCII).
const PARTITION_LOCK: i64 = 0x6174_7465_7374_7061;

/// The partitioned tables: name, key column, key units per day.
pub(super) const TABLES: [(&str, &str, i64); 3] = [
    ("raw", "ts_ns", NS_PER_DAY),
    ("raw_block", "hour", 24),
    ("minute_rollup", "minute", 1440),
];

fn name(table: &str, day: i64) -> String {
    if day < 0 {
        format!("{table}_dm{}", day.unsigned_abs())
    } else {
        format!("{table}_d{day}")
    }
}

/// The day a partition name stands for, if it is one of `table`'s day partitions.
fn day_of(table: &str, partition: &str) -> Option<i64> {
    let rest = partition.strip_prefix(table)?.strip_prefix("_d")?;
    match rest.strip_prefix('m') {
        Some(neg) => neg.parse::<i64>().ok().map(|d| -d),
        None => rest.parse().ok(),
    }
}

/// Ensures the partitions of every table for the day of `minute` and the next two (the
/// compaction pass's clock: data of now and of a clock a little ahead); returns how many
/// were created.
pub(super) async fn ensure_around(client: &mut Client, minute: i64) -> Result<u64, TxError> {
    let today = minute.div_euclid(1440);
    let mut created = 0;
    for day in today..=today + 2 {
        for (table, key, per_day) in TABLES {
            created += u64::from(ensure(client, table, key, per_day, day).await?);
        }
    }
    Ok(created)
}

/// Creates the partition of `table` for `day` if missing, moving that day's rows out of the
/// default partition; one transaction.
async fn ensure(
    client: &mut Client,
    table: &str,
    key: &str,
    per_day: i64,
    day: i64,
) -> Result<bool, TxError> {
    let part = name(table, day);
    if exists(client, &part).await? {
        return Ok(false);
    }
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await?;
    // No commit may write the table while its partitions change: one routed by the old
    // partition set would put a row of this day into the default partition, which the
    // attach then forbids. Commits wait for this short transaction; reads do not.
    tx.batch_execute(&format!("LOCK TABLE {table} IN EXCLUSIVE MODE"))
        .await?;
    let found: bool = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&part])
        .await?
        .try_get(0)?;
    if found {
        tx.commit().await?;
        return Ok(false);
    }
    let (lo, hi) = (day * per_day, (day + 1) * per_day);
    tx.batch_execute(&format!(
        "CREATE TABLE {part} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
         INSERT INTO {part} SELECT * FROM {table}_default WHERE {key} >= {lo} AND {key} < {hi};
         DELETE FROM {table}_default WHERE {key} >= {lo} AND {key} < {hi};
         ALTER TABLE {table} ATTACH PARTITION {part} FOR VALUES FROM ({lo}) TO ({hi});"
    ))
    .await?;
    tx.commit().await?;
    Ok(true)
}

async fn exists(client: &Client, relation: &str) -> Result<bool, TxError> {
    Ok(client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation])
        .await?
        .try_get(0)?)
}

/// Drops the day partitions of `table` whose whole range is before `cut` (in the table's
/// key units); returns how many were dropped.
pub(super) async fn drop_before(
    client: &mut Client,
    table: &str,
    per_day: i64,
    cut: i64,
) -> Result<u64, TxError> {
    let parts: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
             WHERE p.relname = $1",
            &[&table],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut dropped = 0;
    for part in parts {
        let Some(day) = day_of(table, &part) else {
            continue;
        };
        if (day + 1).saturating_mul(per_day) > cut {
            continue;
        }
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await?;
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {part}"))
            .await?;
        tx.commit().await?;
        dropped += 1;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_their_day() {
        for day in [0, 1, 20_600, -1, -365] {
            assert_eq!(day_of("raw", &name("raw", day)), Some(day));
            assert_eq!(day_of("raw_block", &name("raw_block", day)), Some(day));
        }
        assert_eq!(day_of("raw", "raw_default"), None);
        assert_eq!(
            day_of("raw", "raw_block_d5"),
            None,
            "another table's partition"
        );
    }
}
