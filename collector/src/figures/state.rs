//! The figures' persisted state: per service, its closed minutes (`sla::ClosedMinutes`) and
//! the totals of its past months, written to one file in the data directory, so that a
//! restarted collector loads them instead of re-reading and re-folding a month of rows per
//! service (the read was ~85 % of a cold start).
//!
//! Invariants:
//! - A loaded entry is used only when (a) the service's definition has the same
//!   fingerprint (a hash of its whole configuration, this build's version and the state
//!   format), (b) the store's durable late-write log (`Store::changed_late_since`) shows no
//!   write to its checks' minutes since the mark taken before the refresh that built it,
//!   and (c) everything it covers lies at least two [`LATE_MINUTES`] behind the time it was
//!   saved, so that any later write to those minutes is a late write and was logged.
//!   Past totals are checked over the rows they read (`[from, month start)`, so a retention
//!   horizon behind `from` does not void them) and against where the service was first
//!   seen; their maintenance is compared at use.
//! - In the first two hours of a month the totals including the month that just closed
//!   cannot satisfy (c): the entry then holds the closed month's closed minutes
//!   (`closing`) and the totals before it, so a restart adds that month reading only its
//!   last minutes.
//! - The file is the owner's only (0600, like the database files), and is replaced
//!   atomically (temporary file, fsync, rename); a torn, truncated,
//!   foreign or corrupt file is ignored as a whole (zstd frame checksum plus a total
//!   decoder), and the figures are then computed from the store as without it.
//! - Nothing here decides a figure: it only saves and restores engine state.

use std::io::Write;
use std::path::Path;

use attest_config::Service;
use jiff::Timestamp;

use super::Totals;
use crate::sla::{ClosedMinutes, Month};
use crate::store::LATE_MINUTES;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "figures-state.bin";
const MAGIC: &[u8; 8] = b"ATSTFIG2";

/// One service's saved state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SavedService {
    pub name: String,
    pub fingerprint: u64,
    /// The month the closed minutes belong to.
    pub month: Month,
    pub closed: ClosedMinutes,
    /// Totals of the complete months before `current` (the SLO counters' history).
    pub past: Option<SavedPast>,
    /// In the first hours of a month: the closed minutes of the month that just closed
    /// (`past` then holds the totals before it), so a restart redoes the turn reading only
    /// that month's last minutes.
    pub closing: Option<(Month, ClosedMinutes)>,
}

/// What past totals depend on besides the journalled rows: reused only while equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PastBasis {
    /// The first minute any of their months reads (`i64::MAX`: no past month).
    pub from: i64,
    /// The service's first measured minute (`Store::first_seen`) they were computed with.
    pub first_seen: Option<i64>,
    /// A hash of the service's API maintenance windows (`past::maintenance_key`).
    pub maintenance: u64,
}

/// One service's saved past totals: of the complete months before `current`, computed from
/// `basis`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SavedPast {
    pub current: Month,
    pub totals: Totals,
    pub basis: PastBasis,
}

/// Everything saved at `saved_at`, valid as of the store's late-write mark `late_mark`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Saved {
    pub late_mark: u64,
    pub saved_at: Timestamp,
    pub services: Vec<SavedService>,
}

impl Saved {
    /// Whether `[.., to_minute)` is far enough behind the save for the late-write log to
    /// cover every later write to it (invariant (c)).
    /// The save's minute is rounded up: a write after the save to a minute before
    /// `ceil(saved_at) − 2 × LATE_MINUTES` is still more than `LATE_MINUTES` behind its
    /// receipt, so it is logged (the closed minutes of a refresh at hh:59:30 end two hours
    /// before the next full hour, and were refused by the rounded-down rule).
    pub fn covers(&self, to_minute: i64) -> bool {
        let saved = (self.saved_at.as_second() + 59).div_euclid(60);
        to_minute <= saved - 2 * LATE_MINUTES
    }
}

/// A stable hash of the service's whole definition, this build and the state format: a
/// changed definition (checks, quorum, targets, hours, zone, ...) or an upgrade never
/// reuses saved state.
pub(crate) fn fingerprint(svc: &Service) -> u64 {
    let text = format!(
        "{}|{}|{svc:?}",
        env!("CARGO_PKG_VERSION"),
        MAGIC.escape_ascii()
    );
    fnv(&text)
}

/// FNV-1a of `text`: stable across builds and platforms, unlike std's hasher.
pub(crate) fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_month(out: &mut Vec<u8>, m: Month) {
    out.extend_from_slice(&m.year().to_le_bytes());
    out.push(m.month() as u8);
}

fn encode(saved: &Saved) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    put_u64(&mut out, saved.late_mark);
    put_u64(&mut out, saved.saved_at.as_second() as u64);
    put_u64(&mut out, saved.services.len() as u64);
    for s in &saved.services {
        put_bytes(&mut out, s.name.as_bytes());
        put_u64(&mut out, s.fingerprint);
        put_month(&mut out, s.month);
        put_bytes(&mut out, &s.closed.encode());
        match s.past {
            Some(p) => {
                out.push(1);
                put_month(&mut out, p.current);
                for v in [p.totals.good, p.totals.bad, p.totals.known] {
                    put_u64(&mut out, v);
                }
                put_u64(&mut out, p.basis.from as u64);
                match p.basis.first_seen {
                    Some(f) => {
                        out.push(1);
                        put_u64(&mut out, f as u64);
                    }
                    None => out.push(0),
                }
                put_u64(&mut out, p.basis.maintenance);
            }
            None => out.push(0),
        }
        match &s.closing {
            Some((m, c)) => {
                out.push(1);
                put_month(&mut out, *m);
                put_bytes(&mut out, &c.encode());
            }
            None => out.push(0),
        }
    }
    out
}

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        (self.0.len() >= n).then(|| {
            let (h, r) = self.0.split_at(n);
            self.0 = r;
            h
        })
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }
    fn month(&mut self) -> Option<Month> {
        let year = i16::from_le_bytes(self.take(2)?.try_into().ok()?);
        Month::new(year, i8::try_from(self.u8()?).ok()?).ok()
    }
}

