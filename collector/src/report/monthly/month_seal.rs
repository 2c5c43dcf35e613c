//! The sealed month in an archived bundle: `seal/leaves.txt` (one leaf per line) and
//! `seal/SEAL` (the root, each agent's chain head, the report key's signature), built by
//! `crate::seal` from what the month's figures rest on — the seals of its batches, the
//! definitions of its services and its API maintenance windows. Both files are listed in the
//! MANIFEST like every other file, so the bundle's own seal covers them too; `SEAL` is signed
//! on its own so that a published root can be checked without the bundle.
//!
//! Invariant: only what the store holds when the month closes is sealed; an unsigned batch
//! (an old agent, an import) has no leaf, and the report's evidence statement says so.

use std::collections::BTreeMap;

use attest_config::Service;
use ed25519_dalek::SigningKey;
use jiff::Timestamp;

use super::model::definitions_sha256;
use crate::seal::{self, Head, Leaf};
use crate::store::{MaintenanceRow, StoredSeal};

pub const LEAVES: &str = "seal/leaves.txt";
pub const SEAL: &str = "seal/SEAL";

/// What a month's seal is made of.
pub struct SealInputs<'a> {
    pub month: &'a str,
    /// The month's span over every service's zone.
    pub span: (Timestamp, Timestamp),
    pub services: &'a [&'a Service],
    pub batches: &'a [StoredSeal],
    pub windows: &'a [MaintenanceRow],
}

/// The month's span over every service's zone: the earliest local start of `month` to the
/// latest local end (the UTC month without services). The seal's `from`/`to`, and what
/// `evidence export` reads.
pub fn span(
    services: &[Service],
    month: crate::sla::Month,
) -> Result<(Timestamp, Timestamp), crate::sla::SlaError> {
    let utc = crate::sla::Period::month(month, "UTC")?;
    let (mut start, mut end) = (utc.start, utc.end);
    for s in services {
        if let Ok(p) = crate::sla::Period::month(month, &s.time_zone) {
            start = start.min(p.start);
            end = end.max(p.end);
        }
    }
    Ok((start, end))
}

/// The seal files of `month` as the store holds it now: the batches and API windows of its
/// span, the definitions of `figures`' configuration, signed by `key`. What the month-close
/// loop archives and what `report --format bundle` writes.
pub fn build(
    figures: &crate::figures::Figures,
    month: crate::sla::Month,
    key: Option<&SigningKey>,
) -> Result<Vec<(String, Vec<u8>)>, crate::reject::Rejection> {
    let cfg = figures.config();
    let span = span(&cfg.services, month)
        .map_err(|e| crate::reject::Rejection::new(500, e.to_string()))?;
    let (batches, windows) = figures.seal_inputs(span.0, span.1)?;
    let services: Vec<&Service> = cfg.services.iter().collect();
    let name = month.to_string();
    let inputs = SealInputs {
        month: &name,
        span,
        services: &services,
        batches: &batches,
        windows: &windows,
    };
    Ok(files(&inputs, key))
}

/// The two seal files of a bundle, by relative path.
pub fn files(i: &SealInputs<'_>, key: Option<&SigningKey>) -> Vec<(String, Vec<u8>)> {
    let definitions: Vec<(&str, String)> = i
        .services
        .iter()
        .map(|s| (s.name.as_str(), definitions_sha256(&[s])))
        .collect();
    let mut leaves: Vec<Leaf<'_>> = i
        .batches
        .iter()
        .map(|b| Leaf::Batch {
            agent: &b.agent,
            seq: b.seq,
            digest: &b.seal.digest,
        })
        .collect();
    leaves.extend(
        definitions
            .iter()
            .map(|(service, sha256)| Leaf::Definition { service, sha256 }),
    );
    leaves.extend(i.windows.iter().map(|w| Leaf::Maintenance {
        id: w.id,
        service: &w.service,
        start: w.start,
        end: w.end,
        registered_at: w.created_at,
        cancelled_at: w.cancelled_at,
        registered_by: w.registered_by.as_deref(),
        reason: &w.reason,
    }));
    let (encoded, root) = seal::seal(&leaves);
    let mut text = Vec::with_capacity(encoded.iter().map(|l| l.len() + 1).sum());
    for l in &encoded {
        text.extend_from_slice(l);
        text.push(b'\n');
    }
    let file = seal::seal_file(
        i.month,
        i.span,
        encoded.len(),
        &root,
        &heads(i.batches),
        key,
    );
    vec![(LEAVES.into(), text), (SEAL.into(), file.into_bytes())]
}

