//! The one error shape every HTTP answer and one-shot command uses for refused input: a
//! status, a reason that says what to do, and the field at fault.

use attest_config::wire;

/// A refusal with the HTTP status it maps to and a reason for the client's log.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    pub field: Option<String>,
    /// Seconds the client should wait (429/503).
    pub retry_after: Option<u64>,
}

impl Rejection {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Rejection {
            status,
            reason: reason.into(),
            field: None,
            retry_after: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn body(&self) -> wire::ErrorBody {
        wire::ErrorBody {
            error: self.reason.clone(),
            field: self.field.clone(),
        }
    }
}
