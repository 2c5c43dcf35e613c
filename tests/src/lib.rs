//! Shared helpers for the end-to-end tests live in this crate; the tests are in `tests/`.
