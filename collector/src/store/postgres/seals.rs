//! PostgreSQL rows of signed batches (`store/seals.rs`), as in SQLite: written inside the
//! commit's transaction, read for ingest's chain check and for `audit`.

use jiff::Timestamp;
use tokio_postgres::{Client, Transaction};

use super::TxError;
use crate::store::StoreError;
use crate::store::keys::ts_ns;
use crate::store::seals::{AgentKeyRow, BatchSeal, Link, StoredSeal, fixed};

/// Stores `seal` for batch `seq` of `agent` (its batch row was just inserted), and the key
/// the first time this agent's batch is stored under it.
pub(super) async fn insert(
    tx: &Transaction<'_>,
    agent: i64,
    seq: i64,
    received_ns: i64,
    seal: &BatchSeal,
) -> Result<(), TxError> {
    let key = &seal.key[..];
    tx.execute(
        "INSERT INTO agent_key (agent_id, public_key, first_ns) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        &[&agent, &key, &received_ns],
    )
    .await?;
    let key_id: i64 = tx
        .query_one(
            "SELECT id FROM agent_key WHERE agent_id = $1 AND public_key = $2",
            &[&agent, &key],
        )
        .await?
        .try_get(0)?;
    let shift = (seal.ts_shift_ms != 0).then_some(seal.ts_shift_ms);
    let prev = seal.prev.as_ref().map(|p| &p[..]);
    tx.execute(
        "INSERT INTO batch_seal (agent_id, seq, digest, prev, signature, key_id, ts_shift_ms, gaps)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &agent,
            &seq,
            &&seal.digest[..],
            &prev,
            &&seal.signature[..],
            &key_id,
            &shift,
            &seal.gaps.as_deref(),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn links(
    client: &mut Client,
    agent: &str,
    seq: u64,
) -> Result<Vec<Link>, TxError> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(Vec::new());
    };
    let rows = client
        .query(
            "SELECT s.seq, s.digest, s.prev FROM batch_seal s JOIN agents a ON a.id = s.agent_id
             WHERE a.name = $1 AND s.seq BETWEEN $2::BIGINT - 1 AND $2::BIGINT + 1 ORDER BY s.seq",
            &[&agent, &seq],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let prev: Option<&[u8]> = r.try_get(2)?;
        out.push((
            r.try_get::<_, i64>(0)? as u64,
            fixed(r.try_get::<_, &[u8]>(1)?, "digest")?,
            prev.map(|p| fixed(p, "previous digest")).transpose()?,
        ));
    }
    Ok(out)
}

pub(super) async fn keys(client: &mut Client) -> Result<Vec<AgentKeyRow>, TxError> {
    let rows = client
        .query(
            "SELECT a.name, k.public_key, k.first_ns FROM agent_key k JOIN agents a ON a.id = k.agent_id
             ORDER BY k.id",
            &[],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let first_ns: i64 = r.try_get(2)?;
        out.push(AgentKeyRow {
            agent: r.try_get(0)?,
            key: fixed(r.try_get::<_, &[u8]>(1)?, "public key")?,
            first_seen: Timestamp::from_nanosecond(i128::from(first_ns))
                .map_err(|e| StoreError::Backend(e.to_string()))?,
        });
    }
    Ok(out)
}

pub(super) async fn in_range(
    client: &mut Client,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<StoredSeal>, TxError> {
    let (from, to) = (ts_ns(from)?, ts_ns(to)?);
    let rows = client
        .query(
            "SELECT a.name, s.seq, s.digest, s.prev, s.signature, k.public_key, s.ts_shift_ms, s.gaps
             FROM batch_seal s
             JOIN batches b ON b.agent_id = s.agent_id AND b.seq = s.seq
             JOIN agents a ON a.id = s.agent_id
             JOIN agent_key k ON k.id = s.key_id
             WHERE coalesce(b.last_ns, b.received_ns) >= $1 AND coalesce(b.first_ns, b.received_ns) < $2
             ORDER BY a.name, s.seq",
            &[&from, &to],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let prev: Option<&[u8]> = r.try_get(3)?;
        let shift: Option<i64> = r.try_get(6)?;
        let gaps: Option<Vec<u8>> = r.try_get(7)?;
        out.push(StoredSeal {
            agent: r.try_get(0)?,
            seq: r.try_get::<_, i64>(1)? as u64,
            seal: BatchSeal {
                digest: fixed(r.try_get::<_, &[u8]>(2)?, "digest")?,
                prev: prev.map(|p| fixed(p, "previous digest")).transpose()?,
                signature: fixed(r.try_get::<_, &[u8]>(4)?, "signature")?,
                key: fixed(r.try_get::<_, &[u8]>(5)?, "public key")?,
                ts_shift_ms: shift.unwrap_or(0),
                gaps,
            },
        });
    }
    Ok(out)
}
