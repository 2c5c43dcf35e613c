//! SQLite rows of signed batches (`store/seals.rs`): written inside the commit's
//! transaction, read for ingest's chain check and for `audit`.

use jiff::Timestamp;
use rusqlite::{Transaction, params};

use super::error::map_err;
use crate::store::StoreError;
use crate::store::keys::ts_ns;
use crate::store::seals::{AgentKeyRow, BatchSeal, Link, StoredSeal, fixed};

/// Stores `seal` for batch `seq` of `agent` (its batch row was just inserted), and the key
/// the first time this agent's batch is stored under it.
pub(super) fn insert(
    tx: &Transaction<'_>,
    agent: i64,
    seq: i64,
    received_ns: i64,
    seal: &BatchSeal,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO agent_key (agent_id, public_key, first_ns) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut s| s.execute(params![agent, &seal.key[..], received_ns]))
    .map_err(map_err)?;
    let key_id: i64 = tx
        .prepare_cached("SELECT id FROM agent_key WHERE agent_id = ?1 AND public_key = ?2")
        .and_then(|mut s| s.query_row(params![agent, &seal.key[..]], |r| r.get(0)))
        .map_err(map_err)?;
    let shift = (seal.ts_shift_ms != 0).then_some(seal.ts_shift_ms);
    tx.prepare_cached(
        "INSERT INTO batch_seal (agent_id, seq, digest, prev, signature, key_id, ts_shift_ms, gaps)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            agent,
            seq,
            &seal.digest[..],
            seal.prev.as_ref().map(|p| &p[..]),
            &seal.signature[..],
            key_id,
            shift,
            seal.gaps.as_deref(),
        ])
    })
    .map_err(map_err)?;
    Ok(())
}

pub(super) fn links(tx: &Transaction<'_>, agent: &str, seq: u64) -> Result<Vec<Link>, StoreError> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(Vec::new());
    };
    let mut stmt = tx
        .prepare_cached(
            "SELECT s.seq, s.digest, s.prev FROM batch_seal s JOIN agents a ON a.id = s.agent_id
             WHERE a.name = ?1 AND s.seq BETWEEN ?2 - 1 AND ?2 + 1 ORDER BY s.seq",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![agent, seq], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })
        .map_err(map_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, digest, prev) = row.map_err(map_err)?;
        let prev = prev
            .map(|p| fixed::<32>(&p, "previous digest"))
            .transpose()?;
        out.push((seq as u64, fixed::<32>(&digest, "digest")?, prev));
    }
    Ok(out)
}

pub(super) fn keys(tx: &Transaction<'_>) -> Result<Vec<AgentKeyRow>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT a.name, k.public_key, k.first_ns FROM agent_key k JOIN agents a ON a.id = k.agent_id
             ORDER BY k.id",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(map_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (agent, key, first_ns) = row.map_err(map_err)?;
        out.push(AgentKeyRow {
            agent,
            key: fixed::<32>(&key, "public key")?,
            first_seen: Timestamp::from_nanosecond(i128::from(first_ns))
                .map_err(|e| StoreError::Backend(e.to_string()))?,
        });
    }
    Ok(out)
}

pub(super) fn in_range(
    tx: &Transaction<'_>,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<StoredSeal>, StoreError> {
    let (from, to) = (ts_ns(from)?, ts_ns(to)?);
    let mut stmt = tx
        .prepare_cached(
            "SELECT a.name, s.seq, s.digest, s.prev, s.signature, k.public_key, s.ts_shift_ms, s.gaps
             FROM batch_seal s
             JOIN batches b ON b.agent_id = s.agent_id AND b.seq = s.seq
             JOIN agents a ON a.id = s.agent_id
             JOIN agent_key k ON k.id = s.key_id
             WHERE coalesce(b.last_ns, b.received_ns) >= ?1 AND coalesce(b.first_ns, b.received_ns) < ?2
             ORDER BY a.name, s.seq",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![from, to], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, Vec<u8>>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<Vec<u8>>>(7)?,
            ))
        })
        .map_err(map_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (agent, seq, digest, prev, signature, key, shift, gaps) = row.map_err(map_err)?;
        out.push(StoredSeal {
            agent,
            seq: seq as u64,
            seal: BatchSeal {
                digest: fixed(&digest, "digest")?,
                prev: prev.map(|p| fixed(&p, "previous digest")).transpose()?,
                signature: fixed(&signature, "signature")?,
                key: fixed(&key, "public key")?,
                ts_shift_ms: shift.unwrap_or(0),
                gaps,
            },
        });
    }
    Ok(out)
}
