//! How SQLite and codec failures become [`StoreError`]s: a full disk or database is
//! [`StoreError::Full`] (the agents resend later), bytes that do not decode are corruption.
//! A leaf: every other file of the backend may use it, it uses none of them.

use crate::store::StoreError;
use crate::store::codec::CodecError;

/// Maps SQLite errors to store errors; a full disk or database becomes [`StoreError::Full`].
pub(super) fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::DiskFull
    {
        return StoreError::Full(e.to_string());
    }
    StoreError::Backend(e.to_string())
}

pub(super) fn map_err_fs(e: rusqlite::types::FromSqlError) -> StoreError {
    StoreError::Backend(format!("unexpected column type: {e}"))
}

pub(super) fn corrupt(what: &str, e: CodecError) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}
