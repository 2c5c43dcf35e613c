//! The definition history as reports read it: the store's record of each service's
//! definitions (written by `crate::definitions`), for one period.

use jiff::Timestamp;

use super::{Figures, store_err};
use crate::reject::Rejection;
use crate::store::DefinitionRow;

impl Figures {
    /// The definitions of `service` in force during `[from, to)`, oldest first.
    pub fn definitions(
        &self,
        service: &str,
        (from, to): (Timestamp, Timestamp),
    ) -> Result<Vec<DefinitionRow>, Rejection> {
        self.store.definitions(service, from, to).map_err(store_err)
    }
}