/// Each agent's highest sealed seq in the month and its digest.
fn heads(batches: &[StoredSeal]) -> Vec<Head> {
    let mut last: BTreeMap<&str, &StoredSeal> = BTreeMap::new();
    for b in batches {
        let e = last.entry(&b.agent).or_insert(b);
        if b.seq > e.seq {
            *e = b;
        }
    }
    last.into_values()
        .map(|b| Head {
            agent: b.agent.clone(),
            seq: b.seq,
            digest: b.seal.digest,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::monthly::{Templates, archive, fixture, verify};
    use crate::store::BatchSeal;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    fn batch(agent: &str, seq: u64) -> StoredSeal {
        StoredSeal {
            agent: agent.into(),
            seq,
            seal: BatchSeal {
                digest: [seq as u8; 32],
                prev: None,
                signature: [0; 64],
                key: [1; 32],
                ts_shift_ms: 0,
                gaps: None,
            },
        }
    }

    /// A closed month's bundle carries its seal, listed in the MANIFEST; `verify` checks it
    /// with the report key, and a batch leaf removed from it (the MANIFEST re-sealed by an
    /// attacker without the key cannot hide it either) is named.
    #[test]
    fn an_archived_month_is_sealed_and_verify_checks_the_seal() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let (r, minutes) = fixture::sample(2);
        let cfg = attest_config::parse_collector(
            "c.toml",
            "[[service]]\nname = \"shop\"\nchecks = [\"home\"]\ntarget = \"99.9%\"\n",
        )
        .expect("config");
        let services: Vec<&Service> = cfg.services.iter().collect();
        let batches = [batch("a", 1), batch("a", 2), batch("b", 7)];
        let inputs = SealInputs {
            month: "2026-10",
            span: (ts("2026-09-30T22:00:00Z"), ts("2026-11-01T00:00:00Z")),
            services: &services,
            batches: &batches,
            windows: &[],
        };
        let files = files(&inputs, Some(&key));
        let leaves = String::from_utf8(files[0].1.clone()).expect("utf-8");
        assert_eq!(
            leaves.lines().count(),
            4,
            "three batches and one definition"
        );
        let seal = String::from_utf8(files[1].1.clone()).expect("utf-8");
        assert!(
            seal.contains("head a 2 ") && seal.contains("head b 7 "),
            "{seal}"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let archive = archive::Archive {
            dir: dir.path().join("archive"),
            grace: std::time::Duration::ZERO,
        };
        let end = ts("2026-11-01T00:00:00Z");
        archive
            .close_sealed(
                "2026-10",
                (end, end),
                Some(&key),
                &Templates::default(),
                || Some((r.clone(), minutes.clone(), files.clone())),
            )
            .expect("archived");
        let month = archive.month_dir("2026-10");
        let manifest = std::fs::read_to_string(month.join("MANIFEST")).expect("manifest");
        assert!(
            manifest.contains(LEAVES) && manifest.contains(SEAL),
            "{manifest}"
        );
        let f = verify::verify_path(&month, Some(&key.verifying_key())).expect("verify");
        assert!(f.ok(), "{:?}", f.problems);
        assert!(
            f.notes.iter().any(|n| n.contains("4 leaves under root")),
            "{:?}",
            f.notes
        );

        let first = leaves.lines().next().expect("leaf").to_string();
        std::fs::write(
            month.join(LEAVES),
            leaves.replacen(&format!("{first}\n"), "", 1),
        )
        .expect("tamper");
        let f = verify::verify_path(&month, Some(&key.verifying_key())).expect("verify");
        assert!(
            f.problems
                .iter()
                .any(|p| p.starts_with("seal/SEAL: seal: states 4 leaves")),
            "{:?}",
            f.problems
        );
    }
}