fn decode(bytes: &[u8]) -> Option<Saved> {
    let mut i = In(bytes);
    if i.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let late_mark = i.u64()?;
    let saved_at = Timestamp::from_second(i64::try_from(i.u64()?).ok()?).ok()?;
    let n = i.u64()?;
    let mut services = Vec::new();
    for _ in 0..n {
        let name = String::from_utf8(i.bytes()?.to_vec()).ok()?;
        let fingerprint = i.u64()?;
        let month = i.month()?;
        let closed = ClosedMinutes::decode(i.bytes()?)?;
        let past = match i.u8()? {
            0 => None,
            1 => {
                let current = i.month()?;
                let (good, bad, known) = (i.u64()?, i.u64()?, i.u64()?);
                let from = i.u64()? as i64;
                let first_seen = match i.u8()? {
                    0 => None,
                    1 => Some(i.u64()? as i64),
                    _ => return None,
                };
                let maintenance = i.u64()?;
                Some(SavedPast {
                    current,
                    totals: Totals { good, bad, known },
                    basis: PastBasis {
                        from,
                        first_seen,
                        maintenance,
                    },
                })
            }
            _ => return None,
        };
        let closing = match i.u8()? {
            0 => None,
            1 => Some((i.month()?, ClosedMinutes::decode(i.bytes()?)?)),
            _ => return None,
        };
        services.push(SavedService {
            name,
            fingerprint,
            month,
            closed,
            past,
            closing,
        });
    }
    i.0.is_empty().then_some(Saved {
        late_mark,
        saved_at,
        services,
    })
}

/// Writes `saved` to `path` atomically; returns the bytes written.
pub(crate) fn save(path: &Path, saved: &Saved) -> std::io::Result<u64> {
    write_private(path, &encode(saved), 1)
}

/// Replaces `path` atomically with `bytes` as a zstd frame with its checksum (a torn or
/// damaged file is refused as a whole on load), owner-only; returns the bytes written. The
/// saved state and the published figures are both written this way.
pub(crate) fn write_private(path: &Path, bytes: &[u8], level: i32) -> std::io::Result<u64> {
    let tmp = path.with_extension("tmp");
    // A temporary file left by a crash keeps its mode when reopened: start afresh.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut enc = zstd::stream::write::Encoder::new(private_file(&tmp)?, level)?;
    enc.include_checksum(true)?;
    enc.write_all(bytes)?;
    let file = enc.finish()?;
    file.sync_all()?;
    let len = file.metadata()?.len();
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(len)
}

/// Creates `path` readable and writable by the owner only (0600, as the database files):
/// the state holds every service's figures.
pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The state saved at `path`: `Ok(None)` when there is none, `Err` (with the reason to
/// log) when it cannot be used.
pub(crate) fn load(path: &Path) -> Result<Option<Saved>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    let bytes = zstd::stream::decode_all(file)
        .map_err(|e| format!("{} is not a complete state file: {e}", path.display()))?;
    decode(&bytes)
        .map(Some)
        .ok_or_else(|| format!("{} is not a state file of this version", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Saved {
        Saved {
            late_mark: 42,
            saved_at: Timestamp::from_second(1_790_000_000).expect("ts"),
            services: vec![SavedService {
                name: "web".into(),
                fingerprint: 7,
                month: Month::new(2026, 10).expect("month"),
                closed: ClosedMinutes::default(),
                past: Some(SavedPast {
                    current: Month::new(2026, 10).expect("month"),
                    totals: Totals {
                        good: 1,
                        bad: 2,
                        known: 3,
                    },
                    basis: PastBasis {
                        from: -5,
                        first_seen: Some(29_000_000),
                        maintenance: 9,
                    },
                }),
                closing: Some((
                    Month::new(2026, 9).expect("month"),
                    ClosedMinutes::default(),
                )),
            }],
        }
    }

    #[test]
    fn saves_and_loads_and_refuses_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        assert_eq!(load(&path), Ok(None), "no file: nothing saved");
        save(&path, &saved()).expect("save");
        assert_eq!(load(&path), Ok(Some(saved())));
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("truncate");
        assert!(load(&path).is_err(), "a torn file is refused");
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        std::fs::write(&path, &flipped).expect("flip");
        assert!(load(&path).is_err(), "a corrupt file is refused");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, b"left by a crash").expect("stale temporary file");
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            save(&path, &saved()).expect("save over a stale temporary file");
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the state file is the owner's only");
        }
        let raw = encode(&saved());
        for n in 0..raw.len() {
            assert_eq!(decode(&raw[..n]), None, "cut at {n}");
        }
    }
}
