//! Report notes: dated, attributed comments on one service's month — the cause of what
//! happened and the action taken, with an owner and a due date (ISO/IEC 20000-1 asks a
//! service report for them). Written through `POST /api/v1/reports/{month}/{service}/notes`
//! (admin) or `attest-collector report note` (as `cli`); listed by the `GET` of that path.
//!
//! Invariants:
//! - A note is validated before it is stored: a month `YYYY-MM`, a configured service,
//!   cause and action of 1..2000 characters, an owner of at most 200, a due date
//!   `YYYY-MM-DD`; a refusal names the field and stores nothing.
//! - Notes are only ever added (never edited or deleted): a report reader must see what
//!   was written when and by whom, so a correction is a further note.

use std::sync::Arc;

use attest_config::CollectorConfig;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::reject::Rejection;
use crate::store::{NewNote, NoteRow, Store};

/// Longest accepted cause or action, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Longest accepted owner, in characters.
pub const MAX_OWNER_CHARS: usize = 200;
/// Largest note body: two texts of 2000 characters (4 bytes each at most) fit.
pub const NOTE_BODY_LIMIT: u64 = 64 << 10;

/// The body of `POST /api/v1/reports/{month}/{service}/notes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub cause: String,
    pub action: String,
    #[serde(default)]
    pub owner: Option<String>,
    /// `YYYY-MM-DD`; kept as text so that a malformed date is refused naming `due`.
    #[serde(default)]
    pub due: Option<String>,
}

/// A note as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoteView {
    pub id: i64,
    pub month: String,
    pub service: String,
    pub written_at: Timestamp,
    pub written_by: String,
    pub cause: String,
    pub action: String,
    pub owner: Option<String>,
    pub due: Option<Date>,
}

impl From<NoteRow> for NoteView {
    fn from(r: NoteRow) -> Self {
        NoteView {
            id: r.id,
            month: r.month,
            service: r.service,
            written_at: r.written_at,
            written_by: r.written_by,
            cause: r.cause,
            action: r.action,
            owner: r.owner,
            due: r.due,
        }
    }
}

pub struct Notes {
    /// The services a note may name; replaced by a configuration reload.
    cfg: std::sync::RwLock<Arc<CollectorConfig>>,
    store: Arc<dyn Store>,
}

impl Notes {
    pub fn new(cfg: Arc<CollectorConfig>, store: Arc<dyn Store>) -> Notes {
        Notes {
            cfg: std::sync::RwLock::new(cfg),
            store,
        }
    }

    /// Takes the services of a reloaded configuration.
    pub fn replace_config(&self, cfg: Arc<CollectorConfig>) {
        *self
            .cfg
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = cfg;
    }

    /// The notes of `service`'s `month`, in the order written.
    pub fn list(&self, month: &str, service: &str) -> Result<Vec<NoteView>, Rejection> {
        self.target(month, service)?;
        let rows = self
            .store
            .report_notes(month, Some(service))
            .map_err(store_err)?;
        Ok(rows.into_iter().map(NoteView::from).collect())
    }

    /// Decodes a JSON body `{cause, action, owner?, due?}` and stores it (see [`Notes::add`]).
    pub fn add_json(
        &self,
        month: &str,
        service: &str,
        body: &[u8],
        written_by: &str,
        now: Timestamp,
    ) -> Result<NoteView, Rejection> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        let note: NoteBody = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            Rejection::new(400, format!("invalid report note: {}", e.inner())).field(path)
        })?;
        self.add(month, service, &note, written_by, now)
    }

    /// Validates and stores a note on `service`'s `month`, written by `written_by` at `now`.
    pub fn add(
        &self,
        month: &str,
        service: &str,
        note: &NoteBody,
        written_by: &str,
        now: Timestamp,
    ) -> Result<NoteView, Rejection> {
        self.target(month, service)?;
        let due = validate(note)?;
        let new = NewNote {
            month,
            service,
            written_by,
            cause: &note.cause,
            action: &note.action,
            owner: note.owner.as_deref(),
            due,
        };
        let id = self.store.add_report_note(&new, now).map_err(store_err)?;
        Ok(NoteView {
            id,
            month: month.to_owned(),
            service: service.to_owned(),
            written_at: now,
            written_by: written_by.to_owned(),
            cause: note.cause.clone(),
            action: note.action.clone(),
            owner: note.owner.clone(),
            due,
        })
    }

    /// A month `YYYY-MM` and a configured service, or a refusal naming which.
    fn target(&self, month: &str, service: &str) -> Result<(), Rejection> {
        crate::report::parse_month(month)?;
        let cfg = self
            .cfg
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if !cfg.services.iter().any(|s| s.name == service) {
            return Err(Rejection::new(
                400,
                format!("no service named {service:?} in the collector config"),
            )
            .field("service"));
        }
        Ok(())
    }
}

/// Checks the texts and the due date; answers the parsed date.
fn validate(note: &NoteBody) -> Result<Option<Date>, Rejection> {
    for (field, text) in [("cause", &note.cause), ("action", &note.action)] {
        if text.trim().is_empty() || text.chars().count() > MAX_TEXT_CHARS {
            return Err(Rejection::new(
                400,
                format!("{field} must be 1..{MAX_TEXT_CHARS} characters"),
            )
            .field(field));
        }
    }
    if let Some(owner) = &note.owner
        && (owner.trim().is_empty()
            || owner.chars().count() > MAX_OWNER_CHARS
            || owner.chars().any(char::is_control))
    {
        return Err(Rejection::new(
            400,
            format!(
                "owner must be 1..{MAX_OWNER_CHARS} printable characters (a person or team), or left out"
            ),
        )
        .field("owner"));
    }
    note.due
        .as_deref()
        .map(|d| {
            let ok = d.len() == 10 && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-';
            d.parse::<Date>().ok().filter(|_| ok).ok_or_else(|| {
                Rejection::new(
                    400,
                    format!("due {d:?} is not a date YYYY-MM-DD, e.g. 2026-12-15"),
                )
                .field("due")
            })
        })
        .transpose()
}

fn store_err(e: crate::store::StoreError) -> Rejection {
    Rejection::new(503, e.to_string()).retry_after(5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(cause: &str, action: &str, owner: Option<&str>, due: Option<&str>) -> NoteBody {
        NoteBody {
            cause: cause.to_owned(),
            action: action.to_owned(),
            owner: owner.map(str::to_owned),
            due: due.map(str::to_owned),
        }
    }

    /// Each refusal names the field a client must fix.
    #[test]
    fn refusals_name_the_field() {
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        let cases = [
            (body("", "a", None, None), "cause"),
            (body("c", " ", None, None), "action"),
            (body(&long, "a", None, None), "cause"),
            (body("c", "a", Some(&"o".repeat(201)), None), "owner"),
            (body("c", "a", Some(""), None), "owner"),
            (body("c", "a", None, Some("2026-13-01")), "due"),
            (body("c", "a", None, Some("15.12.2026")), "due"),
        ];
        for (b, field) in cases {
            let r = validate(&b).expect_err(field);
            assert_eq!((r.status, r.field.as_deref()), (400, Some(field)), "{b:?}");
        }
        let ok = body(
            &"c".repeat(MAX_TEXT_CHARS),
            "a",
            Some("db team"),
            Some("2026-12-15"),
        );
        assert_eq!(
            validate(&ok).expect("valid"),
            Some(jiff::civil::date(2026, 12, 15))
        );
    }
}
