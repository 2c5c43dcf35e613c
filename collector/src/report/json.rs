//! The JSON form of reports: compact for the API, pretty for the terminal. Both serialise
//! the [`model`](super::model) types only, so the bytes are the published contract
//! (`tests/golden/` pins them).

use super::model::ServiceReport;

/// The body of `GET /api/v1/sla`.
pub fn compact(reports: &[ServiceReport]) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(reports)
}

/// What `attest-collector sla --format json` prints (without the final newline).
pub fn pretty(reports: &[ServiceReport]) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(reports)
}
